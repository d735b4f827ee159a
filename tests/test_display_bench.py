"""bench/display_bench.py in a tiny run: it measures every figure and prints them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "display_bench.py"


def test_display_bench_smoke():
    args = ["-n", "3", "--render-n", "3", "--cpu-seconds", "0.3"]
    command = [sys.executable, str(BENCH), *args]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for label in ("latency broker->frame", "latency core->frame", "render job page", "cpu rotating"):
        assert label in out, out
    assert out.count("cpu rotating") == 4
