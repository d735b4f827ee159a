"""bench/chaos.py, smoke size: half a minute of the simulated hall under random use and faults."""

from __future__ import annotations

import re

import pytest
from support import run_bench


@pytest.mark.slow
def test_chaos_smoke_loses_nothing_and_ends_ready():
    out = run_bench("chaos.py", "--minutes", "0.5", "--seed", "17", timeout=240)
    faults = re.search(r"^faults: (.+)$", out, re.M)
    assert faults and faults.group(1).strip(), out
    assert "FAIL" not in out, out
    checks = ("every ticket recorded reached the platform", "no seq gap", "daemon up and READY")
    checks += ("events in seq order whatever the clock said", "no false overdue alarm")
    for check in checks:
        assert re.search(rf"^ok +{re.escape(check)}", out, re.M), out
