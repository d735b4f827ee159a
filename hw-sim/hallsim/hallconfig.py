"""The simulated hall's configuration: its wiring, sample cards, keys, the daemon's config and sim.json.

Everything here is data or a pure function of the demo's folders and ports;
``hallsim.demo`` starts things, ``hallsim.verbs`` acts on them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hallsim.central import Central

SITE = "qinshui"
HALL_ZONE = ZoneInfo("Asia/Shanghai")
DEVICE = "hall-01"
ADMIN_KID = "sim"
CARD_KEY_ID = "k-sim"
PLATFORM_KID = "platform"  # the fake central's snapshot signing key (data folder: platform.key)

# The demo's wiring (BCM numbers): free of the UART (14, 15) and I2C (2, 3) pins, and of the SPI
# pins a MAX7219 screen uses (8 CE0, 10 MOSI, 11 SCLK): the select buttons take 7 (CE1) and 9 (MISO).
CATEGORIES = [
    ("A", "求职登记", 5),
    ("B", "招聘登记", 6),
    ("C", "政策咨询", 13),
    ("D", "维权服务", 19),
    ("E", "技能培训", 26),
]
UNLOCK_TIMEOUT_S = 30.0  # locker.unlock_timeout_s: a released lock that nobody opens locks again
PRIORITY_PIN = 12
BUZZER_PIN = 18
# Window 1's caller (finish, 暂停/恢复, hold, bring back) and its rating keypad (好差评, 非常满意 ..
# 非常不满意) take the pins this demo leaves free: ID EEPROM 0/1, I2C 2/3, SPI 8/10/11 (the demo's
# screen is the mirror, not a MAX7219) and UART 14/15 (the reader is on a pty).  A real hall with
# the locker on GPIO has no such pins to spare (docs/queue.md).  Transfer has no key here (a key
# cannot name its target): `hall-sim transfer 1 D` sends the signed queue.transfer.
WINDOWS = [
    {
        "number": 1, "call_pin": 16, "recall_pin": 20, "skip_pin": 21,
        "finish_pin": 0, "pause_pin": 1, "hold_pin": 2, "bring_back_pin": 3,
        "rate5_pin": 8, "rate4_pin": 10, "rate3_pin": 11, "rate2_pin": 14, "rate1_pin": 15,
    }
]  # fmt: skip
COMPARTMENTS: list[dict[str, Any]] = [
    {
        "number": 1,
        "tool_id": "T-hammer-01",
        "tool_type": "hammer",
        "lock_pin": 17,
        "door_pin": 27,
        "select_pin": 4,
    },
    {
        "number": 2,
        "tool_id": "T-shovel-01",
        "tool_type": "shovel",
        "lock_pin": 22,
        "door_pin": 23,
        "select_pin": 7,
    },
    {
        "number": 3,
        "tool_id": "T-drill-01",
        "tool_type": "drill",
        "lock_pin": 24,
        "door_pin": 25,
        "select_pin": 9,
    },
]


def compartments(rs485: bool) -> list[dict[str, Any]]:
    """The locker's compartments: GPIO locks and door switches, or on RS-485 board 0 (lock N,
    the board senses the door); the select buttons are GPIO either way."""
    if not rs485:
        return COMPARTMENTS
    return [
        {**{k: v for k, v in c.items() if k not in ("lock_pin", "door_pin")}, "board": 0, "lock": c["number"]}
        for c in COMPARTMENTS
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


# The staff console's sample accounts (docs/console.md), one per role; set by the demo with the
# signed console.account command, the hash made here (scrypt, the format docs/console.md gives).
CONSOLE_ACCOUNTS: list[dict[str, Any]] = [
    {"user": "w1", "password": "demo-window-1", "role": "window", "name": "一号窗口", "windows": [1]},
    {"user": "locker", "password": "demo-locker", "role": "locker", "name": "工具柜管理员", "windows": []},
    {"user": "boss", "password": "demo-supervisor", "role": "supervisor", "name": "大厅主管", "windows": []},
]


def console_password_hash(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` with N=2^14, r=8, p=1, 16 random salt bytes, 32-byte hash."""
    import hashlib

    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 2**20, dklen=32)
    return "$".join(
        ["scrypt", "16384", "8", "1", base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def console_document(port: int) -> dict[str, Any] | None:
    if not port:
        return None
    accounts = [{"user": a["user"], "password": a["password"], "role": a["role"]} for a in CONSOLE_ACCOUNTS]
    return {"url": f"http://127.0.0.1:{port}/", "accounts": accounts}


@dataclass(frozen=True)
class Paths:
    """Where one demo keeps its things (all under its data folder, sockets maybe elsewhere)."""

    data: Path
    sockets: Path

    def sock(self, name: str) -> str:
        return str(self.sockets / name)

    @property
    def config(self) -> Path:
        return self.data / "hall-edge.toml"

    @property
    def daemon_log(self) -> Path:
        return self.data / "daemon.log"

    @property
    def admin_key(self) -> Path:
        return self.data / "admin.key"

    @property
    def card_key(self) -> Path:
        return self.data / "card.key"

    @property
    def platform_key(self) -> Path:
        """The fake central's snapshot signing key: the daemon trusts its public half."""
        return self.data / "platform.key"


@dataclass(frozen=True)
class Ports:
    """The paths the daemon opens for each simulated device ("" = that peripheral is off)."""

    printer: str
    reader: str
    screen: str
    locks: str = ""  # the RS-485 lock board's port; "" = GPIO locks
    speaker: str = ""  # the simulated loudspeaker's socket (voice.socket); "" = no voice


def _write_private(path: Path, data: bytes) -> None:
    """A secret file the daemon accepts: created 0600, never readable by others."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _private_file(path: Path) -> bool:
    """An existing regular file that only its owner may read (what the daemon accepts)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    return path.is_file() and not info.st_mode & 0o077


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


def make_keys(paths: Paths) -> str:
    """The site card key and an Ed25519 key pair for signed commands; returns the public key.

    A data folder used again keeps its keys, so cached cards and a hall-admin set up
    for it still fit.
    """
    if not _private_file(paths.card_key):
        _write_private(paths.card_key, secrets.token_hex(32).encode() + b"\n")
    return ed25519_public_key(paths.admin_key)


def ed25519_public_key(path: Path) -> str:
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


def daemon_config(
    paths: Paths, host: str, port: int, public_key: str, ports: Ports, *, console_port: int = 0
) -> dict[str, dict[str, Any]]:
    """``hall-edge.toml`` for the simulated hall, as tables of keys (see ``render_toml``)."""
    return {
        "mqtt": {"host": host, "port": port, "tls": False, "keepalive": 15},
        "storage": {"dir": str(paths.data / "state")},
        "time": {"clock": "synced"},
        "logging": {"level": "info"},
        "display": {
            "enabled": True,
            "device": "dummy",
            "frame_mirror": ports.screen,
            "open_from": "00:00",  # same as open_until: on all day, whenever someone tries the demo
            "open_until": "00:00",
        },
        "printer": {"enabled": bool(ports.printer), "port": ports.printer},
        "queue": {
            "enabled": True,
            "priority_pin": PRIORITY_PIN,
            "categories": [{"code": c, "name": n, "pin": p} for c, n, p in CATEGORIES],
            "windows": WINDOWS,
        },
        "buzzer": {"enabled": True, "pin": BUZZER_PIN},
        "rfid": {
            "enabled": bool(ports.reader),
            "reader": "rdm6300",
            "port": ports.reader,
            "card_key_file": str(paths.card_key),
            "card_key_id": CARD_KEY_ID,
        },
        "locker": {
            "enabled": bool(ports.reader),
            "locks": "rs485" if ports.locks else "gpio",
            "rs485_port": ports.locks or "/dev/hall-locks",
            "unlock_timeout_s": UNLOCK_TIMEOUT_S,
            "compartments": compartments(bool(ports.locks)),
        },
        "snapshots": {"public_keys": {PLATFORM_KID: ed25519_public_key(paths.platform_key)}},
        "commands": {"public_keys": {ADMIN_KID: public_key}},
        "voice": {
            "enabled": bool(ports.speaker),
            "socket": ports.speaker,
            "volume": [{"at": "00:00", "percent": 80}],  # all day, like the screen
        },
        "console": {
            "enabled": bool(console_port),
            "listen": ["127.0.0.1"],
            "port": console_port or 8443,
            "plain_http": ["127.0.0.1"],  # loopback only: the demo is one machine
        },
    }


def sim_document(
    paths: Paths, *, broker: str, state: str, daemon_pid: int | None, ports: Ports, central: bool,
    console_port: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """``DIR/sim.json``: what a script needs to drive the simulation."""
    return {
        "state": state,
        "broker": broker,
        "site": SITE,
        "device": DEVICE,
        "config": str(paths.config),
        "data": str(paths.data),
        "control": paths.sock("control.sock"),
        "pins": paths.sock("pins.sock"),
        "pid": os.getpid(),
        "daemon_pid": daemon_pid,
        "daemon_log": str(paths.daemon_log),
        "printer": ports.printer or None,
        "rfid": {"kind": "rdm6300", "port": ports.reader} if ports.reader else None,
        "screen": ports.screen or None,
        "speaker": str(paths.data / "speaker") if ports.speaker else None,
        "central": central,
        "admin_key": str(paths.admin_key),
        "admin_kid": ADMIN_KID,
        "card_key": str(paths.card_key),
        "card_key_id": CARD_KEY_ID,
        "cards": CARDS,
        "wiring": {
            "categories": {code: pin for code, _name, pin in CATEGORIES},
            "priority_pin": PRIORITY_PIN,
            "buzzer_pin": BUZZER_PIN,
            "windows": WINDOWS,
            "compartments": compartments(bool(ports.locks)),
        },
        "locks": {"kind": "rs485", "port": ports.locks} if ports.locks else "gpio",
        "console": console_document(console_port),
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Atomically, so a script never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def publish_samples(central: Central) -> None:
    """Something to see at once: verified jobs, a notice, and the sample cards (not the stranger)."""
    now = datetime.now(HALL_ZONE)
    central.publish_cards([dict(card) for name, card in CARDS.items() if name != "stranger"])
    week = {
        "starts_at": now.isoformat(timespec="seconds"),
        "ends_at": (now + timedelta(days=7)).isoformat(timespec="seconds"),
    }
    central.publish_notices(
        [
            {"id": "N-sim-1", "text": "本周四下午三点 家政技能免费培训", **week},
            {"id": "N-sim-2", "text": "冬季用工专场招聘会12月3日上午9:00在本大厅举行", **week},
            {"id": "N-sim-3", "text": "请勿相信“先交费后上岗”的招聘信息 遇到欠薪请拨12333", **week},
        ]
    )
    central.generate_jobs(6)
