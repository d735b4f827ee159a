"""Smoke runs of the locker benchmarks (the full runs are bench/locker_bench.py and bench/locker_kill9.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_tap_to_unlock_latency_smoke():
    out = run_script("bench/locker_bench.py", "--taps", "15")
    assert "locker   (frame" in out and "plain    (pyserial" in out
    assert "n=15" in out


def test_kill9_smoke_every_rental_once():
    out = run_script("bench/locker_kill9.py", "--trials", "3", "--seed", "3")
    assert "problems: 0" in out
    assert "seq_gaps: []" in out
