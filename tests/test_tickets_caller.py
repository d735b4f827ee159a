"""The window caller (issue 14): finish, pause/resume, transfer, hold/bring back, 好差评 ratings and the
daily figures, on a real SQLite queue; then the keys and commands through the tickets feature."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from support import run_bench, wait_for
from test_tickets import TicketsHall, tickets_config
from test_tickets_queue import ZONE, at, event_types, make_queue

from edge.core import CommandError
from edge.messages import ScreenCallEnded, ScreenLine
from edge.storage import Storage
from edge.tickets.queue import QueueError
from edge.tickets.report import daily_report, spread

DAY = "2026-11-25"
RATE_PINS = {5: 7, 4: 8, 3: 9, 2: 10, 1: 11}


@pytest.fixture
def storage(tmp_path):
    store = Storage(tmp_path)
    yield store
    store.close()


def issue(queue, *codes: str, when: str = "09:00") -> None:
    for code in codes:
        queue.issue(code, False, at(DAY, when))


def test_finish_records_the_service_time_from_call_to_finish(storage):
    queue, _ = make_queue(storage)
    issue(queue, "A", "A")
    queue.call_next(1, at(DAY, "09:01"))
    finished = queue.finish(1, at(DAY, "09:04", 30))
    assert (finished.ticket, finished.service_s) == ("A001", 210.0)
    with pytest.raises(QueueError) as nothing:
        queue.finish(1, at(DAY, "09:05"))
    assert nothing.value.code == "nothing_called"
    queue.call_next(1, at(DAY, "09:05"))  # the next call finishes A002's predecessor: nothing open
    queue.call_next(1, at(DAY, "09:06"))  # ... and this one finishes A002 (by the call)
    finishes = [json.loads(p)["data"] for (p,) in storage.execute(
        "SELECT payload FROM outbox WHERE type = 'ticket.finished' ORDER BY seq")]  # fmt: skip
    assert [(f["ticket"], f["service_s"], f["by"]) for f in finishes] == [
        ("A001", 210.0, "finish"),
        ("A002", 60.0, "call"),
    ]


def test_a_paused_window_calls_nobody_and_a_restart_keeps_it_paused(storage):
    queue, _ = make_queue(storage)
    issue(queue, "A")
    assert queue.set_paused(1, True, at(DAY, "10:00"))
    assert not queue.set_paused(1, True, at(DAY, "10:01"))  # already paused: no second event
    with pytest.raises(QueueError) as paused:
        queue.call_next(1, at(DAY, "10:02"))
    assert paused.value.code == "window_paused"
    again, _ = make_queue(storage)  # a restart
    assert again.stats()["paused_windows"] == [1]
    assert again.set_paused(1, False, at(DAY, "10:15"))
    assert again.call_next(1, at(DAY, "10:16")).ticket == "A001"
    assert event_types(storage).count("window.paused") == 1
    resumed = storage.execute("SELECT payload FROM outbox WHERE type = 'window.resumed'").fetchone()[0]
    assert json.loads(resumed)["data"] == {"window": 1, "paused_s": 900.0}


def test_a_transferred_ticket_keeps_its_place_by_issue_time(storage):
    queue, _ = make_queue(storage, serves={1: ("A",), 2: ("D",)}, categories=("A", "D"))
    issue(queue, "A", when="09:00")
    issue(queue, "D", "D", when="09:10")
    assert queue.call_next(1, at(DAY, "09:20")).ticket == "A001"
    moved = queue.transfer(1, at(DAY, "09:25"), to_category="D")
    assert (moved.ticket, moved.to_category) == ("A001", "D")
    # A001 was issued before D001 and D002: window 2 (which serves D) calls it first.
    assert [queue.call_next(2, at(DAY, "09:30", s)).ticket for s in range(3)] == ["A001", "D001", "D002"]


def test_a_transfer_to_a_category_that_does_not_exist_is_refused_and_nothing_is_lost(storage):
    queue, _ = make_queue(storage, serves={1: (), 2: ("B",)}, categories=("A", "B"))
    issue(queue, "A")
    queue.call_next(1, at(DAY, "09:01"))
    for target, code in [({"to_category": "Z"}, "unknown_category"), ({"to_window": 9}, "unknown_window"),
                         ({"to_window": 1}, "same_window"), ({}, "bad_target")]:  # fmt: skip
        with pytest.raises(QueueError) as refused:
            queue.transfer(1, at(DAY, "09:02"), **target)
        assert refused.value.code == code
        assert refused.value.message
    assert queue.called_ticket(1) == "A001"  # still called at its window
    assert "ticket.transferred" not in event_types(storage)
    queue.transfer(1, at(DAY, "09:03"), to_window=2)
    assert queue.call_next(1, at(DAY, "09:04")) is None  # meant for window 2, not for 1
    assert queue.call_next(2, at(DAY, "09:05")).ticket == "A001"


def test_a_held_ticket_is_brought_back_ahead_of_the_queue(storage):
    queue, _ = make_queue(storage)
    issue(queue, "A", "A", "A")
    queue.call_next(1, at(DAY, "09:01"))
    assert queue.hold(1, at(DAY, "09:02")) == "A001"
    assert queue.call_next(1, at(DAY, "09:03")).ticket == "A002"  # the window serves others meanwhile
    assert queue.bring_back(1, at(DAY, "09:10")).ticket == "A001"  # ahead of A003, A002 finished
    assert queue.stats()["windows"] == {"1": "A001"}
    with pytest.raises(QueueError) as nothing:
        queue.bring_back(1, at(DAY, "09:11"))
    assert nothing.value.code == "nothing_held"
    assert queue.call_next(1, at(DAY, "09:12")).ticket == "A003"
    assert event_types(storage).count("ticket.finished") == 2  # A002 by bring-back, A001 by the call


def test_a_recall_after_the_day_rolled_over_is_refused(storage):
    queue, _ = make_queue(storage)
    issue(queue, "A")
    queue.call_next(1, at(DAY, "20:00"))
    with pytest.raises(QueueError) as stale:
        queue.recall(1, at("2026-11-26", "08:00"))
    assert stale.value.code == "nothing_called"  # yesterday's A001 is closed, not called again
    with pytest.raises(QueueError):
        queue.recall(1, at("2026-11-26", "08:00"), "A001")
    assert "ticket.recalled" not in event_types(storage)


def test_a_rating_counts_once_for_the_ticket_finished(storage):
    queue, _ = make_queue(storage)
    issue(queue, "A")
    queue.call_next(1, at(DAY, "09:01"))
    queue.finish(1, at(DAY, "09:02"))
    assert queue.rate(1, "A001", 5, at(DAY, "09:02", 5))
    assert not queue.rate(1, "A001", 1, at(DAY, "09:02", 6))  # a second press changes nothing
    rated = storage.execute("SELECT payload FROM outbox WHERE type = 'ticket.rated'").fetchall()
    assert [json.loads(p)["data"] for (p,) in rated] == [
        {"ticket": "A001", "window": 1, "level": 5, "category": "A"}
    ]


def test_the_daily_report_matches_what_happened_and_survives_a_restart(storage):
    queue, _ = make_queue(storage, serves={1: (), 2: ()}, categories=("A", "B"))
    issue(queue, "A", "A", "B", when="09:00")
    queue.call_next(1, at(DAY, "09:10"))  # A001 waited 600 s
    queue.call_next(2, at(DAY, "09:20"))  # A002 waited 1200 s
    queue.finish(1, at(DAY, "09:15"))  # A001 served in 300 s
    queue.rate(1, "A001", 4, at(DAY, "09:15", 5))
    queue.skip(2, at(DAY, "09:21"))  # A002 no-show
    queue.call_next(1, at(DAY, "10:00"))  # B001 waited 3600 s
    queue.transfer(1, at(DAY, "10:01"), to_window=2)
    queue.call_next(2, at(DAY, "10:02"))
    queue.finish(2, at(DAY, "10:04"))  # B001 served 120 s at window 2
    queue.rating_ignored(1, at(DAY, "10:05"))
    report = daily_report(storage, DAY, ZONE)
    make_queue(storage)  # a restart changes no figure
    assert daily_report(storage, DAY, ZONE) == report
    a, b = report["categories"]["A"], report["categories"]["B"]
    assert (a["issued"], a["called"], a["served"], a["no_show"], a["transferred"]) == (2, 2, 1, 1, 0)
    assert a["wait_s"] == {"n": 2, "mean": 900.0, "p90": 1200.0}
    assert a["service_s"] == {"n": 1, "mean": 300.0, "p90": 300.0}
    assert a["ratings"] == {"5": 0, "4": 1, "3": 0, "2": 0, "1": 0} and a["unrated"] == 0
    assert (b["served"], b["transferred"], b["unrated"]) == (1, 1, 1)
    w1, w2 = report["windows"]["1"], report["windows"]["2"]
    assert (w1["called"], w1["served"], w1["transferred"], w1["ratings_ignored"]) == (2, 1, 1, 1)
    assert (w2["called"], w2["served"], w2["no_show"]) == (2, 1, 1)
    assert w2["service_s"]["mean"] == 120.0
    # The day's chart: per hour issued, served, and the wait of the tickets first called then.
    assert report["hours"] == {
        "09": {"issued": 3, "served": 1, "called": 2, "wait_mean_s": 900.0, "wait_max_s": 1200.0},
        "10": {"issued": 0, "served": 1, "called": 1, "wait_mean_s": 3600.0, "wait_max_s": 3600.0},
    }


def test_p90_is_the_nearest_rank():
    assert spread(list(range(1, 11))) == {"n": 10, "mean": 5.5, "p90": 9}
    assert spread([7.0]) == {"n": 1, "mean": 7.0, "p90": 7.0}
    assert spread([])["p90"] is None


def test_the_callers_keys_are_on_the_wiring_list_and_a_clash_or_unknown_category_is_refused(tmp_path):
    from support import make_config

    from edge.config import ConfigError
    from edge.wiring import key_pins

    window = {"number": 1, "call_pin": 16, "finish_pin": 22, "rate5_pin": 7, "transfer_to": "B"}
    keys = key_pins(make_config(tmp_path, {"queue": {"enabled": True, "windows": [window]}}))
    assert (keys["window1.finish"], keys["window1.rate5"]) == (22, 7)
    with pytest.raises(ConfigError) as clash:
        make_config(tmp_path, {"queue": {"enabled": True, "windows": [{**window, "rate1_pin": 5}]}})
    assert "queue.windows[0].rate1_pin: GPIO 5 is not free (already queue.categories[0].pin)" in str(
        clash.value
    )
    with pytest.raises(ConfigError) as unknown:
        make_config(
            tmp_path,
            {"queue": {"enabled": True, "windows": [{**window, "transfer_to": "Z", "serves": ["Q"]}]}},
        )
    assert "queue.windows[0].transfer_to: 'Z' is not a category" in str(unknown.value)
    assert "queue.windows[0].serves: 'Q' is not a category" in str(unknown.value)


# ---- through the feature: keys, commands, screen ------------------------------------------


WINDOW = {
    "number": 2, "call_pin": 16, "recall_pin": 20, "skip_pin": 21, "finish_pin": 22, "pause_pin": 23,
    "hold_pin": 25, "bring_back_pin": 17, "transfer_pin": 27, "transfer_to": "B",
    **{f"rate{level}_pin": pin for level, pin in RATE_PINS.items()},
}  # fmt: skip


def caller_hall(make_hall, **queue: object) -> TicketsHall:
    """A hall without a printer whose window 2 has every caller key and the rating keypad."""
    config = tickets_config(None, **{"windows": [WINDOW], "rating_s": 5.0, **queue})
    return make_hall(["tickets"], config, rig=TicketsHall)  # it watches ScreenLine


@pytest.fixture
def caller(make_hall):
    return caller_hall(make_hall)


def click(pins, pin: int, times: int = 1) -> None:
    for _ in range(times):
        pins.pin(pin).drive_low()
        pins.pin(pin).drive_high()


def lines(hall: TicketsHall) -> list[str]:
    return [m.text for m in hall.watch(ScreenLine)]


def test_window_keys_finish_pause_transfer_hold_and_rate(caller, pins):
    for code in ("A", "A", "B"):
        click(pins, {"A": 5, "B": 6}[code])
    wait_for(lambda: len(caller.issued()) == 3, 5)
    click(pins, 16)  # call: A001
    click(pins, 22)  # finish: the screen asks for a rating
    wait_for(lambda: caller.recorded("ticket.finished"), 5)
    wait_for(lambda: "A001 请对本次服务进行评价" in lines(caller), 5)
    assert ScreenCallEnded(2) in caller.watch(ScreenCallEnded)  # 办结 takes A001's call off the screen
    assert caller.watch(ScreenLine)[-1].source == "window2"
    click(pins, RATE_PINS[4])
    rated = wait_for(lambda: caller.recorded("ticket.rated"), 5)
    assert rated[0][1] == {"ticket": "A001", "window": 2, "level": 4, "category": "A"}
    click(pins, RATE_PINS[1])  # nothing waits for a rating now: ignored, counted
    wait_for(lambda: caller.on_core(caller.tickets.status)["ratings_ignored"] == 1, 5)
    click(pins, 16)  # A002
    click(pins, 27)  # transfer key: to B (transfer_to), in its place by issue time: before B001
    wait_for(lambda: caller.recorded("ticket.transferred"), 5)
    assert caller.recorded("ticket.transferred")[0][1] == {
        "ticket": "A002", "window": 2, "category": "A", "to_category": "B"}  # fmt: skip
    click(pins, 16)
    wait_for(
        lambda: [d["ticket"] for _, d in caller.recorded("ticket.called")] == ["A001", "A002", "A002"], 5
    )
    click(pins, 25)  # hold A002
    click(pins, 16)  # B001
    click(pins, 17)  # bring back A002
    wait_for(lambda: caller.recorded("ticket.brought_back"), 5)
    assert caller.on_core(caller.tickets.status)["windows"] == {"2": "A002"}
    click(pins, 23)  # pause (暂停): no calls, and the screen says so when the window's call key is pressed
    wait_for(lambda: caller.recorded("window.paused"), 5)
    caller.watch(ScreenLine).clear()
    click(pins, 16)
    wait_for(lambda: "2号窗口 暂停服务" in lines(caller), 5)
    assert [d["ticket"] for _, d in caller.recorded("ticket.called")][-1] == "B001"  # no new call
    click(pins, 23)  # the same key resumes (恢复)
    wait_for(lambda: caller.recorded("window.resumed"), 5)


def test_a_bouncing_or_held_rating_key_rates_once(make_hall, pins):
    hall = caller_hall(make_hall, bounce_ms=50)
    click(pins, 5)
    wait_for(lambda: hall.issued() == ["A001"], 5)
    hall.command("queue.call", window=2)
    hall.command("queue.finish", window=2)
    click(pins, RATE_PINS[5], times=4)  # a bouncing key: four edges within microseconds
    pins.pin(RATE_PINS[3]).drive_low()  # ... then another key held down past stuck_after_s
    wait_for(lambda: hall.recorded("alarm.key_stuck"), 5)
    pins.pin(RATE_PINS[3]).drive_high()
    wait_for(lambda: hall.on_core(hall.tickets.status)["ratings_ignored"] == 1, 5)  # the held one
    assert [d["level"] for _, d in hall.recorded("ticket.rated")] == [5]
    assert hall.tickets.keys.bounces == 3


def test_no_press_within_the_rating_time_leaves_it_unrated(make_hall, pins):
    hall = caller_hall(make_hall, rating_s=3.0)
    click(pins, 5)
    wait_for(lambda: hall.issued() == ["A001"], 5)
    hall.command("queue.call", window=2)
    hall.command("queue.finish", window=2)
    deadline = hall.on_core(lambda: hall.tickets.awaiting_rating[2][1])
    wait_for(lambda: hall.on_core(lambda: __import__("time").monotonic() > deadline), 10)
    click(pins, RATE_PINS[5])
    wait_for(lambda: hall.on_core(hall.tickets.status)["ratings_ignored"] == 1, 5)
    assert hall.recorded("ticket.rated") == []


def test_commands_for_the_window_caller(caller, pins):
    click(pins, 5)
    wait_for(lambda: caller.issued() == ["A001"], 5)
    assert caller.command("queue.call", window=2)["ticket"] == "A001"
    with pytest.raises(CommandError) as unknown:
        caller.command("queue.transfer", window=2, category="Z")
    assert unknown.value.code == "bad_arguments" and "Z" in unknown.value.message
    assert caller.on_core(caller.tickets.status)["windows"] == {"2": "A001"}  # nothing lost
    assert caller.command("queue.hold", window=2)["ticket"] == "A001"
    assert caller.command("queue.bring_back", window=2, ticket="a001")["ticket"] == "A001"
    assert caller.command("queue.finish", window=2)["ticket"] == "A001"
    assert caller.command("queue.pause", window=2) == {"window": 2, "paused": True, "changed": True}
    with pytest.raises(CommandError) as paused:
        caller.command("queue.call", window=2)
    assert paused.value.code == "window_paused"
    assert caller.command("queue.resume", window=2)["changed"] is True
    report = caller.command("queue.report")
    assert report["categories"]["A"]["served"] == 1 and report["categories"]["A"]["name"] == "求职登记"
    with pytest.raises(CommandError):
        caller.command("queue.report", day="yesterday")


def test_the_caller_events_match_the_contract_schema(caller, pins):
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs/schemas/event.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    click(pins, 5)
    click(pins, 5)
    wait_for(lambda: len(caller.issued()) == 2, 5)
    caller.command("queue.call", window=2)
    caller.command("queue.transfer", window=2, category="B")
    caller.command("queue.call", window=2)
    caller.command("queue.hold", window=2)
    caller.command("queue.bring_back", window=2)
    caller.command("queue.finish", window=2)
    click(pins, RATE_PINS[5])
    wait_for(lambda: caller.recorded("ticket.rated"), 5)
    caller.command("queue.pause", window=2)
    caller.command("queue.resume", window=2)
    caller.on_core(
        lambda: caller.core.emit("report.daily", caller.tickets.report(caller.tickets.queue.current_day()[0]))
    )
    types = {t for t, _ in caller.recorded()}
    assert {"ticket.finished", "ticket.transferred", "ticket.held", "ticket.brought_back", "ticket.rated",
            "window.paused", "window.resumed", "report.daily"} <= types  # fmt: skip
    import sqlite3

    with sqlite3.connect(caller.db) as conn:
        for (payload,) in conn.execute("SELECT payload FROM outbox ORDER BY seq"):
            validator.validate(json.loads(payload))


def test_the_busy_day_benchmark_agrees_with_the_events():
    """bench/caller_day.py, small: report.daily figures equal the counts made from the events."""
    out = run_bench("caller_day.py", "--tickets", "80", "--seed", "3")
    assert "every figure agrees" in out, out[-2000:]


def test_report_daily_is_sent_once_at_closing_time_and_not_again_after_a_restart(make_hall, pins):
    """closing_at 00:00 has passed whenever the test runs: the day with tickets is reported at the
    next check, once; a restarted controller does not send it again."""
    hall = caller_hall(make_hall, closing_at="00:00")
    click(pins, 5)
    wait_for(lambda: hall.issued() == ["A001"], 5)
    hall.command("queue.call", window=2)
    hall.command("queue.finish", window=2)
    hall.on_core(hall.tickets._on_day_check)
    hall.on_core(hall.tickets._on_day_check)
    reports = hall.recorded("report.daily")
    assert len(reports) == 1
    assert reports[0][1]["categories"]["A"]["served"] == 1
    hall.restart()
    hall.on_core(hall.tickets._on_day_check)
    assert len(hall.recorded("report.daily")) == 1
