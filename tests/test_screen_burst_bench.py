"""bench/screen_burst.py in a short run: the simulated hall, a few mixed events, every figure printed."""

from __future__ import annotations

from support import run_bench


def test_screen_burst_bench_smoke():
    out = run_bench("screen_burst.py", "--events", "8", "--spacing", "0.4")
    for label in (
        "time to see every part of one job",
        "128x32: 9.0 s (3 still parts)",
        "event -> its message on the frame: n=",
        "event -> withdrawn message off the frame",
        "messages never shown:",
        "stale frames:",
    ):
        assert label in out, out
