"""kill -9 trial: events are never lost, duplicates are only resends, seq has no gaps.

A private mosquitto (persistent), the fake central (hallsim.central) and
``hall-edge run`` as its own process (all peripherals off).  A publisher
sends the controller signed ``status`` commands at ``--rate`` per second
(each becomes an ``audit.command`` event: the daemon's own way of making
events, no test hook; audit events are never rate-limited nor dropped,
unlike ``error.invalid_payload``, which is recorded at most 30 a minute).
The daemon is killed with SIGKILL at a random moment (0.05-1.5 s after its
start, times 8 on 1/8 of a core: during start, drain and idle alike) and
started again, ``--runs`` times; during run ``--broker-restart-at`` the broker is restarted in the
middle of the run.  At the end the daemon runs until the central has
everything and is stopped cleanly; then its database is read (the daemon
no longer runs) for the last seq it gave.

Checks: the central has every seq from 1 to the last (no gap: nothing
lost), one event_id per seq (no seq given twice), the outbox is empty, and
every command sent made its event, found by command id at the central
(the link acknowledges a received message only after the core handled it,
so a kill loses no input either).
Duplicates before de-duplication (resends after a kill) are counted.

Also measured: process start -> online (birth seen live at the platform)
for every run, and broker back -> birth republished.

    .venv/bin/python bench/kill9_trial.py --runs 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import rig
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hallsim.broker import Mosquitto
from hallsim.central import Central
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.progress import Progress
from edge.protocol import public_key_b64, sign

SITE, DEVICE = "trial", "hall-01"
KID = "kill9-trial"


class StateWatch:
    """Times of live (not retained-replay) state messages: births and deaths as they happen."""

    def __init__(self, port: int) -> None:
        self.births: list[float] = []
        self.deaths: list[float] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="trial-state", protocol=mqtt.MQTTv5)
        # A persistent session: a birth published while this client is still reconnecting after
        # a broker restart is kept for it (and arrives as live news, not as a retained replay).
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.on_connect = lambda c, *_: c.subscribe(
            f"lgsc/v1/{SITE}/{DEVICE}/state", options=SubscribeOptions(qos=1)
        )
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.01, 0.05)
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            return  # a replay of the last state at subscribe time, not news
        online = json.loads(message.payload).get("online")
        with self.lock:
            (self.births if online else self.deaths).append(time.monotonic())

    def first_birth_after(self, moment: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            with self.lock:
                later = [t for t in self.births if t >= moment]
            if later:
                return later[0]
            if time.monotonic() >= deadline:
                return None
            pause.wait(0.002)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher(threading.Thread):
    """Signed ``status`` commands at a steady rate: each one is an ``audit.command`` event."""

    def __init__(self, port: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.rate = rate
        self.sent = 0
        self.ids: list[str] = []
        self.key = Ed25519PrivateKey.generate()  # the daemon trusts its public half as KID
        self.stopping = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="trial-publisher", protocol=mqtt.MQTTv5
        )
        self.client.reconnect_delay_set(0.01, 0.1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def run(self) -> None:
        while not self.stopping.wait(1 / self.rate):
            if self.client.is_connected():
                command_id = f"k9-{self.sent:08d}"
                self.client.publish(f"lgsc/v1/{SITE}/{DEVICE}/cmd", self.command(command_id), qos=1)
                self.ids.append(command_id)
                self.sent += 1

    def command(self, command_id: str) -> bytes:
        """A ``status`` command that outlives the kills it may wait out (15 min is the most allowed)."""
        now = datetime.now().astimezone().replace(microsecond=0)
        body = {
            "id": command_id,
            "name": "status",
            "device": f"{SITE}/{DEVICE}",
            "issued_at": now.isoformat(),
            "expires_at": (now + timedelta(minutes=10)).isoformat(),
            "issuer": "kill9-trial",
            "args": {},
        }
        return sign(json.dumps(body), self.key, KID)

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key)

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        self.client.disconnect()
        self.client.loop_stop()


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(rig.daemon_command(config), stdout=sink, stderr=sink, cwd=rig.ROOT)


def wait_quiet(central: Central, quiet_s: float = 1.5, timeout: float = 60.0) -> None:
    """Until the central's count has not moved for ``quiet_s``."""
    pause = threading.Event()
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = central.report()["received"]
        if received != last:
            last, since = received, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        pause.wait(0.05)


def audited_ids(central: Central) -> set[str]:
    """Command ids with their event at the central.  A command remembered but killed before its
    audit.command is refused as a replay when the broker delivers it again: that refusal (with
    its id) is its event then."""
    events = central.events()
    return {e.get("data", {}).get("id") for e in events if e.get("type", "").startswith("audit.command")}


def wait_delivered(central: Central, state: Path, sent: set[str], timeout: float = 600.0) -> None:
    """Until every command sent has its event at the central and the outbox is empty, then quiet.

    "Quiet for 1.5 s" alone is not enough on a slow CPU: a daemon on 1/8 of a core may spend
    longer than that on the backlog of commands the broker kept for it before it sends anything.
    """
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sent <= audited_ids(central) and outbox_depth(state) == 0:
            break
        pause.wait(0.2)
    wait_quiet(central)


def outbox_depth(state: Path) -> int:
    """Rows in the outbox, read while the daemon runs (WAL: a reader never blocks it)."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'hall-edge.db'}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def broker_restarts(broker: Mosquitto, watch: StateWatch, count: int, cap: float) -> list[float]:
    """Restart the broker under a running daemon ``count`` times: broker back -> birth, each."""
    samples = []
    for _ in range(count):
        broker.stop()
        threading.Event().wait(0.3)
        back = time.monotonic()
        broker.start()
        birth = watch.first_birth_after(back, timeout=3 * cap + 10)
        if birth is not None:
            samples.append(birth - back)
    return samples


def last_seq_and_depth(state: Path) -> tuple[int, int]:
    """Read after the daemon stopped: the seq counter and the rows left in the outbox."""
    with sqlite3.connect(state / "hall-edge.db") as conn:
        last = conn.execute("SELECT value FROM counters WHERE name = 'event_seq'").fetchone()[0]
        depth = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    return last, depth


def trial(  # noqa: PLR0917 - a script's knobs
    runs: int, broker_restart_at: int, rate: float, cap: float, seed: int | None, birth_samples: int
) -> dict:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="kill9-"))
    broker = Mosquitto(folder / "broker").start()
    central = Central("127.0.0.1", broker.port, SITE, DEVICE, folder / "central").start()
    watch = StateWatch(broker.port)
    publisher = Publisher(broker.port, rate)
    config = rig.write_config(
        folder,
        {
            "mqtt": {"port": broker.port, "reconnect_cap_s": cap},
            "logging": {"level": "warning"},
            "commands": {"public_keys": {KID: publisher.public_key}},
        },
        site=SITE,
        device=DEVICE,
    )
    state = folder / "state"
    log = folder / "daemon.log"
    # The controller's persistent session exists from its first subscription on: before that
    # the broker has nobody to keep the payloads for.
    process = start_daemon(config, log)
    watch.first_birth_after(0, timeout=30)
    publisher.start()
    process.send_signal(signal.SIGKILL)
    process.wait()
    to_online: list[float] = []
    broker_back_to_birth: float | None = None
    try:
        progress = Progress("kill -9", runs)
        for run in range(runs):
            progress.step(f"run {run + 1}: start, publish, kill")
            begin = time.monotonic()
            process = start_daemon(config, log)
            if run == broker_restart_at:
                threading.Event().wait(rng.uniform(0.5, 1.0))
                broker.stop()
                threading.Event().wait(rng.uniform(0.2, 1.0))
                back = time.monotonic()  # includes mosquitto's own start (tens of ms)
                broker.start()
                birth = watch.first_birth_after(back, timeout=3 * cap + 10)
                broker_back_to_birth = birth - back if birth is not None else None
            # During start, drain and idle alike, on the daemon's pace: on 1/8 of a core the start
            # alone takes ~2 s, and a window of 1.5 s would only ever kill it while starting.
            threading.Event().wait(rng.uniform(0.05, 1.5 * rig.slowdown()))
            process.send_signal(signal.SIGKILL)
            process.wait()
            birth = watch.first_birth_after(begin, timeout=0)
            if birth is not None and run != broker_restart_at:
                to_online.append(birth - begin)
        publisher.stop()
        process = start_daemon(config, log)
        begin = time.monotonic()
        watch.first_birth_after(begin, timeout=30)
        wait_delivered(central, state, set(publisher.ids))
        restarts_to_birth = broker_restarts(broker, watch, birth_samples, cap)
        wait_quiet(central)
        process.send_signal(signal.SIGTERM)
        code = process.wait(10)
        last, depth = last_seq_and_depth(state)
        report = central.report()
    finally:
        if process.poll() is None:  # the trial failed half-way: leave no daemon behind
            process.kill()
            process.wait()
        if publisher.is_alive():
            publisher.stop()
        watch.close()
        central.stop()
        broker.stop()
    events = central.events()
    seqs = [e["seq"] for e in events]
    audited = audited_ids(central)
    return {
        "runs": runs,
        "kills": runs,
        "commands_sent": publisher.sent,
        "events_recorded": last,
        "events_at_central": report["received"],
        "inputs_without_event": len(set(publisher.ids) - audited),
        "lost": len(set(range(1, last + 1)) - set(seqs)),
        "gaps": report["gaps"],
        "seq_given_twice": len(seqs) - len(set(seqs)),
        "duplicates_before_dedup": report["duplicates"],
        "outbox_left": depth,
        "clean_exit_code": code,
        "start_to_online_s": _summary(to_online),
        "broker_back_to_birth_s": round(broker_back_to_birth, 3)
        if broker_back_to_birth is not None
        else None,
        "broker_back_to_birth_more_s": _summary(restarts_to_birth),
        "reconnect_cap_s": cap,
        "folder": str(folder),
    }


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100, help="daemon starts, each ended by SIGKILL")
    parser.add_argument("--broker-restart-at", type=int, default=None, help="run index (default: the middle)")
    parser.add_argument("--rate", type=float, default=100.0, help="signed status commands per second")
    parser.add_argument("--cap", type=float, default=2.0, help="mqtt.reconnect_cap_s for the daemon")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--birth-samples", type=int, default=5, help="broker restarts at the end, timed")
    parser.add_argument("--keep", action="store_true", help="keep the trial folder even when all is well")
    rig.add_daemon_options(parser)
    args = parser.parse_args(argv)
    rig.apply_daemon_options(args, "kill -9 trial")
    restart_at = args.runs // 2 if args.broker_restart_at is None else args.broker_restart_at
    result = trial(args.runs, restart_at, args.rate, args.cap, args.seed, args.birth_samples)
    ok = (
        result["lost"] == 0
        and not result["gaps"]
        and result["seq_given_twice"] == 0
        and result["outbox_left"] == 0
    )
    print(
        f"kill -9 x{result['kills']}: {result['events_recorded']} events recorded, "
        f"{result['events_at_central']} at the central, lost {result['lost']}, gaps {result['gaps']}, "
        f"seq given twice {result['seq_given_twice']}, "
        f"resent duplicates {result['duplicates_before_dedup']}, "
        f"commands sent {result['commands_sent']} (without event: {result['inputs_without_event']})"
    )
    print(f"start -> online: {result['start_to_online_s']}")
    print(
        f"broker back -> birth republished: {result['broker_back_to_birth_s']} s mid-trial; "
        f"{result['broker_back_to_birth_more_s']} over {args.birth_samples} more restarts "
        f"(reconnect cap {args.cap} s)"
    )
    print(json.dumps(result))
    if not ok:
        print(f"FAILED: see {result['folder']}", file=sys.stderr)
    elif not args.keep:
        shutil.rmtree(result["folder"], ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
