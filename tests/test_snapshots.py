"""Snapshot parsing (pure) and the link's handling of snapshots from a real broker."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from link_support import Watcher, start_link, unique_site
from support import CARD, JOB, wait_for

from edge import snapshots
from edge.messages import SnapshotUpdated

CAP = 262144


def jobs_doc(*jobs: dict, at: str = "2026-11-22T08:30:00+08:00") -> dict:
    return {"schema": "lgsc.jobs/1", "generated_at": at, "jobs": list(jobs)}


def raw(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def job(**changes: object) -> dict:
    entry = copy.deepcopy(JOB)
    entry.update(changes)
    return entry


# ---- parser ---------------------------------------------------------------------------


def test_contract_examples_parse():
    parsed = snapshots.parse("jobs", raw(jobs_doc(JOB)), CAP)
    assert parsed.problems == [] and parsed.snapshot["jobs"][0]["title"] == "瓦工"
    notices = {
        "schema": "lgsc.notices/1",
        "generated_at": "2026-11-22T08:30:00+08:00",
        "notices": [{"id": "N12", "text": "本周四下午三点 家政技能免费培训"}],
    }
    assert snapshots.parse("notices", raw(notices), CAP).snapshot["notices"][0]["id"] == "N12"
    cards = {
        "schema": "lgsc.cards/1",
        "generated_at": "2026-11-22T08:30:00+08:00",
        "hash": {"alg": "hmac-sha256", "key_id": "k2026"},
        "cards": [CARD],
    }
    parsed = snapshots.parse("cards", raw(cards), CAP)
    assert parsed.snapshot["cards"] == [CARD] and parsed.snapshot["hash"]["key_id"] == "k2026"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (job(headcount=-1), "headcount"),
        (job(headcount=True), "headcount"),
        (job(wage={"amount": 300, "unit": "week"}), "wage.unit"),
        (job(wage={"amount": float("nan"), "unit": "day"}), "wage.amount"),
        (job(expires_at="tomorrow"), "expires_at"),
        (job(expires_at="2026-11-23T18:00:00"), "expires_at"),  # no offset
        (job(title=""), "title"),
        (job(verified="yes"), "verified"),
        ({k: v for k, v in JOB.items() if k != "verified"}, "verified"),
        ("J1", "entry is not an object"),
    ],
)
def test_a_bad_job_is_skipped_alone(entry, reason):
    good = job(id="J-good")
    parsed = snapshots.parse("jobs", raw(jobs_doc(good, entry)), CAP)
    assert [j["id"] for j in parsed.snapshot["jobs"]] == ["J-good"]
    assert len(parsed.problems) == 1 and reason in parsed.problems[0][1]


def test_problems_never_quote_field_values():
    parsed = snapshots.parse("jobs", raw(jobs_doc(job(contact=13812345678))), CAP)
    assert parsed.problems == [("J20261122-0007", "contact is not a string")]


def test_an_id_that_is_a_phone_number_is_masked_in_the_problem():
    parsed = snapshots.parse("jobs", raw(jobs_doc(job(id="13812345678", headcount=-1))), CAP)
    assert parsed.problems[0][0] == "138****5678"


def test_duplicate_ids_keep_the_first():
    parsed = snapshots.parse("jobs", raw(jobs_doc(job(), job(title="木工"))), CAP)
    assert [j["title"] for j in parsed.snapshot["jobs"]] == ["瓦工"]
    assert "twice" in parsed.problems[0][1]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "not a JSON object"),
        (raw({**jobs_doc(), "schema": "lgsc.jobs/2"}), "schema"),
        (raw({**jobs_doc(), "generated_at": 12}), "generated_at"),
        (raw({**jobs_doc(), "jobs": {}}), "jobs is not a list"),
        (b"x" * (CAP + 1), "cap"),
    ],
)
def test_a_bad_snapshot_is_refused_whole(payload, reason):
    parsed = snapshots.parse("jobs", payload, CAP)
    assert parsed.snapshot is None and reason in parsed.reason


def test_empty_payload_means_none():
    parsed = snapshots.parse("cards", b"", CAP)
    assert parsed.empty and parsed.snapshot["cards"] == [] and parsed.generated_at is None


def test_cards_need_a_hash_header_and_lowercase_hashes():
    doc = {"schema": "lgsc.cards/1", "generated_at": "2026-11-22T08:30:00+08:00", "cards": [CARD]}
    assert "hash" in snapshots.parse("cards", raw(doc), CAP).reason
    doc["hash"] = {"alg": "hmac-sha256", "key_id": "k"}
    doc["cards"] = [{**CARD, "h": CARD["h"].upper()}, {**CARD, "h": "ab"}, {**CARD, "status": "gone"}]
    assert len(snapshots.parse("cards", raw(doc), CAP).problems) == 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(snapshots.KINDS), payload=st.binary(max_size=300))
def test_fuzz_any_bytes_never_raise(kind, payload):
    parsed = snapshots.parse(kind, payload, 1024)
    assert parsed.snapshot is not None or parsed.reason


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(snapshots.KINDS),
    entries=st.lists(
        st.one_of(json_values, st.fixed_dictionaries({}, optional=dict.fromkeys(JOB, json_values))),
        max_size=5,
    ),
    generated_at=st.one_of(st.just("2026-11-22T08:30:00+08:00"), json_values),
)
def test_fuzz_structured_documents(kind, entries, generated_at):
    doc = {
        "schema": f"lgsc.{kind}/1",
        "generated_at": generated_at,
        kind: entries,
        "hash": {"alg": "hmac-sha256", "key_id": "k"},
    }
    parsed = snapshots.parse(kind, json.dumps(doc).encode(), CAP)
    if parsed.snapshot is None:
        assert parsed.reason
        return
    # Whatever was kept is valid again, and every dropped entry has a problem.
    assert len(parsed.snapshot[kind]) + len(parsed.problems) == len(entries)
    again = snapshots.parse(kind, json.dumps(parsed.snapshot).encode(), CAP)
    assert again.problems == [] and again.snapshot == parsed.snapshot


# ---- through the link -------------------------------------------------------------------


@pytest.fixture
def site():
    return unique_site()


def test_snapshots_from_the_broker(tmp_path, make_hall, broker, site):
    platform = Watcher(broker.port, site)
    topic = f"lgsc/v1/{site}/jobs"
    platform.publish(topic, raw(jobs_doc(job(id="J1"), at="2026-11-22T08:00:00+08:00")), retain=True)
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    updates = rig.watch(SnapshotUpdated)
    try:
        wait_for(lambda: updates, what="first snapshot")
        assert updates[0].live and updates[0].new_ids == frozenset()  # first ever: nothing is "new"
        # A newer one with a new job and a bad entry: the rest stands, the bad one is an event.
        newer = jobs_doc(
            job(id="J1"), job(id="J2"), job(id="J3", headcount="3"), at="2026-11-22T09:00:00+08:00"
        )
        platform.publish(topic, raw(newer), retain=True)
        wait_for(lambda: len(updates) == 2, what="second snapshot")
        assert updates[1].new_ids == frozenset({"J2"})
        assert [j["id"] for j in updates[1].snapshot["jobs"]] == ["J1", "J2"]
        wait_for(platform.events, what="invalid entry event")
        event = platform.events()[0]
        assert event["type"] == "error.invalid_payload"
        assert event["data"] == {"topic": topic, "reason": "headcount is not an integer >= 0", "entry": "J3"}
        # Older, broken, not UTF-8: ignored or refused, the last good one stays.
        platform.publish(topic, raw(jobs_doc(job(id="J9"), at="2026-11-22T07:00:00+08:00")))
        platform.publish(topic, b"\xc3\x28")
        platform.publish(topic, raw({"schema": "lgsc.jobs/1", "jobs": []}))
        wait_for(lambda: len(platform.events()) == 3, what="two more invalid payload events")
        assert [e["data"]["reason"] for e in platform.events()[1:]] == [
            "payload is not UTF-8",
            "generated_at is not an RFC 3339 time with offset",
        ]
        assert len(updates) == 2
        status = rig.on_core(rig.core.status)["link"]["snapshots"]["jobs"]
        assert status["entries"] == 2 and status["live"] is True
        # An empty retained payload: there are no jobs now.
        platform.publish(topic, b"", retain=True)
        wait_for(lambda: len(updates) == 3, what="none")
        assert updates[2].snapshot["jobs"] == []
    finally:
        rig.stop()
        platform.close()


def test_cached_snapshot_is_posted_at_start_before_the_broker(tmp_path, make_hall, broker, site):
    platform = Watcher(broker.port, site)
    topic = f"lgsc/v1/{site}/notices"
    doc = {
        "schema": "lgsc.notices/1",
        "generated_at": "2026-11-22T08:30:00+08:00",
        "notices": [{"id": "N1", "text": "培训"}],
    }
    platform.publish(topic, raw(doc), retain=True)
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    wait_for(lambda: rig.watch(SnapshotUpdated), what="live notices")
    rig.stop()
    # Next start, no broker at all: the cached copy is there at once.
    rig = start_link(make_hall, tmp_path, 1, site, watch=(SnapshotUpdated,))
    try:
        updates = wait_for(lambda: rig.watch(SnapshotUpdated), what="cached notices")
        assert updates[0].live is False and updates[0].snapshot["notices"][0]["text"] == "培训"
    finally:
        rig.stop()
    # And with the broker: cached first, then the same snapshot confirmed live (not "new").
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    try:
        updates = wait_for(lambda: len(rig.watch(SnapshotUpdated)) == 2 and rig.watch(SnapshotUpdated))
        assert [u.live for u in updates] == [False, True] and updates[1].new_ids == frozenset()
    finally:
        rig.stop()
        platform.publish(topic, b"", retain=True)
        platform.close()


def test_a_flood_of_bad_entries_is_capped(tmp_path, make_hall, broker, site):
    platform = Watcher(broker.port, site)
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    try:
        wait_for(lambda: rig.feature("link").online)
        bad = [job(id=f"J{n}", headcount=-1) for n in range(100)]
        platform.publish(f"lgsc/v1/{site}/jobs", raw(jobs_doc(*bad)))
        wait_for(lambda: rig.watch(SnapshotUpdated), what="snapshot with no valid jobs")
        wait_for(lambda: len(platform.events()) == snapshots.MAX_ENTRY_PROBLEMS + 1)
        assert platform.events()[-1]["data"]["reason"] == "80 more invalid entries skipped"
    finally:
        rig.stop()
        platform.close()


def test_a_snapshot_and_the_events_about_its_bad_entries_commit_together(tmp_path, make_hall, broker, site):
    """Once held, the same retained snapshot is ignored: its events must not be lost in between."""
    platform = Watcher(broker.port, site)
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    statements: list[str] = []
    try:
        wait_for(lambda: rig.feature("link").online)
        rig.on_core(lambda: rig.storage.conn.set_trace_callback(statements.append))
        bad = [job(id="J1"), job(id="J2", headcount=-1), job(id="J3", headcount=-1)]
        platform.publish(f"lgsc/v1/{site}/jobs", raw(jobs_doc(*bad)))
        wait_for(lambda: len(platform.events()) == 2, what="two invalid entry events")
        rig.on_core(lambda: rig.storage.conn.set_trace_callback(None))
        saved = next(i for i, sql in enumerate(statements) if sql.startswith("INSERT INTO snapshots"))
        inserted = [i for i, sql in enumerate(statements) if sql.startswith("INSERT INTO outbox")]
        commits = [i for i, sql in enumerate(statements) if sql == "COMMIT"]
        assert len(inserted) == 2 and not any(saved < c < inserted[-1] for c in commits)
    finally:
        rig.stop()
        platform.close()


def test_unexpected_topic_is_ignored(tmp_path, make_hall, broker, site):
    rig = start_link(make_hall, tmp_path, broker.port, site)
    try:
        wait_for(lambda: rig.feature("link").online)
        route = rig.feature("link")._route_message  # what the network thread calls for each message

        class Message:
            topic = f"lgsc/v1/{site}/elsewhere"
            payload = b"{}"
            mid = 1
            qos = 0

        route(Message())
        assert rig.on_core(rig.core.outbox.depth) == 0
    finally:
        rig.stop()


def test_store_round_trip_and_an_unusable_cached_copy_is_left_out(tmp_path):
    from datetime import datetime

    from edge.storage import Storage

    storage = Storage(tmp_path / "state")
    store = snapshots.SnapshotStore(storage)
    now = datetime.fromisoformat("2026-11-22T08:31:00+08:00")
    store.save("jobs", snapshots.parse("jobs", raw(jobs_doc(JOB)), CAP).snapshot, now)
    store.save("notices", snapshots.empty_snapshot("notices"), now)
    store.save("cards", {"schema": "lgsc.cards/1", "generated_at": "yesterday", "cards": []}, now)
    storage.execute("INSERT INTO snapshots VALUES ('weather', NULL, ?, '{}')", (now.isoformat(),))
    storage.close()
    storage = Storage(tmp_path / "state")
    try:
        held = snapshots.SnapshotStore(storage).load()
        assert set(held) == {"jobs", "notices"}
        assert held["jobs"].snapshot["jobs"][0]["id"] == JOB["id"] and held["jobs"].live is False
        assert held["notices"].snapshot == snapshots.empty_snapshot("notices")
    finally:
        storage.close()
