"""Snapshots from the platform (jobs, notices, cards): validation and the on-disk copy.

A snapshot is whole: each one replaces the one before.  ``parse`` turns the
bytes of a retained message into a validated snapshot plus the problems it
found; it never raises on bad input.  A bad *entry* is skipped alone (the rest
stands); a bad *snapshot* (not JSON, wrong ``schema``, no ``generated_at``,
...) is refused whole, and the caller keeps the last good one.

Snapshots are signed by the platform like commands: an envelope
``{"body": "<JSON text>", "kid": "...", "sig": "<base64 Ed25519>"}`` whose
signature covers the exact UTF-8 bytes of ``body`` and whose body names the
site.  ``receive`` opens the envelope (or, where ``snapshots.unsigned =
"accept"``, takes a bare document), checks the card hash key id and then
``parse``s the body.

``SnapshotStore`` keeps the last good snapshot of each kind in SQLite so that
the hall works from it at start, before the broker answers, and while offline.
Entries are stored normalised: known fields only, optional ones filled in.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from edge.logs import mask_phone
from edge.protocol import SNAPSHOT_KINDS, Refusal, VerifyKey, load_public_keys, verify_envelope
from edge.records import record
from edge.settings import Settings
from edge.storage import Storage

log = logging.getLogger(__name__)

KINDS = SNAPSHOT_KINDS
SCHEMAS = {kind: f"lgsc.{kind}/1" for kind in KINDS}
WAGE_UNITS = ("hour", "day", "piece", "month")
ROLES = ("worker", "staff")
CARD_STATUSES = ("active", "suspended", "banned")
MAX_ENTRY_PROBLEMS = 20  # per snapshot; beyond that one summary line (a flood is not an event storm)
_REF_CHARS = 64  # entry ids quoted in events are cut to this length
_CARD_HASH = re.compile(r"[0-9a-f]{32}")
# A snapshot dated further ahead of a synced clock than this is refused: held, it would make
# every later snapshot look older and freeze the jobs and cards (the platform's clock and ours
# may differ a little; nothing legitimate is generated minutes from now).
MAX_AHEAD = timedelta(minutes=10)

MIGRATIONS = [
    """
    CREATE TABLE snapshots (
        kind TEXT PRIMARY KEY,
        generated_at TEXT,
        received_at TEXT NOT NULL,
        body TEXT NOT NULL
    )
    """,
]


class Invalid(ValueError):
    """A field that does not match the contract; the message names the field, never its value."""


@dataclass
class Parsed:
    """What ``parse`` made of a payload.

    ``snapshot`` is None when the payload was refused whole (``reason`` says
    why).  ``empty`` is True for an empty retained payload ("none").
    ``problems`` lists (entry reference, reason) for skipped entries.
    """

    kind: str
    snapshot: dict[str, Any] | None
    reason: str = ""
    empty: bool = False
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def generated_at(self) -> datetime | None:
        if not self.snapshot or self.snapshot.get("generated_at") is None:
            return None
        return parse_time(self.snapshot["generated_at"])


def empty_snapshot(kind: str) -> dict[str, Any]:
    """What an empty retained payload means: there are none."""
    body: dict[str, Any] = {"schema": SCHEMAS[kind], "generated_at": None, kind: []}
    if kind == "cards":
        body["hash"] = None
    return body


def parse(kind: str, payload: bytes, max_bytes: int) -> Parsed:
    """Validate one snapshot payload (any bytes at all); never raises."""
    if kind not in KINDS:
        return Parsed(kind, None, f"unknown snapshot kind {kind!r}")
    if not payload:
        return Parsed(kind, empty_snapshot(kind), empty=True)
    if len(payload) > max_bytes:
        return Parsed(kind, None, f"payload of {len(payload)} bytes is over the {max_bytes} byte cap")
    try:
        doc = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        return Parsed(kind, None, "payload is not UTF-8")
    except (ValueError, RecursionError):
        return Parsed(kind, None, "payload is not JSON")
    try:
        return _parse_document(kind, doc)
    except Invalid as exc:
        return Parsed(kind, None, str(exc))


# ---- the platform's signature ------------------------------------------------------


@record
class Trust:
    """What a snapshot must satisfy, besides its schema, before it counts."""

    site: str
    keys: Mapping[str, VerifyKey]  # the platform's, by kid
    accept_unsigned: bool = False
    card_key_id: str = ""  # the cards snapshot's hash.key_id must be this; "" = not checked


def trust_from(config: Settings) -> tuple[Trust, list[str]]:
    """The ``Trust`` the configuration describes, and a line for each key that is not usable."""
    keys, problems = load_public_keys(config.snapshots.public_keys)
    trust = Trust(
        site=config.site,
        keys=keys,
        accept_unsigned=config.snapshots.unsigned == "accept",
        card_key_id=config.rfid.card_key_id,
    )
    return trust, [f"snapshots.public_keys.{problem}" for problem in problems]


def receive(kind: str, payload: bytes, max_bytes: int, trust: Trust) -> Parsed:
    """A snapshot as it came off the wire: signature, site and card key id checked, then ``parse``d.

    Never raises.  Unsigned payloads (a bare document, or an empty retained payload) count only
    when ``trust.accept_unsigned``.
    """
    if not payload and not trust.accept_unsigned:
        # "None" is said with a signed snapshot of an empty list; anyone can send an empty payload.
        return Parsed(kind, None, "an empty payload is not signed (snapshots.unsigned = refuse)")
    if kind not in KINDS or not payload or len(payload) > max_bytes:
        return parse(kind, payload, max_bytes)
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return parse(kind, payload, max_bytes)  # which says what is wrong with it
    if not _is_envelope(doc):
        if not trust.accept_unsigned:
            return Parsed(kind, None, "snapshot is not signed (snapshots.unsigned = refuse)")
        return _with_card_key_checked(parse(kind, payload, max_bytes), trust)
    # The same envelope and check as a signed command's (edge.protocol).
    envelope = verify_envelope(payload, trust.keys, max_bytes)
    if isinstance(envelope, Refusal):
        # The message may quote the kid the sender wrote: no phone number goes into an event.
        return Parsed(kind, None, f"{envelope.reason}: {mask_phone(envelope.message)}")
    parsed = parse(kind, envelope.body.encode("utf-8"), max_bytes)
    if parsed.snapshot is not None and parsed.snapshot.get("site") != trust.site:
        return Parsed(kind, None, f"signed snapshot is not for site {trust.site!r}")
    return _with_card_key_checked(parsed, trust)


def _is_envelope(doc: Any) -> bool:
    return isinstance(doc, dict) and "sig" in doc and "schema" not in doc


def _with_card_key_checked(parsed: Parsed, trust: Trust) -> Parsed:
    """Hashes made with another key than the site's match no card: refuse them whole, say why."""
    header = parsed.snapshot.get("hash") if parsed.snapshot is not None else None
    if parsed.kind != "cards" or not trust.card_key_id or header is None:
        return parsed
    if header["key_id"] != trust.card_key_id:
        return Parsed(
            parsed.kind,
            None,
            f"hash.key_id is not this site's card key {trust.card_key_id!r} (rfid.card_key_id)",
        )
    return parsed


def ahead_of(generated_at: datetime | None, now: datetime) -> bool:
    """True for a snapshot dated more than ``MAX_AHEAD`` after ``now`` (a synced clock's time)."""
    return generated_at is not None and generated_at > now + MAX_AHEAD


def _parse_document(kind: str, doc: Any) -> Parsed:
    if not isinstance(doc, dict):
        raise Invalid("payload is not a JSON object")
    if doc.get("schema") != SCHEMAS[kind]:
        raise Invalid(f"schema is not {SCHEMAS[kind]}")
    generated_at = _time(doc, "generated_at")
    entries = doc.get(kind)
    if not isinstance(entries, list):
        raise Invalid(f"{kind} is not a list")
    body: dict[str, Any] = {"schema": SCHEMAS[kind], "generated_at": generated_at}
    if "site" in doc:
        if not isinstance(doc["site"], str):
            raise Invalid("site is not a string")
        body["site"] = doc["site"]
    if kind == "cards":
        body["hash"] = _card_hash_header(doc.get("hash"))
    entry_parser = _ENTRY_PARSERS[kind]
    key = "h" if kind == "cards" else "id"
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    problems: list[tuple[str, str]] = []
    for index, raw in enumerate(entries):
        ref = _entry_ref(raw, key, index)
        try:
            entry = entry_parser(raw)
        except Invalid as exc:
            problems.append((ref, str(exc)))
            continue
        if entry[key] in seen:
            problems.append((ref, f"{key} appears twice; the first one stands"))
            continue
        seen.add(entry[key])
        kept.append(entry)
    body[kind] = kept
    return Parsed(kind, body, problems=problems)


def _entry_ref(raw: Any, key: str, index: int) -> str:
    """How an event names a bad entry: its id when it has a usable one, else its position."""
    if isinstance(raw, dict) and isinstance(raw.get(key), str) and raw[key].strip():
        # Events must never carry a phone number, even one a broken posting used as its id.
        return mask_phone(raw[key][:_REF_CHARS])
    return f"#{index}"


# ---- entries ------------------------------------------------------------------


def _job(raw: Any) -> dict[str, Any]:
    entry = _object(raw)
    wage = entry.get("wage")
    if not isinstance(wage, dict):
        raise Invalid("wage is not an object")
    amount = wage.get("amount")
    if not _is_number(amount) or amount < 0:
        raise Invalid("wage.amount is not a number >= 0")
    if wage.get("unit") not in WAGE_UNITS:
        raise Invalid("wage.unit is not one of " + ", ".join(WAGE_UNITS))
    return {
        "id": _text(entry, "id"),
        "title": _text(entry, "title"),
        "headcount": _count(entry, "headcount"),
        "wage": {"amount": amount, "unit": wage["unit"]},
        "location": _text(entry, "location", required=False),
        "employer": _text(entry, "employer", required=False),
        "contact": _text(entry, "contact", required=False),
        "posted_at": _time(entry, "posted_at", required=False),
        "starts_at": _time(entry, "starts_at", required=False),
        "expires_at": _time(entry, "expires_at"),
        "urgent": _flag(entry, "urgent", default=False),
        "verified": _flag(entry, "verified", default=None),
    }


def _notice(raw: Any) -> dict[str, Any]:
    entry = _object(raw)
    return {
        "id": _text(entry, "id"),
        "text": _text(entry, "text"),
        "starts_at": _time(entry, "starts_at", required=False),
        "ends_at": _time(entry, "ends_at", required=False),
    }


def _card(raw: Any) -> dict[str, Any]:
    entry = _object(raw)
    card_hash = entry.get("h")
    if not isinstance(card_hash, str) or not _CARD_HASH.fullmatch(card_hash):
        raise Invalid("h is not 32 lowercase hex digits")
    role = entry.get("role")
    if role not in ROLES:
        raise Invalid("role is not one of " + ", ".join(ROLES))
    status = entry.get("status")
    if status not in CARD_STATUSES:
        raise Invalid("status is not one of " + ", ".join(CARD_STATUSES))
    approved = entry.get("approved", [])
    if not isinstance(approved, list) or not all(isinstance(t, str) and t for t in approved):
        raise Invalid("approved is not a list of tool types")
    tools_max = _count(entry, "tools_max") if "tools_max" in entry else 1
    return {
        "h": card_hash,
        "worker": _text(entry, "worker"),
        "role": role,
        "status": status,
        "tools_max": tools_max,
        "approved": sorted(set(approved)),
    }


_ENTRY_PARSERS = {"jobs": _job, "notices": _notice, "cards": _card}


def _card_hash_header(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise Invalid("hash is not an object")
    if raw.get("alg") != "hmac-sha256":
        raise Invalid("hash.alg is not hmac-sha256")
    key_id = raw.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise Invalid("hash.key_id is not a non-empty string")
    return {"alg": "hmac-sha256", "key_id": key_id}


# ---- fields ---------------------------------------------------------------------


def _object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Invalid("entry is not an object")
    return raw


def _text(entry: dict[str, Any], name: str, required: bool = True) -> str:
    value = entry.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Invalid(f"{name} is not a non-empty string" if required else f"{name} is not a string")
    return value


def _count(entry: dict[str, Any], name: str) -> int:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"{name} is not an integer >= 0")
    return value


def _flag(entry: dict[str, Any], name: str, default: bool | None) -> bool:
    value = entry.get(name, default)
    if not isinstance(value, bool):
        raise Invalid(f"{name} is not true or false")
    return value


def _time(entry: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or parse_time(value) is None:
        raise Invalid(f"{name} is not an RFC 3339 time with offset")
    return value


def _is_number(value: object) -> TypeGuard[int | float]:
    # json.loads accepts NaN and Infinity; neither is a wage.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([zZ]|[+-]\d\d:\d\d)")


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 timestamp with an offset, or None."""
    if not _RFC3339.fullmatch(value):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def entry_ids(snapshot: dict[str, Any] | None, kind: str) -> set[str]:
    if not snapshot:
        return set()
    key = "h" if kind == "cards" else "id"
    return {entry[key] for entry in snapshot.get(kind, [])}


# ---- the on-disk copy -------------------------------------------------------------


@dataclass
class Held:
    """The current snapshot of one kind and where it came from."""

    snapshot: dict[str, Any]
    received_at: datetime
    live: bool  # received from the broker since this process started (not only the cache)

    @property
    def generated_at(self) -> datetime | None:
        stamp = self.snapshot.get("generated_at")
        return parse_time(stamp) if stamp else None


def _cached(kind: str, received_at: str, body: str) -> Held | None:
    if kind not in KINDS:
        return None
    try:
        moment = datetime.fromisoformat(received_at)
        doc = json.loads(body)
    except (ValueError, TypeError):
        return None
    if isinstance(doc, dict) and doc.get("generated_at") is None and doc.get(kind) == []:
        return Held(empty_snapshot(kind), moment, live=False)  # "none" was the last word
    parsed = parse(kind, body.encode("utf-8"), len(body.encode("utf-8")) + 1)
    if parsed.snapshot is None or parsed.problems:
        return None
    return Held(parsed.snapshot, moment, live=False)


class SnapshotStore:
    """The last good snapshot of each kind, in SQLite (core thread only)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        storage.migrate("snapshots", MIGRATIONS)
        self.held: dict[str, Held] = {}

    def load(self) -> dict[str, Held]:
        """Read the cached snapshots (those written by an earlier run), checked again.

        A cached copy that no longer passes (edited by hand, written by another
        version) is left out with a log line: the broker's retained copy follows.
        """
        rows = self.storage.execute("SELECT kind, received_at, body FROM snapshots").fetchall()
        for kind, received_at, body in rows:
            held = _cached(kind, received_at, body)
            if held is None:
                log.warning("cached %s snapshot is not usable; waiting for the broker's", kind)
                continue
            self.held[kind] = held
        return dict(self.held)

    def save(self, kind: str, snapshot: dict[str, Any], received_at: datetime) -> None:
        body = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":"))
        with self.storage.transaction() as conn:
            conn.execute(
                "INSERT INTO snapshots (kind, generated_at, received_at, body) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(kind) DO UPDATE SET generated_at = excluded.generated_at,"
                " received_at = excluded.received_at, body = excluded.body",
                (kind, snapshot.get("generated_at"), received_at.isoformat(), body),
            )
        self.held[kind] = Held(snapshot, received_at, live=True)
