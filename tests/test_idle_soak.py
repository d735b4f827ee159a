"""bench/idle_soak.py, smoke size: a few seconds of the 10-minute idle soak of the simulated hall."""

from __future__ import annotations

import re

from support import run_bench


def test_idle_soak_smoke_prints_rss_cpu_ready_and_watchdog():
    # Longer than the devices' start-up grace (drivers/port.py GRACE_S): a clean start is no alarm.
    out = run_bench("idle_soak.py", "--duration", "6", "--interval", "0.5", timeout=90)
    for name in ("hall-edge run", "plain paho client"):
        row = re.search(rf"^{name} +RSS start +([\d.]+) MiB .* = +([\d.]+) %$", out, re.M)
        assert row, out
        assert 5 < float(row.group(1)) < 500
    ready = re.search(r"start -> READY=1: (\d+) ms", out)
    assert ready and int(ready.group(1)) < 30_000, out
    assert "alive through the soak: True; exit code on SIGTERM: 0\n" in out, out
    course = r"^hall-edge run RSS through the soak \(MiB\): ([\d.]+ ){6}[\d.]+; second half [+-][\d.]+ MiB/h$"
    assert re.search(course, out, re.M), out
    assert "hall-edge alarms sent: 0\n" in out, out
    features = re.search(r'features=([a-z,]+)"', out)
    assert features, out
    assert {"tickets", "display", "locker", "health"} <= set(features.group(1).split(","))
