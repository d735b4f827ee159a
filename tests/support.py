"""Helpers for tests: wait on a condition with a deadline (never a bare sleep), a configuration,
the core thread, the benches; and the contract's example job and card."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]

# The MQTT contract's examples: one job and one card as the platform sends them.
JOB = {
    "id": "J20261122-0007",
    "title": "瓦工",
    "headcount": 3,
    "wage": {"amount": 300, "unit": "day"},
    "location": "南山公园东侧工地",
    "employer": "恒达建筑",
    "contact": "13812345678",
    "posted_at": "2026-11-22T08:29:41+08:00",
    "starts_at": "2026-11-23T07:00:00+08:00",
    "expires_at": "2026-11-23T18:00:00+08:00",
    "urgent": True,
    "verified": True,
}
CARD = {
    "h": "9f2c51a0d4e37b18c6a2f0e1d9b8c7a6",
    "worker": "W000123",
    "role": "worker",
    "status": "active",
    "tools_max": 1,
    "approved": ["drill"],
}

# The platform's snapshot signing key in tests (a fixed seed: never a real one).  make_config
# trusts it; hallsim's fake platform signs with it when given PLATFORM_SEED.
PLATFORM_SEED = bytes(range(32))
PLATFORM_KID = "platform"


def platform_public_key() -> str:
    from hallsim.central import load_signing_key, public_key_b64

    return public_key_b64(load_signing_key(PLATFORM_SEED))


def signed_snapshot(doc: dict[str, Any], site: str) -> bytes:
    """``doc`` for ``site`` in the platform's signed envelope, as it comes off the wire."""
    from hallsim.central import load_signing_key, signed_envelope

    return signed_envelope(load_signing_key(PLATFORM_SEED), PLATFORM_KID, {**doc, "site": site})


# The fuzz tests run a short round in CI; HALL_FUZZ=long runs each with FUZZ_LONG cases.
FUZZ_LONG = 10_000


def fuzz(short_examples: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Hypothesis settings for a fuzz test: ``short_examples`` cases, or FUZZ_LONG with HALL_FUZZ=long."""
    from hypothesis import HealthCheck, settings

    long_mode = os.environ.get("HALL_FUZZ") == "long"
    return settings(
        max_examples=FUZZ_LONG if long_mode else short_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _json_values() -> Any:
    from hypothesis import strategies as st

    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    )


json_values = _json_values()  # any JSON value, for the fuzz tests


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


def on_core(core: Any, fn: Callable[[], T], timeout: float = 5.0) -> T:
    """Run ``fn`` on the core thread (which owns the state) and return its result or raise its error."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except Exception as exc:
            box["error"] = exc
        finally:
            done.set()

    core.call_soon(run)
    if not done.wait(timeout):
        raise AssertionError("core did not run the call")
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_bench(script: str, *args: str, timeout: float = 120) -> str:
    """Run ``bench/<script>`` with this interpreter; its stdout, or a failure showing its output."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def make_config(tmp_path, overrides: dict | None = None, **top: object):
    """A validated configuration for tests: storage under tmp_path, plain MQTT, all peripherals off.

    ``overrides`` is merged table by table over those defaults, e.g.
    ``make_config(tmp_path, {"mqtt": {"port": broker.port}, "display": {"enabled": True}})``.
    """
    from edge.config import parse

    return parse(config_text(tmp_path, overrides, **top))


def config_text(tmp_path, overrides: dict | None = None, **top: object) -> str:
    """The TOML of ``make_config``: for a daemon started as a process (``hall-edge run --config``)."""
    from edge.example import toml_value

    return _to_toml(config_document(tmp_path, overrides, **top), toml_value)


def config_document(tmp_path, overrides: dict | None = None, **top: object) -> dict:
    """The document of ``make_config`` as a dict (for ``tomlkit.dumps``)."""
    doc: dict = {
        "storage": {"dir": str(tmp_path / "state"), "reserve_mb": 0},  # no 16 MiB file per test
        "mqtt": {"host": "127.0.0.1", "port": 1, "tls": False},
        "time": {"clock": "synced"},
        "snapshots": {"public_keys": {PLATFORM_KID: platform_public_key()}},
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
    return doc


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


def fill_disk(folder: Path) -> Path:
    """Take every free byte of the file system holding ``folder`` (as a runaway log would)."""
    filler = Path(folder) / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler
