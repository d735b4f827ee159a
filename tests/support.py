"""Helpers for tests: wait on a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_tick = threading.Event()  # never set: wait() on it is a short, interruptible pause


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        _tick.wait(0.005)


def make_config(tmp_path, overrides: dict | None = None, **top: object):
    """A validated configuration for tests: storage under tmp_path, plain MQTT, all peripherals off.

    ``overrides`` is merged table by table over those defaults, e.g.
    ``make_config(tmp_path, {"mqtt": {"port": broker.port}, "display": {"enabled": True}})``.
    """
    from edge.config import parse
    from edge.example import toml_value

    doc: dict = {
        "storage": {"dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": 1, "tls": False},
        "time": {"clock": "synced"},
        "display": {"enabled": False, "device": "dummy"},
        "printer": {"enabled": False},
        "queue": {"enabled": False},
        "rfid": {"enabled": False},
        "locker": {"enabled": False},
    }
    doc.update(top)
    for table, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(doc.get(table), dict):
            doc[table] = {**doc[table], **values}
        else:
            doc[table] = values
    return parse(_to_toml(doc, toml_value))


def _to_toml(doc: dict, toml_value) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for table, values in doc.items():
        if isinstance(values, dict):
            lines.append(f"[{table}]")
            for key, value in values.items():
                if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                    continue
                lines.append(f"{key} = {toml_value(value)}")
            for key, value in values.items():
                if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                    for item in value:
                        lines.append(f"[[{table}.{key}]]")
                        lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"
