"""What a window's caller screen shows (queue.status) and what the caller commands answer (issue 15):
through the tickets feature's registered commands, as the staff console and hall-admin send them."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from test_tickets import TicketsHall, tickets_config

from edge.core import CommandError

WINDOWS = [
    # window 1 calls 求职登记 only; window 2 every service, its transfer key sends to A
    {"number": 1, "call_pin": 16, "recall_pin": 20, "skip_pin": 21, "serves": ["A"]},
    {"number": 2, "call_pin": 22, "recall_pin": 23, "skip_pin": 24, "transfer_to": "A"},
]


@pytest.fixture
def hall(make_hall) -> TicketsHall:
    return make_hall(["tickets"], tickets_config(None, windows=WINDOWS), rig=TicketsHall)


def issue(hall: TicketsHall, *codes: str, priority: bool = False) -> None:
    for code in codes:
        hall.on_core(lambda code=code: hall.tickets.issue(code, priority))


def window(board: dict[str, Any], number: int) -> dict[str, Any]:
    return next(w for w in board["windows"] if w["window"] == number)


def waiting(board: dict[str, Any]) -> dict[str, list[str]]:
    return {code: [t["ticket"] for t in tickets] for code, tickets in board["waiting"].items()}


def test_the_caller_screen_shows_the_ticket_served_the_waiting_numbers_and_who_is_next(hall):
    issue(hall, "A", "B")
    issue(hall, "A", priority=True)  # A002, 绿色通道: called before A001
    board = hall.command("queue.status")
    assert waiting(board) == {"A": ["A001", "A002"], "B": ["B001"]}
    assert [c["code"] for c in board["categories"]] == ["A", "B"]
    assert board["categories"][0]["name"] == "求职登记"
    assert board["actions"] == [
        "call", "recall", "skip", "finish", "pause", "resume", "hold", "bring_back", "transfer"]  # fmt: skip
    assert board["transfer_targets"] == {"categories": ["A", "B"], "windows": [1, 2]}
    one, two = window(board, 1), window(board, 2)
    assert (one["state"], one["serving"], one["next"], one["waiting"], one["serves"]) == (
        "idle", None, "A002", 2, ["A"])  # fmt: skip
    assert (two["next"], two["waiting"], two["serves"], two["transfer_to"]) == ("A002", 3, ["A", "B"], "A")
    assert board["waiting"]["A"][1]["priority"] is True
    assert datetime.fromisoformat(board["now"]).utcoffset() is not None  # hall time, with its offset

    called = hall.command("queue.call", window=1)
    assert called == {
        "window": 1, "ticket": "A002", "category": "A", "priority": True,
        "wait_s": called["wait_s"], "finished": None}  # fmt: skip
    mine = hall.command("queue.status", window=1)
    assert [w["window"] for w in mine["windows"]] == [1]
    assert waiting(mine) == {"A": ["A001"], "B": []}  # only what window 1 may call
    serving = window(mine, 1)["serving"]
    assert (window(mine, 1)["state"], serving["ticket"], serving["priority"], serving["recalls"]) == (
        "serving", "A002", True, 0)  # fmt: skip
    assert serving["waited_s"] >= 0 and serving["served_s"] >= 0
    assert datetime.fromisoformat(serving["called_at"]) >= datetime.fromisoformat(serving["issued_at"])

    assert hall.command("queue.call", window=2)["ticket"] == "A001"
    assert hall.command("queue.hold", window=2) == {"window": 2, "ticket": "A001"}
    assert hall.command("queue.call", window=2)["ticket"] == "B001"
    assert hall.command("queue.skip", window=2) == {"window": 2, "ticket": "B001"}
    two = window(hall.command("queue.status"), 2)
    assert (two["state"], two["next"], two["waiting"]) == ("idle", None, 0)
    assert [h["ticket"] for h in two["held"]] == ["A001"] and two["held"][0]["held_at"]
    assert [(s["ticket"], s["recalls"]) for s in two["skipped"]] == [("B001", 0)]

    nobody = hall.command("queue.call", window=2)  # A001 is held, B001 skipped: nobody waits
    assert nobody == {"window": 2, "ticket": None, "reason": "nobody_waiting", "finished": None}
    assert hall.command("queue.bring_back", window=2) == {"window": 2, "ticket": "A001", "finished": None}
    recalled = hall.command("queue.recall", window=2, ticket="B001")  # the no-show turned up
    assert recalled == {"window": 2, "ticket": "B001", "recalls": 1, "finished": "A001"}
    moved = hall.command("queue.transfer", window=2, to_window=1)
    assert (moved["ticket"], moved["to_window"]) == ("B001", 1)
    board = hall.command("queue.status")
    (sent,) = board["waiting"]["B"]
    assert (sent["ticket"], sent["for_window"], sent["transferred"]) == ("B001", 1, True)
    assert (window(board, 1)["waiting"], window(board, 2)["waiting"]) == (1, 0)  # B001 is window 1's

    hall.command("queue.pause", window=1)
    one = window(hall.command("queue.status", window=1), 1)
    assert (one["state"], one["serving"]["ticket"], one["next"]) == ("paused", "A002", None)
    assert one["paused_since"]
    finished = hall.command("queue.finish", window=1)
    assert (finished["ticket"], finished["service_s"] >= 0) == ("A002", True)


def test_a_caller_command_that_cannot_act_says_why_and_changes_nothing(hall):
    issue(hall, "A")
    for name, code in [
        ("queue.skip", "nothing_called"),
        ("queue.finish", "nothing_called"),
        ("queue.hold", "nothing_called"),
        ("queue.recall", "nothing_called"),
        ("queue.bring_back", "nothing_held"),
    ]:
        with pytest.raises(CommandError) as refused:
            hall.command(name, window=1)
        assert refused.value.code == code, name
    with pytest.raises(CommandError) as unknown:
        hall.command("queue.status", window=9)
    assert unknown.value.code == "bad_arguments"
    hall.command("queue.pause", window=1)
    with pytest.raises(CommandError) as paused:
        hall.command("queue.call", window=1)
    assert paused.value.code == "window_paused"
    assert waiting(hall.command("queue.status")) == {"A": ["A001"], "B": []}  # still waiting
    assert hall.recorded("ticket.called") == []


def test_two_staff_pressing_call_at_the_same_moment_never_get_one_ticket_twice(make_hall):
    both = [{**w, "serves": []} for w in WINDOWS]  # both windows call every service
    hall = make_hall(["tickets"], tickets_config(None, windows=both), rig=TicketsHall)
    rounds = 15
    issue(hall, *["A", "B"] * rounds)
    answers: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    for _ in range(rounds):
        start = threading.Barrier(2)

        def press(number: int, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                answers.append(hall.command("queue.call", window=number))
            except BaseException as exc:  # reported by the test thread below
                failures.append(exc)

        threads = [threading.Thread(target=press, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert failures == []
    tickets = [a["ticket"] for a in answers]
    assert len(tickets) == 2 * rounds and None not in tickets
    assert len(set(tickets)) == len(tickets), tickets  # every answer a different ticket
    called = [d["ticket"] for _, d in hall.recorded("ticket.called")]
    assert sorted(called) == sorted(tickets)  # and each called exactly once
    report = hall.command("queue.report")
    hours = report["hours"].values()  # one hour, or two if the test ran across the hour
    assert sum(h["issued"] for h in hours) == sum(h["called"] for h in hours) == 2 * rounds
    assert all(h["wait_max_s"] >= h["wait_mean_s"] >= 0 for h in hours if h["called"])
