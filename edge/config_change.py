"""``config.set``: change the configuration remotely without losing the hall.

The installer's file (``/etc/hall-edge/hall-edge.toml``) is never written:
changes go to the remote file in the state folder, layered over it
(``edge.layers``).  A change is validated exactly like the files themselves,
then applied by a clean restart.  Because a valid change can still cut the
controller off (a broker that does not exist, a feature that no longer
starts), every change is on probation:

1. ``apply``: the remote file is kept as ``<remote file>.previous``, a
   pending record goes into storage, the new remote file replaces the old one
   atomically (temp file, fsync, rename, fsync of the folder), and the daemon
   exits so that systemd starts it with the new configuration.
2. ``resume`` at the next start: if the link comes online and no feature
   failed within the deadline, the change is confirmed
   (``audit.config_changed``, ``rolled_back: false``).  Otherwise the previous
   remote file is restored and the daemon exits again.  The deadline is the
   ``commands.apply_deadline_s`` of the configuration the change was made
   from (known to work), never the new one's.
3. Started again on the old configuration, the daemon records
   ``audit.config_changed`` with ``rolled_back: true`` and, once online,
   answers the command a second time with ``ok: false`` (code ``rolled_back``).

The remote file is edited with tomlkit, so comments that someone added to it
on site and its layout survive a change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.clock import rfc3339
from edge.config import SCHEMA, ConfigError
from edge.core import CommandError, Core, Timer
from edge.layers import LOCAL_ONLY, Layers, Unit, nested, units
from edge.probation import pending_row, when_online

if TYPE_CHECKING:
    import tomlkit
from edge.records import record
from edge.settings import CommandsSettings, Settings, to_dict
from edge.storage import Additive

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
    # The probation of the configuration the change was made from (NULL: a record from before).
    Additive("ALTER TABLE config_pending ADD COLUMN deadline_s REAL"),
]

# Changed by keys.add / keys.remove only: a new key must sign once before an old one may go.
PUBLIC_KEYS = "commands.public_keys"
# Where the broker password goes: with a password configured, none of these changes remotely.
BROKER_IDENTITY = ("mqtt.host", "mqtt.port", "mqtt.tls", "mqtt.ca_file")
CHECK_EVERY_S = 0.5
REMOTE_FILE_MODE = 0o600

SendError = Callable[[str, str, str, str | None, bytes | None], None]
"""(command id, code, message, response topic, correlation data) -> publishes an ok:false result."""


@record
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
        self.path = path  # the installer's file; the remote file is found from it
        self.deadline_s: float = settings.apply_deadline_s
        self.send_error = send_error
        self._poll: Timer | None = None
        self._deadline: Timer | None = None
        core.storage.migrate("config_change", MIGRATIONS)

    def layers(self) -> Layers:
        """The configuration files as they are now on disk."""
        if self.path is None:
            raise CommandError("unavailable", "the daemon was started without a configuration file path")
        try:
            return Layers.read(self.path)
        except ConfigError as exc:
            raise CommandError("unavailable", str(exc)) from None

    @property
    def remote_path(self) -> Path | None:
        return self.layers().remote_path if self.path else None

    # -- config.set ----------------------------------------------------------

    def apply(self, args: dict[str, Any], origin: Origin) -> dict[str, Any]:
        """Validate and write a change; returns the result (``restarting`` when one is due)."""
        layers = self.layers()
        wanted = merged(layers.merged(), requested_changes(args))
        new = remote_edit(layers, wanted)
        try:
            new_settings = new.settings()
        except ConfigError as exc:
            raise CommandError("bad_arguments", "; ".join(exc.errors)) from None
        old_settings = layers.settings()
        changed = changed_keys(to_dict(old_settings), to_dict(new_settings))
        refuse_dangerous(changed, old_settings)
        if not changed:
            return {"changed": [], "restarting": False}
        if self.pending() is not None:
            raise CommandError("busy", "a previous configuration change is still on probation")
        self._write(layers, new.remote_text, changed, origin)
        log.info("config.set id=%s changed %s; restarting to apply", origin.command_id, ",".join(changed))
        return {"changed": changed, "restarting": True, "deadline_s": self.deadline_s}

    def write_now(self, changes: dict[str, Any]) -> Settings:
        """Write ``changes`` (a nested table) to the remote file at once, without a restart.

        For keys.add / keys.remove: the caller applies the change to the running daemon itself.
        """
        if self.pending() is not None:
            raise CommandError("busy", "a configuration change is on probation: try again after it")
        layers = self.layers()
        new = remote_edit(layers, merged(layers.merged(), changes))
        try:
            settings = new.settings()
        except ConfigError as exc:
            raise CommandError("bad_arguments", "; ".join(exc.errors)) from None
        _writable(layers.remote_path)
        write_atomic(layers.remote_path, new.remote_text.encode(), REMOTE_FILE_MODE)
        return settings

    def _write(self, layers: Layers, new_text: str, changed: list[str], origin: Origin) -> None:
        remote = layers.remote_path
        _writable(remote)
        write_atomic(_previous(remote), layers.remote_text.encode(), REMOTE_FILE_MODE)
        # The record goes first: a crash before the rename leaves a record whose hash does not
        # match the file, which resume() reports as not applied.
        with self.core.storage.transaction() as conn:
            conn.execute(
                "INSERT INTO config_pending (singleton, command_id, issuer, keys, new_sha256, state,"
                " response_topic, correlation_data, created_at, deadline_s)"
                " VALUES (1, ?, ?, ?, ?, 'applying', ?, ?, ?, ?)",
                (
                    origin.command_id,
                    origin.issuer,
                    json.dumps(changed),
                    _sha256(new_text.encode()),
                    origin.response_topic,
                    origin.correlation_data,
                    rfc3339(self.core.clock.now()),
                    self.deadline_s,
                ),
            )
        write_atomic(remote, new_text.encode(), REMOTE_FILE_MODE)

    # -- at start -------------------------------------------------------------

    def pending(self) -> dict[str, Any] | None:
        return pending_row(self.core.storage, "config_pending")

    def resume(self) -> None:
        """Continue a change that a restart interrupted (see the module docstring)."""
        row = self.pending()
        if row is None:
            return
        if row["state"] == "applying":
            remote = self.remote_path
            on_disk = _sha256(remote.read_bytes()) if remote and remote.exists() else ""
            if on_disk != row["new_sha256"]:
                self._set_state("rolled_back", "the new file was never written")
                row = self.pending()
            else:
                self._start_probation(row)
                return
        if row is not None and row["state"] == "rolled_back":
            self._record_rollback(row)
        self._poll = when_online(self.core, self._report_rollback)

    def _start_probation(self, row: dict[str, Any]) -> None:
        deadline_s = row["deadline_s"] if row["deadline_s"] is not None else self.deadline_s
        log.info("config change %s on probation for %.0f s", row["command_id"], deadline_s)
        self._deadline = self.core.call_later(deadline_s, lambda: self._probation_expired(deadline_s))
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

    def _probation_expired(self, deadline_s: float) -> None:
        self._roll_back(f"the link did not come online within {deadline_s:g} s")

    def _roll_back(self, reason: str) -> None:
        self._stop_timers()
        remote = self.remote_path
        previous = _previous(remote) if remote else None
        if remote is None or previous is None or not previous.exists():
            log.error("config change cannot be rolled back: %s is missing", previous)
            with self.core.storage.transaction() as conn:
                conn.execute("DELETE FROM config_pending")
                self.core.emit("error.config_rollback_failed", {"reason": reason, "missing": str(previous)})
            return
        log.error("config change rolled back: %s; restarting with the previous file", reason)
        write_atomic(remote, previous.read_bytes(), REMOTE_FILE_MODE)
        self._set_state("rolled_back", reason)
        self.core.call_soon(self.core.stop)

    def _record_rollback(self, row: dict[str, Any]) -> None:
        with self.core.storage.transaction():
            self.core.emit("audit.config_changed", _event(row, rolled_back=True))
            self._set_state("reporting", row["reason"])

    def _report_rollback(self) -> None:
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
    """The change as a nested table; a null value removes the key (back to the installer's value).

    ``{"key": "display.brightness", "value": 90}`` replaces one value;
    ``{"changes": {"display": {"brightness": 90}}}`` merges a partial table.
    """
    if "key" in args:
        key = args["key"]
        if not isinstance(key, str) or not key or "value" not in args:
            raise CommandError("bad_arguments", "give key (a dotted key) and value, or changes (a table)")
        change: Any = Replace(args["value"])
        for part in reversed(key.split(".")):
            change = {part: change}
        return change
    changes = args.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise CommandError("bad_arguments", "give key (a dotted key) and value, or changes (a table)")
    return _expand_dotted(changes)


class Replace:
    """A value that replaces what is there instead of being merged into it (e.g. a whole table)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _expand_dotted(table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        parts = str(key).split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):  # {"a": 1, "a.b": 2}: a value and a table at one key
                raise CommandError("bad_arguments", f"{key}: {part!r} is both a value and a table")
        target[parts[-1]] = _expand_dotted(value) if isinstance(value, dict) else value
    return out


def merged(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``changes`` merged in (tables recursively; None deletes)."""
    out = dict(doc)
    for key, value in changes.items():
        if isinstance(value, Replace):
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


def refuse_dangerous(changed: list[str], running: Settings) -> None:
    """Refuse what only someone on site may change (the rules are in docs/operator.md)."""
    for key in changed:
        if key in LOCAL_ONLY or any(key.startswith(k + ".") for k in LOCAL_ONLY):
            raise CommandError("bad_arguments", f"{key} cannot be changed remotely; change it on site")
        if key == PUBLIC_KEYS:
            raise CommandError(
                "bad_arguments",
                f"{PUBLIC_KEYS} changes with keys.add and keys.remove: a new key signs once before an"
                " old one may go",
            )
        if key in BROKER_IDENTITY and running.mqtt.password_file:
            raise CommandError(
                "bad_arguments",
                f"{key} cannot be changed remotely while mqtt.password_file is set: the broker password"
                " would go to another broker or over another channel; change it on site",
            )


# ---- the remote file (tomlkit keeps its comments and layout) ------------------------


def remote_edit(layers: Layers, wanted: dict[str, Any]) -> Layers:
    """``layers`` with a remote file that makes ``wanted`` the configuration in force.

    The remote file holds exactly the values that differ from the installer's file (a value
    removed from ``wanted`` falls back to the installer's value, or the default); values that
    did not change keep their place and comments.
    """
    import tomlkit  # only when the configuration changes: ~1 MiB an idle daemon does not carry

    base, old, new = units(layers.base), units(layers.remote), units(wanted)
    target = {unit: value for unit, value in new.items() if base.get(unit, _ABSENT) != value}
    document = tomlkit.parse(layers.remote_text)
    for unit in old.keys() - target.keys():
        _remove(document, unit)
    for unit, value in target.items():
        if old.get(unit, _ABSENT) != value:
            _put(document, unit, value)
    text = tomlkit.dumps(document)
    return layers.with_remote(nested(target), text)


_ABSENT = object()


def _put(document: tomlkit.TOMLDocument, unit: Unit, value: Any) -> None:
    import tomlkit
    from tomlkit.exceptions import ConvertError

    table: Any = document
    for part in unit[:-1]:
        if part not in table:
            table[part] = tomlkit.table()
        table = table[part]
    try:
        table[unit[-1]] = _inline(value) if isinstance(value, dict) else value
    except ConvertError:  # e.g. a null inside a list: TOML has no null
        raise CommandError(
            "bad_arguments", f"{'.'.join(unit)}: {value!r} cannot be written to the configuration file"
        ) from None


def _inline(value: dict[str, Any]) -> Any:
    """A table value (commands.public_keys) written inline next to its neighbours."""
    import tomlkit

    inline = tomlkit.inline_table()
    inline.update(value)
    return inline


def _remove(document: tomlkit.TOMLDocument, unit: Unit) -> None:
    from tomlkit.items import Table

    tables: list[Any] = [document]
    for part in unit[:-1]:
        tables.append(tables[-1][part])
    del tables[-1][unit[-1]]
    for depth in range(len(tables) - 1, 0, -1):  # drop tables left empty
        if isinstance(tables[depth], Table) and not tables[depth].value:
            del tables[depth - 1][unit[depth - 1]]


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


def _writable(remote: Path) -> None:
    folder = remote.parent
    if not (os.access(folder, os.W_OK) and (not remote.exists() or os.access(remote, os.W_OK))):
        raise CommandError("unavailable", f"{remote} or its folder {folder} is not writable by the daemon")


def _previous(remote: Path) -> Path:
    return remote.with_name(remote.name + ".previous")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
