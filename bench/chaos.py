"""Chaos run: the whole simulated hall under random use and random faults; exit 0 only when every
check at the end holds.

The hall is hallsim's demo (hw-sim/hallsim/demo.py), run in this process: a private mosquitto,
the fake central platform (de-duplicates by event id), the ESC/POS printer and the RDM6300 reader
on ptys, the pin board (keys, doors, locks, buzzer), the screen, and ``hall-edge run`` as its
own process with every feature on.  For ``--minutes``:

- a driver presses queue keys, taps cards (known and unknown), opens and shuts compartment doors
  and sends signed ``status`` commands, at random, a few times a second;
- at random moments a fault: SIGKILL the daemon (restarted as systemd would, at most every 35 s:
  systemd's start limit), restart the broker, unplug the printer or the reader for 1-6 s, fill
  the storage file system for 3-10 s and free it (the daemon's ``storage.dir`` is a 64 MiB tmpfs
  this run mounts and removes; root only, else that fault is left out and said so).

At the end (every cable back, the daemon given time to send its backlog) the checks, from the
platform's side and from the daemon's database (read-only copy):

- every ticket and every rental recorded in the database reached the platform;
- no seq gap in the current epoch, no seq given to two events (no duplicate after de-dup);
- no ticket number given twice in a day; no tool in two states (one open rental per tool at most,
  a tool ``out`` iff its rental is open);
- the outbox is empty, the daemon is up and READY (its birth seen by the platform).

- jump the clock: the daemon's view of the wall clock moves forward (10 min - 6 h) or back
  (1 min - 12 h: across midnight in the hall's zone), the monotonic clock untouched, as an NTP
  step or ``date -s`` does.  The daemon runs under libfaketime (Debian package ``faketime``,
  ``LD_PRELOAD``) with ``FAKETIME_TIMESTAMP_FILE`` that this run rewrites (``FAKETIME_NO_CACHE``)
  and ``FAKETIME_DONT_FAKE_MONOTONIC=1``.  Why this way: it changes what every ``time.time()`` and
  ``datetime.now()`` of the daemon sees and nothing of the machine (``date -s`` would move the
  clock of everyone on a shared machine); a time namespace (``unshare --time``) virtualises only
  CLOCK_MONOTONIC and CLOCK_BOOTTIME, not the wall clock; a clock hook in the daemon would cover
  only the calls that go through it.  Caveat: with the monotonic clock left real, libfaketime
  0.9.10 makes ``time.sleep`` fail (EINVAL); the daemon never sleeps that way (it waits on
  events and queues), which the run itself shows.  Without libfaketime that fault is left out
  and said so.

Checks added for the jumps: no ticket number given twice in a day (above), the platform's events
in seq order whatever their ``at`` says (backward ``at`` steps counted), the ``clock`` field what
the configuration says (``time.clock``; a process's faked clock cannot change the kernel's NTP
state, so a jump alone must not change it), and no ``alarm.tool_overdue`` (no loan in a run this
short is overdue: one would be false, from a loan measured on the jumped wall clock).
What the disk-full periods cost is printed: the ``alarm.disk_full`` events
and whether anything recorded went missing (the checks above hold through them).
A failed run keeps its folder (daemon log, database copy, the platform's events).

    .venv/bin/python bench/chaos.py --minutes 10
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import rig  # noqa: F401 - puts hw-sim/ and tests/ on sys.path
from hallsim.control import ControlError
from hallsim.demo import Demo
from hallsim.hallconfig import ADMIN_KID, CATEGORIES, DEVICE, SITE
from support import fill_disk

from edge.protocol import read_private_key, sign

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")  # Debian: faketime
KILL_SPACING_S = 35.0  # systemd's start limit (4 starts in 120 s) must not end the run
_pause = threading.Event()  # never set: an interruptible sleep


class Chaos:
    def __init__(self, work: Path, seed: int) -> None:
        self.work = work
        self.random = random.Random(seed)
        self.demo = Demo(data=work / "data", central=True)
        self.done = threading.Event()
        self.actions: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # verbs the hall could not take (a cable out)
        self.last_kill = 0.0
        self.lock = threading.Lock()  # the supervisor and the faults both touch the daemon
        self.commands: mqtt.Client | None = None
        self.state = work / "data" / "state"
        self.disk = self._mount_storage()
        self.disk_full_s = 0.0
        self.faketime = work / "faketime"  # the daemon's clock offset, read at every clock call
        self.clock_offset_s = 0
        self.jumps: Counter[str] = Counter()
        self.can_jump = LIBFAKETIME.exists()
        if self.can_jump:
            self.faketime.write_text("+0\n")
            self.demo.daemon.env |= {
                "LD_PRELOAD": str(LIBFAKETIME),
                "FAKETIME_TIMESTAMP_FILE": str(self.faketime),
                "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            }

    def _mount_storage(self) -> bool:
        """A small tmpfs as the daemon's storage.dir, so that the run can fill it; False if not root."""
        self.state.mkdir(parents=True)
        command = ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(self.state)]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    def unmount_storage(self) -> None:
        if self.disk:
            subprocess.run(["umount", "-l", str(self.state)], check=False)

    # -- the hall ------------------------------------------------------------------------------

    def start(self) -> None:
        self.demo.start()
        self.last_kill = time.monotonic() - KILL_SPACING_S + 10  # the first kill may come after 10 s
        assert self.demo.mosquitto is not None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="chaos-admin", protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", self.demo.mosquitto.port)
        client.loop_start()
        self.commands = client
        self.key = read_private_key(str(self.demo.paths.admin_key))

    def supervise(self) -> None:
        """systemd's Restart=always: a daemon that is gone is started again."""
        while not self.done.wait(0.3):
            with self.lock:
                if self.demo.daemon.exited() is not None and not self.demo.daemon.restart():
                    raise RuntimeError("the start limit refused a restart")

    # -- the people ------------------------------------------------------------------------------

    def drive(self) -> None:
        verbs = self.demo.verbs
        doors = [str(c["number"]) for c in self.demo.compartments]
        choices: list[tuple[str, Callable[[], Any]]] = [
            ("press", lambda: verbs.press([self.random.choice(CATEGORIES)[0]])),
            ("tap", lambda: verbs.tap([self.random.choice(["worker", "driller", "staff", "1A2B3C4D5E"])])),
            ("door", lambda: verbs.door([self.random.choice(doors), self.random.choice(["open", "close"])])),
            ("command", self.send_command),
        ]
        while not self.done.wait(self.random.uniform(0.1, 0.6)):
            name, act = self.random.choice(choices)
            try:
                act()
                self.actions[name] += 1
            except ControlError:
                self.refused[name] += 1

    def send_command(self) -> None:
        now = datetime.now().astimezone().replace(microsecond=0)
        body = {
            "id": "c-" + uuid.uuid4().hex[:16],
            "name": "status",
            "device": f"{SITE}/{DEVICE}",
            "issued_at": now.isoformat(),
            "expires_at": (now + timedelta(minutes=5)).isoformat(),
            "issuer": "chaos",
            "args": {},
        }
        assert self.commands is not None
        payload = sign(json.dumps(body), self.key, ADMIN_KID)
        self.commands.publish(f"lgsc/v1/{SITE}/{DEVICE}/cmd", payload, qos=1)

    # -- the faults ------------------------------------------------------------------------------

    def inject(self) -> None:
        while not self.done.wait(self.random.uniform(3, 12)):
            fault = self.random.choice(["kill9", "broker", "printer", "reader", "disk", "clock"])
            if (fault == "disk" and not self.disk) or (fault == "clock" and not self.can_jump):
                fault = "broker"
            if fault == "kill9" and time.monotonic() - self.last_kill < KILL_SPACING_S:
                fault = "broker"
            if fault == "kill9":
                with self.lock:
                    pid = self.demo.daemon.pid
                    if pid is not None:
                        os.kill(pid, signal.SIGKILL)
                        self.demo.daemon.process.wait()  # type: ignore[union-attr]  # pid: it exists
                    self.last_kill = time.monotonic()
            elif fault == "disk":
                began = time.monotonic()
                filler = fill_disk(self.state)
                self.done.wait(self.random.uniform(3, 10))
                filler.unlink()
                self.disk_full_s += time.monotonic() - began
            elif fault == "clock":
                self.jump_clock()
            elif fault == "broker":
                assert self.demo.mosquitto is not None
                self.demo.mosquitto.restart()
            else:
                device = self.demo.devices.printer if fault == "printer" else self.demo.devices.reader
                assert device is not None
                device.unplug()
                self.done.wait(self.random.uniform(1, 6))
                device.plug()
            self.faults[fault] += 1

    def jump_clock(self) -> None:
        """Step the daemon's wall clock forward or back (staying within a day of the real one)."""
        if self.random.random() < 0.5:
            step = round(self.random.uniform(600, 6 * 3600))
        else:
            step = -round(self.random.uniform(60, 12 * 3600))
        if abs(self.clock_offset_s + step) > 24 * 3600:
            step = -step
        self.clock_offset_s += step
        self.faketime.write_text(f"{self.clock_offset_s:+d}\n")
        self.jumps["forward" if step > 0 else "back"] += 1

    # -- the end -------------------------------------------------------------------------------------

    def settle(self, timeout: float = 90.0) -> None:
        """Every cable back; wait until the daemon is up, online and its outbox empty."""
        for device in (self.demo.devices.printer, self.demo.devices.reader):
            if device is not None and not device.plugged:
                device.plug()
        central = self.demo.devices.central
        assert central is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.demo.daemon.running and central.online and self.outbox_depth() == 0:
                received = central.report()["received"]
                _pause.wait(2.0)
                if central.report()["received"] == received and self.outbox_depth() == 0:
                    return
            _pause.wait(0.5)

    def demo_clock_mode(self) -> str:
        """``time.clock`` of the daemon's configuration ('synced', 'unsynced' or 'auto')."""
        import tomllib

        table = tomllib.loads(self.demo.paths.config.read_text(encoding="utf-8"))
        return str(table.get("time", {}).get("clock", "auto"))

    @property
    def database(self) -> Path:
        return self.work / "data" / "state" / "hall-edge.db"

    def outbox_depth(self) -> int:
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as db:
                return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        except sqlite3.Error:
            return -1

    def stop(self) -> None:
        self.done.set()
        if self.commands is not None:
            self.commands.loop_stop()
            self.commands.disconnect()
        self.demo.stop()


def check(chaos: Chaos) -> list[tuple[str, bool, str]]:
    central = chaos.demo.devices.central
    assert central is not None
    report = central.report()
    events = central.events()
    copy = chaos.work / "hall-edge-copy.db"
    with (
        sqlite3.connect(f"file:{chaos.database}?mode=ro", uri=True) as source,
        sqlite3.connect(copy) as target,
    ):
        source.backup(target)
    db = sqlite3.connect(copy)
    rows: list[tuple[str, bool, str]] = []

    tickets = db.execute("SELECT day, ticket FROM tickets").fetchall()
    # Counted, not a set: after a clock jump back across midnight a number is given again on
    # another day, and each of those tickets must have reached the platform.
    sent_tickets = Counter(e["data"]["ticket"] for e in events if e.get("type") == "ticket.issued")
    missing = sorted((Counter(t for _, t in tickets) - sent_tickets).elements())
    rows.append(
        (
            "every ticket recorded reached the platform",
            not missing,
            f"{len(tickets)} recorded, {sent_tickets.total()} at the platform, missing {missing[:5]}",
        )
    )
    per_day = Counter(tickets)
    reused = [key for key, n in per_day.items() if n > 1]
    rows.append(("no ticket number given twice in a day", not reused, f"reused: {reused[:5]}"))

    rentals = {r for (r,) in db.execute("SELECT rental_id FROM locker_rentals")}
    sent_rentals = {e["data"].get("rental_id") for e in events if e.get("type") == "rental.checkout"}
    missing_r = sorted(rentals - sent_rentals)
    rows.append(
        (
            "every rental recorded reached the platform",
            not missing_r,
            f"{len(rentals)} recorded, missing {missing_r[:5]}",
        )
    )

    open_rentals = Counter(
        t for (t,) in db.execute("SELECT tool_id FROM locker_rentals WHERE returned_at IS NULL")
    )
    out_tools = {t for (t,) in db.execute("SELECT tool_id FROM locker_tools WHERE state = 'out'")}
    two_states = [t for t, n in open_rentals.items() if n > 1] + sorted(out_tools ^ set(open_rentals))
    rows.append(("no tool in two states", not two_states, f"tools out {sorted(out_tools)}; odd {two_states}"))

    rows.append(
        (
            "no seq gap (current epoch)",
            not report["gaps"],
            f"max seq {report['max_seq']}, gaps {report['gaps'][:5]}, epochs {report['epochs']}",
        )
    )
    by_seq = Counter((e.get("epoch"), e.get("seq")) for e in events)
    doubled = [k for k, n in by_seq.items() if n > 1]
    rows.append(
        (
            "no duplicate after de-dup (one event id per seq)",
            not doubled,
            f"{report['received']} unique, {report['duplicates']} resends dropped",
        )
    )
    (epoch,) = db.execute("SELECT value FROM storage_meta WHERE name = 'epoch'").fetchone()
    current = [e for e in events if e.get("epoch") == epoch]  # central.events(): in seq order
    seqs = [e["seq"] for e in current]
    backward = sum(1 for a, b in itertools.pairwise(current) if b.get("at", "") < a.get("at", ""))
    rows.append(
        (
            "events in seq order whatever the clock said",
            seqs == list(range(1, len(seqs) + 1)) if seqs else False,
            f"{len(seqs)} events 1..{seqs[-1] if seqs else '-'}; `at` earlier than the previous"
            f" seq's: {backward}; jumps {dict(chaos.jumps) or 'none'}, offset at the end"
            f" {chaos.clock_offset_s:+d} s, last `at` {current[-1]['at'] if current else '-'}",
        )
    )
    configured = chaos.demo_clock_mode()
    clocks = Counter(str(e.get("clock")) for e in events)
    rows.append(
        (
            "`clock` field truthful (what time.clock says)",
            set(clocks) <= {configured},
            f"time.clock = {configured}; events by clock: {dict(clocks)}",
        )
    )
    overdue = [e for e in events if e.get("type") == "alarm.tool_overdue"]
    rows.append(
        (
            "no false overdue alarm",
            not overdue,
            f"alarm.tool_overdue: {len(overdue)} {[e['data'].get('tool_id') for e in overdue][:5]}",
        )
    )
    depth = chaos.outbox_depth()
    rows.append(("outbox empty", depth == 0, f"{depth} left"))
    up = chaos.demo.daemon.running and bool(central.online)
    rows.append(("daemon up and READY (birth at the platform)", up, f"births {report['births']}"))
    db.close()
    return rows  # fmt: skip


def disk_cost(chaos: Chaos) -> str:
    """What the disk-full periods cost: alarms at the platform, writes the daemon saw refused."""
    central = chaos.demo.devices.central
    assert central is not None
    alarms = Counter(
        str(e["data"].get("state", "?")) for e in central.events() if e.get("type") == "alarm.disk_full"
    )
    log = (chaos.work / "data" / "daemon.log").read_text(errors="replace")
    refused = sum(1 for line in log.splitlines() if "disk is full" in line or "No space left" in line)
    return (
        f"disk full: {chaos.faults['disk']} periods, {chaos.disk_full_s:.0f} s in all; alarm.disk_full at"
        f" the platform: {dict(alarms) or 'none'}; daemon log lines of refused writes: {refused}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the run's folder even when all is well")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    work = Path(tempfile.mkdtemp(prefix="hall-chaos-"))
    chaos = Chaos(work, seed)
    rows: list[tuple[str, bool, str]] = []
    try:
        chaos.start()
        threads = [
            threading.Thread(target=t, daemon=True) for t in (chaos.supervise, chaos.drive, chaos.inject)
        ]
        for thread in threads:
            thread.start()
        _pause.wait(args.minutes * 60)
        chaos.done.set()
        for thread in threads:
            thread.join(15)
        chaos.done.clear()
        supervisor = threading.Thread(target=chaos.supervise, daemon=True)
        supervisor.start()
        chaos.settle()
        rows = check(chaos)
        chaos.done.set()
        cost = disk_cost(chaos)
    finally:
        chaos.stop()
        chaos.unmount_storage()
    print(f"chaos run: {args.minutes:g} min, seed {seed}")
    print("actions: " + ", ".join(f"{k} {v}" for k, v in sorted(chaos.actions.items())))
    print(
        "refused while a cable was out: "
        + (", ".join(f"{k} {v}" for k, v in chaos.refused.items()) or "none")
    )
    print("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(chaos.faults.items())))
    print(cost if chaos.disk else "disk full: not run (mounting a tmpfs needs root)")
    if not chaos.can_jump:
        print(f"clock jumps: not run (no {LIBFAKETIME}: apt-get install faketime)")
    width = max(len(r[0]) for r in rows)
    for name, ok, detail in rows:
        print(f"{'ok  ' if ok else 'FAIL'}  {name:<{width}}  {detail}")
    passed = bool(rows) and all(ok for _, ok, _ in rows)
    if passed and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"evidence kept in {work} (data/daemon.log, hall-edge-copy.db, data/central/)")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
