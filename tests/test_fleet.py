"""Smoke run of the fleet benchmark (full run: bench/fleet.py --controllers 1000, docs/mqtt.md)."""

from __future__ import annotations

import json

from support import run_bench


def test_a_small_fleet_loses_nothing_over_a_broker_restart_and_an_outage(tmp_path):
    """Five controllers (real link and outbox, two worker processes) on mosquitto: every event
    they recorded, also while the broker was away, reaches the platform once de-duplicated,
    and every controller's birth is back after the restart and after the outage."""
    plot = tmp_path / "fleet.png"
    out = run_bench(
        "fleet.py",
        "--controllers", "5",
        "--per-process", "3",
        "--steady-s", "1",
        "--outage-s", "2",
        "--events-per-hour", "3600",
        "--back-timeout-s", "60",
        "--plot", str(plot),
        timeout=150,
    )  # fmt: skip
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["ok"] and all(figures["checks"].values())
    assert figures["recorded"] > 0 and figures["received"] == figures["recorded"] and figures["lost"] == 0
    assert figures["restart_reconnect"]["n"] == 5 and figures["outage_reconnect"]["n"] == 5
    assert figures["outage_births_all_back_s"] is not None
    assert plot.read_bytes().startswith(b"\x89PNG")
