"""Printer soak: the simulated printer and the real driver, idle then busy; false transitions counted.

The simulated ESC/POS printer (hallsim) stays ``ok`` the whole time, so every
``alarm.printer`` event is a false transition, and every ticket that comes
out on paper must end in ``ticket.printed`` with ``printed: true``.  Runs the
tickets feature in-process (real core, SQLite, printer port thread, buttons
on gpiozero's MockFactory), like ``bench/ticket_bench.py``:

1. idle for the first half of ``--duration``: status polls only;
2. busy for the second half: a service button pressed every ``--press-every`` s.

``--second-poller`` adds what reproduces issue 18's flapping: a second process
on the same port asking the printer's status about every ``poll`` seconds (a
second daemon, or ``hall-edge selftest`` while the service runs).  The driver opens
its port exclusively, so that poller is refused; before that, it took the
daemon's status answers.

    .venv/bin/python bench/printer_soak.py                     # 10 minutes
    .venv/bin/python bench/printer_soak.py --duration 20 --press-every 1
    .venv/bin/python bench/printer_soak.py --duration 120 --second-poller

The last line is ``false transitions: N``; the exit code is 1 when N > 0 or
a ticket's outcome is not what happened on paper.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from hallsim.printer import SimPrinter
from rig import add_daemon_options, apply_daemon_options, daemon_cpu, make_config, wait_until

from drivers.printer import open_transport, read_status
from edge.clock import Clock
from edge.core import Core
from edge.storage import Storage
from edge.tickets.feature import TicketsFeature

BUTTON_PIN = 5  # service button A in the tests' default wiring
_pause = threading.Event()  # never set: wait() is an interruptible pause


@dataclass
class Phase:
    name: str
    seconds: float
    presses: int = 0
    transitions: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    on_paper: int = 0
    misrecorded: list[str] = field(default_factory=list)  # on paper, but not recorded as printed
    missed_answers: int | None = None
    status_queries: int = 0


class SecondPoller:
    """Another process's view of the port: open it and ask the status every ``poll_s``."""

    def __init__(self, path: str, poll_s: float, timeout_s: float) -> None:
        self.path, self.poll_s, self.timeout_s = path, poll_s, timeout_s
        self.refused = 0
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="second-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        transport = None
        next_poll = time.monotonic()
        while not self._stop.wait(max(0.0, next_poll - time.monotonic())):
            next_poll += self.poll_s
            try:
                if transport is None:
                    transport = open_transport("serial", self.path, 9600)
                read_status(transport, self.timeout_s)
                self.polls += 1
            except OSError:
                self.refused += 1
                if transport is not None:
                    transport.close()
                    transport = None
        if transport is not None:
            transport.close()


def outbox(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        return [json.loads(p) for (p,) in conn.execute("SELECT payload FROM outbox ORDER BY seq")]


def soak(args: argparse.Namespace, folder: Path) -> list[Phase]:
    Device.pin_factory = MockFactory()
    printer = SimPrinter(folder / "paper").start()
    config = make_config(
        folder,
        {
            "queue": {"enabled": True, "bounce_ms": 50},
            "printer": {
                "enabled": True,
                "port": printer.port,
                "status_poll_s": args.poll,
                "status_timeout_s": args.timeout,
            },
        },
    )
    storage = Storage(config.storage.dir)
    core = Core(config, storage, Clock(config.time.zone, "synced"))
    tickets = TicketsFeature(config)
    with daemon_cpu():  # the daemon's threads (core, printer driver) on --cpu-fraction, the printer not
        tickets.start(core)
        core.start()
    # Another daemon with the same configuration polls at the same rate; started right after the
    # driver's first poll, its polls fall in step with the driver's, as two daemons' do.
    second = SecondPoller(printer.port, args.poll, args.timeout) if args.second_poller else None
    phases = [Phase("idle", args.duration / 2), Phase("busy", args.duration / 2)]
    db = Path(config.storage.dir) / "hall-edge.db"
    try:
        wait_until(lambda: core.components.get("printer") == "ok", 10, 0.01, "the printer's first answer")
        if second is not None:
            second.start()
        pin = Device.pin_factory.pin(BUTTON_PIN)
        seen_events = len(outbox(db))
        seen_paper = 0
        for phase in phases:
            queries_before = printer.status_queries
            missed_before = getattr(tickets.printer, "missed_answers", None)
            end = time.monotonic() + phase.seconds
            while time.monotonic() < end:
                if phase.name == "busy":
                    pin.drive_low()
                    _pause.wait(0.06)  # past the 50 ms debounce
                    pin.drive_high()
                    phase.presses += 1
                _pause.wait(max(0.0, min(args.press_every, end - time.monotonic())))
            # Let the last presses come out and be recorded before counting (a missing one is counted).
            _settle(db, printer, seen_events, seen_paper, phase.presses)
            events = outbox(db)[seen_events:]
            seen_events += len(events)
            printed = printer.tickets[seen_paper:]
            on_paper = {t.text.splitlines()[2] for t in printed if t.text.count("\n") >= 2}  # the number
            phase.on_paper = len(printed)
            seen_paper += len(printed)
            _tally(phase, events)
            phase.misrecorded = sorted(on_paper - _marked_printed(db))
            phase.status_queries = printer.status_queries - queries_before
            missed_after = getattr(tickets.printer, "missed_answers", None)
            if missed_before is not None and missed_after is not None:
                phase.missed_answers = missed_after - missed_before
    finally:
        if second is not None:
            second.stop()
        core.stop()
        tickets.stop()
        storage.close()
        printer.stop()
        Device.pin_factory.reset()
    if second is not None:
        print(f"second poller: {second.polls} polls answered, {second.refused} port errors (refused: in use)")
    return phases


def _settle(db: Path, printer: SimPrinter, events_from: int, paper_from: int, presses: int) -> None:
    """Wait (at most 10 s) for each press's ticket on paper and its outcome; what is missing then
    is counted as missing."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if _recorded(db, events_from) >= presses and len(printer.tickets) - paper_from >= presses:
            return
        _pause.wait(0.01)


def _recorded(db: Path, seen: int) -> int:
    """Tickets whose outcome is recorded since ``seen`` (a ticket.printed event each)."""
    return sum(e["type"] == "ticket.printed" for e in outbox(db)[seen:])


def _tally(phase: Phase, events: list[dict[str, Any]]) -> None:
    for event in events:
        if event["type"] == "alarm.printer":
            phase.transitions.append(event["data"]["state"])
        elif event["type"] == "ticket.printed":
            printed = event["data"]["printed"]
            phase.outcomes[{True: "true", False: "false", None: "unknown"}[printed]] += 1


def _marked_printed(db: Path) -> set[str]:
    """Ticket numbers the queue records as printed (tickets.printed = 1)."""
    with sqlite3.connect(db) as conn:
        return {t for (t,) in conn.execute("SELECT ticket FROM tickets WHERE printed = 1")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds in all: half idle, half busy")
    parser.add_argument("--press-every", type=float, default=3.0, help="seconds between presses when busy")
    parser.add_argument("--poll", type=float, default=2.0, help="printer.status_poll_s")
    parser.add_argument("--timeout", type=float, default=0.5, help="printer.status_timeout_s")
    parser.add_argument("--second-poller", action="store_true", help="another process polls the same port")
    add_daemon_options(parser, in_process=True)
    args = parser.parse_args(argv)
    apply_daemon_options(args, "printer soak")
    print(
        f"printer soak: {args.duration:g} s (idle {args.duration / 2:g} s, then busy with a press every "
        f"{args.press_every:g} s); status poll {args.poll:g} s, answer timeout {args.timeout:g} s"
        + ("; a second poller on the port" if args.second_poller else "")
    )
    with tempfile.TemporaryDirectory(prefix="printer-soak-") as tmp:
        phases = soak(args, Path(tmp))
    false_transitions = 0
    wrong = 0
    for phase in phases:
        false_transitions += len(phase.transitions)
        wrong += len(phase.misrecorded) + (phase.presses - phase.on_paper)
        missed = "n/a" if phase.missed_answers is None else phase.missed_answers
        print(
            f"{phase.name}: {len(phase.transitions)} false transitions {phase.transitions[:6]}; "
            f"{phase.status_queries} status requests, {missed} answers missed (each asked again)"
        )
        if phase.name == "busy":
            print(
                f"busy: {phase.presses} presses, {phase.on_paper} tickets on paper; ticket.printed "
                f"true {phase.outcomes['true']}, false {phase.outcomes['false']}, "
                f"unknown {phase.outcomes['unknown']}; on paper but not recorded as printed: "
                f"{len(phase.misrecorded)} {phase.misrecorded[:6]}"
            )
    print(f"false transitions: {false_transitions}")
    return 1 if false_transitions or wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
