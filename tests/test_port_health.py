"""The rule for every port device (drivers/port.py): offline needs failures in a row, never in the
start-up grace of a device not heard from yet; a real unplug is still seen within seconds."""

from __future__ import annotations

import time

from hallsim.printer import SimPrinter
from hallsim.rfid import SimReader
from support import wait_for

from drivers.port import GRACE_S
from drivers.printer import PrinterPort, PrintResult, open_transport
from drivers.rfid import CardReader

KEY = b"site-card-key-for-tests"


def test_a_reader_that_answers_late_in_the_start_up_grace_is_no_outage():
    """A PN532 silent for its first seconds (three failed wake-ups) is not reported offline."""
    health: list[bool] = []
    with SimReader("pn532") as sim:
        sim.mute(True)
        reader = CardReader("pn532", sim.port, KEY, lambda h: None, health.append)
        reader.grace_s = 60.0  # the rule, not the clock: three failures inside the grace, however slow
        reader.start()
        try:
            wait_for(lambda: reader.failures >= 3, 30, "three failed wake-ups")
            sim.mute(False)
            wait_for(lambda: health == [True], 30, "the reader answering")
            assert health == [True]  # no False before it: no alarm at start
        finally:
            reader.stop()


def test_a_device_never_heard_from_is_offline_after_the_grace_not_before():
    health: list[bool] = []
    reader = CardReader("rdm6300", "/nonexistent/hall-rfid", KEY, lambda h: None, health.append)
    began = time.monotonic()
    reader.start()
    try:
        wait_for(lambda: health == [False], GRACE_S + 5, "offline after the grace")
        assert time.monotonic() - began >= GRACE_S
    finally:
        reader.stop()


def test_an_unplugged_reader_is_offline_within_seconds_and_back_after_replug(tmp_path):
    health: list[bool] = []
    with SimReader("rdm6300", link=tmp_path / "hall-rfid") as sim:
        reader = CardReader("rdm6300", sim.port, KEY, lambda h: None, health.append)
        reader.start()
        try:
            wait_for(lambda: health == [True], 5, "the reader answering")
            pulled = time.monotonic()
            sim.unplug()
            wait_for(lambda: health == [True, False], 5, "offline after the unplug")
            took = time.monotonic() - pulled
            print(f"reader unplug -> offline: {took:.2f} s")
            assert took < 3.0  # ~1 s measured: the read fails at once, then two retries 0.5 s apart
            sim.plug()
            wait_for(lambda: health == [True, False, True], 5, "back after the replug")
        finally:
            reader.stop()


def test_printer_one_lost_answer_is_no_outage_an_unplug_is_seen_within_seconds(tmp_path):
    """Production timing (status_poll_s 2.0, status_timeout_s 0.5): a lost status answer is asked
    again and nothing is reported; a pulled cable is offline within a few seconds
    (the next poll, then two quick retries)."""
    states: list[str] = []
    results: list[PrintResult] = []
    sim = SimPrinter(tmp_path / "paper", link=tmp_path / "hall-printer").start()
    port = PrinterPort(
        lambda: open_transport("serial", str(tmp_path / "hall-printer"), 9600),
        poll_s=2.0,
        timeout_s=0.5,
        on_status=states.append,
        on_result=results.append,
    )
    port.start()
    try:
        wait_for(lambda: states == ["ok"], 5, "the printer answering")
        sim.lose_answers = 2
        wait_for(lambda: port.missed_answers >= 2 and port.failures == 0, 10, "lost answers asked again")
        assert states == ["ok"]
        pulled = time.monotonic()
        sim.unplug()
        wait_for(lambda: states == ["ok", "offline"], 10, "offline after the unplug")
        took = time.monotonic() - pulled
        print(f"printer unplug -> offline: {took:.2f} s")
        assert took < 5.0  # ~3 s measured: the next poll (2 s), then two retries 0.5 s apart
    finally:
        port.stop()
        if sim.plugged:
            sim.stop()
