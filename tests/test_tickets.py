"""The tickets feature in-process: real core and SQLite, MockFactory pins, the simulated printer on a pty."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gpiozero import Device
from hall_rig import Hall
from hallsim.printer import SimPrinter
from support import wait_for

from edge.core import CommandError
from edge.messages import Buzz, ScreenCall, ScreenCallEnded, ScreenLine, ScreenLineEnded
from edge.tickets.feature import TicketsFeature

PINS = {"A": 5, "B": 6, "priority": 12, "call": 16, "recall": 20, "skip": 21}
QR = "https://example.gov.cn/lgsc/rate?hall=01"


def tickets_config(printer: SimPrinter | None, poll_s: float = 0.2, **queue: object) -> dict:
    """Overrides for a hall with the tickets feature: two categories, one window, the simulated printer."""
    return {
        "queue": {
            "enabled": True,
            "priority_pin": PINS["priority"],
            "stuck_after_s": 1.0,
            "bounce_ms": 0,  # presses in a test come faster than any finger; test_bounce sets it
            "categories": [
                {"code": "A", "name": "求职登记", "pin": 5},
                {"code": "B", "name": "招聘登记", "pin": 6},
            ],
            "windows": [{"number": 2, "call_pin": 16, "recall_pin": 20, "skip_pin": 21}],
            **queue,
        },
        "printer": {
            "enabled": printer is not None,
            "port": str(printer.link) if printer else "/dev/null",
            "status_poll_s": poll_s,
            "status_timeout_s": 1.0,  # generous: a loaded machine is not an offline printer
            "qr_url": QR,
        },
    }


WATCHED = (ScreenLine, ScreenCall, Buzz, ScreenCallEnded, ScreenLineEnded)


class TicketsHall(Hall):
    """A hall with the tickets feature whose keys the test presses; the printer is the simulator."""

    def __init__(
        self, folder: Path, features: list | None, overrides: dict | None, **options: object
    ) -> None:
        super().__init__(
            folder,
            features,
            overrides,
            watch=(ScreenLine, ScreenCall, Buzz, ScreenCallEnded, ScreenLineEnded),
            **options,
        )
        self.db = Path(self.config.storage.dir) / "hall-edge.db"

    @property
    def tickets(self) -> TicketsFeature:
        return self.feature("tickets")

    def press(self, key: str) -> None:
        pin = Device.pin_factory.pin(PINS[key])
        pin.drive_low()
        pin.drive_high()

    def recorded(self, prefix: str = "") -> list[tuple[str, dict]]:
        """(type, data) of every event in the outbox whose type starts with ``prefix``."""
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT type, payload FROM outbox ORDER BY seq").fetchall()
        return [(t, json.loads(p)["data"]) for t, p in rows if t.startswith(prefix)]

    def issued(self) -> list[str]:
        return [data["ticket"] for _, data in self.recorded("ticket.issued")]


@pytest.fixture
def printer(tmp_path):
    sim = SimPrinter(tmp_path / "paper", link=tmp_path / "printer").start()
    yield sim
    sim.stop()


@pytest.fixture
def hall(make_hall, printer):
    h = make_hall(["tickets"], tickets_config(printer), rig=TicketsHall)
    wait_for(lambda: h.core.components.get("printer") == "ok", 5, "the printer's first status")
    return h


def test_a_press_prints_a_chinese_ticket(hall, printer):
    hall.press("A")
    ticket = wait_for(lambda: printer.tickets and printer.tickets[0], 5, "the ticket")
    lines = ticket.text.splitlines()
    assert lines[:3] == ["公益性零工市场", "求职登记", "A001"]
    assert "您前面还有0人在等待" in lines
    assert lines[4:8] == ["请在休息区等候", "注意呼叫及大屏显示信息", "过号无效", "请重新取号"]
    assert "服务热线 12333  投诉电话 12345" in lines
    assert datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d") in ticket.text
    number = next(line for line in ticket.lines if line["text"] == "A001")
    assert (number["width"], number["height"], number["bold"], number["align"]) == (4, 4, True, 1)
    assert ticket.qr_decoded == [QR]  # drawn from the stored data and read back
    assert ticket.chinese_mode
    assert ticket.cut == "partial"
    assert ticket.bytes < 1024
    assert ticket.png.exists()
    (event,) = hall.recorded("ticket.issued")
    assert event[1] | {"day": "-"} == {
        "ticket": "A001",
        "category": "A",
        "priority": False,
        "waiting_ahead": 0,
        "wait_estimate_s": 0,
        "day": "-",
        "round": 0,
        "printer": "ok",
    }


def test_numbers_per_category_and_people_ahead(hall, printer):
    for key in ("A", "A", "B", "A"):
        hall.press(key)
    wait_for(lambda: len(printer.tickets) == 4, 5)
    assert hall.issued() == ["A001", "A002", "B001", "A003"]
    assert [d["waiting_ahead"] for _, d in hall.recorded("ticket.issued")] == [0, 1, 2, 3]
    assert "您前面还有3人在等待" in printer.tickets[3].text
    assert "预计等候约9分钟" in printer.tickets[3].text  # 3 ahead x 180 s default, one window


def test_numbers_survive_a_restart(hall):
    hall.press("A")
    wait_for(lambda: hall.issued() == ["A001"], 5)
    hall.stop()
    Device.pin_factory.reset()
    hall.start()
    hall.press("A")
    wait_for(lambda: hall.issued() == ["A001", "A002"], 5)


def test_bounce_and_a_held_button_give_one_ticket(make_hall, printer):
    hall = make_hall(["tickets"], tickets_config(printer, bounce_ms=50), rig=TicketsHall)
    pin = Device.pin_factory.pin(PINS["A"])
    for _ in range(5):  # contact bounce: edges within the 50 ms debounce
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()  # then held down
    wait_for(hall.issued, 5)
    hall.on_core(lambda: None)  # everything posted so far has been handled
    pin.drive_high()
    hall.on_core(lambda: None)
    assert hall.issued() == ["A001"]


def test_a_stuck_button_raises_an_alarm_once(hall):
    pin = Device.pin_factory.pin(PINS["B"])
    pin.drive_low()
    wait_for(lambda: hall.recorded("alarm.key_stuck"), 5, "the stuck-key alarm")
    hall.on_core(lambda: None)  # the handler that recorded the alarm has finished
    assert hall.core.components["keys"] == "stuck"
    assert hall.on_core(hall.tickets.status)["stuck_keys"] == ["B"]
    pin.drive_high()
    wait_for(lambda: len(hall.recorded("alarm.key_stuck")) == 2, 5)
    assert [d["state"] for _, d in hall.recorded("alarm.key_stuck")] == ["stuck", "released"]
    hall.on_core(lambda: None)
    assert hall.core.components["keys"] == "ok"
    assert hall.issued() == ["B001"]


def test_priority_key_then_a_category(hall, printer):
    hall.press("A")
    hall.press("priority")
    hall.press("A")
    wait_for(lambda: len(printer.tickets) == 2, 5)
    events = hall.recorded("ticket.issued")
    assert [(d["ticket"], d["priority"], d["waiting_ahead"]) for _, d in events] == [
        ("A001", False, 0),
        ("A002", True, 0),
    ]
    assert "【优先】" in printer.tickets[1].text
    assert hall.command("queue.call", window=2)["ticket"] == "A002"  # priority first


def test_no_paper_still_gives_a_number_on_the_screen(hall, printer):
    printer.set_status("paper-out")
    wait_for(lambda: hall.core.components["printer"] == "paper_out", 5)
    hall.press("A")
    wait_for(lambda: hall.watch(ScreenLine), 5)
    line = hall.watch(ScreenLine)[0]
    assert line.text == "A001 号 打印机缺纸 请到窗口"
    assert hall.issued() == ["A001"]
    assert hall.recorded("ticket.issued")[0][1]["printer"] == "paper_out"
    assert printer.tickets == []
    printer.set_status("ok")
    wait_for(lambda: hall.core.components["printer"] == "ok", 5)
    wait_for(lambda: [d["state"] for _, d in hall.recorded("alarm.printer")] == ["paper_out", "ok"], 5)


def test_each_ticket_says_what_happened_to_it_on_paper(hall, printer):
    """ticket.issued comes before printing; ticket.printed says whether it came out, once a ticket."""
    hall.press("A")
    wait_for(lambda: hall.recorded("ticket.printed"), 5, "A001's outcome")
    printer.set_status("paper-out")
    wait_for(lambda: hall.core.components["printer"] == "paper_out", 5)
    hall.press("A")
    wait_for(lambda: len(hall.recorded("ticket.printed")) == 2, 5, "A002's outcome")
    outcomes = [(d["ticket"], d["printed"], d["printer"]) for _, d in hall.recorded("ticket.printed")]
    assert outcomes == [("A001", True, "ok"), ("A002", False, "paper_out")]
    assert [t.text.splitlines()[2] for t in printer.tickets] == ["A001"]


def test_one_lost_status_answer_after_a_ticket_neither_fails_it_nor_flaps(make_hall, printer):
    """Issue 18: one status answer lost right after a ticket made it 'not printed' although it
    printed, and put the printer offline until the next poll."""
    # one poll at start, then only the one after the ticket
    hall = make_hall(["tickets"], tickets_config(printer, poll_s=60.0), rig=TicketsHall)
    wait_for(lambda: hall.core.components.get("printer") == "ok", 5)
    printer.lose_answers = 1
    hall.press("A")
    wait_for(lambda: hall.recorded("ticket.printed"), 5, "A001's outcome")
    assert [(d["ticket"], d["printed"]) for _, d in hall.recorded("ticket.printed")] == [("A001", True)]
    wait_for(lambda: printer.tickets, 5, "A001 on paper")
    assert hall.recorded("alarm.printer") == []
    assert hall.watch(ScreenLine) == []  # no "printer fault" on the screen


def test_paper_running_out_between_polls_fails_that_ticket(make_hall, printer):
    """The status is asked right after each ticket: the worker hears at once, not at the next poll."""
    # one poll at start, then none during the test
    hall = make_hall(["tickets"], tickets_config(printer, poll_s=60.0), rig=TicketsHall)
    wait_for(lambda: hall.core.components.get("printer") == "ok", 5)
    printer.set_status("paper-out")
    hall.press("A")
    line = wait_for(lambda: next(iter(hall.watch(ScreenLine)), None), 5)
    assert line.text == "A001 号 打印机缺纸 请到窗口"
    assert hall.core.components["printer"] == "paper_out"
    assert hall.issued() == ["A001"]
    assert printer.tickets == []
    assert printer.unprinted_cuts == 1


def test_a_ticket_that_cannot_be_recorded_is_said_on_the_screen(hall, printer):
    with sqlite3.connect(hall.db) as conn:  # the disk refuses this one write
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON tickets BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    hall.press("A")
    line = wait_for(lambda: next(iter(hall.watch(ScreenLine)), None), 5)
    assert line.text == "取号失败 请到窗口"
    assert hall.core.components["tickets"] == "storage_error"
    with sqlite3.connect(hall.db) as conn:
        conn.execute("DROP TRIGGER refuse")
    hall.press("A")
    wait_for(lambda: hall.issued() == ["A001"], 5)  # the failed press used no number
    wait_for(lambda: len(printer.tickets) == 1, 5)
    assert hall.core.components["tickets"] == "ok"


def test_printer_unplugged_mid_ticket_and_back(hall, printer):
    printer.unplug()
    hall.press("A")  # before the next poll notices: the write fails
    wait_for(lambda: hall.core.components["printer"] == "offline", 5)
    wait_for(lambda: hall.watch(ScreenLine), 5)
    assert hall.issued() == ["A001"]
    printer.plug()
    wait_for(lambda: hall.core.components["printer"] == "ok", 5, "the printer back")
    hall.press("A")
    wait_for(lambda: [t.text.splitlines()[2] for t in printer.tickets] == ["A002"], 5)
    wait_for(lambda: [d["state"] for _, d in hall.recorded("alarm.printer")] == ["offline", "ok"], 5)


def test_staff_keys_call_recall_skip(hall, printer):
    for key in ("A", "B"):
        hall.press(key)
    wait_for(lambda: len(hall.issued()) == 2, 5)
    hall.press("call")
    wait_for(lambda: hall.recorded("ticket.called"), 5)
    called = hall.recorded("ticket.called")[0][1]
    assert (called["ticket"], called["window"]) == ("A001", 2)
    assert called["wait_s"] >= 0
    call = wait_for(lambda: next(iter(hall.watch(ScreenCall)), None), 5)
    assert (call.ticket, call.window, call.seconds) == ("A001", 2, 8.0)
    wait_for(lambda: Buzz("call") in hall.watch(Buzz), 5)
    hall.press("recall")
    wait_for(lambda: hall.recorded("ticket.recalled"), 5)
    hall.press("skip")
    wait_for(lambda: hall.recorded("ticket.skipped"), 5)
    assert hall.recorded("ticket.skipped")[0][1] == {"ticket": "A001", "window": 2}
    assert hall.command("queue.call", window=2)["ticket"] == "B001"
    assert hall.command("queue.recall", window=2, ticket="a001")["ticket"] == "A001"  # the skipped one
    status = hall.on_core(hall.tickets.status)
    assert status["windows"] == {"2": "A001"}
    assert status["categories"]["A"]["issued"] == 1
    assert status["categories"]["B"]["called"] == 1


def test_the_screen_lets_go_of_a_number_the_window_moved_past(hall, printer):
    """Issue 13: a skip or a finish takes the window's number off the screen; the line that shows an
    unprinted number leaves when that number is called (the call says it now)."""
    printer.set_status("paper-out")
    wait_for(lambda: hall.core.components["printer"] == "paper_out", 5)
    hall.press("A")
    line = wait_for(lambda: next(iter(hall.watch(ScreenLine)), None), 5)
    assert (line.source, line.cause) == ("printer", "ticket:A001")
    assert hall.command("queue.call", window=2)["ticket"] == "A001"
    assert ScreenLineEnded("printer", "ticket:A001") in hall.watch(ScreenLineEnded)
    hall.command("queue.skip", window=2)
    assert hall.watch(ScreenCallEnded) == [ScreenCallEnded(2)]
    hall.press("A")
    wait_for(lambda: hall.issued() == ["A001", "A002"], 5)
    assert hall.command("queue.call", window=2)["ticket"] == "A002"
    assert hall.command("queue.call", window=2)["ticket"] is None  # A002 served, nobody waits
    assert hall.watch(ScreenCallEnded) == [ScreenCallEnded(2), ScreenCallEnded(2)]


def test_commands_refuse_bad_arguments(hall):
    with pytest.raises(CommandError) as bad:
        hall.command("queue.call", window=7)
    assert bad.value.code == "bad_arguments"
    with pytest.raises(CommandError):
        hall.command("queue.call", window="2")
    with pytest.raises(CommandError) as typo:
        hall.command("queue.call", windw=2)
    assert typo.value.code == "bad_arguments"
    with pytest.raises(CommandError) as nothing:
        hall.command("queue.skip", window=2)
    assert nothing.value.code == "nothing_called"
    with pytest.raises(CommandError) as unknown:
        hall.command("queue.recall", window=2, ticket="Z999")
    assert unknown.value.code == "unknown_ticket"
    assert hall.command("queue.call", window=2) == {
        "window": 2, "ticket": None, "reason": "nobody_waiting", "finished": None}  # fmt: skip


def test_reset_command_starts_numbers_again(hall):
    hall.press("A")
    wait_for(lambda: hall.issued() == ["A001"], 5)
    result = hall.command("queue.reset")
    assert result["round"] == 1
    hall.press("A")
    wait_for(lambda: hall.issued() == ["A001", "A001"], 5)
    rounds = [d["round"] for _, d in hall.recorded("ticket.issued")]
    assert rounds == [0, 1]  # a new queue day: (day, round, ticket) stays unique
    assert hall.on_core(hall.tickets.status)["categories"]["A"]["waiting"] == 1


def test_printer_test_command(hall, printer):
    result = hall.command("printer.test")
    assert result["printer"] == "ok"
    wait_for(lambda: printer.tickets, 5)
    assert "打印机测试" in printer.tickets[0].text
    assert printer.tickets[0].qr_decoded == [QR]
    printer.set_status("cover-open")
    wait_for(lambda: hall.core.components["printer"] == "cover_open", 5)
    with pytest.raises(CommandError) as refused:
        hall.command("printer.test")
    assert refused.value.code == "printer_not_ready"


def test_without_a_printer_the_number_goes_to_the_screen(make_hall):
    hall = make_hall(["tickets"], tickets_config(None), rig=TicketsHall)
    hall.press("B")
    wait_for(lambda: hall.watch(ScreenLine), 5)
    assert hall.issued() == ["B001"]
    assert hall.core.components["printer"] == "disabled"


def test_press_latency_smoke(hall, printer):
    """Smoke size of bench/ticket_bench.py: press to the first byte on the printer's pty."""
    latencies = []
    for n in range(20):
        pin = Device.pin_factory.pin(PINS["A"])
        pressed = time.monotonic()
        pin.drive_low()
        pin.drive_high()
        wait_for(lambda n=n: len(printer.tickets) > n, 5)
        latencies.append(printer.tickets[n].started_at - pressed)
    assert max(latencies) < 1.0
    assert sorted(latencies)[len(latencies) // 2] < 0.2


def test_every_event_matches_the_contract_schema(hall, printer):
    """ticket.* and alarm.* events as published validate against docs/schemas/event.json."""
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs/schemas/event.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    hall.press("A")
    hall.press("priority")
    hall.press("B")
    wait_for(lambda: len(hall.issued()) == 2, 5)
    hall.command("queue.call", window=2)
    hall.command("queue.recall", window=2)
    hall.command("queue.skip", window=2)
    printer.set_status("paper-low")
    wait_for(lambda: hall.recorded("alarm.printer"), 5)
    with sqlite3.connect(hall.db) as conn:
        payloads = [json.loads(p) for (p,) in conn.execute("SELECT payload FROM outbox ORDER BY seq")]
    assert [p["type"] for p in payloads if p["type"] != "ticket.printed"] == [
        "ticket.issued",
        "ticket.issued",
        "ticket.called",
        "ticket.recalled",
        "ticket.skipped",
        "alarm.printer",
    ]
    printed = [p["data"] for p in payloads if p["type"] == "ticket.printed"]
    assert [(d["ticket"], d["printed"]) for d in printed] == [("A001", True), ("B001", True)]
    for payload in payloads:
        validator.validate(payload)
