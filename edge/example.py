"""Writes the commented example configuration from the schema, so the two never drift.

``python -m edge.example > firmware_config/hall-edge.example.toml``; a test
checks that the committed file is exactly this output.
"""

from __future__ import annotations

import json
from typing import Any

from edge.config import SCHEMA
from edge.schema import Key, TableList

HEADER = """\
# hall-edge configuration: one file per controller, /etc/hall-edge/hall-edge.toml
# Every key is shown with its default. Check a file with:
#     hall-edge check-config /etc/hall-edge/hall-edge.toml
# Secrets (card key, broker password, private keys) are files readable only by
# the hall-edge user (chmod 600); the check refuses any that others could read.
# GPIO numbers are BCM numbers; -1 means "not connected".
"""


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _key_line(name: str, spec: Key) -> list[str]:
    lines = [f"# {spec.doc}"] if spec.doc else []
    return [*lines, f"{name} = {toml_value(spec.default)}"]


def render(schema: dict[str, Any] = SCHEMA) -> str:
    out = [HEADER]
    for name, spec in schema.items():
        if isinstance(spec, Key):
            out += _key_line(name, spec)
    for name, spec in schema.items():
        if isinstance(spec, dict):
            out += _table(name, spec)
    return "\n".join(out) + "\n"


def _table(path: str, schema: dict[str, Any]) -> list[str]:
    out = ["", f"[{path}]"]
    lists = []
    for name, spec in schema.items():
        if isinstance(spec, Key):
            out += _key_line(name, spec)
        elif isinstance(spec, TableList):
            lists.append((name, spec))
    for name, spec in lists:
        if spec.doc:
            out += ["", f"# {spec.doc}"]
        for item in spec.default:
            out += ["", f"[[{path}.{name}]]"]
            out += [f"{k} = {toml_value(v)}" for k, v in item.items()]
    return out


if __name__ == "__main__":
    print(render(), end="")
