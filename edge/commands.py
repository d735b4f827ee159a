"""Signed remote commands: verification, dispatch, results, and the generic commands.

A command arrives on ``lgsc/v1/{site}/{device}/cmd`` as an envelope
``{"body": "<JSON text>", "kid": "...", "sig": "<base64 Ed25519>"}``.  The
signature covers the exact UTF-8 bytes of ``body`` (never a re-serialised
copy), so the body stays a string until the signature has been checked.

``verify`` is a pure function: the same payload, keys, device, time and
replay cache always give the same ``Command`` or ``Refusal``.  The feature
around it (``Commands``) adds what needs the core: the replay cache on disk,
the audit events, dispatch to the handlers that features registered with
``core.register_command`` and the result published through ``core.link``.

A refusal is never executed and always leaves an ``audit.command_refused``
event; an executed command leaves ``audit.command``.  A handler that raises
``CommandError("bad_arguments", ...)`` counts as refused: handlers check their
arguments before they act.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge import __version__, config_change
from edge.clock import rfc3339
from edge.core import CommandError, Core
from edge.logs import mask_personal, recent
from edge.messages import CommandReceived
from edge.ratelimit import RateLimit, Throttle
from edge.schema import Settings, lookup, secret_paths

log = logging.getLogger(__name__)

RESULT_SCHEMA = "lgsc.result/1"
MAX_LIFETIME = timedelta(minutes=15)
CLOCK_SKEW = timedelta(seconds=60)  # a command may arrive this long before its issued_at
MAX_ID_CHARS = 128
LOGS_TAIL_MAX = 2000
RESTART_DELAY_S = 0.5  # lets the link send the result before the daemon exits
PRUNE_EVERY_S = 600.0
REFUSALS_PER_WINDOW = 20  # refusals recorded one by one per window; the rest are counted
REFUSAL_WINDOW_S = 60.0

REFUSAL_REASONS = (
    "too_large",
    "not_json",
    "malformed",
    "unknown_kid",
    "bad_signature",
    "wrong_device",
    "lifetime_too_long",
    "not_yet_valid",
    "expired",
    "replayed",
    "unknown_command",
    "bad_arguments",
)

# A handler that raises CommandError with one of these checked its arguments before acting:
# the command counts as refused (reason bad_arguments), not as executed.
BAD_ARGUMENT_CODES = frozenset({"bad_arguments", "bad_args"})

# Refused before the signature was checked: nothing in the message is trusted, so the answer
# goes to cmd/result only, never to a response topic the sender chose (no reflection).
UNAUTHENTICATED = frozenset({"too_large", "not_json", "malformed", "unknown_kid", "bad_signature"})

MIGRATIONS = [
    """
    CREATE TABLE command_ids (id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
    CREATE INDEX command_ids_expiry ON command_ids (expires_at)
    """,
    """
    CREATE TABLE service_starts (at REAL NOT NULL)
    """,
]

# systemd's start limit in systemd/hall-edge.service (a test keeps the two equal).  A remote
# restart or config.set that would be refused by it would leave the hall down until someone
# on site runs `systemctl reset-failed`; such a command is answered `too_soon` instead.
START_LIMIT_BURST = 4
START_LIMIT_INTERVAL_S = 120.0
STARTS_KEPT_S = 86400.0


# ---- verification (pure) ------------------------------------------------------


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Refusal:
    """Why a command is not executed; ``reason`` is one of REFUSAL_REASONS."""

    reason: str
    message: str
    id: str | None = None
    name: str | None = None


def load_public_keys(configured: Mapping[str, str]) -> tuple[dict[str, Ed25519PublicKey], list[str]]:
    """The usable keys by kid, and a problem line for each configured key that is not one."""
    keys: dict[str, Ed25519PublicKey] = {}
    problems = []
    for kid, text in configured.items():
        try:
            keys[kid] = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError, TypeError):
            problems.append(f"commands.public_keys.{kid}: not a base64 raw 32-byte Ed25519 public key")
    return keys, problems


def verify(
    payload: bytes,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    device: str,
    now: datetime,
    seen: Callable[[str], bool],
    max_body_bytes: int,
) -> Command | Refusal:
    """Check a signed command exactly as the contract says; nothing here has side effects."""
    envelope = _envelope(payload, max_body_bytes)
    if isinstance(envelope, Refusal):
        return envelope
    body_text, kid, sig_text = envelope
    claimed_id = _claimed_id(body_text)  # unauthenticated: only to name the refusal
    key = keys.get(kid)
    if key is None:
        # The kid is whatever the sender wrote: only its start goes into the log and the answer.
        return Refusal("unknown_kid", f"no public key {kid[:MAX_ID_CHARS]!r} is configured", claimed_id)
    if not _signature_valid(key, body_text, sig_text):
        return Refusal("bad_signature", f"the signature does not verify with key {kid!r}", claimed_id)
    command = _command(body_text, kid)
    if isinstance(command, Refusal):
        return command
    return _check_validity(command, device, now, seen)


def _envelope(payload: bytes, max_body_bytes: int) -> tuple[str, str, str] | Refusal:
    # JSON escapes make the envelope at most ~6x the body; anything bigger is refused unread.
    if len(payload) > 6 * max_body_bytes + 4096:
        return Refusal("too_large", f"payload of {len(payload)} bytes is over the limit")
    try:
        envelope = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        return Refusal("not_json", "the payload is not UTF-8 JSON")
    if not isinstance(envelope, dict):
        return Refusal("malformed", "the payload is not a JSON object")
    body, kid, sig = envelope.get("body"), envelope.get("kid"), envelope.get("sig")
    if not (isinstance(body, str) and isinstance(kid, str) and isinstance(sig, str)):
        return Refusal("malformed", "the envelope needs string fields body, kid and sig")
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > max_body_bytes:
        return Refusal("too_large", f"body of {size} bytes is over {max_body_bytes}", _claimed_id(body))
    return body, kid, sig


def _claimed_id(body_text: str) -> str | None:
    try:
        body = json.loads(body_text)
    except (ValueError, RecursionError):
        return None
    claimed = body.get("id") if isinstance(body, dict) else None
    return claimed if isinstance(claimed, str) and 0 < len(claimed) <= MAX_ID_CHARS else None


def _signature_valid(key: Ed25519PublicKey, body_text: str, sig_text: str) -> bool:
    try:
        signature = base64.b64decode(sig_text, validate=True)
        key.verify(signature, body_text.encode("utf-8"))
    except (binascii.Error, ValueError, InvalidSignature, UnicodeEncodeError):
        return False
    return True


def _command(body_text: str, kid: str) -> Command | Refusal:
    try:
        body = json.loads(body_text)
    except (ValueError, RecursionError):
        return Refusal("not_json", "the body is not JSON")
    if not isinstance(body, dict):
        return Refusal("malformed", "the body is not a JSON object")
    command_id = _claimed_id(body_text)
    if command_id is None:
        return Refusal("malformed", f"id must be a string of 1-{MAX_ID_CHARS} characters")
    problem = _missing_field(body)
    if problem:
        return Refusal("malformed", problem, command_id)
    issued_at, expires_at = _timestamp(body["issued_at"]), _timestamp(body["expires_at"])
    if issued_at is None or expires_at is None:
        return Refusal("malformed", "issued_at and expires_at must be RFC 3339 with an offset", command_id)
    if expires_at < issued_at:
        return Refusal("malformed", "expires_at is before issued_at", command_id)
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
    command: Command, device: str, now: datetime, seen: Callable[[str], bool]
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
    if seen(command.id):
        return refuse("replayed", f"command id {command.id!r} was already received")
    return command


# ---- results ------------------------------------------------------------------


def result_payload(command_id: str | None, result: dict[str, Any]) -> bytes:
    body = {"schema": RESULT_SCHEMA, "id": command_id, "ok": True, "result": result}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def error_payload(command_id: str | None, code: str, message: str) -> bytes:
    body = {
        "schema": RESULT_SCHEMA,
        "id": command_id,
        "ok": False,
        "error": {"code": code, "message": message},
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


# ---- the feature ----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Where a command's result goes besides cmd/result (MQTT 5 response topic)."""

    response_topic: str | None = None
    correlation_data: bytes | None = None


class Commands:
    """Verifies commands on the cmd topic, runs them and answers; registers the generic commands."""

    name = "commands"

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.keys, problems = load_public_keys(config.commands.public_keys)
        self.key_problems = problems
        self.max_body_bytes: int = config.commands.max_body_bytes
        self.core: Core | None = None
        self.changes: config_change.ConfigChanges | None = None
        self._current: tuple[Command, Reply] | None = None
        # Anyone who can publish on the cmd topic can cause refusals, and audit events are never
        # dropped at the outbox cap: they are recorded at a bounded rate, the rest summed up.
        self.refusals = Throttle("audit.command_refused", RateLimit(REFUSALS_PER_WINDOW, REFUSAL_WINDOW_S))

    # -- wiring ------------------------------------------------------------

    def start(self, core: Core) -> None:
        self.core = core
        core.storage.migrate("commands", MIGRATIONS)
        for problem in self.key_problems:
            log.error("config %s", problem)
        if not self.keys:
            log.warning("no usable commands.public_keys: every remote command will be refused")
        self.changes = config_change.ConfigChanges(
            core, core.config_path, self.config.commands, self._send_error
        )
        core.subscribe(CommandReceived, self.on_command)
        for name, handler in self._generic().items():
            core.register_command(name, handler)
        self.prune()
        core.every(PRUNE_EVERY_S, self.prune)
        self._record_start()
        self.changes.resume()

    def stop(self) -> None:
        """Record the refusals still only counted (the core thread has ended: storage is ours)."""
        if self.core is not None and self.core.stopped.is_set():
            self.refusals.flush()

    def _generic(self) -> dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]]:
        return {
            "status": self.cmd_status,
            "config.get": self.cmd_config_get,
            "config.set": self.cmd_config_set,
            "logs.tail": self.cmd_logs_tail,
            "sync": self.cmd_sync,
            "restart": self.cmd_restart,
        }

    # -- receiving -----------------------------------------------------------

    def on_command(self, message: CommandReceived) -> None:
        core = self._core()
        reply = Reply(message.response_topic, message.correlation_data)
        outcome = verify(
            message.payload,
            self.keys,
            device=core.device,
            now=core.clock.now(),
            seen=self.seen,
            max_body_bytes=self.max_body_bytes,
        )
        if isinstance(outcome, Refusal):
            self.refuse(outcome, reply)
            return
        self.remember(outcome)
        handler = core.command(outcome.name)
        if handler is None:
            refusal = Refusal(
                "unknown_command", f"no command {outcome.name!r} here", outcome.id, outcome.name
            )
            self.refuse(refusal, reply)
            return
        self._run(outcome, handler, reply)

    def _run(self, command: Command, handler: Callable[..., dict[str, Any]], reply: Reply) -> None:
        self._current = (command, reply)
        try:
            result = handler(dict(command.args), command.body)
        except CommandError as exc:
            if exc.code in BAD_ARGUMENT_CODES:
                self.refuse(Refusal("bad_arguments", exc.message, command.id, command.name), reply)
            else:
                self._finish(command, reply, error_payload(command.id, exc.code, exc.message), ok=False)
            return
        except Exception as exc:
            log.exception("command %s id=%s failed", command.name, command.id)
            payload = error_payload(command.id, "internal", f"{type(exc).__name__}: the log has details")
            self._finish(command, reply, payload, ok=False)
            return
        finally:
            self._current = None
        if not isinstance(result, dict):
            result = {"value": result}
        self._finish(command, reply, result_payload(command.id, result), ok=True)

    def _finish(self, command: Command, reply: Reply, payload: bytes, ok: bool) -> None:
        log.info("command %s id=%s issuer=%s ok=%s", command.name, command.id, command.issuer, ok)
        self._core().emit(
            "audit.command", {"id": command.id, "name": command.name, "issuer": command.issuer, "ok": ok}
        )
        self.publish(payload, reply)

    def refuse(self, refusal: Refusal, reply: Reply) -> None:
        command_id = refusal.id
        if refusal.reason in UNAUTHENTICATED:
            reply = Reply()
            if command_id is not None:
                command_id = mask_personal(command_id)  # anyone could have written it
        data: dict[str, Any] = {"reason": refusal.reason}
        if command_id is not None:
            data["id"] = command_id
        if refusal.name is not None:
            data["name"] = refusal.name

        def say() -> None:
            log.warning("command refused reason=%s id=%s: %s", refusal.reason, command_id, refusal.message)

        self.refusals.emit(self._core(), refusal.reason, data, say)
        self.publish(error_payload(command_id, refusal.reason, refusal.message), reply)

    def _send_error(
        self, command_id: str, code: str, message: str, topic: str | None, correlation: bytes | None
    ) -> None:
        self.publish(error_payload(command_id, code, message), Reply(topic, correlation))

    def publish(self, payload: bytes, reply: Reply) -> None:
        link = self._core().link
        if link is None:
            log.warning("no link: a command result (%d bytes) is not sent", len(payload))
            return
        link.publish_result(payload, reply.response_topic, reply.correlation_data)

    # -- replay cache ------------------------------------------------------------

    def seen(self, command_id: str) -> bool:
        row = self._core().storage.execute("SELECT 1 FROM command_ids WHERE id = ?", (command_id,)).fetchone()
        return row is not None

    def remember(self, command: Command) -> None:
        """Remember the id before running it: a crash mid-command must not let it run twice."""
        with self._core().storage.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO command_ids (id, expires_at) VALUES (?, ?)",
                (command.id, command.expires_at.timestamp()),
            )

    def prune(self) -> int:
        """Forget ids whose command has expired: a replay of one is refused as expired anyway."""
        # Kept a skew margin longer, so a device clock stepping back a little cannot revive one.
        cutoff = time.time() - CLOCK_SKEW.total_seconds()
        with self._core().storage.transaction() as conn:
            removed = conn.execute("DELETE FROM command_ids WHERE expires_at < ?", (cutoff,)).rowcount
        return removed

    # -- generic commands -----------------------------------------------------------

    def cmd_status(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        core = self._core()
        summary = {
            "device": core.device,
            "version": __version__,
            "started_at": rfc3339(core.started_at),
            "uptime_s": round(time.monotonic() - core.started_monotonic, 1),
            "components": dict(core.components),
            "outbox_depth": core.outbox.depth(),
            "clock": core.clock.status(),
            "now": rfc3339(core.clock.now()),
            "online": core.link.online if core.link is not None else False,
        }
        # The summary first (hall-admin prints in this order), then the features' sections.
        sections = {name: value for name, value in _sections(core).items() if name not in summary}
        return {**summary, **sections}

    def cmd_config_get(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        shown = redacted(self._core().config)
        key = args.get("key")
        if key is None:
            path = self._core().config_path
            return {"config": shown, "path": str(path) if path else None}
        if not isinstance(key, str):
            raise CommandError("bad_arguments", "key must be a dotted key such as 'display.brightness'")
        try:
            return {"key": key, "value": lookup(shown, key)}
        except (KeyError, TypeError):
            raise CommandError("bad_arguments", f"{key}: no such configuration key") from None

    def cmd_config_set(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        if self._current is None or self.changes is None:
            raise CommandError("internal", "config.set outside a command")
        self._check_start_limit(restarts=2)  # the change, and perhaps its rollback
        command, reply = self._current
        origin = config_change.Origin(
            command.id, command.issuer, reply.response_topic, reply.correlation_data
        )
        result = self.changes.apply(args, origin)
        if result.get("restarting"):
            self._core().call_later(RESTART_DELAY_S, self._core().stop)
        return result

    def cmd_logs_tail(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        count = args.get("n", args.get("lines", 100))
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= LOGS_TAIL_MAX:
            raise CommandError("bad_arguments", f"n must be an integer from 1 to {LOGS_TAIL_MAX}")
        return {"lines": [mask_personal(line) for line in recent.tail(count)]}

    def cmd_sync(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        link = self._core().link
        if link is None:
            raise CommandError("unavailable", "no MQTT link is running")
        link.resync()
        return {"synced": True, "outbox_depth": self._core().outbox.depth()}

    def cmd_restart(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        core = self._core()
        self._check_start_limit(restarts=1)
        # The core stops after the result has been handed to the link; systemd starts us again.
        core.call_later(RESTART_DELAY_S, core.stop)
        return {"restarting": True, "uptime_s": round(time.monotonic() - core.started_monotonic, 1)}

    # -- systemd's start limit ------------------------------------------------------

    def _record_start(self) -> None:
        now = time.time()
        with self._core().storage.transaction() as conn:
            conn.execute("DELETE FROM service_starts WHERE at < ?", (now - STARTS_KEPT_S,))
            conn.execute("INSERT INTO service_starts (at) VALUES (?)", (now,))

    def _check_start_limit(self, restarts: int) -> None:
        """Refuse to restart when systemd would refuse one of the ``restarts`` starts it needs."""
        since = time.time() - START_LIMIT_INTERVAL_S
        starts = (
            self._core()
            .storage.execute("SELECT at FROM service_starts WHERE at > ? ORDER BY at", (since,))
            .fetchall()
        )
        if len(starts) + restarts <= START_LIMIT_BURST:
            return
        wait_s = int(starts[len(starts) + restarts - START_LIMIT_BURST - 1][0] - since) + 1
        raise CommandError(
            "too_soon",
            f"{len(starts)} starts in the last {int(START_LIMIT_INTERVAL_S)} s; systemd allows "
            f"{START_LIMIT_BURST} and would then keep the service down until someone on site "
            f"runs systemctl reset-failed: try again in {wait_s} s",
        )

    def _core(self) -> Core:
        if self.core is None:
            raise RuntimeError("commands feature not started")
        return self.core


def _sections(core: Core) -> dict[str, Any]:
    """The features' status sections (queue counts, tools out, ...); a failing one is reported."""
    try:
        return core.status()
    except Exception as exc:
        log.exception("a status section failed")
        return {"sections_error": type(exc).__name__}


REDACTED = "<redacted>"


def redacted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of the settings with every secret (and secret file path) replaced."""
    from edge.config import SCHEMA

    copy = json.loads(json.dumps(settings, default=str))
    for dotted in secret_paths(SCHEMA):
        parent_path, _, leaf = dotted.rpartition(".")
        try:
            parent = lookup(copy, parent_path) if parent_path else copy
        except (KeyError, TypeError):
            continue
        if isinstance(parent, dict) and parent.get(leaf):
            parent[leaf] = REDACTED
    return copy


def factory(config: Settings) -> Commands:
    """The commands feature always runs: without keys it refuses everything (and says so)."""
    return Commands(config)
