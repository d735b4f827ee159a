"""Snapshot parsing (pure) and the link's handling of snapshots from a real broker."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from link_support import Watcher, start_link, unique_site
from support import CARD, JOB, PLATFORM_KID, fuzz, json_values, platform_public_key, signed_snapshot, wait_for

from edge import snapshots
from edge.config import parse as parse_config
from edge.messages import SnapshotUpdated
from edge.ratelimit import RATE_LIMITED, RateLimit

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


@fuzz(300)
@given(kind=st.sampled_from(snapshots.KINDS), payload=st.binary(max_size=300))
def test_fuzz_any_bytes_never_raise(kind, payload):
    parsed = snapshots.parse(kind, payload, 1024)
    assert parsed.snapshot is not None or parsed.reason


@fuzz(300)
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
    first = jobs_doc(job(id="J1"), at="2026-11-22T08:00:00+08:00")
    platform.publish(topic, signed_snapshot(first, site), retain=True)
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    updates = rig.watch(SnapshotUpdated)
    try:
        wait_for(lambda: updates, what="first snapshot")
        assert updates[0].live and updates[0].new_ids == frozenset()  # first ever: nothing is "new"
        # A newer one with a new job and a bad entry: the rest stands, the bad one is an event.
        newer = jobs_doc(
            job(id="J1"), job(id="J2"), job(id="J3", headcount="3"), at="2026-11-22T09:00:00+08:00"
        )
        platform.publish(topic, signed_snapshot(newer, site), retain=True)
        wait_for(lambda: len(updates) == 2, what="second snapshot")
        assert updates[1].new_ids == frozenset({"J2"})
        assert [j["id"] for j in updates[1].snapshot["jobs"]] == ["J1", "J2"]
        wait_for(platform.events, what="invalid entry event")
        event = platform.events()[0]
        assert event["type"] == "error.invalid_payload"
        assert event["data"] == {"topic": topic, "reason": "headcount is not an integer >= 0", "entry": "J3"}
        # Older, broken, not UTF-8: ignored or refused, the last good one stays.
        platform.publish(topic, signed_snapshot(jobs_doc(job(id="J9"), at="2026-11-22T07:00:00+08:00"), site))
        platform.publish(topic, b"\xc3\x28")
        platform.publish(topic, signed_snapshot({"schema": "lgsc.jobs/1", "jobs": []}, site))
        wait_for(lambda: len(platform.events()) == 3, what="two more invalid payload events")
        assert [e["data"]["reason"] for e in platform.events()[1:]] == [
            "payload is not UTF-8",
            "generated_at is not an RFC 3339 time with offset",
        ]
        assert len(updates) == 2
        status = rig.on_core(rig.core.status)["link"]["snapshots"]["jobs"]
        assert status["entries"] == 2 and status["live"] is True
        # A signed empty list: there are no jobs now.
        platform.publish(topic, signed_snapshot(jobs_doc(at="2026-11-22T10:00:00+08:00"), site), retain=True)
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
    platform.publish(topic, signed_snapshot(doc, site), retain=True)
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
        platform.publish(f"lgsc/v1/{site}/jobs", signed_snapshot(jobs_doc(*bad), site))
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
        platform.publish(f"lgsc/v1/{site}/jobs", signed_snapshot(jobs_doc(*bad), site))
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


# ---- the platform's signature (pure) ----------------------------------------------------


SITE = "qinshui"


def trust(**changes: object) -> snapshots.Trust:
    """What the configuration of a hall at SITE that trusts the tests' platform key says."""
    keys = f'{PLATFORM_KID} = "{platform_public_key()}"'
    config = parse_config(f'site = "{SITE}"\n[snapshots]\npublic_keys = {{{keys}}}\n')
    found, problems = snapshots.trust_from(config)
    assert problems == [] and not found.accept_unsigned  # refuse is the default
    return dataclasses.replace(found, **changes)


def cards_doc(key_id: str = "k2026", at: str = "2026-11-22T08:30:00+08:00") -> dict:
    staff = {**CARD, "role": "staff"}
    return {
        "schema": "lgsc.cards/1",
        "generated_at": at,
        "hash": {"alg": "hmac-sha256", "key_id": key_id},
        "cards": [staff],
    }


def forged(doc: dict, site: str = SITE) -> bytes:
    """Signed like the platform's, with a key that is not the platform's."""
    from hallsim.central import load_signing_key, signed_envelope

    return signed_envelope(load_signing_key(bytes(32)), PLATFORM_KID, {**doc, "site": site})


def tampered(payload: bytes) -> bytes:
    envelope = json.loads(payload)
    envelope["body"] = envelope["body"].replace("W000123", "W999999")
    return json.dumps(envelope).encode()


def with_envelope(payload: bytes, **changes: object) -> bytes:
    return json.dumps({**json.loads(payload), **changes}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (raw(cards_doc()), "not signed"),
        (b"", "empty payload is not signed"),
        (forged(cards_doc()), "signature does not verify"),
        (tampered(signed_snapshot(cards_doc(), SITE)), "signature does not verify"),
        (with_envelope(signed_snapshot(cards_doc(), SITE), kid="it-2026a"), "unknown_kid: no public key"),
        (with_envelope(signed_snapshot(cards_doc(), SITE), kid="13812345678"), "'138****5678'"),
        (with_envelope(signed_snapshot(cards_doc(), SITE), sig="not base64!"), "signature does not verify"),
        (with_envelope(signed_snapshot(cards_doc(), SITE), body=None), "string fields body, kid and sig"),
        (signed_snapshot(cards_doc(), "another-site"), "not for site 'qinshui'"),
        (
            signed_snapshot({k: v for k, v in cards_doc().items() if k != "generated_at"}, SITE),
            "generated_at",
        ),
    ],
)
def test_only_a_snapshot_the_platform_signed_for_this_site_counts(payload, reason):
    parsed = snapshots.receive("cards", payload, CAP, trust())
    assert parsed.snapshot is None and reason in parsed.reason


def test_a_signed_snapshot_opens_to_its_body():
    parsed = snapshots.receive("cards", signed_snapshot(cards_doc(), SITE), CAP, trust())
    assert parsed.reason == "" and parsed.snapshot["cards"][0]["role"] == "staff"
    assert parsed.snapshot["site"] == SITE


def test_unsigned_snapshots_count_only_where_the_configuration_accepts_them():
    accepting = trust(accept_unsigned=True)
    assert snapshots.receive("cards", raw(cards_doc()), CAP, accepting).snapshot is not None
    assert snapshots.receive("cards", b"", CAP, accepting).empty
    # A signed one must still verify: accepting unsigned ones is not accepting forgeries.
    assert "signature" in snapshots.receive("cards", forged(cards_doc()), CAP, accepting).reason


def test_a_cards_snapshot_hashed_with_another_key_is_refused():
    checking = trust(card_key_id="k2026")
    assert snapshots.receive("cards", signed_snapshot(cards_doc("k2026"), SITE), CAP, checking).snapshot
    refused = snapshots.receive("cards", signed_snapshot(cards_doc("k2025"), SITE), CAP, checking)
    assert refused.snapshot is None and "hash.key_id" in refused.reason and "k2026" in refused.reason
    # Not configured: not checked (a warning at start says so).
    assert snapshots.receive("cards", signed_snapshot(cards_doc("k2025"), SITE), CAP, trust()).snapshot


# ---- trust, time and rate through the link ------------------------------------------------


def test_a_forged_cards_snapshot_is_refused_and_the_held_one_stays(tmp_path, broker, site, make_hall):
    """One leaked hall credential must not be enough to make a card staff and open compartments."""
    platform = Watcher(broker.port, site)
    topic = f"lgsc/v1/{site}/cards"
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    updates = rig.watch(SnapshotUpdated)
    try:
        wait_for(lambda: rig.feature("link").online)
        worker = {**cards_doc(), "cards": [CARD]}
        platform.publish(topic, signed_snapshot(worker, site))
        wait_for(lambda: updates, what="the platform's cards")
        forged_doc = cards_doc(at="2026-11-22T09:00:00+08:00")  # the same card, now staff
        platform.publish(topic, raw(forged_doc))
        platform.publish(topic, forged(forged_doc, site))
        events = wait_for(lambda: len(platform.events()) == 2 and platform.events(), what="two refusals")
        assert [e["type"] for e in events] == ["error.invalid_payload"] * 2
        assert "not signed" in events[0]["data"]["reason"] and "signature" in events[1]["data"]["reason"]
        assert len(updates) == 1
        held = rig.on_core(lambda: rig.feature("link").store.held["cards"].snapshot["cards"])
        assert [card["role"] for card in held] == ["worker"]
    finally:
        rig.stop()
        platform.close()


FAR_FUTURE = "9999-12-31T23:59:59+08:00"


def test_a_snapshot_dated_far_ahead_is_refused_and_later_ones_still_count(tmp_path, broker, site, make_hall):
    platform = Watcher(broker.port, site)
    topic = f"lgsc/v1/{site}/jobs"
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    updates = rig.watch(SnapshotUpdated)
    try:
        wait_for(lambda: rig.feature("link").online)
        platform.publish(
            topic, signed_snapshot(jobs_doc(job(id="J-future"), at=FAR_FUTURE), site), retain=True
        )
        event = wait_for(platform.events, what="the refusal")[0]
        assert (
            event["type"] == "error.invalid_payload"
            and "ahead of the controller's synced clock" in event["data"]["reason"]
        )
        platform.publish(topic, signed_snapshot(jobs_doc(job(id="J-now")), site), retain=True)
        wait_for(lambda: updates, what="the next snapshot")
        assert [j["id"] for u in updates for j in u.snapshot["jobs"]] == ["J-now"]
    finally:
        rig.stop()
        platform.publish(topic, b"", retain=True)
        platform.close()


def test_a_future_dated_snapshot_held_from_before_does_not_freeze_newer_ones(
    tmp_path, broker, site, make_hall
):
    """Taken while the clock was unsynced (or cached by an older version), then held on disk."""
    platform = Watcher(broker.port, site)
    topic = f"lgsc/v1/{site}/jobs"
    unsynced = {"time": {"clock": "unsynced"}}
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,), tables=unsynced)
    try:
        wait_for(lambda: rig.feature("link").online)
        platform.publish(topic, signed_snapshot(jobs_doc(job(id="J-future"), at=FAR_FUTURE), site))
        wait_for(lambda: rig.watch(SnapshotUpdated), what="taken: an unsynced clock cannot tell the future")
    finally:
        rig.stop()
    rig = start_link(
        make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,)
    )  # synced now, from the cache
    updates = rig.watch(SnapshotUpdated)
    try:
        wait_for(lambda: updates, what="the cached snapshot")
        assert updates[0].live is False and updates[0].snapshot["generated_at"] == FAR_FUTURE
        wait_for(lambda: rig.feature("link").online)
        platform.publish(topic, signed_snapshot(jobs_doc(job(id="J-now")), site))
        wait_for(lambda: len(updates) == 2, what="the newer snapshot replaces it")
        assert [j["id"] for j in updates[1].snapshot["jobs"]] == ["J-now"]
        event = wait_for(platform.events, what="the event about the held one")[0]
        assert "held snapshot's generated_at" in event["data"]["reason"]
    finally:
        rig.stop()
        platform.close()


def test_a_flood_of_invalid_snapshots_is_recorded_at_a_bounded_rate(tmp_path, broker, site, make_hall):
    platform = Watcher(broker.port, site)
    topic = f"lgsc/v1/{site}/jobs"
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(SnapshotUpdated,))
    # the daemon's mechanism, a smaller limit
    rig.feature("link").invalid_payloads.limit = RateLimit(5, 3600.0)
    try:
        wait_for(lambda: rig.feature("link").online)
        for n in range(300):
            platform.publish(topic, b"junk %d" % n)
        platform.publish(topic, signed_snapshot(jobs_doc(job(id="J1")), site))
        wait_for(lambda: rig.watch(SnapshotUpdated), what="the good snapshot after the junk")
        recorded = rig.on_core(
            lambda: rig.storage.execute("SELECT value FROM counters WHERE name = 'event_seq'").fetchone()[0]
        )
        assert recorded == 5
    finally:
        rig.stop()
    # What was only counted is recorded as one event at the stop, and sent after the next start.
    rig = start_link(make_hall, tmp_path, broker.port, site)
    try:
        summary = wait_for(
            lambda: [e for e in platform.events() if e["data"]["reason"] == RATE_LIMITED], what="the summary"
        )
        assert summary[0]["data"] == {
            "topic": topic,
            "reason": RATE_LIMITED,
            "suppressed": 295,
            "topics": {topic: 295},
            "limit": 5,
            "window_s": 3600.0,
        }
    finally:
        rig.stop()
        platform.close()


def test_the_contracts_signed_snapshot_opens_with_its_example_key():
    from contract_recorder import _JSON_BLOCK, CONTRACT

    blocks = [json.loads(b) for b in _JSON_BLOCK.findall(CONTRACT.read_text(encoding="utf-8"))]
    envelope = next(
        b for b in blocks if "sig" in b and json.loads(b["body"]).get("schema") == "lgsc.notices/1"
    )
    example_key = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="  # the one docs/contract.md names
    found, _ = snapshots.trust_from(
        parse_config(f'[snapshots]\npublic_keys = {{platform-2026a = "{example_key}"}}\n')
    )
    parsed = snapshots.receive("notices", json.dumps(envelope).encode(), CAP, found)
    assert parsed.reason == "" and parsed.snapshot["notices"][0]["id"] == "N12"
