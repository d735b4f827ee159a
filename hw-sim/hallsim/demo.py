"""``hall-sim demo``: the whole hall on one machine with no hardware.

It starts, all under ``--data DIR``:

- a private mosquitto on a free loopback port (unless ``--broker``);
- the pin board (buttons, door switches, locks, buzzer), the ESC/POS printer
  and the RDM6300 card reader on ptys, and the screen that receives the
  daemon's frames;
- the fake central platform (unless ``--no-central``);
- the daemon itself, ``hall-edge run`` as a child process, with a generated
  configuration, ``GPIOZERO_PIN_FACTORY=hallsim`` and ``HALLSIM_PINS``.

It writes ``DIR/sim.json`` (what a script needs to drive the simulation),
serves the control socket that ``hall-sim press A`` and friends talk to, and
runs until Ctrl-C or SIGTERM; then it stops the daemon first (SIGTERM), then
everything else it started.

The simulated devices are separate modules (``hallsim.printer``,
``hallsim.rfid``, ``hallsim.screen``, ``hallsim.central``); one that is missing
or fails to start is left out with a warning, and the daemon's configuration
turns that peripheral off.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from hallsim.control import LAST_DEMO, SIM_JSON, ControlError, ControlServer, Verb
from hallsim.pins import PinBoard, daemon_env

SITE = "qinshui"
HALL_ZONE = ZoneInfo("Asia/Shanghai")
DEVICE = "hall-01"
ADMIN_KID = "sim"
CARD_KEY_ID = "k-sim"
PLATFORM_KID = "platform"  # the fake central's snapshot signing key (data folder: platform.key)
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
START_LIMIT_BURST = 4  # as in systemd/hall-edge.service: a 5th start within 120 s is refused
START_LIMIT_S = 120.0

# The demo's wiring (BCM numbers): free of the SPI (7-11), UART (14, 15) and I2C (2, 3) pins.
CATEGORIES = [
    ("A", "求职登记", 5),
    ("B", "招聘登记", 6),
    ("C", "政策咨询", 13),
    ("D", "维权服务", 19),
    ("E", "技能培训", 26),
]
PRIORITY_PIN = 12
BUZZER_PIN = 18
WINDOWS = [{"number": 1, "call_pin": 16, "recall_pin": 20, "skip_pin": 21}]
COMPARTMENTS: list[dict[str, Any]] = [
    {"number": 1, "tool_id": "T-hammer-01", "tool_type": "hammer", "lock_pin": 17, "door_pin": 27},
    {"number": 2, "tool_id": "T-shovel-01", "tool_type": "shovel", "lock_pin": 22, "door_pin": 23},
    {"number": 3, "tool_id": "T-drill-01", "tool_type": "drill", "lock_pin": 24, "door_pin": 25},
]

# Sample cards (EM4100, 10 hex digits as the RDM6300 reports them).  "stranger" is in no snapshot.
CARDS: dict[str, dict[str, Any]] = {
    "worker": {"uid": "67003B51C6", "worker": "W000123", "role": "worker", "status": "active",
               "tools_max": 1, "approved": []},
    "driller": {"uid": "0A1B2C3D4E", "worker": "W000124", "role": "worker", "status": "active",
                "tools_max": 2, "approved": ["drill"]},
    "staff": {"uid": "5500AA33CC", "worker": "S000001", "role": "staff", "status": "active",
              "tools_max": 3, "approved": ["drill"]},
    "suspended": {"uid": "1122334455", "worker": "W000125", "role": "worker", "status": "suspended",
                  "tools_max": 1, "approved": []},
    "banned": {"uid": "6677889900", "worker": "W000126", "role": "worker", "status": "banned",
               "tools_max": 1, "approved": []},
    "stranger": {"uid": "0BADC0FFEE", "worker": None, "role": None, "status": "unknown",
                 "tools_max": 0, "approved": []},
}  # fmt: skip

PRINTER_WORDS = ("ok", "paper-low", "paper-out", "cover-open", "offline")

VERB_USAGE = [
    ("press A", "press the ticket key of category A"),
    ("press priority [A]", "the priority key (绿色通道), then category A"),
    ("call 1 | recall 1 | skip 1", "a staff key at window 1"),
    ("tap CARD", "hold a card at the locker's reader (a sample name from sim.json or a UID)"),
    ("door N open|close", "open or close compartment N's door"),
    ("force N", "force compartment N's door open (without unlocking)"),
    ("printer " + "|".join(PRINTER_WORDS), "the printer's paper and cover state"),
    ("screen --png FILE [--enlarged]", "save what the LED screen shows"),
    ("job [--title T] [--headcount N] ...", "the fake central publishes a new verified job"),
    ("unplug printer|reader", "pull the USB cable (plug printer|reader puts it back)"),
    ("status", "what the simulator sees: outputs, last ticket, central report"),
    ("stop", "stop the demo"),
]


def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(f"hall-sim: warning: {text}", file=sys.stderr, flush=True)


# ---- small file helpers ---------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """A secret file the daemon accepts: created 0600, never readable by others."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _ed25519_public_key(path: Path) -> str:
    """The base64 raw public key of the PEM Ed25519 key in ``path``, made (0600) if unusable."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private: Any = None
    if _private_file(path):
        with contextlib.suppress(ValueError, TypeError):
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(path, pem)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _private_file(path: Path) -> bool:
    """An existing regular file that only its owner may read (what the daemon accepts)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    return path.is_file() and not info.st_mode & 0o077


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Atomically, so a script never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def render_toml(tables: dict[str, dict[str, Any]]) -> str:
    """Tables of keys, with lists of dicts as arrays of tables (enough for our config)."""
    lines = ["# Generated by hall-sim demo: the simulated hall. Do not edit; it is rewritten each start."]
    for table, keys in tables.items():
        lines += ["", f"[{table}]"]
        arrays = {k: v for k, v in keys.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        lines += [f"{k} = {_toml(v)}" for k, v in keys.items() if k not in arrays]
        for name, items in arrays.items():
            for item in items:
                lines += ["", f"[[{table}.{name}]]"] + [f"{k} = {_toml(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _broker_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"--broker {url}: expected mqtt://host:port")
    return parts.hostname, parts.port or 1883


def _port(device: Any) -> str:
    """The path the daemon opens: the device's stable link if it has one (survives a replug)."""
    if device is None:
        return ""
    link = getattr(device, "link", None)
    return str(link) if link else str(device.port)


def _pad(text: str, width: int) -> str:
    """Left-justify for a terminal, where a Chinese character takes two columns."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - columns)


def _hall_sim_command() -> str:
    """How to type hall-sim here: bare when on PATH, else the venv's script (.venv/bin/hall-sim)."""
    script = Path(sys.executable).with_name("hall-sim")
    found = shutil.which("hall-sim")
    if found and Path(found).resolve() == script.resolve():
        return "hall-sim"
    relative = os.path.relpath(script, Path.cwd())
    return relative if not relative.startswith("..") else str(script)


def daemon_command(config: Path) -> list[str]:
    """The installed console script next to this Python, else ``python -m edge``."""
    script = Path(sys.executable).with_name("hall-edge")
    if script.exists():
        return [str(script), "run", "--config", str(config)]
    return [sys.executable, "-m", "edge", "run", "--config", str(config)]


# ---- the demo -------------------------------------------------------------------


@dataclass
class Devices:
    printer: Any = None
    reader: Any = None
    screen: Any = None
    central: Any = None


def job_fields(args: list[str]) -> dict[str, Any]:
    """``--FIELD VALUE`` pairs of ``hall-sim job``; a value that is JSON (``2``, ``false``,
    ``{"amount": 200, "unit": "day"}``) is taken as such, anything else as text."""
    fields: dict[str, Any] = {}
    words = list(args)
    while words:
        key = words.pop(0)
        if not key.startswith("--") or not words:
            raise ControlError(f"expected --FIELD VALUE pairs, got {key!r}")
        value = words.pop(0)
        try:
            fields[key[2:].replace("-", "_")] = json.loads(value)
        except ValueError:
            fields[key[2:].replace("-", "_")] = value
    return fields


class StartLimit:
    """systemd's start rate limit: at most ``burst`` starts in a window of ``interval_s`` that
    opens at the first start after the last window ended (``ratelimit_below`` in systemd)."""

    def __init__(self, burst: int = START_LIMIT_BURST, interval_s: float = START_LIMIT_S) -> None:
        self.burst, self.interval_s = burst, interval_s
        self._begin: float | None = None
        self._count = 0

    def allow(self, now: float) -> bool:
        if self._begin is None or now - self._begin > self.interval_s:
            self._begin, self._count = now, 0
        self._count += 1
        return self._count <= self.burst


class Demo:
    def __init__(
        self,
        data: str | Path | None = None,
        broker: str | None = None,
        central: bool = True,
        echo_logs: bool = False,
    ) -> None:
        self.data = Path(data or tempfile.mkdtemp(prefix="hall-sim-")).resolve()
        self.broker_url = broker
        self.with_central = central
        self.echo_logs = echo_logs
        self.devices = Devices()
        self.mosquitto: Any = None
        self.board: PinBoard | None = None
        self.control: ControlServer | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.ready = threading.Event()
        self.stop_requested = threading.Event()
        self._socket_dir = self._pick_socket_dir()
        self._log_thread: threading.Thread | None = None
        self._address = ("", 0)
        self._starts = StartLimit()
        self.config_path = self.data / "hall-edge.toml"
        self.log_path = self.data / "daemon.log"
        self.admin_key = self.data / "admin.key"
        self.card_key = self.data / "card.key"
        self.platform_key = self.data / "platform.key"

    def _pick_socket_dir(self) -> Path:
        # A unix socket path may have at most 107 bytes: fall back to a short folder.
        if len(str(self.data / "control.sock").encode()) <= 100:
            return self.data
        return Path(tempfile.mkdtemp(prefix="hallsim-"))

    def sock(self, name: str) -> str:
        return str(self._socket_dir / name)

    # -- start ------------------------------------------------------------------

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "state").mkdir(exist_ok=True)
        host, port = self._start_broker()
        self.board = PinBoard(self.sock("pins.sock")).start()
        for compartment in COMPARTMENTS:
            self.board.set_switch(compartment["door_pin"], closed=True)  # doors start shut
        self._start_devices()
        public_key, platform_key = self._make_keys()
        self.config_path.write_text(
            render_toml(self._config(host, port, public_key, platform_key)), encoding="utf-8"
        )
        self._address = (host, port)
        self._write_sim(host, port, "starting")
        if self.with_central:
            self.devices.central = self._optional("central", lambda m: self._build_central(m, host, port))
            if self.devices.central is not None:
                try:
                    self._publish_samples(self.devices.central)
                except Exception as exc:  # noqa: BLE001 - an empty hall is still a demo
                    _warn(f"the fake central could not publish the samples: {exc}")
        self.control = ControlServer(self.sock("control.sock"), self.verbs()).start()
        self._starts.allow(time.monotonic())
        self._start_daemon()
        self._write_sim(host, port, "running")
        LAST_DEMO.write_text(str(self.data))

    def _start_broker(self) -> tuple[str, int]:
        if self.broker_url:
            return _broker_address(self.broker_url)
        from hallsim.broker import Mosquitto

        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise RuntimeError("mosquitto is not installed: run `bash scripts/setup.sh`, or pass --broker")
        self.mosquitto = Mosquitto(self.data / "broker", own_session=True).start()
        return "127.0.0.1", self.mosquitto.port

    def _optional(self, module: str, build: Callable[[Any], Any]) -> Any:
        """Build and start ``hallsim.<module>``'s device, or warn and leave it out."""
        try:
            device = build(importlib.import_module(f"hallsim.{module}"))
            device.start()
            return device
        except ModuleNotFoundError as exc:
            if exc.name != f"hallsim.{module}":
                raise
            _warn(f"hallsim.{module} is not there yet: the demo runs without it")
        except Exception as exc:  # noqa: BLE001 - one simulated device must not stop the demo
            _warn(f"hallsim.{module} did not start ({type(exc).__name__}: {exc}): left out")
        return None

    def _start_devices(self) -> None:
        (self.data / "dev").mkdir(exist_ok=True)
        self.devices.printer = self._optional("printer", self._build_printer)
        self.devices.reader = self._optional("rfid", self._build_reader)
        self.devices.screen = self._optional("screen", lambda m: m.SimScreen(self.sock("screen.sock")))

    def _build_printer(self, module: Any) -> Any:
        try:  # a stable path that survives an unplug/replug, when the simulator offers one
            return module.SimPrinter(self.data / "printer", link=self.data / "dev" / "hall-printer")
        except TypeError:
            return module.SimPrinter(self.data / "printer")

    def _build_reader(self, module: Any) -> Any:
        try:
            return module.SimReader("rdm6300", link=self.data / "dev" / "hall-rfid")
        except TypeError:
            return module.SimReader("rdm6300")

    def _build_central(self, module: Any, host: str, port: int) -> Any:
        return module.Central(
            host,
            port,
            SITE,
            DEVICE,
            self.data / "central",
            card_key=self.card_key,
            key_id=CARD_KEY_ID,
            signing_key=self.platform_key,
            signing_kid=PLATFORM_KID,
        )

    @staticmethod
    def _publish_samples(central: Any) -> None:
        """Something to see at once: verified jobs, a notice, and the sample cards (not the stranger)."""
        now = datetime.now(HALL_ZONE)
        central.publish_cards([dict(card) for name, card in CARDS.items() if name != "stranger"])
        central.publish_notices(
            [
                {
                    "id": "N-sim-1",
                    "text": "本周四下午三点 家政技能免费培训",
                    "starts_at": now.isoformat(timespec="seconds"),
                    "ends_at": (now + timedelta(days=7)).isoformat(timespec="seconds"),
                }
            ]
        )
        central.generate_jobs(4)

    def _make_keys(self) -> tuple[str, str]:
        """The site card key, an Ed25519 key pair for signed commands and one for the fake
        central's signed snapshots; returns the two public keys.

        A data folder used again keeps its keys, so cached cards and a hall-admin set up
        for it still fit.
        """
        if not _private_file(self.card_key):
            _write_private(self.card_key, secrets.token_hex(32).encode() + b"\n")
        return _ed25519_public_key(self.admin_key), _ed25519_public_key(self.platform_key)

    def _config(self, host: str, port: int, public_key: str, platform_key: str) -> dict[str, dict[str, Any]]:
        printer, reader, screen = self.devices.printer, self.devices.reader, self.devices.screen
        return {
            "mqtt": {"host": host, "port": port, "tls": False, "keepalive": 15},
            "storage": {"dir": str(self.data / "state")},
            "time": {"clock": "synced"},
            "logging": {"level": "info"},
            "display": {
                "enabled": True,
                "device": "dummy",
                "frame_mirror": self.sock("screen.sock") if screen else "",
                "open_from": "00:00",  # same as open_until: on all day, whenever someone tries the demo
                "open_until": "00:00",
            },
            "printer": {"enabled": printer is not None, "port": _port(printer)},
            "queue": {
                "enabled": True,
                "priority_pin": PRIORITY_PIN,
                "categories": [{"code": c, "name": n, "pin": p} for c, n, p in CATEGORIES],
                "windows": WINDOWS,
            },
            "buzzer": {"enabled": True, "pin": BUZZER_PIN},
            "rfid": {
                "enabled": reader is not None,
                "reader": "rdm6300",
                "port": _port(reader),
                "card_key_file": str(self.card_key),
                "card_key_id": CARD_KEY_ID,
            },
            "locker": {"enabled": reader is not None, "locks": "gpio", "compartments": COMPARTMENTS},
            "snapshots": {"public_keys": {PLATFORM_KID: platform_key}},
            "commands": {"public_keys": {ADMIN_KID: public_key}},
        }

    def _write_sim(self, host: str, port: int, state: str) -> None:
        printer, reader, screen = self.devices.printer, self.devices.reader, self.devices.screen
        _write_json(
            self.data / SIM_JSON,
            {
                "state": state,
                "broker": f"mqtt://{host}:{port}",
                "site": SITE,
                "device": DEVICE,
                "config": str(self.config_path),
                "data": str(self.data),
                "control": self.sock("control.sock"),
                "pins": self.sock("pins.sock"),
                "daemon_pid": self.daemon.pid if self.daemon else None,
                "daemon_log": str(self.log_path),
                "printer": _port(printer) or None,
                "rfid": {"kind": "rdm6300", "port": _port(reader)} if reader else None,
                "screen": self.sock("screen.sock") if screen else None,
                "central": self.devices.central is not None,
                "admin_key": str(self.admin_key),
                "admin_kid": ADMIN_KID,
                "card_key": str(self.card_key),
                "card_key_id": CARD_KEY_ID,
                "cards": CARDS,
                "wiring": {
                    "categories": {code: pin for code, _name, pin in CATEGORIES},
                    "priority_pin": PRIORITY_PIN,
                    "buzzer_pin": BUZZER_PIN,
                    "windows": WINDOWS,
                    "compartments": COMPARTMENTS,
                },
            },
        )

    def _start_daemon(self) -> None:
        env = {**os.environ, **daemon_env(self.sock("pins.sock"))}
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("NOTIFY_SOCKET", None)  # the demo is not systemd
        process = subprocess.Popen(
            daemon_command(self.config_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops the daemon in order
        )
        self.daemon, self.ready = process, threading.Event()
        self._log_thread = threading.Thread(
            target=self._copy_log, args=(process, self.ready), name="daemon-log", daemon=True
        )
        self._log_thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self._daemon_failure())

    def _copy_log(self, process: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert process.stdout is not None
        with self.log_path.open("ab") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                if b'msg="ready' in line:
                    ready.set()
                if self.echo_logs:
                    sys.stderr.write("daemon: " + line.decode(errors="replace"))

    def _daemon_failure(self) -> str:
        code = self.daemon.poll() if self.daemon else None
        with contextlib.suppress(OSError):
            if self._log_thread is not None:
                self._log_thread.join(2)
        tail = self.log_path.read_text(errors="replace").splitlines()[-15:] if self.log_path.exists() else []
        what = f"exited with code {code}" if code is not None else f"not ready within {READY_TIMEOUT_S:g} s"
        return f"the daemon {what}; the end of {self.log_path}:\n  " + "\n  ".join(tail)

    # -- run and stop -----------------------------------------------------------------

    def wait(self) -> int:
        """Until SIGTERM/SIGINT or ``stop``: 0.

        A daemon that exits on its own (the ``restart`` command, a crash, kill -9) is started
        again, as systemd's Restart=always would; a start that systemd's start limit
        would refuse gives up with 1 instead.
        """
        while not self.stop_requested.wait(0.5):
            if self.daemon is None or self.daemon.poll() is None:
                continue
            if not self._starts.allow(time.monotonic()):
                _warn(self._daemon_failure())
                _warn(
                    f"more than {START_LIMIT_BURST} daemon starts within {START_LIMIT_S:g} s: the demo stops,"
                    " as systemd's start limit would stop the service"
                )
                return 1
            _say(f"hall-sim demo: the daemon exited ({self.daemon.returncode}); starting it again")
            try:
                self._start_daemon()
            except RuntimeError as exc:
                _warn(str(exc))
                return 1
            self._write_sim(*self._address, "running")
        return 0

    def stop(self) -> None:
        """Daemon first (SIGTERM, as systemd would), then everything else this demo started."""
        if self.daemon is not None and self.daemon.poll() is None:
            begin = time.monotonic()
            self.daemon.send_signal(signal.SIGTERM)
            try:
                code = self.daemon.wait(STOP_TIMEOUT_S)
                _say(f"hall-sim demo: daemon stopped in {time.monotonic() - begin:.2f} s (exit {code})")
            except subprocess.TimeoutExpired:
                _warn("the daemon did not stop within 5 s: killed")
                self.daemon.kill()
                self.daemon.wait()
        if self._log_thread is not None:
            self._log_thread.join(2)
        for part in (self.control, self.devices.central, self.devices.screen, self.devices.reader,
                     self.devices.printer, self.board, self.mosquitto):  # fmt: skip
            if part is None:
                continue
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest whatever one part does
                _warn(f"{type(part).__name__} did not stop cleanly: {exc}")
        if self._socket_dir != self.data:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            if LAST_DEMO.read_text().strip() == str(self.data):
                LAST_DEMO.unlink()

    def banner(self) -> str:
        d = self.devices
        me = _hall_sim_command()
        parts = [
            f"  broker      {self.mosquitto.url if self.mosquitto else self.broker_url}",
            f"  daemon      hall-edge run, pid {self.daemon.pid if self.daemon else '-'}",
            f"  daemon log  {self.log_path}",
            f"  central     {'fake central platform' if d.central else 'not running'}",
            f"  printer     {_port(d.printer) or 'not simulated'}",
            f"  card reader {('RDM6300 on ' + _port(d.reader)) if d.reader else 'not simulated'}",
            f"  screen      {'frames mirrored to the simulator' if d.screen else 'not simulated'}",
            "  buttons, door switches, locks and buzzer on the simulated GPIO pins",
        ]
        return "\n".join(
            [
                f"hall-sim demo is running: {SITE}/{DEVICE}, data in {self.data}",
                *parts,
                "",
                "Try, in another terminal:",
                *(
                    f"  {_pad(command, 40)}# {why}" if why else f"  {command}"
                    for command, why in (
                        (f"{me} press A", "take a ticket for 求职登记"),
                        (f"{me} call 1", "window 1 calls the next ticket"),
                        (f"{me} tap worker", "a worker taps a card at the tool locker"),
                        (f"{me} door 1 open", "takes the hammer out, then: door 1 close"),
                        (f"{me} job --title 木工", "a new job on the screen"),
                        (f"{me} screen --png screen.png --enlarged", ""),
                        (f"{me} status", "what the simulator sees"),
                    )
                ),
                "Ctrl-C stops everything.",
            ]
        )

    # -- verbs ------------------------------------------------------------------------

    def verbs(self) -> dict[str, Verb]:
        return {
            "press": Verb(self.verb_press, "press [priority] A", "take a ticket"),
            "call": Verb(lambda a: self.verb_window(a, "call_pin"), "call WINDOW", "call the next ticket"),
            "recall": Verb(lambda a: self.verb_window(a, "recall_pin"), "recall WINDOW", "call it again"),
            "skip": Verb(lambda a: self.verb_window(a, "skip_pin"), "skip WINDOW", "no-show"),
            "tap": Verb(self.verb_tap, "tap CARD", "hold a card at the reader"),
            "door": Verb(self.verb_door, "door N open|close", "a compartment door"),
            "force": Verb(self.verb_force, "force N", "force a door open"),
            "printer": Verb(self.verb_printer, "printer " + "|".join(PRINTER_WORDS), "printer state"),
            "screen": Verb(self.verb_screen, "screen --png FILE [--enlarged]", "save the screen"),
            "job": Verb(self.verb_job, "job [--title T] [--FIELD VALUE ...]", "publish a job"),
            "unplug": Verb(
                lambda a: self.verb_cable(a, plugged=False), "unplug printer|reader", "pull a cable"
            ),
            "plug": Verb(lambda a: self.verb_cable(a, plugged=True), "plug printer|reader", "plug it back"),
            "status": Verb(self.verb_status, "status", "what the simulator sees"),
            "stop": Verb(self.verb_stop, "stop", "stop the demo"),
        }

    def _board(self) -> PinBoard:
        if self.board is None:
            raise ControlError("the pin board is not running")
        return self.board

    def verb_press(self, args: list[str]) -> str:
        priority = bool(args) and args[0] == "priority"
        codes = args[1:] if priority else args
        pins = {code: pin for code, _name, pin in CATEGORIES}
        if priority and not codes:  # the worker walks away: the prompt shows, nothing is issued
            self._board().click(PRIORITY_PIN)
            return f"pressed priority (GPIO {PRIORITY_PIN}): a service button within 10 s: a priority ticket"
        if len(codes) != 1 or codes[0].upper() not in pins:
            raise ControlError(f"which category? one of {', '.join(pins)}")
        code = codes[0].upper()
        if priority:
            self._board().click(PRIORITY_PIN)
        self._board().click(pins[code])
        return f"pressed {'priority, then ' if priority else ''}{code} (GPIO {pins[code]})"

    def verb_window(self, args: list[str], key: str) -> str:
        windows = {str(w["number"]): w for w in WINDOWS}
        if len(args) != 1 or args[0] not in windows:
            raise ControlError(f"which window? one of {', '.join(windows)}")
        pin = windows[args[0]][key]
        self._board().click(pin)
        return f"window {args[0]}: {key.removesuffix('_pin')} (GPIO {pin})"

    def verb_tap(self, args: list[str]) -> str:
        if self.devices.reader is None:
            raise ControlError("no card reader in this demo")
        if len(args) != 1:
            raise ControlError(f"which card? a UID or one of {', '.join(CARDS)}")
        card = CARDS.get(args[0].lower())
        uid = card["uid"] if card else args[0].upper()
        try:
            bytes.fromhex(uid)
            self.devices.reader.tap(uid)
        except ValueError as exc:
            raise ControlError(f"card {args[0]!r}: {exc}") from None
        return f"tapped {args[0] if card else 'a card'}"  # the UID itself is not echoed

    def _compartment(self, word: str) -> dict[str, Any]:
        for compartment in COMPARTMENTS:
            if str(compartment["number"]) == word:
                return compartment
        raise ControlError(
            f"no compartment {word}; they are {', '.join(str(c['number']) for c in COMPARTMENTS)}"
        )

    def verb_door(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 2 or args[1] not in ("open", "close"):
            raise ControlError("door N open|close")
        compartment = self._compartment(args[0])
        self._board().set_switch(compartment["door_pin"], closed=args[1] == "close")
        return {"door": compartment["number"], "now": args[1], "lock_released": self._lock_state(compartment)}

    def verb_force(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ControlError("force N")
        compartment = self._compartment(args[0])
        unlocked = self._lock_state(compartment)
        self._board().set_switch(compartment["door_pin"], closed=False)
        return {"door": compartment["number"], "now": "open", "lock_released": unlocked,
                "forced": not unlocked}  # fmt: skip

    def _lock_state(self, compartment: dict[str, Any]) -> bool:
        return bool(self._board().output(compartment["lock_pin"]))

    def verb_printer(self, args: list[str]) -> str:
        if self.devices.printer is None:
            raise ControlError("no printer in this demo")
        if len(args) != 1 or args[0] not in PRINTER_WORDS:
            raise ControlError(f"printer state: one of {', '.join(PRINTER_WORDS)}")
        self.devices.printer.set_status(args[0])
        return f"printer: {args[0]}"

    def verb_cable(self, args: list[str], plugged: bool) -> str:
        devices = {"printer": self.devices.printer, "reader": self.devices.reader}
        if len(args) != 1 or args[0] not in devices:
            raise ControlError("which cable? printer or reader")
        device = devices[args[0]]
        if device is None:
            raise ControlError(f"no {args[0]} in this demo")
        if plugged:
            (device.plug if hasattr(device, "plug") else device.replug)()
        else:
            device.unplug()
        return f"{args[0]} {'plugged in' if plugged else 'unplugged'}"

    def verb_screen(self, args: list[str]) -> str:
        if self.devices.screen is None:
            raise ControlError("no screen in this demo")
        enlarged = "--enlarged" in args
        rest = [a for a in args if a != "--enlarged"]
        if len(rest) != 2 or rest[0] != "--png":
            raise ControlError("screen --png FILE [--enlarged]")
        assert self.control is not None and self.control.current is not None
        path = self.control.current.path(rest[1])
        try:
            saved = self.devices.screen.save_png(path, enlarged=enlarged)
        except RuntimeError as exc:
            raise ControlError(str(exc)) from None
        return f"saved {saved}"

    def verb_job(self, args: list[str]) -> dict[str, Any]:
        if self.devices.central is None:
            raise ControlError("no central platform in this demo (--no-central)")
        return {"job_id": self.devices.central.add_job(**job_fields(args))}

    def verb_status(self, _args: list[str]) -> dict[str, Any]:
        printer, central = self.devices.printer, self.devices.central
        tickets = list(getattr(printer, "tickets", []) or [])
        return {
            "daemon": {
                "pid": self.daemon.pid if self.daemon else None,
                "running": self.daemon is not None and self.daemon.poll() is None,
            },
            "locker": self._locker_view(),
            "buzzer": "on" if self._board().output(BUZZER_PIN) else "off",
            "pins": self._board().snapshot(),
            "printer": None
            if printer is None
            else {
                "state": getattr(printer, "state", None),
                "tickets": len(tickets),
                "last_ticket": tickets[-1].text if tickets else None,
            },
            "screen": None
            if self.devices.screen is None
            else {"frames": getattr(self.devices.screen, "frames_received", None)},
            "central": central.report() if central is not None else None,
        }

    def _locker_view(self) -> dict[str, dict[str, str]]:
        """Per compartment, as a person at the locker would see it."""
        board = self._board()
        return {
            str(c["number"]): {
                "tool": c["tool_id"],
                "lock": "released" if board.output(c["lock_pin"]) else "locked",
                "door": "open" if board.levels.get(c["door_pin"]) else "closed",
            }
            for c in COMPARTMENTS
        }

    def verb_stop(self, _args: list[str]) -> str:
        self.stop_requested.set()
        return "stopping"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="hall-sim demo", description="run the whole hall in simulation")
    parser.add_argument("--data", help="folder for everything the demo makes (default: a new temporary one)")
    parser.add_argument("--broker", help="use this broker (mqtt://host:port) instead of a private mosquitto")
    parser.add_argument("--no-central", action="store_true", help="leave out the fake central platform")
    parser.add_argument("--logs", action="store_true", help="also show the daemon's log lines here")
    args = parser.parse_args(argv)

    demo = Demo(args.data, args.broker, central=not args.no_central, echo_logs=args.logs)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        demo.stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        demo.start()
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"hall-sim demo: {exc}", file=sys.stderr, flush=True)
        demo.stop()
        return 1
    _say(demo.banner())
    try:
        code = demo.wait()
    finally:
        _say("hall-sim demo: stopping")
        demo.stop()
    _say("hall-sim demo: stopped")
    return code
