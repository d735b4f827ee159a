"""Pi-class figures: each latency bench at full speed and with the daemon alone on a slice of one
core (``--cpu-fraction``, default 1/8 ~ a Raspberry Pi 3 core), side by side with the goals.

Runs, one after the other (never two at once: they would share the machine):

- bench/locker_bench.py   tap -> lock high, p99            goal <= 20 ms at 1/8
- bench/display_bench.py  jobs snapshot published -> frame  goal <= 100 ms
- bench/ticket_bench.py   key press -> first printer byte   goal <= 50 ms
- bench/start_ready.py    start -> READY=1, minimal and with every feature (medians of 5 starts
                          each: one start moves with the machine's noise)  goal <= 3 s
- bench/idle_soak.py      a busy soak with every feature (a key press and a card tap every 3 s):
                          false offline alarms, goal 0 (10 minutes for the issue:
                          ``--soak-minutes 10``)

    .venv/bin/python bench/pi_table.py                      # quick sizes, 1-minute soaks
    .venv/bin/python bench/pi_table.py --soak-minutes 10 --fraction 0.125
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Figure:
    name: str
    goal: str
    limit: float
    unit: str
    command: list[str]
    pattern: str  # a regex whose group 1 is the figure, in ``unit``
    scale: float = 1.0
    process: bool = False  # the bench starts ``hall-edge run`` (``--installed`` applies), not in-process


def figures(soak_s: float, n: int) -> list[Figure]:
    return [
        Figure(
            "tap -> lock p99", "<= 20 ms", 20, "ms",
            ["locker_bench.py", "--taps", str(n)], r"^locker .*?p99=([\d.]+) ms", 1.0,
        ),
        Figure(
            "jobs snapshot -> frame p99", "<= 100 ms", 100, "ms",
            ["display_bench.py", "-n", str(max(20, n // 5)), "--latency-only"],
            r"latency broker->frame.*?p99=([\d.]+) ms",
        ),
        Figure(
            "press -> first printer byte p99", "<= 50 ms", 50, "ms",
            ["ticket_bench.py", "--presses", str(n), "--latency-only"], r"p99 ([\d.]+) ms",
        ),
        Figure(
            "start -> READY (minimal) median", "<= 3 s", 3, "s",
            ["start_ready.py", "-n", "5", "--idle", "1"],
            r"READY=1 notify +: median +([\d.]+) ms", 1e-3, True,
        ),
        Figure(
            "start -> READY (every feature) median", "<= 3 s", 3, "s",
            ["start_ready.py", "-n", "5", "--every-feature"],
            r"every feature, first start -> READY=1 +: median +([\d.]+) ms", 1e-3, True,
        ),
        Figure(
            f"busy soak {soak_s / 60:g} min: offline / alarms", "0", 0, "",
            ["idle_soak.py", "--duration", str(soak_s), "--interval", "5", "--busy", "3"],
            r"components offline: (\d+)", 1.0, True,
        ),
    ]  # fmt: skip


def run(
    figure: Figure, fraction: float | None, cache: dict[tuple[str, ...], str], installed: bool
) -> tuple[str, str]:
    command = [sys.executable, str(HERE / figure.command[0]), *figure.command[1:]]
    if installed and figure.process:
        command.append("--installed")
    if fraction is not None:
        command += ["--cpu-fraction", str(fraction)]
    key = tuple(command)
    if key not in cache:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
        cache[key] = done.stdout + done.stderr
    out = cache[key]
    found = re.search(figure.pattern, out, re.M)
    if not found:
        return "?", out[-2000:]
    value = float(found.group(1)) * figure.scale
    if "alarms" in figure.name:
        alarms = re.search(r"alarms sent: (\d+)", out)
        return f"{value:g} / {alarms.group(1) if alarms else '?'}", ""
    return f"{value:.3g} {figure.unit}".strip(), ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.125, help="of one core (default 0.125)")
    parser.add_argument("--soak-minutes", type=float, default=1.0)
    parser.add_argument("-n", type=int, default=200, help="taps / presses per latency bench")
    parser.add_argument("--installed", action="store_true", help="the daemon of an installed release (rig)")
    args = parser.parse_args(argv)
    cache: dict[tuple[str, ...], str] = {}
    rows = []
    missed = 0
    label = f"1/{round(1 / args.fraction)} core"
    for figure in figures(args.soak_minutes * 60, args.n):
        full, full_err = run(figure, None, cache, args.installed)
        slow, slow_err = run(figure, args.fraction, cache, args.installed)
        met = _met(figure, slow)
        missed += not met
        rows.append((figure.name, full, slow, figure.goal, "met" if met else "NOT met"))
        for err in (full_err, slow_err):
            if err:
                print(f"--- {figure.command[0]}: figure not found; its output ends:\n{err}", file=sys.stderr)
    header = ("figure", "full speed", f"daemon on {label}", f"goal at {label}", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 1 if missed else 0


def _met(figure: Figure, shown: str) -> bool:
    try:
        value = float(shown.split(maxsplit=1)[0])
    except (ValueError, IndexError):
        return False
    return value <= figure.limit


if __name__ == "__main__":
    raise SystemExit(main())
