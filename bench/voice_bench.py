"""The voice: call key -> first audio sample at the speaker, and a burst of calls from three windows.

The daemon runs as in the hall (``hall-edge run``), its GPIO on the
simulator's pin board (``GPIOZERO_PIN_FACTORY=hallsim``) and its voice
playing into the simulator's speaker (``voice.socket``), which takes the
samples no faster than a sound card would at ``--speed`` times real time
and keeps each sound with its words and times (``speaker/index.jsonl``).
This process is the hall's staff: it presses the keys on the pin board.

1. Latency: a window's call key pressed (the pin goes low; the keys debounce
   for ``queue.bounce_ms`` = 50 ms as in the hall) to the first sample of the
   announcement received by the speaker, with the speaker idle each time.
   Goal p99 <= 300 ms; with ``--slow 0.125`` (the daemon's threads in a
   cgroup allowed 1 ms of CPU in every 8 ms, as ../shared/tools/slowpi does
   for a whole command) <= 600 ms.
2. Burst: ``--burst`` calls (default 50) spread over ``--within`` seconds
   (default 55), rotating over windows 1, 2, 3.  Counted from the speaker:
   every call said once, in the order called, with the right window, and no
   two sounds overlapping.

    .venv/bin/python bench/voice_bench.py --calls 100 --burst 50 --speed 4
    .venv/bin/python bench/voice_bench.py --calls 100 --burst 0 --slow 0.125
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rig
from hallsim.pins import PinBoard, daemon_env
from hallsim.speaker import SimSpeaker, read_index

CATEGORY_PIN = 5
WINDOW_PINS = {1: (16, 20, 21), 2: (17, 22, 23), 3: (24, 25, 27)}  # call, recall, skip
DIGITS = "零一二三四五六七八九"
_pause = threading.Event()  # never set: wait() on it is an interruptible pause


def pause(seconds: float) -> None:
    _pause.wait(seconds)


def expected_words(number: int, window: int) -> str:
    """What the hall should say for ticket A<number> at <window> (written here, not taken from edge)."""
    ticket = " ".join(DIGITS[int(d)] for d in f"{number:03d}")
    return f"请 A {ticket} 号 到 {DIGITS[window]} 号 窗口 办理"


class Hall:
    def __init__(self, folder: Path, speed: float) -> None:
        self.folder = folder
        self.board = PinBoard(folder / "pins.sock").start()
        self.speaker = SimSpeaker(folder / "speaker.sock", folder / "speaker", speed).start()
        tables = {
            "logging": {"level": "info"},
            "queue": {
                "enabled": True,
                "bounce_ms": 50,
                "recall_max": 50,
                "categories": [{"code": "A", "name": "求职登记", "pin": CATEGORY_PIN}],
                "windows": [
                    {"number": n, "call_pin": c, "recall_pin": r, "skip_pin": s}
                    for n, (c, r, s) in WINDOW_PINS.items()
                ],
            },
            "voice": {
                "enabled": True,
                "socket": str(folder / "speaker.sock"),
                "queue_max": 50,
                "volume": [{"at": "00:00", "percent": 80}],
            },
        }
        config = rig.write_config(folder, tables)
        self.log_lines: list[str] = []
        self.process = subprocess.Popen(
            rig.daemon_command(config),
            env={**os.environ, **daemon_env(folder / "pins.sock")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log_lines.append(line)
            if "Traceback" in line or "level=error" in line:
                print("daemon:", line.rstrip(), file=sys.stderr)

    def wait_log(self, marker: str, count: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(marker in line for line in list(self.log_lines)) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"no {count} x {marker!r} in the daemon's log")
            pause(0.01)

    def wait_played(self, count: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(entries := read_index(self.speaker.folder)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(entries)} sounds played, {count} expected")
            pause(0.005)
        return entries

    def click(self, pin: int) -> float:
        """Press (longer than the debounce) and release; the time of the press."""
        self.board.press(pin)
        pressed = time.monotonic()
        pause(0.08)
        self.board.release(pin)
        pause(0.06)
        return pressed

    def issue(self, tickets: int) -> None:
        """At least ``tickets`` tickets (a press lost to the debounce on a busy machine is pressed again)."""
        marker = "event type=ticket.issued"
        deadline = time.monotonic() + 120
        while (issued := sum(marker in line for line in list(self.log_lines))) < tickets:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{issued} tickets issued, {tickets} wanted")
            for _ in range(tickets - issued):
                self.click(CATEGORY_PIN)
            pause(1.0)  # let the last presses be recorded before counting again

    def slow(self, fraction: float) -> Path:
        """Put every thread of the daemon in a cgroup with ``fraction`` of one core (cgroup v1)."""
        group = Path(f"/sys/fs/cgroup/cpu/voice-bench-{os.getpid()}")
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(int(1000 / fraction)))
        (group / "cpu.cfs_quota_us").write_text("1000")
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            (group / "tasks").write_text(task.name)  # threads started later inherit the group
        return group

    def stop(self) -> None:
        rig.stop(self.process)
        self.speaker.stop()
        self.board.stop()


def measure_latency(hall: Hall, calls: int) -> list[float]:
    latencies = []
    played = len(read_index(hall.speaker.folder))
    for n in range(calls):
        window = n % 3 + 1
        pressed = hall.click(WINDOW_PINS[window][0])
        entries = hall.wait_played(played + 1, 120)
        played += 1
        latencies.append(entries[-1]["first_sample_at"] - pressed)
    return latencies


def burst(hall: Hall, calls: int, within_s: float, first_ticket: int) -> dict:
    before = len(read_index(hall.speaker.folder))
    began = time.monotonic()
    windows = []
    for n in range(calls):
        pause(max(0.0, began + n * within_s / calls - time.monotonic()))
        window = n % 3 + 1
        windows.append(window)
        hall.click(WINDOW_PINS[window][0])
    called_in = time.monotonic() - began
    entries = hall.wait_played(before + calls, 60 + calls * 30)[before:]
    expected = [expected_words(first_ticket + n, w) for n, w in enumerate(windows)]
    said = [e["words"] for e in entries]
    ordered = sorted(entries, key=lambda e: e["first_sample_at"])
    overlapping = sum(a["ended_at"] > b["first_sample_at"] for a, b in itertools.pairwise(ordered))
    return {
        "called_in_s": called_in,
        "all_played_after_s": entries[-1]["ended_at"] - began,
        "played": len(entries),
        "in_order": said == expected,
        "lost": len([w for w in expected if w not in said]),
        "overlaps": overlapping + sum(bool(e["overlapped"]) for e in entries),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="latency samples (speaker idle each time)")
    parser.add_argument("--burst", type=int, default=50, help="calls in the burst (0: none)")
    parser.add_argument(
        "--within", type=float, default=55.0, help="seconds the burst's calls are spread over"
    )
    parser.add_argument(
        "--speed", type=float, default=4.0, help="the simulated speaker's speed (x real time)"
    )
    parser.add_argument("--slow", type=float, default=0.0, help="the daemon's share of one core, e.g. 0.125")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="voice-bench-") as tmp:
        hall = Hall(Path(tmp), args.speed)
        group: Path | None = None
        try:
            hall.wait_log("component speaker=ok", 1, 60)  # clips made, the speaker answers
            hall.issue(args.calls + args.burst)
            if args.slow:
                group = hall.slow(args.slow)
            where = f"the daemon on {args.slow} of a core" if args.slow else "the daemon unthrottled"
            print(f"voice bench: {where}; simulated speaker at {args.speed}x real time")
            if args.calls:
                latencies = measure_latency(hall, args.calls)
                ms = [1000 * v for v in latencies]
                print(
                    f"call key -> first audio sample at the speaker, {len(ms)} calls: "
                    f"p50 {rig.percentile(ms, 0.5):.0f} ms, p90 {rig.percentile(ms, 0.9):.0f} ms, "
                    f"p99 {rig.percentile(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"
                )
            if args.burst:
                result = burst(hall, args.burst, args.within, args.calls + 1)
                print(
                    f"burst: {args.burst} calls from 3 windows in {result['called_in_s']:.1f} s, "
                    f"all said after {result['all_played_after_s']:.1f} s: played {result['played']}, "
                    f"lost {result['lost']}, in order {'yes' if result['in_order'] else 'NO'}, "
                    f"overlaps {result['overlaps']}"
                )
                if result["lost"] or not result["in_order"] or result["overlaps"]:
                    return 1
        finally:
            if group is not None:  # the throttling really happened: how often the group was held back
                stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
                print(
                    f"cgroup: throttled in {stat.get('nr_throttled')} of {stat.get('nr_periods')} periods, "
                    f"{int(stat.get('throttled_time', 0)) / 1e9:.1f} s held back"
                )
            hall.stop()
            if group is not None:
                group.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
