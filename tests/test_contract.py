"""The JSON Schemas in docs/schemas/ and the messages the link publishes.

Every message any test makes the controller publish on the session broker is
validated at the end of the session (tests/contract_recorder.py); this file
checks the schemas themselves against the contract's own examples and makes
the link publish one of each kind of message.
"""

from __future__ import annotations

import base64
import json

import jsonschema
import pytest
from contract_recorder import Seen, contract_examples, problems_with, validators
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from link_support import start_link, unique_site
from support import wait_for

CHECKERS = validators()
EXAMPLES = contract_examples()
EVENT = EXAMPLES["event"]
EXAMPLE_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="  # the key docs/contract.md names


def test_every_schema_has_an_example_in_the_contract():
    """docs/contract.md shows one payload of every kind the schemas describe, and nothing else."""
    assert set(CHECKERS) == set(EXAMPLES)


def test_every_payload_has_a_valid_schema():
    for checker in CHECKERS.values():
        jsonschema.Draft202012Validator.check_schema(checker.schema)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_contract_examples_validate(name):
    CHECKERS[name].validate(EXAMPLES[name])


def test_the_contracts_signed_command_verifies_with_its_example_key():
    raw = base64.b64decode(EXAMPLE_KEY)
    envelope = EXAMPLES["cmd"]
    Ed25519PublicKey.from_public_bytes(raw).verify(
        base64.b64decode(envelope["sig"]), envelope["body"].encode("utf-8")
    )


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("event", {"seq": 0}),
        ("event", {"clock": "maybe"}),
        ("event", {"type": "rental.checkout", "data": {"rental_id": "R-1"}}),
        ("event", {"type": "rental.denied", "data": {"reason": "because"}}),
        (
            "event",
            {"type": "error.invalid_payload", "data": {"topic": "t", "reason": "r", "x": "13812345678"}},
        ),
        ("event", {"event_id": "not-a-ulid"}),
        ("event", {"at": "2026-11-22 09:01"}),
        ("state", {"online": "yes"}),
        ("telemetry", {"outbox_depth": -1}),
        ("cmd-body", {"name": "rm -rf"}),
        ("result", {"ok": False}),  # a failure without its error
        ("jobs", {"jobs": [{"id": "J1"}]}),
        ("cards", {"hash": {"alg": "md5", "key_id": "k"}}),
    ],
)
def test_contract_violations_are_caught(name, change):
    doc = {**EXAMPLES[name], **change}
    assert list(CHECKERS[name].iter_errors(doc))


def test_topic_and_flag_rules():
    topic = "lgsc/v1/qinshui/hall-01/events/ticket"
    event = json.dumps(EVENT).encode()
    assert any("wrong kind" in p for p in problems_with(Seen(topic, event, 1, False), CHECKERS))
    state = json.dumps(EXAMPLES["state"]).encode()
    assert problems_with(Seen("lgsc/v1/qinshui/hall-01/state", state, 1, False), CHECKERS)
    assert not problems_with(Seen("lgsc/v1/qinshui/hall-01/state", state, 1, True), CHECKERS)
    assert not problems_with(Seen("lgsc/v1/qinshui/jobs", b"garbage", 1, True), CHECKERS)


def test_what_the_link_publishes_is_valid(tmp_path, make_hall, broker, contract_recorder):
    """One of each: birth, events of every listed type, telemetry, result, death."""
    site = unique_site()
    rig = start_link(make_hall, tmp_path, broker.port, site, telemetry_interval_s=1.0)
    samples = {
        "rental.checkout": EVENT["data"],
        "rental.return": {
            "rental_id": "R-1",
            "worker": "W1",
            "tool_id": "T1",
            "compartment": 1,
            "duration_s": 60,
        },
        "rental.inspected": {
            "rental_id": "R-1",
            "tool_id": "T1",
            "result": "ok",
            "inspector": "S1",
            "note": "",
        },
        "rental.denied": {"reason": "unknown_card"},
        "ticket.issued": {"ticket": "A023", "category": "A", "priority": False, "waiting_ahead": 3},
        "ticket.called": {"ticket": "A023", "window": 2, "wait_s": 120},
        "alarm.printer": {"state": "paper_out"},
        "audit.command": {"id": "c-1", "name": "status", "issuer": "it-wang", "ok": True},
        "audit.command_refused": {"id": None, "reason": "bad_signature"},
        "error.invalid_payload": {"topic": f"lgsc/v1/{site}/jobs", "reason": "payload is not JSON"},
    }
    try:
        wait_for(lambda: rig.feature("link").online, what="online")
        rig.on_core(lambda: rig.core.set_component("printer", "ok"))
        for type_, data in samples.items():
            rig.emit(type_, data)
        result = {"schema": "lgsc.result/1", "id": "c-1", "ok": True, "result": {"queue": []}}
        rig.on_core(lambda: rig.feature("link").publish_result(json.dumps(result).encode(), None, None))
        base = f"lgsc/v1/{site}/hall-01/"

        def mine() -> list[Seen]:
            return [m for m in contract_recorder.messages() if m.topic.startswith(base)]

        wait_for(
            lambda: (
                {m.topic[len(base) :].split("/")[0] for m in mine()}
                >= {"state", "events", "telemetry", "cmd"}
            ),
            what="every kind of message at the recorder",
        )
        wait_for(lambda: sum("/events/" in m.topic for m in mine()) == len(samples), what="all events")
    finally:
        rig.stop()
    wait_for(lambda: any(m.payload == b'{"schema":"lgsc.state/1","online":false}' for m in mine()))
    problems = [p for m in mine() for p in problems_with(m, CHECKERS)]
    assert problems == []


def test_a_hex_command_id_with_eleven_digits_in_it_is_not_a_phone_number():
    """Command ids are random hex: c-b8ba13314282444c once failed a run as an 'unmasked phone'."""
    audit = {"id": "c-b8ba13314282444c", "name": "status", "issuer": "it-test", "ok": True}
    CHECKERS["event"].validate({**EVENT, "type": "audit.command", "data": audit})
    leaked = {**audit, "issuer": "it 13314282444"}
    assert list(CHECKERS["event"].iter_errors({**EVENT, "type": "audit.command", "data": leaked}))
