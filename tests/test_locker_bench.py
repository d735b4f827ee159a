"""Smoke runs of the locker benchmarks (the full runs are bench/locker_bench.py and bench/locker_kill9.py)."""

from __future__ import annotations

from support import run_bench


def test_tap_to_unlock_latency_smoke():
    out = run_bench("locker_bench.py", "--taps", "15")
    assert "locker   (frame" in out and "plain    (pyserial" in out
    assert "n=15" in out


def test_kill9_smoke_every_rental_once():
    out = run_bench("locker_kill9.py", "--trials", "3", "--seed", "3")
    assert "problems: 0" in out
    assert "seq_gaps: []" in out
