"""The ticket queue's rules on a real SQLite storage: fairness, recall cap, skip, daily reset, waits."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from edge.clock import Clock
from edge.outbox import Outbox
from edge.storage import Storage
from edge.tickets.queue import QueueError, TicketQueue, business_day

ZONE = ZoneInfo("Asia/Shanghai")


def at(day: str, hhmm: str, seconds: float = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=ZONE) + timedelta(seconds=seconds)


@pytest.fixture
def storage(tmp_path):
    store = Storage(tmp_path)
    yield store
    store.close()


def make_queue(storage: Storage, **options: object) -> tuple[TicketQueue, Outbox]:
    outbox = Outbox(storage, Clock("Asia/Shanghai", "synced"), "qinshui/hall-01")
    return TicketQueue(storage, outbox.append, **options), outbox


def event_types(storage: Storage) -> list[str]:
    return [row[0] for row in storage.execute("SELECT type FROM outbox ORDER BY seq")]


def test_business_day_turns_at_the_reset_time():
    assert business_day(at("2026-11-25", "00:00"), "00:00") == "2026-11-25"
    assert business_day(at("2026-11-25", "05:59"), "06:00") == "2026-11-24"
    assert business_day(at("2026-11-25", "06:00"), "06:00") == "2026-11-25"


def test_priority_first_but_normal_tickets_still_move(storage):
    queue, _ = make_queue(storage, priority_max_in_row=2)
    now = at("2026-11-25", "09:00")
    for category, priority in [
        ("A", True),
        ("A", False),
        ("B", True),
        ("B", False),
        ("C", True),
        ("D", True),
    ]:
        queue.issue(category, priority, now)
    order = [queue.call_next(1, now).ticket for _ in range(6)]
    assert order == ["A001", "B001", "A002", "C001", "D001", "B002"]
    assert queue.call_next(1, now) is None


def test_waiting_ahead_counts_who_is_called_first(storage):
    queue, _ = make_queue(storage)
    now = at("2026-11-25", "09:00")
    assert queue.issue("A", False, now).waiting_ahead == 0
    assert queue.issue("B", False, now).waiting_ahead == 1
    assert queue.issue("A", True, now).waiting_ahead == 0  # only priority tickets go before it
    assert queue.issue("C", False, now).waiting_ahead == 3


def test_recall_is_capped(storage):
    queue, _ = make_queue(storage, recall_max=2)
    now = at("2026-11-25", "09:00")
    queue.issue("A", False, now)
    queue.call_next(3, now)
    assert queue.recall(3, now).recalls == 1
    assert queue.recall(3, now).recalls == 2
    with pytest.raises(QueueError) as capped:
        queue.recall(3, now)
    assert capped.value.code == "recall_limit"


def test_a_skipped_ticket_can_be_recalled_later(storage):
    queue, _ = make_queue(storage)
    now = at("2026-11-25", "09:00")
    for category in "AB":
        queue.issue(category, False, now)
    queue.call_next(1, now)
    assert queue.skip(1, now) == "A001"
    assert queue.call_next(1, now).ticket == "B001"
    back = queue.recall(1, now + timedelta(minutes=10), "A001")
    assert (back.ticket, back.window) == ("A001", 1)
    figures = queue.stats()
    assert figures["windows"] == {"1": "A001"}
    assert figures["categories"]["A"]["skipped"] == 0
    with pytest.raises(QueueError) as served:
        queue.recall(1, now, "B001")
    assert served.value.code == "not_recallable"
    assert event_types(storage).count("ticket.skipped") == 1
    assert event_types(storage).count("ticket.recalled") == 1


def test_numbers_restart_each_day_and_never_go_back(storage):
    queue, _ = make_queue(storage, reset_at="06:00")
    assert queue.issue("A", False, at("2026-11-25", "09:00")).ticket == "A001"
    assert queue.issue("A", False, at("2026-11-26", "05:59")).ticket == "A002"  # still the 25th's day
    assert queue.issue("A", False, at("2026-11-26", "06:00")).ticket == "A001"
    assert queue.current_day() == ("2026-11-26", 0)


def test_an_unsynced_clock_never_takes_the_day_back(storage):
    synced = [False]
    queue, _ = make_queue(storage, clock_synced=lambda: synced[0])
    assert queue.issue("A", False, at("2026-11-26", "09:00")).ticket == "A001"
    # The Pi rebooted without network time and thinks it is yesterday: the 26th goes on.
    assert queue.issue("A", False, at("2026-11-25", "10:00")).ticket == "A002"
    assert queue.current_day() == ("2026-11-26", 0)


def test_a_synced_clock_brings_a_day_that_ran_ahead_back_without_reusing_numbers(storage):
    synced = [True]
    queue, _ = make_queue(storage, clock_synced=lambda: synced[0])
    assert queue.issue("A", False, at("2026-11-25", "09:00")).ticket == "A001"
    assert queue.issue("A", False, at("2026-12-31", "09:00")).ticket == "A001"  # a clock set wrong
    assert queue.issue("A", False, at("2026-11-25", "09:05")).ticket == "A002"  # NTP: back to the 25th
    queue.reset(at("2026-11-25", "09:06"))
    assert queue.issue("A", False, at("2026-11-25", "09:07")).ticket == "A001"
    assert queue.issue("A", False, at("2026-12-31", "09:00")).ticket == "A002"  # the 31st continues
    labels = storage.execute("SELECT day, round, ticket FROM tickets").fetchall()
    assert len(labels) == len(set(labels))


def test_a_new_day_closes_yesterdays_open_tickets(storage):
    queue, _ = make_queue(storage)
    queue.issue("A", False, at("2026-11-25", "16:00"))
    queue.roll_day(at("2026-11-26", "00:01"))
    assert queue.call_next(1, at("2026-11-26", "08:00")) is None
    assert queue.stats()["waiting"] == 0


def test_recall_and_skip_after_the_reset_time_never_touch_yesterdays_ticket(storage):
    queue, _ = make_queue(storage)
    queue.issue("A", False, at("2026-11-25", "20:00"))
    queue.call_next(1, at("2026-11-25", "20:01"))
    morning = at("2026-11-26", "00:00", seconds=5)  # before the periodic day check ran
    for act in (lambda: queue.recall(1, morning), lambda: queue.skip(1, morning)):
        with pytest.raises(QueueError) as nothing:
            act()
        assert nothing.value.code == "nothing_called"
    assert "ticket.recalled" not in event_types(storage)
    assert "ticket.skipped" not in event_types(storage)


def test_reset_starts_a_new_round(storage):
    queue, _ = make_queue(storage)
    now = at("2026-11-25", "09:00")
    queue.issue("A", False, now)
    assert queue.reset(now) == ("2026-11-25", 1)
    assert queue.issue("A", False, now).ticket == "A001"
    rows = storage.execute("SELECT round, ticket FROM tickets ORDER BY id").fetchall()
    assert rows == [(0, "A001"), (1, "A001")]


def test_wait_estimate_from_recent_service_times(storage):
    queue, _ = make_queue(storage, default_service_s=300, windows=2)
    start = at("2026-11-25", "09:00")
    for _ in range(4):
        queue.issue("A", False, start)
    assert queue.service_time_s() == 300
    queue.call_next(1, start)
    queue.call_next(1, start + timedelta(seconds=60))  # the first took 60 s
    queue.call_next(1, start + timedelta(seconds=180))  # the second 120 s
    assert queue.service_time_s() == 90
    issued = queue.issue("B", False, start + timedelta(seconds=200))
    assert issued.waiting_ahead == 1
    assert issued.wait_estimate_s == 45  # 1 ahead x 90 s over 2 windows


def test_ticket_and_event_are_one_transaction(storage):
    """A failure while issuing leaves neither a number, a ticket nor an event behind."""
    queue, outbox = make_queue(storage)
    now = at("2026-11-25", "09:00")
    queue.issue("A", False, now)

    def broken_emit(type_: str, data: dict) -> None:
        outbox.append(type_, data)
        raise OSError("disk full")

    queue.emit = broken_emit
    with pytest.raises(OSError):
        queue.issue("A", False, now)
    queue.emit = outbox.append
    assert queue.issue("A", False, now).ticket == "A002"
    assert event_types(storage) == ["ticket.issued", "ticket.issued"]
