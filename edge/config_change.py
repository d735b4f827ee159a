"""``config.set``: change the configuration file remotely without losing the hall.

A change is validated exactly like the file itself (``edge.config.parse``),
then applied by a clean restart.  Because a valid change can still cut the
controller off (a broker that does not exist, a feature that no longer
starts), every change is on probation:

1. ``apply``: the current file is kept as ``<file>.previous``, a pending
   record goes into storage, the new file replaces the old one atomically
   (temp file, fsync, rename, fsync of the folder), and the daemon exits so
   that systemd starts it with the new file.
2. ``resume`` at the next start: if the link comes online and no feature
   failed within ``commands.apply_deadline_s``, the change is confirmed
   (``audit.config_changed``, ``rolled_back: false``).  Otherwise the previous
   file is restored and the daemon exits again.
3. Started again on the old file, the daemon records
   ``audit.config_changed`` with ``rolled_back: true`` and, once online,
   answers the command a second time with ``ok: false`` (code ``rolled_back``).

The file is re-rendered from its parsed content, so comments in it are not
kept; ``<file>.previous`` holds the file as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.clock import rfc3339
from edge.config import SCHEMA, ConfigError, parse
from edge.core import CommandError, Core, Timer
from edge.settings import CommandsSettings, Settings, to_dict

log = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE config_pending (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        command_id TEXT NOT NULL,
        issuer TEXT NOT NULL,
        keys TEXT NOT NULL,
        new_sha256 TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        response_topic TEXT,
        correlation_data BLOB,
        created_at TEXT NOT NULL
    )
    """,
]

# Moving these remotely would orphan the database or the device's identity on the platform.
NOT_REMOTE = ("site", "device", "storage.dir")
CHECK_EVERY_S = 0.5

SendError = Callable[[str, str, str, str | None, bytes | None], None]
"""(command id, code, message, response topic, correlation data) -> publishes an ok:false result."""


@dataclass(frozen=True)
class Origin:
    """The config.set command a change came from, and where its result goes."""

    command_id: str
    issuer: str
    response_topic: str | None = None
    correlation_data: bytes | None = None


class ConfigChanges:
    def __init__(
        self, core: Core, path: Path | None, settings: CommandsSettings, send_error: SendError
    ) -> None:
        self.core = core
        self.path = path
        self.deadline_s: float = settings.apply_deadline_s
        self.send_error = send_error
        self._poll: Timer | None = None
        self._deadline: Timer | None = None
        core.storage.migrate("config_change", MIGRATIONS)

    @property
    def previous_path(self) -> Path | None:
        return self.path.with_name(self.path.name + ".previous") if self.path else None

    # -- config.set ----------------------------------------------------------

    def apply(self, args: dict[str, Any], origin: Origin) -> dict[str, Any]:
        """Validate and write a change; returns the result (``restarting`` when one is due)."""
        if self.path is None:
            raise CommandError("unavailable", "the daemon was started without a configuration file path")
        if not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
            raise CommandError("unavailable", f"{self.path} or its folder is not writable by the daemon")
        old_text = self.path.read_text(encoding="utf-8")
        new_doc = merged(tomllib.loads(old_text), requested_changes(args))
        new_text = render_toml(new_doc)
        try:
            new_settings = parse(new_text, "config.set")
        except ConfigError as exc:
            raise CommandError("bad_arguments", "; ".join(exc.errors)) from None
        changed = changed_keys(to_dict(parse(old_text, str(self.path))), to_dict(new_settings))
        refuse_dangerous(changed, new_settings)
        if not changed:
            return {"changed": [], "restarting": False}
        if self.pending() is not None:
            raise CommandError("busy", "a previous configuration change is still on probation")
        self._write(old_text, new_text, changed, origin)
        log.info("config.set id=%s changed %s; restarting to apply", origin.command_id, ",".join(changed))
        return {"changed": changed, "restarting": True, "deadline_s": self.deadline_s}

    def _write(self, old_text: str, new_text: str, changed: list[str], origin: Origin) -> None:
        if self.path is None or self.previous_path is None:
            raise CommandError("unavailable", "no configuration file path")
        mode = self.path.stat().st_mode & 0o777
        write_atomic(self.previous_path, old_text.encode(), mode)
        # The record goes first: a crash before the rename leaves a record whose hash does not
        # match the file, which resume() reports as not applied.
        with self.core.storage.transaction() as conn:
            conn.execute(
                "INSERT INTO config_pending (singleton, command_id, issuer, keys, new_sha256, state,"
                " response_topic, correlation_data, created_at) VALUES (1, ?, ?, ?, ?, 'applying', ?, ?, ?)",
                (
                    origin.command_id,
                    origin.issuer,
                    json.dumps(changed),
                    _sha256(new_text.encode()),
                    origin.response_topic,
                    origin.correlation_data,
                    rfc3339(self.core.clock.now()),
                ),
            )
        write_atomic(self.path, new_text.encode(), mode)

    # -- at start -------------------------------------------------------------

    def pending(self) -> dict[str, Any] | None:
        cursor = self.core.storage.execute("SELECT * FROM config_pending WHERE singleton = 1")
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def resume(self) -> None:
        """Continue a change that a restart interrupted (see the module docstring)."""
        row = self.pending()
        if row is None:
            return
        if row["state"] == "applying":
            on_disk = _sha256(self.path.read_bytes()) if self.path and self.path.exists() else ""
            if on_disk != row["new_sha256"]:
                self._set_state("rolled_back", "the new file was never written")
                row = self.pending()
            else:
                self._start_probation(row)
                return
        if row is not None and row["state"] == "rolled_back":
            self._record_rollback(row)
        self._poll = self.core.every(CHECK_EVERY_S, self._report_when_online, first_after=0)

    def _start_probation(self, row: dict[str, Any]) -> None:
        log.info("config change %s on probation for %.0f s", row["command_id"], self.deadline_s)
        self._deadline = self.core.call_later(self.deadline_s, self._probation_expired)
        self._poll = self.core.every(CHECK_EVERY_S, self._check_healthy, first_after=0)

    def _check_healthy(self) -> None:
        link = self.core.link
        if link is None or not link.online:
            return
        failed = sorted(name for name, state in self.core.components.items() if state == "failed")
        if failed:
            self._roll_back(f"feature(s) failed to start: {', '.join(failed)}")
            return
        self._confirm()

    def _confirm(self) -> None:
        row = self.pending()
        self._stop_timers()
        if row is None:
            return
        with self.core.storage.transaction() as conn:
            conn.execute("DELETE FROM config_pending")
            self.core.emit("audit.config_changed", _event(row, rolled_back=False))
        log.info("config change %s confirmed: online and healthy", row["command_id"])

    def _probation_expired(self) -> None:
        self._roll_back(f"the link did not come online within {self.deadline_s:g} s")

    def _roll_back(self, reason: str) -> None:
        self._stop_timers()
        previous = self.previous_path
        if self.path is None or previous is None or not previous.exists():
            log.error("config change cannot be rolled back: %s is missing", previous)
            with self.core.storage.transaction() as conn:
                conn.execute("DELETE FROM config_pending")
                self.core.emit("error.config_rollback_failed", {"reason": reason, "missing": str(previous)})
            return
        log.error("config change rolled back: %s; restarting with the previous file", reason)
        write_atomic(self.path, previous.read_bytes(), self.path.stat().st_mode & 0o777)
        self._set_state("rolled_back", reason)
        self.core.call_soon(self.core.stop)

    def _record_rollback(self, row: dict[str, Any]) -> None:
        with self.core.storage.transaction():
            self.core.emit("audit.config_changed", _event(row, rolled_back=True))
            self._set_state("reporting", row["reason"])

    def _report_when_online(self) -> None:
        link = self.core.link
        if link is None or not link.online:
            return
        self._stop_timers()
        row = self.pending()
        if row is None:
            return
        message = f"configuration change rolled back: {row['reason']}"
        self.send_error(
            row["command_id"], "rolled_back", message, row["response_topic"], row["correlation_data"]
        )
        self.core.storage.execute("DELETE FROM config_pending")

    def _set_state(self, state: str, reason: str) -> None:
        with self.core.storage.transaction() as conn:
            conn.execute("UPDATE config_pending SET state = ?, reason = ?", (state, reason))

    def _stop_timers(self) -> None:
        for timer in (self._poll, self._deadline):
            if timer is not None:
                timer.cancel()
        self._poll = self._deadline = None


def _event(row: dict[str, Any], rolled_back: bool) -> dict[str, Any]:
    data = {
        "id": row["command_id"],
        "issuer": row["issuer"],
        "keys": json.loads(row["keys"]),
        "rolled_back": rolled_back,
    }
    if rolled_back:
        data["reason"] = row["reason"]
    return data


# ---- the change itself (pure) ---------------------------------------------------


def requested_changes(args: dict[str, Any]) -> dict[str, Any]:
    """The change as a nested table; a null value removes the key (back to its default).

    ``{"key": "display.brightness", "value": 90}`` replaces one value;
    ``{"changes": {"display": {"brightness": 90}}}`` merges a partial table.
    """
    if "key" in args:
        key = args["key"]
        if not isinstance(key, str) or not key or "value" not in args:
            raise CommandError("bad_arguments", "give key (a dotted key) and value, or changes (a table)")
        nested: Any = _Replace(args["value"])
        for part in reversed(key.split(".")):
            nested = {part: nested}
        return nested
    changes = args.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise CommandError("bad_arguments", "give key (a dotted key) and value, or changes (a table)")
    return _expand_dotted(changes)


class _Replace:
    """A value that replaces what is there instead of being merged into it."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _expand_dotted(table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        parts = str(key).split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _expand_dotted(value) if isinstance(value, dict) else value
    return out


def merged(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``changes`` merged in (tables recursively; None deletes)."""
    out = dict(doc)
    for key, value in changes.items():
        if isinstance(value, _Replace):
            if value.value is None:
                out.pop(key, None)
            else:
                out[key] = value.value
        elif value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        elif isinstance(value, dict):
            out[key] = merged({}, value)
        else:
            out[key] = value
    return out


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose effective value differs (a list of tables counts as one value)."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and _is_schema_table(prefix + key):
            changed += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(prefix + key)
    return changed


def _is_schema_table(dotted: str) -> bool:
    """A TOML table of the schema, as opposed to a key whose value is a table (public_keys)."""
    spec: Any = SCHEMA
    for part in dotted.split("."):
        if not isinstance(spec, dict) or part not in spec:
            return False
        spec = spec[part]
    return isinstance(spec, dict)


def refuse_dangerous(changed: list[str], new: Settings) -> None:
    for key in changed:
        if key in NOT_REMOTE or any(key.startswith(k + ".") for k in NOT_REMOTE):
            raise CommandError("bad_arguments", f"{key} cannot be changed remotely; change it on site")
    if not new.commands.public_keys:
        raise CommandError(
            "bad_arguments", "commands.public_keys would be empty: the device could not be managed any more"
        )


# ---- TOML out ----------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def render_toml(doc: dict[str, Any]) -> str:
    """A TOML document for a parsed one (tables, arrays of tables, inline values)."""
    lines = ["# Written by config.set; the file before the change is kept as <this file>.previous"]
    lines += _table_lines(doc, "")
    return "\n".join(lines) + "\n"


def _table_lines(table: dict[str, Any], path: str) -> list[str]:
    lines = [f"{_key(k)} = {_value(v)}" for k, v in table.items() if not _is_table(v) and not _is_tables(v)]
    for key, value in table.items():
        where = f"{path}.{_key(key)}" if path else _key(key)
        if _is_table(value):
            lines += ["", f"[{where}]", *_table_lines(value, where)]
        elif _is_tables(value):
            for item in value:
                lines += ["", f"[[{where}]]", *_table_lines(item, where)]
    return lines


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and bool(value)


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML also forbids a raw DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise CommandError("bad_arguments", f"{value!r} cannot be written to the configuration file")


# ---- files -------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a power loss leaves either the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself must reach the disk
    finally:
        os.close(folder)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
