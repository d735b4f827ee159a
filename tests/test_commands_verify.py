"""The pure verifier: every refusal reason, and what a good command looks like."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from support import fuzz

from edge.commands.verify import Command, verify
from edge.protocol import REFUSAL_REASONS, Refusal, load_public_keys, public_key_b64, sign

SHANGHAI = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 22, 9, 0, 30, tzinfo=SHANGHAI)
DEVICE = "qinshui/hall-01"
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
KEYS, _ = load_public_keys({"it-2026a": public_key_b64(KEY)})


def body(**changes) -> dict:
    fields = {
        "id": "c-01J9Z8",
        "name": "display.message",
        "device": DEVICE,
        "issued_at": "2026-11-22T09:00:00+08:00",
        "expires_at": "2026-11-22T09:05:00+08:00",
        "issuer": "it-wang",
        "args": {"text": "今日下午停电 暂停营业", "seconds": 3600},
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def signed(fields: dict | str, key=KEY, kid: str = "it-2026a") -> bytes:
    text = fields if isinstance(fields, str) else json.dumps(fields, ensure_ascii=False)
    return sign(text, key, kid)


def check(payload: bytes, seen=frozenset(), now: datetime = NOW, max_body: int = 65536):
    return verify(payload, KEYS, device=DEVICE, now=now, seen=seen.__contains__, max_body_bytes=max_body)


def test_good_command_is_accepted_with_its_fields():
    outcome = check(signed(body()))
    assert isinstance(outcome, Command)
    assert (outcome.id, outcome.name, outcome.issuer, outcome.kid) == (
        "c-01J9Z8",
        "display.message",
        "it-wang",
        "it-2026a",
    )
    assert outcome.args == {"text": "今日下午停电 暂停营业", "seconds": 3600}


def test_contract_example_body_bytes_are_what_is_signed():
    # The body is verified as the exact string received, whatever its spacing or key order.
    text = (
        '{"issuer":"it-wang", "id":"c-x","name":"status","device":"qinshui/hall-01",  '
        '"issued_at":"2026-11-22T09:00:00+08:00","expires_at":"2026-11-22T09:05:00+08:00"}'
    )
    assert isinstance(check(signed(text)), Command)


def _tampered() -> bytes:
    envelope = json.loads(signed(body()))
    envelope["body"] = envelope["body"].replace("3600", "36000")
    return json.dumps(envelope).encode()


def _sig_of_other_key() -> bytes:
    return signed(body(), key=OTHER_KEY)


def _not_base64_sig() -> bytes:
    envelope = json.loads(signed(body()))
    envelope["sig"] = "not base64!"
    return json.dumps(envelope).encode()


REFUSED = {
    "bad_signature: body changed": (_tampered, "bad_signature", "c-01J9Z8"),
    "bad_signature: other key": (_sig_of_other_key, "bad_signature", "c-01J9Z8"),
    "bad_signature: garbage": (_not_base64_sig, "bad_signature", "c-01J9Z8"),
    "unknown_kid": (lambda: signed(body(), kid="it-2025z"), "unknown_kid", "c-01J9Z8"),
    "wrong_device": (lambda: signed(body(device="qinshui/hall-02")), "wrong_device", "c-01J9Z8"),
    "expired": (
        lambda: signed(body(issued_at="2026-11-22T08:50:00+08:00", expires_at="2026-11-22T09:00:00+08:00")),
        "expired",
        "c-01J9Z8",
    ),
    "not_yet_valid": (
        lambda: signed(body(issued_at="2026-11-22T09:02:00+08:00", expires_at="2026-11-22T09:05:00+08:00")),
        "not_yet_valid",
        "c-01J9Z8",
    ),
    "lifetime_too_long": (
        lambda: signed(body(expires_at="2026-11-22T09:15:01+08:00")),
        "lifetime_too_long",
        "c-01J9Z8",
    ),
    "not_json payload": (lambda: b"\xff\xfe not json", "not_json", None),
    "not_json body": (lambda: signed("this is not json"), "not_json", None),
    "malformed envelope": (lambda: json.dumps({"body": 1, "kid": "it-2026a"}).encode(), "malformed", None),
    "malformed array": (lambda: b"[1, 2]", "malformed", None),
    "malformed no id": (lambda: signed(body(id=None)), "malformed", None),
    "malformed no issuer": (lambda: signed(body(issuer=None)), "malformed", "c-01J9Z8"),
    "malformed naive time": (lambda: signed(body(issued_at="2026-11-22T09:00:00")), "malformed", "c-01J9Z8"),
    "malformed expires before issued": (
        lambda: signed(body(expires_at="2026-11-22T08:59:00+08:00")),
        "malformed",
        "c-01J9Z8",
    ),
    "bad_arguments": (lambda: signed(body(args=["not", "a", "table"])), "bad_arguments", "c-01J9Z8"),
    "too_large": (lambda: signed(body(args={"text": "x" * 70000})), "too_large", "c-01J9Z8"),
    # json.loads raises RecursionError (not ValueError) on deep nesting
    "not_json nested payload": (lambda: b"[" * 50_000, "not_json", None),
    "not_json nested body": (lambda: signed("[" * 50_000), "not_json", None),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_each_refusal_has_its_reason(case):
    make, reason, command_id = REFUSED[case]
    outcome = check(make())
    assert isinstance(outcome, Refusal), outcome
    assert outcome.reason == reason, outcome.message
    assert outcome.id == command_id
    assert outcome.reason in REFUSAL_REASONS


def test_replayed_id_is_refused():
    outcome = check(signed(body()), seen=frozenset({"c-01J9Z8"}))
    assert isinstance(outcome, Refusal) and outcome.reason == "replayed"


def test_time_window_edges():
    # 60 s of clock skew before issued_at is allowed; expires_at itself is still valid.
    early = NOW.replace(hour=8, minute=59, second=0)
    assert isinstance(check(signed(body()), now=early), Command)
    assert check(signed(body()), now=early - timedelta(seconds=1)).reason == "not_yet_valid"
    at_expiry = NOW.replace(minute=5, second=0)
    assert isinstance(check(signed(body()), now=at_expiry), Command)
    assert check(signed(body()), now=at_expiry + timedelta(microseconds=1)).reason == "expired"
    exactly_15 = body(expires_at="2026-11-22T09:15:00+08:00")
    assert isinstance(check(signed(exactly_15)), Command)


def test_other_offsets_are_the_same_instant():
    utc = body(issued_at="2026-11-22T01:00:00Z", expires_at="2026-11-22T01:05:00+00:00")
    assert isinstance(check(signed(utc)), Command)


def test_removed_key_no_longer_works():
    rotated, _ = load_public_keys({"it-2026b": public_key_b64(OTHER_KEY)})
    outcome = verify(
        signed(body()), rotated, device=DEVICE, now=NOW, seen=lambda _id: False, max_body_bytes=65536
    )
    assert isinstance(outcome, Refusal) and outcome.reason == "unknown_kid"
    newer = verify(
        signed(body(), key=OTHER_KEY, kid="it-2026b"),
        rotated,
        device=DEVICE,
        now=NOW,
        seen=lambda _id: False,
        max_body_bytes=65536,
    )
    assert isinstance(newer, Command)


def test_bad_configured_keys_are_reported_not_used():
    keys, problems = load_public_keys({"ok": public_key_b64(KEY), "short": base64.b64encode(b"x").decode()})
    assert list(keys) == ["ok"]
    assert problems == ["short: not a base64 raw 32-byte Ed25519 public key"]


@fuzz(150)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(payload):
    assert isinstance(check(payload), Refusal)


@fuzz(40)
@given(st.dictionaries(st.text(max_size=8), st.recursive(st.none() | st.text() | st.integers(), st.lists)))
def test_arbitrary_signed_bodies_never_raise(fields):
    assert isinstance(check(signed(fields)), Command | Refusal)
