"""Fuzz the parsers that take outside input and had no fuzz test of their own.

Snapshots as they come off the wire (signed envelopes, tampered ones), the
configuration file, ``config.set`` arguments, RFID reader frames (RDM6300,
PN532), the printer's status bytes and the lock boards' status replies.
Each gets any input at all and must answer with its own kind of "no",
never an exception.  ``HALL_FUZZ=long`` runs each with 10,000 cases
(``support.fuzz``); the commands, snapshot documents, display text and
ESC/POS fuzz tests live next to their other tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from support import PLATFORM_KID, fuzz, json_values, platform_public_key, signed_snapshot

from drivers import escpos
from drivers.lockboard import STATUS_LEN, StatusParser
from drivers.rfid import Pn532Ack, Pn532Frame, Pn532Parser, Rdm6300Framer, rdm6300_frame, target_uid
from edge import snapshots
from edge.config import SCHEMA, ConfigError, parse
from edge.config_change import merged, remote_edit, requested_changes
from edge.core import CommandError
from edge.layers import REMOTE_FILE, Layers

SITE = "qinshui"
TRUST = snapshots.Trust(
    site=SITE,
    keys=snapshots.trust_from(
        parse(f'site = "{SITE}"\n[snapshots]\npublic_keys = {{{PLATFORM_KID} = "{platform_public_key()}"}}\n')
    )[0].keys,
    card_key_id="k2026",
)


def fed(parser: Any, stream: bytes, step: int) -> list[Any]:
    """What ``parser.feed`` gives for ``stream`` handed over in pieces of ``step`` bytes."""
    return [
        item for start in range(0, len(stream), step) for item in parser.feed(stream[start : start + step])
    ]


# ---- snapshots off the wire -----------------------------------------------------------


@fuzz(200)
@given(
    kind=st.sampled_from(snapshots.KINDS),
    payload=st.binary(max_size=400),
    accept_unsigned=st.booleans(),
)
def test_any_bytes_on_a_snapshot_topic_never_raise(kind, payload, accept_unsigned):
    trust = snapshots.Trust(SITE, TRUST.keys, accept_unsigned, TRUST.card_key_id)
    parsed = snapshots.receive(kind, payload, 1024, trust)
    assert parsed.snapshot is not None or parsed.reason


@fuzz(200)
@given(
    kind=st.sampled_from(snapshots.KINDS),
    body=json_values,
    kid=st.one_of(st.just(PLATFORM_KID), json_values),
    sig=json_values,
)
def test_any_envelope_never_raises_and_never_counts_unsigned(kind, body, kid, sig):
    payload = json.dumps({"body": body, "kid": kid, "sig": sig}).encode()
    parsed = snapshots.receive(kind, payload, 1 << 20, TRUST)
    assert parsed.snapshot is None and parsed.reason  # no key ever signed these


@fuzz(200)
@given(
    kind=st.sampled_from(snapshots.KINDS),
    entries=st.lists(json_values, max_size=4),
    position=st.integers(0, 10_000),
    flip=st.integers(1, 255),
)
def test_a_signed_snapshot_with_any_byte_of_its_body_changed_does_not_count(kind, entries, position, flip):
    doc = {"schema": f"lgsc.{kind}/1", "generated_at": "2026-11-22T08:30:00+08:00", kind: entries}
    doc["hash"] = {"alg": "hmac-sha256", "key_id": "k2026"}
    envelope = json.loads(signed_snapshot(doc, SITE))
    assert snapshots.receive(kind, json.dumps(envelope).encode(), 1 << 20, TRUST).reason == ""
    body = envelope["body"].encode("utf-8")
    index = position % len(body)
    changed = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    envelope["body"] = changed.decode("utf-8", errors="replace")
    if envelope["body"].encode("utf-8") == body:
        return  # the flip made invalid UTF-8 that decodes back to the same text
    parsed = snapshots.receive(kind, json.dumps(envelope).encode(), 1 << 20, TRUST)
    assert parsed.snapshot is None and "signature" in parsed.reason


# ---- configuration ------------------------------------------------------------------------

toml_keys = st.sampled_from([*SCHEMA, "x", "mqtt.port", "display.brightness"]) | st.text(
    min_size=1, max_size=8
)


@fuzz(200)
@given(st.text(max_size=400))
def test_any_configuration_text_is_settings_or_a_config_error(text):
    try:
        parse(text)
    except ConfigError as exc:
        assert exc.errors


# The installer's file empty, the remote file (config.set's) holding whatever is fuzzed.
NO_FILES = Layers(Path("hall-edge.toml"), {}, Path(REMOTE_FILE), {})


@fuzz(200)
@given(
    st.dictionaries(
        toml_keys,
        st.recursive(
            st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False)
            | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(toml_keys, inner, max_size=3),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_any_configuration_document_is_settings_or_a_config_error(doc):
    try:
        remote_edit(NO_FILES, doc).settings()
    except ConfigError as exc:
        assert exc.errors


@fuzz(200)
@given(
    st.dictionaries(st.sampled_from(["key", "value", "changes", "other"]) | st.text(max_size=6), json_values)
)
@example(args={"changes": {"": None, ".": None}})  # a value and a table at one key crashed (long mode)
def test_any_config_set_arguments_are_a_change_or_bad_arguments(args):
    """The pure steps of config.set: the change, the merge, the remote file, its validation."""
    try:
        remote_edit(NO_FILES, merged(NO_FILES.merged(), requested_changes(args))).settings()
    except CommandError as exc:
        assert exc.code == "bad_arguments"
    except ConfigError as exc:
        assert exc.errors


# ---- RFID frames ---------------------------------------------------------------------------


@fuzz(300)
@given(st.binary(max_size=200), st.integers(1, 16))
def test_any_bytes_from_an_rdm6300_never_raise_and_give_only_card_numbers(stream, step):
    for uid in fed(Rdm6300Framer(), stream, step):
        assert len(uid) == 10 and all(ch in "0123456789ABCDEF" for ch in uid)


@fuzz(200)
@given(noise=st.binary(max_size=40), uid=st.integers(0, 2**40 - 1))
def test_a_rdm6300_card_is_read_behind_any_noise(noise, uid):
    framer = Rdm6300Framer()
    framer.feed(noise + b"\x03")  # any half-frame is ended by ETX before the card
    card = f"{uid:010X}"
    assert card in framer.feed(rdm6300_frame(card))


@fuzz(300)
@given(st.binary(max_size=200), st.integers(1, 16))
def test_any_bytes_from_a_pn532_never_raise(stream, step):
    for item in fed(Pn532Parser(), stream, step):
        assert isinstance(item, Pn532Ack | Pn532Frame)
        uid = target_uid(item) if isinstance(item, Pn532Frame) else None
        assert uid is None or all(ch in "0123456789ABCDEF" for ch in uid)


# ---- printer status and lock boards ------------------------------------------------------------


@fuzz(300)
@given(st.binary(max_size=64), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
def test_any_printer_status_reply_reads_as_one_word(data, printer, cause, paper):
    value, skipped = escpos.first_status_byte(data)
    assert 0 <= skipped <= len(data) and (value is None or escpos.is_status_byte(value))
    word = escpos.PrinterStatus(printer, cause, paper).word
    assert word in {"ok", "paper_low", "paper_out", "cover_open", "offline"}


@fuzz(300)
@given(st.binary(max_size=200), st.integers(1, 16))
def test_any_bytes_from_the_lock_boards_never_raise(stream, step):
    parser = StatusParser()
    assert all(0 <= status.board <= 15 for status in fed(parser, stream, step))
    assert len(parser._buf) < STATUS_LEN or parser._buf[:1] == b"\x02"
