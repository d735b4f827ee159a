"""The generic commands every controller answers: status, config.get/set, logs.tail, sync, restart.

Each handler is ``fn(args, body) -> dict`` and raises ``CommandError`` (see
``edge.core``); ``bad_arguments`` before it acts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge import __version__, config_change, key_rotation
from edge.clock import rfc3339
from edge.core import CommandError, CommandTable, Core
from edge.layers import dotted, units
from edge.logs import mask_personal, recent
from edge.protocol import did_you_mean
from edge.schema import lookup, secret_paths
from edge.settings import Settings, to_dict
from edge.storage import Storage

if TYPE_CHECKING:
    from edge.commands.feature import Reply
    from edge.commands.verify import Command

log = logging.getLogger(__name__)

LOGS_TAIL_MAX = 2000
RESTART_DELAY_S = 0.5  # lets the link send the result before the daemon exits
REDACTED = "<redacted>"

# systemd's start limit in systemd/hall-edge.service (a test keeps the two equal).  A remote
# restart or config.set that would be refused by it would leave the hall down until someone
# on site runs `systemctl reset-failed`; such a command is answered `too_soon` instead.
START_LIMIT_BURST = 4
START_LIMIT_INTERVAL_S = 120.0
STARTS_KEPT_S = 86400.0


class GenericCommands:
    """The handlers, over the core; ``current`` gives the command being run (for config.set)."""

    def __init__(
        self,
        core: Core,
        changes: config_change.ConfigChanges,
        rotation: key_rotation.KeyRotation,
        current: Callable[[], tuple[Command, Reply] | None],
    ) -> None:
        self.core = core
        self.changes = changes
        self.rotation = rotation
        self.current = current

    def handlers(self) -> CommandTable:
        return {
            "status": (self.status, ()),
            "config.get": (self.config_get, ("key",)),
            "config.set": (self.config_set, ("key", "value", "changes")),
            "logs.tail": (self.logs_tail, ("n", "lines")),
            "sync": (self.sync, ()),
            "restart": (self.restart, ()),
        }

    def status(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        core = self.core
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

    def config_get(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        shown = redacted(self.core.config)
        # keys.add / keys.remove apply without a restart
        shown["commands"]["public_keys"] = dict(self.rotation.configured)
        sources = self._sources()
        key = args.get("key")
        if key is None:
            path = self.core.config_path
            return {"config": shown, "path": str(path) if path else None, "sources": sources}
        if not isinstance(key, str):
            raise CommandError("bad_arguments", "key must be a dotted key such as 'display.brightness'")
        try:
            return {"key": key, "value": lookup(shown, key), "source": sources.get(key, "default")}
        except (KeyError, TypeError):
            known = [dotted(unit) for unit in units(shown)]
            raise CommandError(
                "bad_arguments", f"{key}: no such configuration key{did_you_mean(key, known)}"
            ) from None

    def _sources(self) -> dict[str, str]:
        """The file each value comes from (the installer's or the remote one); unlisted: default."""
        try:
            return self.changes.layers().sources()
        except CommandError:
            return {}

    def config_set(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        running = self.current()
        if running is None:
            raise CommandError("internal", "config.set outside a command")
        check_start_limit(self.core.storage, restarts=2)  # the change, and perhaps its rollback
        command, reply = running
        origin = config_change.Origin(
            command.id, command.issuer, reply.response_topic, reply.correlation_data
        )
        result = self.changes.apply(args, origin)
        if result.get("restarting"):
            self.core.call_later(RESTART_DELAY_S, self.core.stop)
        return result

    def logs_tail(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        count = args.get("n", args.get("lines", 100))
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= LOGS_TAIL_MAX:
            raise CommandError("bad_arguments", f"n must be an integer from 1 to {LOGS_TAIL_MAX}")
        return {"lines": [mask_personal(line) for line in recent.tail(count)]}

    def sync(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        link = self.core.link
        if link is None:
            raise CommandError("unavailable", "no MQTT link is running")
        link.resync()
        return {"synced": True, "outbox_depth": self.core.outbox.depth()}

    def restart(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        core = self.core
        check_start_limit(core.storage, restarts=1)
        # The core stops after the result has been handed to the link; systemd starts us again.
        core.call_later(RESTART_DELAY_S, core.stop)
        return {"restarting": True, "uptime_s": round(time.monotonic() - core.started_monotonic, 1)}


def _sections(core: Core) -> dict[str, Any]:
    """The features' status sections (queue counts, tools out, ...); a failing one is reported."""
    try:
        return core.status()
    except Exception as exc:
        log.exception("a status section failed")
        return {"sections_error": type(exc).__name__}


def redacted(settings: Settings) -> dict[str, Any]:
    """A plain copy of the settings with every secret (and secret file path) replaced."""
    from edge.config import SCHEMA

    copy = to_dict(settings)
    for secret in secret_paths(SCHEMA):
        parent_path, _, leaf = secret.rpartition(".")
        try:
            parent = lookup(copy, parent_path) if parent_path else copy
        except (KeyError, TypeError):
            continue
        if isinstance(parent, dict) and parent.get(leaf):
            parent[leaf] = REDACTED
    return copy


# ---- systemd's start limit ------------------------------------------------------


def record_start(storage: Storage) -> None:
    now = time.time()
    with storage.transaction() as conn:
        conn.execute("DELETE FROM service_starts WHERE at < ?", (now - STARTS_KEPT_S,))
        conn.execute("INSERT INTO service_starts (at) VALUES (?)", (now,))


def check_start_limit(storage: Storage, restarts: int) -> None:
    """Refuse to restart when systemd would refuse one of the ``restarts`` starts it needs."""
    since = time.time() - START_LIMIT_INTERVAL_S
    starts = storage.execute("SELECT at FROM service_starts WHERE at > ? ORDER BY at", (since,)).fetchall()
    if len(starts) + restarts <= START_LIMIT_BURST:
        return
    wait_s = int(starts[len(starts) + restarts - START_LIMIT_BURST - 1][0] - since) + 1
    raise CommandError(
        "too_soon",
        f"{len(starts)} starts in the last {int(START_LIMIT_INTERVAL_S)} s; systemd allows "
        f"{START_LIMIT_BURST} and would then keep the service down until someone on site "
        f"runs systemctl reset-failed: try again in {wait_s} s",
    )
