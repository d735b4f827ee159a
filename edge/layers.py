"""The configuration as two files: the installer's, and the remote changes layered over it.

``/etc/hall-edge/hall-edge.toml`` belongs to the installer (root, mode 0640):
the service reads it and never writes it, so its comments and layout stay as
the installer left them.  Remote changes (``config.set``, ``keys.add``,
``keys.remove``) go to ``<storage.dir>/hall-edge.remote.toml``, in the state
folder the service owns.  The configuration in force is the installer's file
with every value of the remote file put over it.

Layering works value by value on the parsed TOML (before validation): a
schema table (``[display]``) is merged key by key, anything else (a value,
an array of tables, the ``commands.public_keys`` table) is replaced as a
whole.  Some keys may only be set on site (``LOCAL_ONLY``): a remote file
that sets one is an error, whoever wrote it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edge.config import SCHEMA, ConfigError, validated
from edge.records import record
from edge.schema import Key, secret_paths
from edge.settings import Settings

REMOTE_FILE = "hall-edge.remote.toml"

Unit = tuple[str, ...]
"""The path of one value that layering replaces as a whole, e.g. ('display', 'brightness')."""

# Moving these remotely would orphan the database or the device's identity on the platform, or
# (secret files) send a secret somewhere new: a remote change may not set them (docs/operator.md).
# update.*: where releases go and which mirrors may skip TLS; releases.public_keys: who may sign one.
LOCAL_ONLY: tuple[str, ...] = (
    "site",
    "device",
    "storage.dir",
    "update",
    "releases.public_keys",
    *secret_paths(SCHEMA, files_only=True),
)


def units(doc: dict[str, Any], schema: dict[str, Any] = SCHEMA, prefix: Unit = ()) -> dict[Unit, Any]:
    """Every value of ``doc`` by its unit path (schema tables opened, everything else whole)."""
    found: dict[Unit, Any] = {}
    for name, value in doc.items():
        spec = schema.get(name)
        if isinstance(spec, dict) and isinstance(value, dict):
            found.update(units(value, spec, (*prefix, name)))
        else:
            found[(*prefix, name)] = value
    return found


def nested(flat: dict[Unit, Any]) -> dict[str, Any]:
    """The TOML document for values by unit path (the inverse of ``units``)."""
    doc: dict[str, Any] = {}
    for path, value in flat.items():
        table = doc
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = value
    return doc


def dotted(unit: Unit) -> str:
    return ".".join(unit)


def remote_path(base: dict[str, Any]) -> Path:
    """Where the remote changes of a controller with this installer's file live."""
    storage = base.get("storage")
    folder = storage.get("dir") if isinstance(storage, dict) else None
    default = SCHEMA["storage"]["dir"]
    assert isinstance(default, Key)
    return Path(folder if isinstance(folder, str) and folder else default.default) / REMOTE_FILE


@record
class Layers:
    """The installer's file and the remote changes, parsed but not yet validated."""

    base_path: Path
    base: dict[str, Any]
    remote_path: Path
    remote: dict[str, Any]
    remote_text: str = ""

    @classmethod
    def read(cls, path: str | Path) -> Layers:
        """Both files of the controller whose installer's file is ``path``; ConfigError if unreadable."""
        base_path = Path(path)
        base = _toml(base_path, missing_ok=False)
        remote = remote_path(base)
        text = _text(remote, missing_ok=True)
        return cls(base_path, base, remote, _parsed(text, remote), text)

    def with_remote(self, remote: dict[str, Any], text: str) -> Layers:
        return Layers(self.base_path, self.base, self.remote_path, remote, text)

    @property
    def source(self) -> str:
        return f"{self.base_path} + {self.remote_path}" if self.remote else str(self.base_path)

    def merged(self) -> dict[str, Any]:
        return nested({**units(self.base), **units(self.remote)})

    def settings(self) -> Settings:
        """The configuration in force, validated; ConfigError names both files when both count."""
        errors = [
            f"{key}: can only be set on site, in {self.base_path} (remove it from {self.remote_path})"
            for key in map(dotted, units(self.remote))
            if key in LOCAL_ONLY
        ]
        if errors:
            raise ConfigError(str(self.remote_path), errors)
        return validated(self.merged(), self.source)

    def sources(self) -> dict[str, str]:
        """For every value set in a file, the file (a value not listed has its default)."""
        found = {dotted(unit): str(self.base_path) for unit in units(self.base)}
        found.update({dotted(unit): str(self.remote_path) for unit in units(self.remote)})
        return dict(sorted(found.items()))


FILE_NOT_FOUND = (
    "file not found (hall-edge install writes /etc/hall-edge/hall-edge.toml; "
    "every key, with its default, is in /etc/hall-edge/hall-edge.example.toml)"
)


def _text(path: Path, missing_ok: bool) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        if missing_ok:  # no remote file, or no state folder yet: storage reports the folder itself
            return ""
        raise ConfigError(str(path), [FILE_NOT_FOUND]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot be read: {exc.strerror}"]) from None


def _parsed(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None


def _toml(path: Path, missing_ok: bool) -> dict[str, Any]:
    return _parsed(_text(path, missing_ok), path)
