"""A province of halls on one broker: N simulated controllers, a restart, an outage, nothing lost.

    .venv/bin/python bench/fleet.py --controllers 1000 --broker mosquitto --outage-s 600
    .venv/bin/python bench/fleet.py --controllers 1000 --broker ejabberd --outage-s 600

Each simulated controller is the real link and outbox without the hall: its own SQLite storage
(``edge.storage``, its own directory), its own ``Core`` (the core thread, timers, the outbox)
and the ``link`` feature (``edge.link``: connection, backoff, drain), with its own site,
device and client id (and, on ejabberd, its own username and password). Worker processes
(this script with ``--worker``) hold ``--per-process`` controllers each. Every controller
records ``ticket.issued`` events at ``--events-per-hour`` (random phase) all along, also while
the broker is away. A receiving platform (one MQTT client here, persistent session) counts
every event and de-duplicates by ``event_id``.

The broker runs on loopback on a free port with its own configuration and data folder:
mosquitto (``hallsim.broker.Mosquitto``, persistence on) or ejabberd's MQTT broker
(``mod_mqtt``; the Debian package ``ejabberd``; ``auth_method: external`` with
``bench/ejabberd_extauth.py`` checking each controller's password; started as ``erl`` directly,
so it runs as whoever runs this, root in CI).

Scenario: steady traffic (``--steady-s``; by default over the 30 s after which the link counts a
connection as good, as a hall's would be); the broker restarted; steady again; the broker away
for ``--outage-s`` (every controller keeps recording); the broker back; every outbox empty.

Figures: reconnect spread after the restart and after the outage (p50/p90/max from the broker
being back, and a PNG: connects and events received per 0.25 s), time until every controller's
birth is back, backlog flush rate and time, peak broker connection rate (CONNACKs in any 1 s),
the platform's received count against what the controllers recorded (lost, duplicates before
de-duplication), RSS per simulated controller. The last line is the figures as JSON.

Exit 0 only when every event recorded reached the platform, every controller came back after
the restart and after the outage, and every outbox is empty.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import resource
import secrets
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import rig
from hallsim.broker import Mosquitto, free_port
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import on_core

from edge.clock import Clock
from edge.core import Core
from edge.link.feature import BrokerConnected, LinkFeature
from edge.storage import Storage

HERE = Path(__file__).resolve().parent
DATA = {"ticket": "A023", "category": "A", "priority": False, "waiting_ahead": 3}
BIN_S = 0.25  # the plot's and the rates' time step
PLATFORM_USER = "platform"
_pause = threading.Event()  # never set: wait() on it is an interruptible pause


# ---- brokers --------------------------------------------------------------------------------


def wait_listening(port: int, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the broker exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            _pause.wait(0.01)
    raise RuntimeError(f"the broker did not listen on {port} within {timeout}s")


class Ejabberd:
    """ejabberd's MQTT broker (``mod_mqtt``) on a free loopback port, its own config and spool.

    Started as ``erl -s ejabberd`` (what ``ejabberdctl foreground`` runs, without its switch to
    the ``ejabberd`` user, which could not write here), node ``nonode@nohost``: no epmd, no
    cookie, nothing shared with a system ejabberd. Passwords: ``users`` through extauth.
    """

    def __init__(self, folder: Path, users: dict[str, str]) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        users_file = folder / "users.json"
        users_file.write_text(json.dumps(users), encoding="utf-8")
        users_file.chmod(0o600)
        extauth = f"{sys.executable} {HERE / 'ejabberd_extauth.py'} {users_file}"
        (folder / "spool").mkdir(exist_ok=True)
        self.config = folder / "ejabberd.yml"
        self.config.write_text(
            "\n".join(
                [
                    'hosts: ["localhost"]',
                    "loglevel: warning",
                    "log_rotate_count: 0",
                    "auth_method: external",
                    f'extauth_program: "{extauth}"',
                    "extauth_pool_size: 4",
                    "listen:",
                    f"  - port: {self.port}",
                    '    ip: "127.0.0.1"',
                    "    module: mod_mqtt",
                    "    backlog: 4096",
                    "modules:",
                    "  mod_mqtt:",
                    "    max_queue: unlimited",  # the default (5000) would cut off a slow platform
                    "    session_expiry: 2d",
                    "",
                ]
            ),
            encoding="utf-8",
        )

    @staticmethod
    def available() -> str | None:
        """Why ejabberd cannot run here, or None."""
        if not shutil.which("erl"):
            return "no erl (apt-get install ejabberd)"
        if not list(Path("/usr/lib/x86_64-linux-gnu").glob("ejabberd-*")) and not list(
            Path("/usr/lib").glob("*/ejabberd-*")
        ):
            return "ejabberd is not installed (apt-get install ejabberd)"
        return None

    def _libs(self) -> str:
        found = sorted(Path("/usr/lib").glob("*/ejabberd-*/ebin"))
        return str(found[-1].parents[1]) if found else "/usr/lib/x86_64-linux-gnu"

    def start(self, timeout: float = 60.0) -> Ejabberd:
        env = {
            **os.environ,
            "ERL_LIBS": self._libs(),
            "EJABBERD_CONFIG_PATH": str(self.config),
            "EJABBERD_LOG_PATH": str(self.folder / "ejabberd.log"),
            "ERL_CRASH_DUMP": str(self.folder / "erl_crash.dump"),
            "ERL_MAX_PORTS": "65536",
            "HOME": str(self.folder),
        }
        command = ["erl", "-noinput", "-noshell", "+K", "true", "+P", "1000000"]
        command += ["-mnesia", "dir", f'"{self.folder / "spool"}"', "-s", "ejabberd"]
        with open(self.folder / "erl.out", "ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=self.folder)
        process = self.process
        wait_listening(self.port, timeout, lambda: process.poll() is None)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Erlang's init:stop(), a clean shutdown
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def broker_pid(broker: Mosquitto | Ejabberd) -> int | None:
    return broker.process.pid if broker.process else None


# ---- the platform ---------------------------------------------------------------------------


class Platform:
    """Receives every event (de-duplicated by event_id) and every live birth, with arrival times."""

    def __init__(self, port: int, password: str | None) -> None:
        self.lock = threading.Lock()
        self.arrived: dict[str, float] = {}  # event_id -> first arrival (monotonic)
        self.recorded_at: dict[str, str] = {}  # event_id -> the event's "at"
        self.duplicates = 0
        self.births: list[tuple[str, float]] = []  # (site/device, arrival) of live births
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="fleet-platform", protocol=mqtt.MQTTv5
        )
        if password is not None:
            self.client.username_pw_set(PLATFORM_USER, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.01, 0.1)  # the platform is back before the halls
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 86400
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.subscribed.wait(30):
            raise RuntimeError("the platform could not subscribe")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe([("lgsc/v1/+/+/events/#", 1), ("lgsc/v1/+/+/state", 1)])
        self.subscribed.set()

    def _on_message(self, _client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if message.topic.endswith("/state"):
            if message.retain or not message.payload:
                return  # a retained copy from before, not a controller coming back
            if json.loads(message.payload).get("online"):
                device = message.topic.split("/")[2] + "/" + message.topic.split("/")[3]
                with self.lock:
                    self.births.append((device, now))
            return
        body = json.loads(message.payload)
        with self.lock:
            if body["event_id"] in self.arrived:
                self.duplicates += 1
            else:
                self.arrived[body["event_id"]] = now
                self.recorded_at[body["event_id"]] = body["at"]

    def births_between(self, since: float, until: float = math.inf) -> dict[str, float]:
        """Each device's first live birth after ``since`` and before ``until`` (the next break:
        a birth after the outage is not one back from the restart)."""
        first: dict[str, float] = {}
        with self.lock:
            for device, at in self.births:
                if since < at < until and device not in first:
                    first[device] = at
        return first

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- a worker process: controllers --------------------------------------------------------


class SimController:
    """One hall controller without its hall: storage, outbox, core and the real link."""

    def __init__(self, folder: Path, spec: dict[str, str], port: int, interval_s: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        mqtt_table: dict[str, Any] = {"host": "127.0.0.1", "port": port, "tls": False}
        if spec.get("password"):
            password_file = folder / "password"
            password_file.write_text(spec["password"], encoding="utf-8")
            password_file.chmod(0o600)
            mqtt_table |= {"username": spec["username"], "password_file": str(password_file)}
        config = rig.make_config(
            folder,
            {"mqtt": mqtt_table, "storage": {"dir": str(folder / "state")}},
            site=spec["site"],
            device=spec["device"],
        )
        self.storage = Storage(config.storage.dir)
        self.core = Core(config, self.storage, Clock(config.time.zone, config.time.clock))
        self.link = LinkFeature(config)
        self.interval_s = interval_s
        self.recorded: list[str] = []
        self.connects: list[float] = []
        self.core.outbox.listeners.append(lambda event: self.recorded.append(event.event_id))
        self.core.subscribe(BrokerConnected, lambda _m: self.connects.append(time.monotonic()))
        self.traffic: Any = None

    def start(self) -> None:
        self.link.start(self.core)
        self.core.start()
        self.core.call_soon(self._start_traffic)

    def _start_traffic(self) -> None:
        phase = random.uniform(0, self.interval_s)
        self.traffic = self.core.every(self.interval_s, self._record, first_after=phase)

    def _record(self) -> None:
        self.core.emit("ticket.issued", DATA)

    def stop_traffic(self) -> None:
        on_core(self.core, lambda: self.traffic.cancel() if self.traffic else None, 30)

    def stop(self) -> None:
        self.core.stop()
        self.link.stop()
        self.storage.close()


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raise_open_files() -> None:
    """1,000 connections and 3 SQLite files per controller: more than the usual 1,024."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def worker() -> None:
    spec = json.loads(sys.stdin.readline())
    raise_open_files()
    logging.basicConfig(
        filename=spec["log"], level=logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )

    def say(reply: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    base_kib = rss_kib()
    folder = Path(spec["folder"])
    controllers = [
        SimController(folder / c["site"], c, spec["port"], spec["interval_s"]) for c in spec["controllers"]
    ]
    for controller in controllers:
        controller.start()
    say({"ready": True, "rss_base_kib": base_kib, "rss_kib": rss_kib()})
    for line in sys.stdin:
        command = json.loads(line)["cmd"]
        if command == "status":
            say(
                {
                    "depth": sum(c.core.outbox.depth() for c in controllers),
                    "online": sum(c.link.online for c in controllers),
                    "rss_kib": rss_kib(),
                }
            )
        elif command == "stop_traffic":
            for controller in controllers:
                controller.stop_traffic()
            say(
                {
                    "recorded": [i for c in controllers for i in c.recorded],
                    "connects": {f"{c.core.device}": c.connects for c in controllers},
                    "rss_kib": rss_kib(),
                }
            )
        elif command == "quit":
            for controller in controllers:
                controller.stop()
            say({"bye": True})
            return


class Worker:
    """One worker process, spoken to by JSON lines."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ask_only(spec)

    def ask_only(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def answer(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"worker {self.process.pid} did not answer within {timeout}s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.process.pid} exited ({self.process.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, command: str, timeout: float = 60) -> dict[str, Any]:
        self.ask_only({"cmd": command})
        return self.answer(timeout)

    def end(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask("quit", 120)
                self.process.wait(30)
            except (RuntimeError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


# ---- figures ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def spread(delays: list[float]) -> dict[str, Any]:
    if not delays:
        return {"n": 0}
    return {
        "n": len(delays),
        "p50_s": round(percentile(delays, 0.5), 3),
        "p90_s": round(percentile(delays, 0.9), 3),
        "max_s": round(max(delays), 3),
    }


def histogram(times: list[float], start: float, bin_s: float = BIN_S) -> list[int]:
    offsets = [t - start for t in times if t >= start]
    if not offsets:
        return []
    counts = [0] * (int(max(offsets) / bin_s) + 1)
    for offset in offsets:
        counts[int(offset / bin_s)] += 1
    return counts


def peak_per_second(times: list[float]) -> int:
    """The most events in any 1 s window."""
    ordered = sorted(times)
    best, low = 0, 0
    for high, at in enumerate(ordered):
        while ordered[low] < at - 1.0:
            low += 1
        best = max(best, high - low + 1)
    return best


def draw_plot(path: Path, title: str, panels: list[tuple[str, list[int]]]) -> None:
    """Bar charts, one above the other, counts per BIN_S after the broker was back (Pillow)."""
    from PIL import Image, ImageDraw

    width, panel_h, margin = 1000, 220, 60
    image = Image.new("RGB", (width, 40 + panel_h * len(panels)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 12), title, fill="black")
    span_bins = max((len(counts) for _, counts in panels), default=1) or 1
    for index, (label, counts) in enumerate(panels):
        top = 40 + index * panel_h
        bottom, plot_w = top + panel_h - 45, width - 2 * margin
        peak = max(counts, default=0) or 1
        draw.text((margin, top + 2), f"{label} (peak {peak} per {BIN_S} s)", fill="black")
        draw.line([(margin, bottom), (margin + plot_w, bottom)], fill="black")
        draw.line([(margin, top + 18), (margin, bottom)], fill="black")
        bar_w = plot_w / span_bins
        for i, count in enumerate(counts):
            height = (bottom - top - 20) * count / peak
            x0 = margin + i * bar_w
            draw.rectangle([x0, bottom - height, x0 + max(bar_w - 1, 1), bottom], fill="#3465a4")
        draw.text((margin - 40, top + 16), str(peak), fill="black")
        draw.text((margin - 15, bottom - 8), "0", fill="black")
        span_s = span_bins * BIN_S
        for tick in range(6):
            seconds = span_s * tick / 5
            x = margin + plot_w * tick / 5
            draw.line([(x, bottom), (x, bottom + 4)], fill="black")
            draw.text((x - 10, bottom + 6), f"{seconds:.1f}s", fill="black")
        draw.text((margin + plot_w - 230, bottom + 22), "seconds after the broker was back", fill="gray")
    image.save(path)


# ---- the run -----------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        _pause.wait(0.05)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--controllers", type=int, default=1000)
    parser.add_argument("--broker", choices=("mosquitto", "ejabberd"), default="mosquitto")
    parser.add_argument("--per-process", type=int, default=125, help="controllers per worker process")
    parser.add_argument("--events-per-hour", type=float, default=300, help="per controller (a busy hall)")
    parser.add_argument("--steady-s", type=float, default=40, help="steady traffic before each break")
    parser.add_argument("--outage-s", type=float, default=600, help="the broker away")
    parser.add_argument("--back-timeout-s", type=float, default=300, help="deadline for all to be back")
    parser.add_argument("--plot", type=Path, default=None, help="PNG (default fleet-<broker>-<N>.png)")
    parser.add_argument("--label", default="", help="added to the plot's title (e.g. before/after)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, databases)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return 0
    raise_open_files()
    plot = args.plot or Path(f"fleet-{args.broker}-{args.controllers}.png")
    folder = Path(tempfile.mkdtemp(prefix="hall-fleet-"))
    try:
        figures = run(args, folder, plot)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"run folder kept: {folder}")
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


def run(args: argparse.Namespace, folder: Path, plot: Path) -> dict[str, Any]:
    n = args.controllers
    sites = [f"s{i:04d}" for i in range(n)]
    controllers = [{"site": site, "device": "hall-01"} for site in sites]
    platform_password: str | None = None
    broker: Mosquitto | Ejabberd
    if args.broker == "ejabberd":
        for i, c in enumerate(controllers):
            c |= {"username": f"c{i:04d}", "password": secrets.token_hex(12)}
        platform_password = secrets.token_hex(12)
        users = {c["username"]: c["password"] for c in controllers} | {PLATFORM_USER: platform_password}
        broker = Ejabberd(folder / "broker", users)
    else:
        broker = Mosquitto(folder / "broker", persistence=True)
    t_start = time.monotonic()
    broker.start()
    print(f"{args.broker} up on port {broker.port} in {time.monotonic() - t_start:.1f} s", flush=True)
    platform = Platform(broker.port, platform_password)
    workers: list[Worker] = []
    try:
        return scenario(
            args,
            folder=folder,
            plot=plot,
            broker=broker,
            platform=platform,
            controllers=controllers,
            workers=workers,
        )
    finally:
        for w in workers:
            w.end()
        platform.close()
        broker.stop()


def scenario(
    args: argparse.Namespace,
    *,
    folder: Path,
    plot: Path,
    broker: Mosquitto | Ejabberd,
    platform: Platform,
    controllers: list[dict[str, str]],
    workers: list[Worker],
) -> dict[str, Any]:
    n = len(controllers)
    interval_s = 3600 / args.events_per_hour
    t_launch = time.monotonic()
    for first in range(0, n, args.per_process):
        spec = {
            "folder": str(folder / f"w{first // args.per_process:02d}"),
            "log": str(folder / f"worker{first // args.per_process:02d}.log"),
            "port": broker.port,
            "interval_s": interval_s,
            "controllers": controllers[first : first + args.per_process],
        }
        workers.append(Worker(spec))
    started = [w.answer(600) for w in workers]
    all_up = wait_until(lambda: len(platform.births_between(t_launch)) == n, args.back_timeout_s)
    print(
        f"{n} controllers in {len(workers)} processes, all online: {all_up} "
        f"({time.monotonic() - t_launch:.1f} s)",
        flush=True,
    )

    def broker_break(away_s: float) -> tuple[float, float, float]:
        """Stop the broker, keep it away ``away_s``, start it; (down, back, back wall clock)."""
        down = time.monotonic()
        broker.stop()
        if away_s:
            _pause.wait(away_s)
        back_wall = time.time()
        broker.start()
        return down, time.monotonic(), back_wall

    _pause.wait(args.steady_s)
    print("broker restart", flush=True)
    r_down, r_back, _ = broker_break(0)
    restart_all_back = wait_until(lambda: len(platform.births_between(r_down)) == n, args.back_timeout_s)
    print(
        f"  all births back: {restart_all_back} ({time.monotonic() - r_back:.1f} s after the broker)",
        flush=True,
    )
    _pause.wait(args.steady_s)
    print(f"broker away for {args.outage_s} s", flush=True)
    o_down, o_back, o_back_wall = broker_break(args.outage_s)
    outage_all_back = wait_until(lambda: len(platform.births_between(o_down)) == n, args.back_timeout_s)
    print(
        f"  all births back: {outage_all_back} ({time.monotonic() - o_back:.1f} s after the broker)",
        flush=True,
    )

    stopped = [w.ask("stop_traffic", 120) for w in workers]
    recorded = [event_id for s in stopped for event_id in s["recorded"]]
    connects: dict[str, list[float]] = {d: t for s in stopped for d, t in s["connects"].items()}

    def all_arrived() -> bool:
        with platform.lock:
            return all(event_id in platform.arrived for event_id in recorded)

    delivered = wait_until(all_arrived, args.back_timeout_s)
    empty = wait_until(lambda: sum(w.ask("status")["depth"] for w in workers) == 0, 60)
    end = [w.ask("status") for w in workers]
    checks = {
        "all_up": all_up,
        "restart": restart_all_back,
        "outage": outage_all_back,
        "delivered": delivered,
        "empty": empty,
    }
    return figures_of(
        args,
        plot=plot,
        broker=broker,
        platform=platform,
        started=started,
        end=end,
        recorded=recorded,
        connects=connects,
        restart=(r_down, r_back),
        outage=(o_down, o_back, o_back_wall),
        checks=checks,
    )


def first_after(times: list[float], moment: float) -> float | None:
    return next((t for t in times if t > moment), None)


def figures_of(
    args: argparse.Namespace,
    *,
    plot: Path,
    broker: Mosquitto | Ejabberd,
    platform: Platform,
    started: list[dict[str, Any]],
    end: list[dict[str, Any]],
    recorded: list[str],
    connects: dict[str, list[float]],
    restart: tuple[float, float],
    outage: tuple[float, float, float],
    checks: dict[str, bool],
) -> dict[str, Any]:
    n = args.controllers
    r_down, r_back = restart
    o_down, o_back, o_back_wall = outage
    r_connects = [t for t in (first_after(c, r_down) for c in connects.values()) if t is not None]
    o_connects = [t for t in (first_after(c, o_down) for c in connects.values()) if t is not None]
    r_births = platform.births_between(r_down, o_down)
    o_births = platform.births_between(o_down)
    r_all_back = round(max(r_births.values()) - r_back, 3) if len(r_births) == n else None
    o_all_back = round(max(o_births.values()) - o_back, 3) if len(o_births) == n else None
    with platform.lock:
        arrived = dict(platform.arrived)
        recorded_at = dict(platform.recorded_at)
        duplicates = platform.duplicates
    recorded_set = set(recorded)
    lost = len(recorded_set - arrived.keys())
    back_wall = datetime.fromtimestamp(o_back_wall).astimezone()
    backlog = [
        arrived[e]
        for e in recorded_set & arrived.keys()
        if arrived[e] >= o_back and datetime.fromisoformat(recorded_at[e]) < back_wall
    ]
    flush_s = max(backlog) - o_back if backlog else 0.0
    sizes = [len(chunk) for chunk in _chunks(n, args.per_process)]
    start_kib = [(s["rss_kib"] - s["rss_base_kib"]) / k for s, k in zip(started, sizes, strict=True)]
    end_kib = [(e["rss_kib"] - s["rss_base_kib"]) / k for s, e, k in zip(started, end, sizes, strict=True)]
    end_rss_kib = sum(e["rss_kib"] for e in end)
    figures: dict[str, Any] = {
        "broker": args.broker,
        "controllers": n,
        "processes": len(started),
        "events_per_hour": args.events_per_hour,
        "outage_s": args.outage_s,
        "restart_reconnect": spread([t - r_back for t in r_connects]),
        "restart_births_all_back_s": r_all_back,
        "outage_reconnect": spread([t - o_back for t in o_connects]),
        "outage_births_all_back_s": o_all_back,
        "peak_connects_per_s": max(peak_per_second(r_connects), peak_per_second(o_connects)),
        "backlog_events": len(backlog),
        "backlog_flush_s": round(flush_s, 3),
        "backlog_flush_per_s": round(len(backlog) / flush_s) if flush_s else None,
        "backlog_peak_per_s": peak_per_second(backlog),
        "recorded": len(recorded),
        "received": len(arrived.keys() & recorded_set),
        "lost": lost,
        "duplicates_before_dedup": duplicates,
        "rss_per_controller_mib": round(statistics.mean(start_kib) / 1024, 2),
        "rss_per_controller_end_mib": round(statistics.mean(end_kib) / 1024, 2),
        "rss_workers_end_mib": round(end_rss_kib / 1024),
        "broker_rss_mib": round(rss_kib(pid) / 1024) if (pid := broker_pid(broker)) else None,
        "checks": checks,
        "plot": str(plot),
    }
    figures["ok"] = lost == 0 and all(checks.values())
    title = f"{args.broker}, {n} controllers{' - ' + args.label if args.label else ''}"
    draw_plot(
        plot,
        title,
        [
            ("connects after the restart", histogram(r_connects, r_back)),
            (f"connects after the {args.outage_s:g} s outage", histogram(o_connects, o_back)),
            ("backlog events received after the outage", histogram(backlog, o_back)),
        ],
    )
    print_figures(figures)
    return figures


def _chunks(n: int, size: int) -> list[range]:
    return [range(first, min(first + size, n)) for first in range(0, n, size)]


def print_figures(f: dict[str, Any]) -> None:
    def line(label: str, value: object) -> None:
        print(f"{label:<44} {value}")

    def s(d: dict[str, Any]) -> str:
        return f"p50 {d.get('p50_s')} s, p90 {d.get('p90_s')} s, max {d.get('max_s')} s (n={d['n']})"

    print(f"== fleet: {f['controllers']} controllers on {f['broker']}, {f['processes']} processes")
    line("reconnect after the restart", s(f["restart_reconnect"]))
    line("every birth back after the restart", f"{f['restart_births_all_back_s']} s")
    line(f"reconnect after the {f['outage_s']:g} s outage", s(f["outage_reconnect"]))
    line("every birth back after the outage", f"{f['outage_births_all_back_s']} s")
    line("peak broker connection rate", f"{f['peak_connects_per_s']} CONNACKs in 1 s")
    line(
        "backlog flush",
        f"{f['backlog_events']} events in {f['backlog_flush_s']} s "
        f"({f['backlog_flush_per_s']}/s, peak {f['backlog_peak_per_s']} in 1 s)",
    )
    line("recorded / received / lost", f"{f['recorded']} / {f['received']} / {f['lost']}")
    line("duplicates before de-dup", f["duplicates_before_dedup"])
    line("RSS per simulated controller", f"{f['rss_per_controller_mib']} MiB at start, "
         f"{f['rss_per_controller_end_mib']} MiB at the end")  # fmt: skip
    line("workers' RSS at the end (all)", f"{f['rss_workers_end_mib']} MiB")
    line("broker RSS at the end", f"{f['broker_rss_mib']} MiB")
    line("checks", f["checks"])
    line("plot", f["plot"])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
