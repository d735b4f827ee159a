"""Kill -9 while issuing tickets: no number reused in the day, no ticket.issued event lost.

Each trial starts ``hall-edge run`` (queue and printer on; GPIO through the
simulator's pin factory, ``GPIOZERO_PIN_FACTORY=hallsim``; the printer is
the simulated one on a pty), waits for its ``ready`` log line, presses the
service buttons of random categories every few milliseconds from the pin
board, and sends SIGKILL at a random moment while the presses go on.  No
broker answers, so every event stays in the outbox where it can be counted.

After every trial, reading the database and the paper:
- per category, the numbers issued are exactly 1..N (none twice, none lost
  in the middle) across all trials so far;
- every ticket row has exactly one ``ticket.issued`` event, and every event
  its ticket row (the ticket and the event are one transaction);
- every number printed on paper is a recorded ticket, and no number was
  printed twice.

    .venv/bin/python bench/ticket_kill9.py --trials 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import rig
from hallsim.pins import PinBoard, daemon_env
from hallsim.printer import SimPrinter

from edge.progress import Progress

CATEGORY_PINS = {"A": 5, "B": 6, "C": 13}
_pause = threading.Event()  # never set: an interruptible pause


class Trial:
    """One daemon run: started, pressed, killed."""

    def __init__(self, config: Path, board: PinBoard, rng: random.Random) -> None:
        self.config = config
        self.board = board
        self.rng = rng
        self.presses = 0

    def run(self, max_kill_after_s: float) -> float:
        env = {**os.environ, **daemon_env(self.board.socket_path)}
        started = time.monotonic()
        proc = subprocess.Popen(
            rig.daemon_command(self.config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            rig.wait_for_line(proc, b'msg="ready', 30)
        except RuntimeError:
            proc.kill()
            raise SystemExit("the daemon did not become ready in 30 s") from None
        startup = time.monotonic() - started
        stop = threading.Event()
        presser = threading.Thread(target=self._press, args=(stop,), daemon=True)
        presser.start()
        _pause.wait(self.rng.uniform(0.02, max_kill_after_s))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        presser.join()
        for pin in CATEGORY_PINS.values():
            self.board.release(pin)  # the next daemon must not start with a key held
        return startup

    def _press(self, stop: threading.Event) -> None:
        pins = list(CATEGORY_PINS.values())
        while not stop.is_set():
            pin = self.rng.choice(pins)
            self.board.press(pin)
            _pause.wait(0.004)
            self.board.release(pin)
            self.presses += 1
            _pause.wait(0.004)


def check(db: Path, printer: SimPrinter) -> dict[str, object]:
    """The trial's verdict from the database and the paper; raises SystemExit on a violation."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT day, round, category, number, ticket FROM tickets").fetchall()
        events = [
            json.loads(payload)["data"]
            for (payload,) in conn.execute("SELECT payload FROM outbox WHERE type = 'ticket.issued'")
        ]
    finally:
        conn.close()
    by_category: dict[tuple, list[int]] = {}
    for day, round_, category, number, _ in rows:
        by_category.setdefault((day, round_, category), []).append(number)
    for key, numbers in by_category.items():
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            raise SystemExit(f"numbers of {key} are not 1..N: {sorted(numbers)}")
    recorded = Counter((day, round_, ticket) for day, round_, _, _, ticket in rows)
    announced = Counter((e["day"], e["round"], e["ticket"]) for e in events)
    if recorded != announced:
        raise SystemExit(
            f"tickets and ticket.issued events differ: {(recorded - announced) + (announced - recorded)}"
        )
    printed = Counter(
        line["text"] for ticket in printer.tickets for line in ticket.lines if line["width"] == 4
    )  # the number line is printed 4x wide
    twice = [number for number, count in printed.items() if count > 1]
    if twice:
        raise SystemExit(f"numbers printed twice: {twice}")
    unknown = set(printed) - {ticket for _, _, ticket in recorded}
    if unknown:
        raise SystemExit(f"printed but not recorded: {sorted(unknown)}")
    return {"tickets": len(rows), "events": len(events), "printed": sum(printed.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--kill-within", type=float, default=0.4, help="seconds of pressing before the kill")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="ticket-kill9-") as tmp:
        folder = Path(tmp)
        categories = [
            {"code": code, "name": f"服务{code}", "pin": pin} for code, pin in CATEGORY_PINS.items()
        ]
        board = PinBoard(folder / "pins.sock").start()
        printer = SimPrinter(folder / "paper").start()
        config = rig.write_config(
            folder,
            {
                "printer": {
                    "enabled": True,
                    "port": printer.port,
                    "status_poll_s": 1.0,
                    "status_timeout_s": 0.5,
                },
                "queue": {"enabled": True, "bounce_ms": 0, "categories": categories},
            },
        )
        db = folder / "state" / "hall-edge.db"
        presses, startups, issued_per_trial = 0, [], []
        previous = 0
        try:
            progress = Progress("ticket kill -9", args.trials)
            for n in range(args.trials):
                progress.step(f"trial {n + 1}, {presses} presses so far")
                trial = Trial(config, board, rng)
                startups.append(trial.run(args.kill_within))
                presses += trial.presses
                verdict = check(db, printer)
                issued_per_trial.append(verdict["tickets"] - previous)
                previous = verdict["tickets"]
                if (n + 1) % 10 == 0 or n + 1 == args.trials:
                    print(f"  trial {n + 1}: {verdict}", flush=True)
        finally:
            printer.stop()
            board.stop()
        killed_mid_issue = sum(1 for count in issued_per_trial if count > 0)
        print(
            f"kill -9 while issuing: {args.trials} trials, {presses} presses sent, "
            f"{verdict['tickets']} tickets recorded = {verdict['events']} ticket.issued events, "
            f"{verdict['printed']} printed; trials with tickets issued before the kill: {killed_mid_issue}"
        )
        print(
            "no number reused in the day: ok; no ticket.issued event lost: ok; every printed number recorded"
        )
        print(f"daemon start to ready: median {sorted(startups)[len(startups) // 2]:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
