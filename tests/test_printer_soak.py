"""bench/printer_soak.py, smoke size: a few seconds idle and busy, with a second process on the port."""

from __future__ import annotations

import re

from support import run_bench


def test_printer_soak_smoke_has_no_false_transitions_and_every_ticket_accounted_for():
    out = run_bench("printer_soak.py", "--duration", "6", "--press-every", "1", "--second-poller", timeout=90)
    assert out.splitlines()[-1] == "false transitions: 0", out
    busy = re.search(r"^busy: (\d+) presses, (\d+) tickets on paper; ticket.printed true (\d+)", out, re.M)
    assert busy, out
    presses, on_paper, printed = (int(n) for n in busy.groups())
    assert presses >= 2 and presses == on_paper == printed, out
    assert "on paper but not recorded as printed: 0 " in out, out
    refused = re.search(r"^second poller: 0 polls answered, (\d+) port errors", out, re.M)
    assert refused and int(refused.group(1)) >= 1, out  # the port is the daemon's alone
