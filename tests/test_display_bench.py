"""bench/display_bench.py in a tiny run: it measures every figure and prints them."""

from __future__ import annotations

from support import run_bench


def test_display_bench_smoke():
    out = run_bench("display_bench.py", "-n", "3", "--render-n", "3", "--cpu-seconds", "0.3")
    for label in ("latency broker->frame", "latency core->frame", "render job page", "cpu rotating"):
        assert label in out, out
    assert out.count("cpu rotating") == 4
