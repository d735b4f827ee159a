"""kill -9 during checkouts and returns: is every rental recorded once, and only once?

The daemon runs as it does in the hall (``hall-edge run``) with the
simulator's pin factory (``GPIOZERO_PIN_FACTORY=hallsim``), a simulated
RDM6300 on a pty and a private broker with the fake central platform.
This process is the hall: workers tap cards, watch the locks, open and shut
doors, take tools out and put them back.  In every trial it SIGKILLs the
daemon at a random moment (right after a tap, after the lock went high,
right after a door opened or shut, ...), restarts it, shuts any door left
open, and checks:

- each tool the hall holds outside its compartment is ``out`` in the
  daemon's database on the right worker, each tool inside is not;
- each rental in the database has exactly one ``rental.checkout`` event at
  the central (distinct event_id), each returned rental exactly one
  ``rental.return``, and no event names a rental the database lacks;
- no seq gap at the central, and the outbox drains.

The hall acts only while the daemon runs, and a person takes more than a
few tens of milliseconds between opening and shutting a door; a door that
was open at the kill stays open until the daemon is back.

    .venv/bin/python bench/locker_kill9.py --trials 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import rig
from hallsim.broker import Mosquitto
from hallsim.central import Central
from hallsim.pins import PinBoard, daemon_env
from hallsim.rfid import SimReader

from edge.progress import Progress

KEY = b"kill9-site-card-key"
SITE, DEVICE = "qinshui", "hall-01"
COMPARTMENTS = {1: (5, 6), 2: (17, 27), 3: (22, 23)}  # number: (lock_pin, door_pin)
TOOLS = {1: "T-hammer-01", 2: "T-shovel-01", 3: "T-pick-01"}
WORKERS = {"0100000001": "W000001", "0100000002": "W000002", "0100000003": "W000003"}
STAFF = {"0200000001": "S000001"}
_nap = threading.Event()


def pause(seconds: float) -> None:
    _nap.wait(seconds)


def write_config(folder: Path, broker_port: int, reader_port: str, key_file: Path) -> Path:
    compartments = [
        {
            "number": number,
            "tool_id": TOOLS[number],
            "tool_type": TOOLS[number].split("-")[1],
            "lock_pin": lock_pin,
            "door_pin": door_pin,
        }
        for number, (lock_pin, door_pin) in COMPARTMENTS.items()
    ]
    tables = {
        "mqtt": {"port": broker_port, "reconnect_cap_s": 1.0},
        "logging": {"level": "info"},
        "rfid": {"enabled": True, "port": reader_port, "card_key_file": str(key_file), "same_card_s": 0.2},
        "locker": {
            "enabled": True,
            "lock_pulse_s": 0.1,
            "unlock_timeout_s": 1.0,
            "approval_required": [],
            "compartments": compartments,
        },
    }
    return rig.write_config(folder, tables, site=SITE, device=DEVICE)


class Daemon:
    """``hall-edge run`` as a child that can be killed; its log lines tell when it is ready."""

    def __init__(self, config: Path, pins_socket: Path) -> None:
        self.config = config
        self.env = {**os.environ, **daemon_env(pins_socket)}
        self.process: subprocess.Popen[str] | None = None
        self.reader_up = threading.Event()
        self.starts = 0

    def start(self) -> None:
        """Start and wait until the reader answers and the locker has settled its doors."""
        self.reader_up.clear()
        self.reader_seen = self.locker_seen = False
        self.process = subprocess.Popen(
            rig.daemon_command(self.config),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.starts += 1
        threading.Thread(target=self._watch, args=(self.process,), daemon=True).start()
        if not self.reader_up.wait(20):
            raise RuntimeError("the daemon did not get its card reader up")

    def _watch(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if "logger=drivers.rfid" in line and "answering" in line:
                self.reader_seen = True
            elif "locker ready" in line:
                self.locker_seen = True
            if self.reader_seen and self.locker_seen:
                self.reader_up.set()
            elif "level=error" in line or "Traceback" in line:
                print("daemon:", line.rstrip(), file=sys.stderr)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        if self.process is not None:
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            self.process.wait(10)  # type: ignore[union-attr]


class Killed(Exception):
    """The daemon was killed at the chosen step: the hall stops acting."""


class Hall:
    """The physical world: tools, doors, who holds what."""

    def __init__(self, board: PinBoard, reader: SimReader, daemon: Daemon, db: Path) -> None:
        self.db = db
        self.board = board
        self.reader = reader
        self.daemon = daemon
        self.tool_in = dict.fromkeys(COMPARTMENTS, True)
        self.holder: dict[int, str | None] = dict.fromkeys(COMPARTMENTS)
        self.door_open = dict.fromkeys(COMPARTMENTS, False)
        self.last_tap: dict[str, float] = {}
        self.steps = 0
        self.kill_at = -1
        self.kill_phase = ""
        self.phases: Counter[str] = Counter()
        self.completed = Counter()

    def step(self, phase: str) -> None:
        """Each physical action is a step; the chosen one is followed by the kill."""
        self.steps += 1
        if self.steps == self.kill_at:
            pause(random.uniform(0, 0.02))  # the daemon may or may not have handled it
            self.daemon.kill()
            self.kill_phase = phase
            self.phases[phase] += 1
            raise Killed(phase)

    def highs(self) -> dict[int, int]:
        return {
            n: sum(1 for c in self.board.changes(lock) if c.state) for n, (lock, _) in COMPARTMENTS.items()
        }

    def tap(self, uid: str) -> int | None:
        """Tap a card; the compartment whose lock went high, or None."""
        wait = 0.25 - (time.monotonic() - self.last_tap.get(uid, 0.0))
        if wait > 0:
            pause(wait)  # the same card within same_card_s would be the same tap
        before = self.highs()
        self.reader.send_frame(uid)
        self.last_tap[uid] = time.monotonic()
        self.step("after tap")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            after = self.highs()
            opened = [n for n in COMPARTMENTS if after[n] > before[n]]
            if opened:
                self.step("after lock high")
                return opened[0]
            pause(0.005)
        return None

    def set_door(self, number: int, is_open: bool) -> None:
        self.board.set_switch(COMPARTMENTS[number][1], closed=not is_open)
        self.door_open[number] = is_open

    def use_door(self, number: int, person: str) -> None:
        """Open; take the tool or put it back, as the screen says, or only look (an inspection); shut."""
        kind = self.unlocked_for(number)
        self.set_door(number, True)
        if kind == "return" and not self.tool_in[number]:
            self.tool_in[number], self.holder[number] = True, None
        elif kind == "checkout" and self.tool_in[number]:
            self.tool_in[number], self.holder[number] = False, person
        else:
            kind = "look"
        self.step("after door opened")
        pause(random.uniform(0.03, 0.08))  # a person takes longer than this
        self.set_door(number, False)
        self.completed[kind] += 1
        self.step("after door shut")
        pause(random.uniform(0.01, 0.05))

    def unlocked_for(self, number: int) -> str:
        """What the screen told the person: the daemon's open session for the compartment (if any)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute("SELECT kind FROM locker_sessions WHERE compartment = ?", (number,)).fetchone()
        finally:
            conn.close()
        return row[0] if row else "look"

    def shut_all(self) -> None:
        for number, is_open in self.door_open.items():
            if is_open:
                self.set_door(number, False)

    def act(self) -> None:
        """One person at the locker (staff inspect a returned tool, or borrow like anyone)."""
        people = STAFF if random.random() < 0.25 else WORKERS
        uid, person = random.choice(list(people.items()))
        number = self.tap(uid)
        if number is not None:
            self.use_door(number, person)


def db_state(db: Path) -> tuple[dict[str, tuple[str, str | None]], dict[str, tuple[str, bool]], int, int]:
    """(tool -> (state, borrower)), (rental -> (worker, returned)), open sessions, outbox depth."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        tools = {
            tool: (state, worker)
            for tool, state, worker in conn.execute(
                "SELECT t.tool_id, t.state, r.worker FROM locker_tools t"
                " LEFT JOIN locker_rentals r ON r.rental_id = t.rental_id"
            )
        }
        rentals = {
            rental: (worker, returned is not None)
            for rental, worker, returned in conn.execute(
                "SELECT rental_id, worker, returned_at FROM locker_rentals"
            )
        }
        sessions = conn.execute("SELECT COUNT(*) FROM locker_sessions").fetchone()[0]
        outbox = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()
    return tools, rentals, sessions, outbox


def check(hall: Hall, db: Path, central: Central) -> list[str]:
    """Problems between the hall's truth, the database and the central's events."""
    problems = []
    tools, rentals, _sessions, _outbox = db_state(db)
    for number, tool_id in TOOLS.items():
        state, borrower = tools[tool_id]
        if hall.tool_in[number] and state == "out":
            problems.append(f"{tool_id} is in its compartment but recorded out to {borrower}")
        if not hall.tool_in[number] and (state != "out" or borrower != hall.holder[number]):
            problems.append(f"{tool_id} is with {hall.holder[number]} but recorded {state}/{borrower}")
    checkouts: Counter[str] = Counter()
    returns: Counter[str] = Counter()
    for event in central.events():
        data = event.get("data", {})
        if event.get("type") == "rental.checkout":
            checkouts[data.get("rental_id")] += 1
        elif event.get("type") == "rental.return":
            returns[data.get("rental_id")] += 1
    for rental, (_worker, returned) in rentals.items():
        if checkouts[rental] != 1:
            problems.append(f"{rental}: {checkouts[rental]} rental.checkout events")
        if returns[rental] != (1 if returned else 0):
            problems.append(f"{rental}: {returns[rental]} rental.return events")
    for rental in set(checkouts) | set(returns):
        if rental not in rentals:
            problems.append(f"{rental}: an event for a rental the database lacks")
    return problems


def wait_settled(db: Path, central: Central, timeout: float = 20.0) -> None:
    """No unlock in progress, the outbox drained, and the central has every event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _tools, _rentals, sessions, outbox = db_state(db)
        if sessions == 0 and outbox == 0:
            return
        pause(0.02)
    raise RuntimeError(f"not settled: {sessions} sessions, {outbox} events in the outbox")


def run(trials: int, seed: int, folder: Path) -> dict[str, Any]:
    random.seed(seed)
    key_file = folder / "card.key"
    key_file.write_bytes(KEY)
    os.chmod(key_file, 0o600)
    with Mosquitto(folder / "broker") as broker:
        central = Central("127.0.0.1", broker.port, SITE, DEVICE, folder / "central", card_key=KEY).start()
        cards = [{"uid": uid, "worker": w} for uid, w in WORKERS.items()]
        cards += [{"uid": uid, "worker": s, "role": "staff"} for uid, s in STAFF.items()]
        central.publish_cards(cards)
        board = PinBoard(folder / "pins.sock").start()
        for _lock, door in COMPARTMENTS.values():
            board.set_switch(door, closed=True)
        reader = SimReader("rdm6300", link=folder / "hall-rfid", hold_s=0.05).start()
        config = write_config(folder, broker.port, str(folder / "hall-rfid"), key_file)
        daemon = Daemon(config, folder / "pins.sock")
        db = folder / "state" / "hall-edge.db"
        hall = Hall(board, reader, daemon, db)
        problems: list[str] = []
        started = time.monotonic()
        try:
            daemon.start()
            progress = Progress("locker kill -9", trials)
            for trial in range(trials):
                progress.step(f"trial {trial + 1}, {len(problems)} problems so far")
                hall.steps, hall.kill_at = 0, random.randint(1, 12)
                try:
                    while True:
                        hall.act()
                except Killed:
                    pass
                daemon.start()
                hall.shut_all()
                wait_settled(db, central)
                found = check(hall, db, central)
                problems += [f"trial {trial} (killed {hall.kill_phase}): {p}" for p in found]
            daemon.stop()
            report = central.report()
        finally:
            daemon.kill()
            reader.stop()
            board.stop()
            central.stop()
        _tools, rentals, _s, _o = db_state(db)
    return {
        "trials": trials,
        "seconds": round(time.monotonic() - started, 1),
        "kills_by_phase": dict(hall.phases),
        "door_cycles": dict(hall.completed),
        "rentals": len(rentals),
        "returned": sum(1 for _w, returned in rentals.values() if returned),
        "events_checkout": report["by_type"].get("rental.checkout", 0),
        "events_return": report["by_type"].get("rental.return", 0),
        "events_denied": report["by_type"].get("rental.denied", 0),
        "duplicate_deliveries": report["duplicates"],
        "seq_gaps": report["gaps"],
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    rig.add_daemon_options(parser)
    args = parser.parse_args(argv)
    rig.apply_daemon_options(args, "locker kill -9")
    # A SIGTERM runs the clean-up below (daemon, broker), like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.trials, args.seed, Path(tmp))
    for key, value in result.items():
        if key != "problems":
            print(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    print(f"problems: {len(result['problems'])}")
    for problem in result["problems"][:20]:
        print("  " + problem)
    return 1 if result["problems"] or result["seq_gaps"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
