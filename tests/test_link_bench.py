"""Smoke runs of the link's benchmarks (full runs: bench/outbox_drain.py, bench/kill9_trial.py)."""

from __future__ import annotations

import json

from support import run_bench


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_outbox_drain_smoke():
    figures = last_json(
        run_bench("outbox_drain.py", "--events", "1000", "--live-events", "100", "--rounds", "1")
    )
    assert figures["outbox_drain_per_s"] > 0 and figures["plain_paho_per_s"] > 0


def test_kill9_trial_smoke():
    """Three kills, the broker restarted during the second run: nothing lost, no gap."""
    out = run_bench(
        "kill9_trial.py",
        "--runs",
        "3",
        "--broker-restart-at",
        "1",
        "--rate",
        "50",
        "--cap",
        "1",
        "--birth-samples",
        "1",
    )
    result = last_json(out)
    assert result["lost"] == 0 and result["gaps"] == [] and result["seq_given_twice"] == 0
    assert result["outbox_left"] == 0 and result["inputs_without_event"] == 0
    assert result["events_recorded"] > 0 and result["broker_back_to_birth_s"] is not None
    assert result["broker_back_to_birth_more_s"]["n"] == 1
