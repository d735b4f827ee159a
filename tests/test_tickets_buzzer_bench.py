"""The buzzer feature on a MockFactory pin, and smoke runs of the ticket benchmarks."""

from __future__ import annotations

from gpiozero import Device
from support import make_config, run_bench, wait_for

from edge import buzzer
from edge.messages import Buzz


def test_buzzer_plays_the_call_pattern(make_hall):
    hall = make_hall(["buzzer"], {"buzzer": {"enabled": True, "pin": 18}})
    pin = Device.pin_factory.pin(18)
    hall.core.post(Buzz("call"))
    # on 0.3 s, off 0.15 s, on 0.3 s, off: the pin's history shows two beeps
    wait_for(lambda: [s.state for s in pin.states][1:] == [True, False, True, False], 3, "two beeps")
    hall.core.post(Buzz("no-such-pattern"))  # logged and ignored
    hall.core.post(Buzz("ok"))
    wait_for(lambda: [s.state for s in pin.states][-2:] == [True, False] and len(pin.states) == 7, 3)
    assert hall.feature("buzzer").played == ["call", "ok"]


def test_buzzer_is_off_unless_configured(tmp_path):
    assert buzzer.build(make_config(tmp_path)) is None
    assert buzzer.build(make_config(tmp_path, {"buzzer": {"enabled": True, "pin": -1}})) is None


def test_ticket_bench_smoke():
    """bench/ticket_bench.py with 10 presses: it runs and prints its figures."""
    out = run_bench("ticket_bench.py", "--presses", "10", timeout=60)
    assert "p99" in out
    assert "python-escpos image" in out
    assert "ours (FS & + GB18030 + native QR)" in out


def test_ticket_kill9_smoke():
    """bench/ticket_kill9.py with 2 trials of a real daemon killed while issuing."""
    out = run_bench("ticket_kill9.py", "--trials", "2")
    assert "no ticket.issued event lost: ok" in out
