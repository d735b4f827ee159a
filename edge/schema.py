"""Declarative configuration schema and its validator.

A schema is a nested dict of ``Key`` (a leaf), ``dict`` (a TOML table) and
``TableList`` (an array of tables).  ``validate`` walks a parsed TOML document
against it and collects *every* problem as a message that names the key path,
the value and what was expected, so that an installer fixes a file in one go.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

from edge.protocol import NAME_RE, did_you_mean, secret_file_problem
from edge.records import record

Check = Callable[[Any], str | None]
"""Returns None when the value is acceptable, else what was expected."""


@record
class Key:
    """One configuration value: its type, default, and an optional extra check."""

    type: type | tuple[type, ...]
    default: Any
    doc: str = ""
    check: Check | None = None
    secret_file: bool = False  # a path to a file holding a secret: must not be group/other readable
    secret: bool = False  # the value itself is sensitive: redacted by config.get


@record
class TableList:
    """An array of tables (``[[queue.categories]]``), each validated against ``item``."""

    item: dict[str, Any]
    default: list[dict[str, Any]] = field(default_factory=list)
    doc: str = ""


# ---- checks ---------------------------------------------------------------

HHMM_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def name_check(value: str) -> str | None:
    return None if NAME_RE.fullmatch(value) else "a name of 1-32 characters from a-z, 0-9 and -"


def port_check(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "a port (1-65535)"


def hhmm_check(value: str) -> str | None:
    return None if HHMM_RE.fullmatch(value) else "a time of day HH:MM (00:00-23:59)"


def between(low: float, high: float, what: str = "a number") -> Check:
    def check(value: float) -> str | None:
        return None if low <= value <= high else f"{what} between {low} and {high}"

    return check


def one_of(*choices: Any) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def pin_check(value: int) -> str | None:
    """A BCM GPIO number; -1 means "not connected"."""
    return None if value == -1 or 0 <= value <= 27 else "a BCM GPIO number 0-27 (or -1 for none)"


# ---- validation -----------------------------------------------------------

_TYPE_WORDS = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _describe(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    return text if len(text) <= 60 else text[:57] + "..."


def _type_ok(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # TOML true is not an integer
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _type_words(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_TYPE_WORDS.get(t, t.__name__) for t in types)


def validate(doc: dict[str, Any], schema: dict[str, Any], path: str = "") -> tuple[dict[str, Any], list[str]]:
    """Validate ``doc`` against ``schema``; returns (plain tables with defaults filled, errors).

    ``edge.settings.from_dict`` turns the tables into the typed settings.
    """
    errors: list[str] = []
    out: dict[str, Any] = {}
    for name in doc:
        if name not in schema:
            errors.append(_unknown(path, name, schema))
    for name, spec in schema.items():
        where = f"{path}{name}"
        present = name in doc
        value = doc.get(name)
        if isinstance(spec, dict):
            if present and not isinstance(value, dict):
                errors.append(f"{where}: {_describe(value)} is not a table")
                value = {}
            sub, sub_errors = validate(value or {}, spec, where + ".")
            out[name] = sub
            errors += sub_errors
        elif isinstance(spec, TableList):
            out[name], sub_errors = _validate_list(value, present, spec, where)
            errors += sub_errors
        else:
            out[name], problem = _validate_key(value, present, spec, where)
            if problem:
                errors.append(problem)
    return out, errors


def _validate_list(value: Any, present: bool, spec: TableList, where: str) -> tuple[list, list[str]]:
    if not present:
        items = spec.default
    elif not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return [], [f"{where}: {_describe(value)} is not a list of tables"]
    else:
        items = value
    result, errors = [], []
    for index, item in enumerate(items):
        sub, sub_errors = validate(item, spec.item, f"{where}[{index}].")
        result.append(sub)
        errors += sub_errors
    return result, errors


def _validate_key(value: Any, present: bool, spec: Key, where: str) -> tuple[Any, str | None]:
    if not present:
        return spec.default, None
    if not _type_ok(value, spec.type):
        return spec.default, f"{where}: {_describe(value)} is not {_type_words(spec.type)}"
    if isinstance(value, int) and not isinstance(value, bool) and spec.type is float:
        value = float(value)
    if spec.check is not None:
        expected = spec.check(value)
        if expected:
            return spec.default, f"{where}: {_describe(value)} is not {expected}"
    return value, None


def _unknown(path: str, name: str, schema: dict[str, Any]) -> str:
    known = ", ".join(sorted(schema))
    return f"{path}{name}: unknown key{did_you_mean(name, schema)}; known keys here: {known}"


def defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The configuration that an empty file means."""
    settings, _ = validate({}, schema)
    return settings


def secret_paths(schema: dict[str, Any], prefix: str = "", files_only: bool = False) -> list[str]:
    """Dotted paths of keys that are secrets or secret files (redacted by config.get)."""
    found = []
    for name, spec in schema.items():
        if isinstance(spec, dict):
            found += secret_paths(spec, f"{prefix}{name}.", files_only)
        elif isinstance(spec, Key) and (spec.secret_file or (spec.secret and not files_only)):
            found.append(prefix + name)
    return found


def lookup(settings: dict[str, Any], dotted: str) -> Any:
    """settings['a']['b'] for 'a.b'."""
    value: Any = settings
    for part in dotted.split("."):
        value = value[part]
    return value


def read_secret(path: str) -> bytes:
    """Read a secret file, refusing one that others could read."""
    problem = secret_file_problem(path)
    if problem:
        raise PermissionError(f"secret file {path} {problem}")
    return Path(path).read_bytes().strip()
