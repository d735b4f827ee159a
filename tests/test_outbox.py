"""The durable outbox: seq and ids, batched acknowledgements, the storage cap."""

from __future__ import annotations

import pytest

from edge.clock import Clock
from edge.outbox import Outbox
from edge.storage import Storage


@pytest.fixture
def storage(tmp_path):
    s = Storage(tmp_path / "state")
    yield s
    s.close()


def make_outbox(storage: Storage, max_events: int = 100, max_bytes: int = 10**9) -> Outbox:
    outbox = Outbox(storage, Clock("Asia/Shanghai", "unsynced"), "qinshui/hall-01")
    outbox.set_limits(max_events, max_bytes)
    return outbox


def kinds_left(storage: Storage) -> list[str]:
    return [r[0] for r in storage.execute("SELECT type FROM outbox ORDER BY seq")]


def test_events_get_consecutive_seq_and_unique_ids(storage):
    outbox = make_outbox(storage)
    events = [outbox.append("ticket.issued", {"ticket": f"A{n:03d}"}) for n in range(5)]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert len({e.event_id for e in events}) == 5
    body = events[0].body()
    assert body["clock"] == "unsynced" and body["device"] == "qinshui/hall-01"
    assert body["at"].endswith("+08:00")


def test_acknowledge_deletes_in_one_batch_and_depth_follows(storage):
    outbox = make_outbox(storage, max_events=10_000)
    for _ in range(1200):
        outbox.append("error.invalid_payload", {"topic": "t", "reason": "r"})
    assert outbox.depth() == 1200
    outbox.acknowledge(list(range(1, 1101)))
    assert outbox.depth() == 100 == len(outbox.pending(limit=5000))
    assert outbox.size_bytes() == sum(len(e.payload) for e in outbox.pending(limit=5000))
    outbox.acknowledge([1, 2, 3])  # acknowledged twice (a resend): nothing more happens
    assert outbox.depth() == 100


def test_seq_survives_restart_and_depth_is_read_back(tmp_path):
    first = Storage(tmp_path / "s")
    make_outbox(first).append("audit.command", {"id": "c1", "name": "status", "issuer": "x", "ok": True})
    first.close()
    again = Storage(tmp_path / "s")
    outbox = make_outbox(again)
    assert outbox.depth() == 1
    assert outbox.append("audit.command", {"id": "c2"}).seq == 2
    again.close()


def test_cap_drops_errors_first_then_alarms_never_kept_kinds(storage):
    outbox = make_outbox(storage, max_events=100)
    for n in range(40):
        outbox.append("rental.checkout", {"rental_id": f"R{n}"})
    for _ in range(30):
        outbox.append("alarm.door_open_too_long", {"compartment": 1})
    for _ in range(30):
        outbox.append("error.invalid_payload", {"topic": "t", "reason": "r"})
    assert outbox.depth() == 100 and outbox.dropped == 0
    outbox.append("ticket.issued", {"ticket": "A001"})
    # One error went to make room, then the cap alarm needed room too: another error went.
    left = kinds_left(storage)
    assert left.count("rental.checkout") == 40 and left.count("ticket.issued") == 1
    assert left.count("error.invalid_payload") == 28
    assert left[-1] == "alarm.outbox_full"
    assert outbox.depth() == 100
    for _ in range(60):
        outbox.append("audit.locker_opened", {"compartment": 2})
    left = kinds_left(storage)
    assert "error.invalid_payload" not in left
    assert left.count("audit.locker_opened") == 60 and left.count("rental.checkout") == 40
    assert left.count("alarm.outbox_full") == 1 and left.count("alarm.door_open_too_long") == 0
    assert outbox.dropped == 60


def test_kept_kinds_are_kept_beyond_the_cap(storage):
    outbox = make_outbox(storage, max_events=100)
    for n in range(150):
        outbox.append("rental.return", {"rental_id": f"R{n}"})
    left = kinds_left(storage)
    assert left.count("rental.return") == 150
    assert outbox.dropped == 0
    assert left.count("alarm.outbox_full") == 1  # kept too: it explains the gaps to come


def test_cap_alarm_once_per_episode_and_again_after_draining(storage):
    outbox = make_outbox(storage, max_events=100)
    for _ in range(300):
        outbox.append("error.invalid_payload", {"topic": "t", "reason": "r"})
    alarms = storage.execute("SELECT COUNT(*) FROM outbox WHERE type = 'alarm.outbox_full'").fetchone()[0]
    assert alarms == 1
    outbox.acknowledge([e.seq for e in outbox.pending(limit=1000)])
    outbox.append("error.invalid_payload", {"topic": "t", "reason": "r"})  # below 90 %: re-armed
    for _ in range(120):
        outbox.append("error.invalid_payload", {"topic": "t", "reason": "r"})
    alarms = storage.execute("SELECT COUNT(*) FROM outbox WHERE type = 'alarm.outbox_full'").fetchone()[0]
    assert alarms == 1  # the first alarm was acknowledged (delivered); a second one is waiting


def test_cap_by_bytes(storage):
    outbox = make_outbox(storage, max_events=10**6, max_bytes=20_000)
    for _ in range(200):
        outbox.append("error.invalid_payload", {"topic": "t", "reason": "x" * 200})
    assert outbox.size_bytes() <= 20_000
    assert outbox.dropped > 100
    total = storage.execute("SELECT SUM(LENGTH(payload)) FROM outbox").fetchone()[0]
    assert total == outbox.size_bytes()


def test_rolled_back_append_leaves_nothing_and_recount_repairs_depth(storage):
    outbox = make_outbox(storage)
    with pytest.raises(RuntimeError), storage.transaction():
        outbox.append("ticket.issued", {"ticket": "A001"})
        raise RuntimeError("the ticket could not be recorded")
    assert storage.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    outbox.recount()
    assert outbox.depth() == 0 and outbox.size_bytes() == 0


def test_unknown_kind_is_refused(storage):
    with pytest.raises(ValueError, match="kind must be one of"):
        make_outbox(storage).append("telemetry.tick", {})


def test_text_that_utf8_cannot_hold_is_recorded_escaped_not_lost(storage):
    """A lone surrogate from outside (a JSON escape \\ud800 in some payload) once made the
    event's encoding fail, and with it the transaction that recorded the event."""
    outbox = make_outbox(storage)
    event = outbox.append("audit.command_refused", {"reason": "malformed", "id": "c-\ud800"})
    assert event.payload.isascii()
    assert event.body()["data"]["id"] == "c-\ud800"
    assert outbox.depth() == 1


def test_events_name_their_epoch_and_a_new_database_gets_a_new_one(tmp_path):
    first = Storage(tmp_path / "a")
    second = Storage(tmp_path / "b")
    try:
        a, b = make_outbox(first).append("ticket.issued", {}), make_outbox(second).append("ticket.issued", {})
        assert a.body()["epoch"] == first.epoch != second.epoch == b.body()["epoch"]
        assert a.seq == b.seq == 1
    finally:
        first.close()
        second.close()


def test_a_reopened_database_keeps_its_epoch(tmp_path):
    storage = Storage(tmp_path / "a")
    epoch, created = storage.epoch, storage.created_at
    storage.close()
    again = Storage(tmp_path / "a")
    assert (again.epoch, again.created_at) == (epoch, created)
    again.close()
