"""The commands feature: verify what arrives on the cmd topic, run it, audit it, answer it.

A refusal is never executed and always leaves an ``audit.command_refused``
event (at a bounded rate, the rest summed up); an executed command leaves
``audit.command``.  A handler that raises ``CommandError("bad_arguments", ...)``
counts as refused: handlers check their arguments before they act.

Answers always go to ``cmd/result``; also to the response topic that the
*signed body* names (``response_topic``), never to one that only the MQTT
message carries: a captured command republished with another response topic
must not send its result (a status, a configuration) elsewhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from edge import config_change, key_rotation
from edge.commands.generic import GenericCommands, record_start
from edge.commands.verify import Command, verify
from edge.core import CommandError, Core, RegisteredCommand
from edge.logs import mask_personal
from edge.messages import CommandReceived, LocalCommand
from edge.protocol import (
    CLOCK_SKEW,
    UNAUTHENTICATED,
    Refusal,
    did_you_mean,
    error_payload,
    load_public_keys,
    result_payload,
)
from edge.ratelimit import RateLimit, Throttle
from edge.records import record
from edge.settings import Settings
from edge.storage import Additive
from edge.update.updater import Updates

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600.0
REFUSALS_PER_WINDOW = 20  # refusals recorded one by one per window; the rest are counted
REFUSAL_WINDOW_S = 60.0

MIGRATIONS = [
    """
    CREATE TABLE command_ids (id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
    CREATE INDEX command_ids_expiry ON command_ids (expires_at)
    """,
    Additive("CREATE TABLE service_starts (at REAL NOT NULL)"),
]


@record
class Reply:
    """Where a command's result goes besides cmd/result: the signed response topic (MQTT 5)."""

    response_topic: str | None = None
    correlation_data: bytes | None = None
    local: Callable[[bytes], None] | None = None  # a LocalCommand's answer: to its caller only


class CommandsFeature:
    """Verifies commands on the cmd topic, runs them and answers; registers the generic commands."""

    name = "commands"

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.keys, problems = load_public_keys(config.commands.public_keys)
        self.key_problems = [f"commands.public_keys.{problem}" for problem in problems]
        self.max_body_bytes: int = config.commands.max_body_bytes
        self.core: Core  # set by start()
        self.changes: config_change.ConfigChanges | None = None
        self.generic: GenericCommands | None = None
        self.rotation: key_rotation.KeyRotation | None = None
        self.updates: Updates | None = None
        self.current: tuple[Command, Reply] | None = None  # the command being run, for config.set
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
        self.rotation = key_rotation.KeyRotation(
            core, self.changes, self.config.commands.public_keys, self.keys, self._signer
        )
        core.subscribe(CommandReceived, self.on_command)
        core.subscribe(LocalCommand, self.on_local_command)
        self.generic = GenericCommands(core, self.changes, self.rotation, lambda: self.current)
        changes = self.changes
        self.updates = Updates(
            core,
            self.config,
            self._send_error,
            lambda: self.current,
            config_pending=lambda: changes.pending() is not None,
        )
        handlers = {**self.generic.handlers(), **self.rotation.commands(), **self.updates.commands()}
        for name, (handler, accepted) in handlers.items():
            core.register_command(name, handler, args=accepted)
        self.prune()
        core.every(PRUNE_EVERY_S, self.prune)
        record_start(core.storage)
        self.changes.resume()
        self.updates.resume()

    def stop(self) -> None:
        """Record the refusals still only counted (the core thread has ended: storage is ours)."""
        if self.updates is not None:
            self.updates.stop()  # a download in progress ends; the next start reports it interrupted
        if self.core.stopped.is_set():
            self.refusals.flush()

    # -- receiving -----------------------------------------------------------

    def on_command(self, message: CommandReceived) -> None:
        core = self.core
        outcome = verify(
            message.payload,
            self.keys,
            device=core.device,
            now=core.clock.now(),
            seen=self.seen,
            max_body_bytes=self.max_body_bytes,
            memory_since=self.memory_since(),
        )
        if isinstance(outcome, Refusal):
            self.refuse(outcome, Reply())
            return
        # Only the signed body chooses a response topic; the message's correlation data is an
        # opaque echo for whoever listens there.
        reply = Reply(outcome.response_topic, message.correlation_data if outcome.response_topic else None)
        self.remember(outcome)
        if self.rotation is not None:
            self.rotation.confirm(outcome.kid, outcome.id)  # a pending key has now signed
        handler = core.command(outcome.name)
        if handler is None:
            hint = did_you_mean(outcome.name, core.command_names())
            why = f"no command {outcome.name!r} here{hint}"
            refusal = Refusal("unknown_command", why, outcome.id, outcome.name)
            self.refuse(refusal, reply)
            return
        self._run(outcome, handler, reply)

    def on_local_command(self, message: LocalCommand) -> None:
        """A staff member's action on the console: authenticated there, run and audited here
        through the same path as a signed command (one handler, one ``audit.command``)."""
        now = self.core.clock.now()
        body = {"issuer": message.issuer, "name": message.name, "args": message.args}
        args = dict(message.args)
        command = Command(message.id, message.name, message.issuer, now, now, args, "local", body)
        reply = Reply(local=message.deliver)
        handler = self.core.command(message.name)
        if handler is None:
            why = f"no command {message.name!r} here"
            self.refuse(Refusal("unknown_command", why, message.id, message.name), reply)
            return
        self._run(command, handler, reply)

    def _run(self, command: Command, handler: RegisteredCommand, reply: Reply) -> None:
        self.current = (command, reply)
        try:
            result = handler(dict(command.args), command.body)
        except CommandError as exc:
            if exc.code == "bad_arguments":
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
            self.current = None
        if not isinstance(result, dict):
            result = {"value": result}
        self._finish(command, reply, result_payload(command.id, result), ok=True)

    def _finish(self, command: Command, reply: Reply, payload: bytes, ok: bool) -> None:
        log.info("command %s id=%s issuer=%s ok=%s", command.name, command.id, command.issuer, ok)
        self.core.emit(
            "audit.command", {"id": command.id, "name": command.name, "issuer": command.issuer, "ok": ok}
        )
        self.publish(payload, reply)

    def refuse(self, refusal: Refusal, reply: Reply) -> None:
        if refusal.reason in UNAUTHENTICATED:
            reply = Reply()  # nothing in the message is trusted: cmd/result only
            if refusal.id is not None:  # anyone could have written it
                refusal = replace(refusal, id=mask_personal(refusal.id))
        data: dict[str, Any] = {"reason": refusal.reason}
        if refusal.id is not None:
            data["id"] = refusal.id
        if refusal.name is not None:
            data["name"] = refusal.name

        def say() -> None:
            log.warning("command refused reason=%s id=%s: %s", refusal.reason, refusal.id, refusal.message)

        self.refusals.emit(self.core, refusal.reason, data, say)
        self.publish(error_payload(refusal.id, refusal.reason, refusal.message), reply)

    def _send_error(
        self, command_id: str, code: str, message: str, topic: str | None, correlation: bytes | None
    ) -> None:
        self.publish(error_payload(command_id, code, message), Reply(topic, correlation))

    def publish(self, payload: bytes, reply: Reply) -> None:
        if reply.local is not None:
            reply.local(payload)
            return
        link = self.core.link
        if link is None:
            log.warning("no link: a command result (%d bytes) is not sent", len(payload))
            return
        link.publish_result(payload, reply.response_topic, reply.correlation_data)

    # -- replay cache ------------------------------------------------------------

    def memory_since(self) -> datetime | None:
        """When the replay cache began: the database's creation (None: an older database)."""
        storage, hall_now = self.core.storage, self.core.clock.now()
        now = hall_now.timestamp()
        if storage.created_at > now + CLOCK_SKEW.total_seconds():
            # Stamped by a clock that was wrong then (it is not ahead of itself now): without
            # this, every command would be refused until the hall's clock reached that time.
            log.warning("database creation time is in the future: taken as now")
            storage.restamp_created_at(now)
        created = storage.created_at
        return datetime.fromtimestamp(created, hall_now.tzinfo) if created else None

    def seen(self, command_id: str) -> bool:
        row = self.core.storage.execute("SELECT 1 FROM command_ids WHERE id = ?", (command_id,)).fetchone()
        return row is not None

    def remember(self, command: Command) -> None:
        """Remember the id before running it: a crash mid-command must not let it run twice."""
        with self.core.storage.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO command_ids (id, expires_at) VALUES (?, ?)",
                (command.id, command.expires_at.timestamp()),
            )

    def prune(self) -> None:
        """Forget ids whose command has expired: a replay of one is refused as expired anyway."""
        # Kept a skew margin longer, so a device clock stepping back a little cannot revive one.
        cutoff = time.time() - CLOCK_SKEW.total_seconds()
        with self.core.storage.transaction() as conn:
            conn.execute("DELETE FROM command_ids WHERE expires_at < ?", (cutoff,))

    def _signer(self) -> str:
        if self.current is None:
            raise CommandError("internal", "no command is running")
        return self.current[0].kid
