"""Checking a signed command: a pure function of the payload, the keys, the device and the time.

The same payload, keys, device, time and replay cache always give the same
``Command`` or ``Refusal``.  The envelope and its signature are the wire
contract's (``edge.protocol``); what the body must say is checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field
from datetime import datetime
from typing import Any

from edge.clock import rfc3339
from edge.protocol import (
    CLOCK_SKEW,
    MAX_ID_CHARS,
    MAX_LIFETIME,
    LoneSurrogate,
    Refusal,
    VerifyKey,
    check_signature,
    claimed_id,
    loads_text,
    open_envelope,
    usable_response_topic,
)
from edge.records import record


@record
class Command:
    """A command whose signature, device, time window and id have all been checked."""

    id: str
    name: str
    issuer: str
    issued_at: datetime
    expires_at: datetime
    args: dict[str, Any]
    kid: str
    body: dict[str, Any] = field(repr=False)

    @property
    def response_topic(self) -> str | None:
        """Where the signer asked for the result besides cmd/result (checked: a usable topic)."""
        topic = self.body.get("response_topic")
        return topic if isinstance(topic, str) else None


def verify(
    payload: bytes,
    keys: Mapping[str, VerifyKey],
    *,
    device: str,
    now: datetime,
    seen: Callable[[str], bool],
    max_body_bytes: int,
    memory_since: datetime | None = None,
) -> Command | Refusal:
    """Check a signed command exactly as the contract says; nothing here has side effects.

    ``memory_since``: when the replay cache began (the database's creation).  A command
    issued before then may have run already without the cache knowing: it is refused.
    """
    envelope = open_envelope(payload, max_body_bytes)
    if isinstance(envelope, Refusal):
        return envelope
    refusal = check_signature(envelope, keys)
    if refusal is not None:  # unauthenticated: the claimed id only names the refusal
        return Refusal(refusal.reason, refusal.message, claimed_id(envelope.body))
    command = _command(envelope.body, envelope.kid)
    if isinstance(command, Refusal):
        return command
    return _check_validity(command, device, now, seen, memory_since)


def _command(body_text: str, kid: str) -> Command | Refusal:
    try:
        body = loads_text(body_text)
    except LoneSurrogate as exc:
        return Refusal("malformed", str(exc), claimed_id(body_text))
    except (ValueError, RecursionError):
        return Refusal("not_json", "the body is not JSON")
    if not isinstance(body, dict):
        return Refusal("malformed", "the body is not a JSON object")
    command_id = body.get("id")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= MAX_ID_CHARS:
        return Refusal("malformed", f"id must be a string of 1-{MAX_ID_CHARS} characters")
    problem = _missing_field(body)
    if problem:
        return Refusal("malformed", problem, command_id)
    issued_at, expires_at = _timestamp(body["issued_at"]), _timestamp(body["expires_at"])
    if issued_at is None or expires_at is None:
        return Refusal("malformed", "issued_at and expires_at must be RFC 3339 with an offset", command_id)
    if expires_at < issued_at:
        return Refusal("malformed", "expires_at is before issued_at", command_id)
    response_topic = body.get("response_topic")
    if response_topic is not None and not (
        isinstance(response_topic, str) and usable_response_topic(response_topic)
    ):
        return Refusal("malformed", "response_topic must be a topic without wildcards or $", command_id)
    args = body.get("args", {})
    if not isinstance(args, dict):
        return Refusal("bad_arguments", "args must be a JSON object", command_id, body["name"])
    return Command(command_id, body["name"], body["issuer"], issued_at, expires_at, args, kid, body)


def _missing_field(body: dict[str, Any]) -> str | None:
    for name in ("name", "device", "issued_at", "expires_at", "issuer"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name} must be a non-empty string"
    return None


def _timestamp(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _check_validity(
    command: Command,
    device: str,
    now: datetime,
    seen: Callable[[str], bool],
    memory_since: datetime | None,
) -> Command | Refusal:
    def refuse(reason: str, message: str) -> Refusal:
        return Refusal(reason, message, command.id, command.name)

    if command.body["device"] != device:
        return refuse("wrong_device", f"the command is for {command.body['device']!r}, this is {device!r}")
    if command.expires_at - command.issued_at > MAX_LIFETIME:
        return refuse("lifetime_too_long", "expires_at - issued_at is over 15 minutes")
    if now < command.issued_at - CLOCK_SKEW:
        return refuse("not_yet_valid", f"issued_at is in the future (device time {rfc3339(now)})")
    if now > command.expires_at:
        return refuse("expired", f"expired at {command.body['expires_at']} (device time {rfc3339(now)})")
    if memory_since is not None and command.issued_at < memory_since - CLOCK_SKEW:
        return refuse(
            "replayed",
            f"issued before this controller's command memory began ({rfc3339(memory_since)}, a new "
            "database): it may have run already; send a new command",
        )
    if seen(command.id):
        return refuse("replayed", f"command id {command.id!r} was already received")
    return command
