"""The controller's configuration file: its schema, loading and errors.

Every key, its type and default lives in ``SCHEMA``; the commented example
``firmware_config/hall-edge.example.toml`` shows all of them (a test keeps the
two in step).  ``load`` returns the validated, typed ``edge.settings.Settings``
or raises ``ConfigError`` carrying every problem at once.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.protocol import secret_file_problem
from edge.schema import (
    Key,
    TableList,
    between,
    hhmm_check,
    lookup,
    name_check,
    one_of,
    pin_check,
    port_check,
    secret_paths,
    validate,
)
from edge.settings import Settings, from_dict, to_dict
from edge.wiring import conflicts


class ConfigError(ValueError):
    """A configuration that cannot be used; ``errors`` lists every problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: " + "; ".join(errors))

    def report(self) -> str:
        lines = [f"{self.source}: {len(self.errors)} problem(s):"]
        lines += [f"  - {e}" for e in self.errors]
        return "\n".join(lines)


def _zone_check(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "a time zone name such as 'Asia/Shanghai'"
    return None


def _host_check(value: str) -> str | None:
    """A name or an address for the socket: not a URL, not host:port (a common copy-paste)."""
    if value and not any(c.isspace() for c in value) and "/" not in value:
        if ":" not in value:
            return None
        try:
            ipaddress.IPv6Address(value)
            return None
        except ValueError:
            pass
    return "a host name or IP address (no mqtt://, no :port: the port is mqtt.port)"


def _category_code(value: str) -> str | None:
    return None if len(value) == 1 and "A" <= value <= "Z" else "one capital letter A-Z"


def _code_or_none(value: str) -> str | None:
    return None if value == "" else _category_code(value)


def _public_keys_check(value: dict) -> str | None:
    """Each kid names a base64 raw 32-byte Ed25519 public key (kids are TOML bare keys)."""
    for kid, key in value.items():
        try:
            raw = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
        except binascii.Error:
            raw = b""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", kid) or len(raw) != 32:
            return f"a table of kid = base64 raw 32-byte Ed25519 public key ({kid!r} is not)"
    return None


QR_URL_MAX_BYTES = 300  # a longer code gets too dense to scan on 58 mm paper


def _qr_url_check(value: str) -> str | None:
    if len(value.encode()) > QR_URL_MAX_BYTES:
        return f"a URL of at most {QR_URL_MAX_BYTES} bytes (the QR code must stay scannable)"
    return None


PIN = Key(int, -1, "BCM GPIO number, -1 = not connected", check=pin_check)


def _pin(doc: str) -> Key:
    return Key(int, -1, doc, check=pin_check)


SCHEMA: dict[str, Any] = {
    "site": Key(str, "qinshui", "market name, as in the MQTT topics", check=name_check),
    "device": Key(str, "hall-01", "this controller within the site", check=name_check),
    "hall_name": Key(str, "公益性零工市场", "printed on tickets, shown on the screen"),
    "mqtt": {
        "host": Key(str, "localhost", "central platform broker", check=_host_check),
        "port": Key(int, 8883, check=port_check),
        "tls": Key(bool, True, "plain TCP only when set to false explicitly"),
        "ca_file": Key(
            str,
            "/etc/ssl/certs",
            "CA certificate(s) that signed the broker's: a file, or a folder named by hash (read as needed)",
        ),
        "cert_file": Key(str, "", "client certificate (or use username + password_file)"),
        "key_file": Key(str, "", "client private key", secret_file=True),
        "username": Key(str, ""),
        "password_file": Key(str, "", "file holding the broker password", secret_file=True),
        "keepalive": Key(int, 60, check=between(5, 3600, "seconds")),
        "protocol": Key(str, "mqttv5", check=one_of("mqttv5", "mqttv311")),
        "session_expiry_s": Key(int, 172800, check=between(86400, 4294967295, "seconds, >= 1 day")),
        "reconnect_cap_s": Key(float, 60.0, check=between(1, 3600, "seconds")),
        "max_inflight": Key(int, 100, check=between(1, 65535, "messages")),
        "flush_rate_per_s": Key(
            float,
            100.0,
            "most events a second sent from a backlog (0: no limit); a province's halls back together",
            check=between(0, 1000000, "events a second"),
        ),
        "retry_no_subscribers": Key(
            bool,
            True,
            "keep an event the broker had no subscriber for (PUBACK 0x10) and send it again later",
        ),
        "max_payload_bytes": Key(int, 262144, check=between(1024, 16777216, "bytes")),
        "telemetry_interval_s": Key(float, 60.0, check=between(1, 86400, "seconds")),
    },
    "storage": {
        "dir": Key(str, "/var/lib/hall-edge", "SQLite database and caches"),
        "outbox_max_events": Key(int, 200000, check=between(100, 100_000_000, "events")),
        "outbox_max_bytes": Key(int, 100 * 1024 * 1024, check=between(65536, 2**40, "bytes")),
        "disk_low_mb": Key(int, 200, check=between(1, 1_000_000, "MiB")),
        "reserve_mb": Key(
            int, 16, "held back for the records when the disk fills; 0 = none", check=between(0, 1024, "MiB")
        ),
    },
    "time": {
        "zone": Key(str, "Asia/Shanghai", check=_zone_check),
        "clock": Key(
            str,
            "auto",
            "auto = ask the kernel whether NTP synced; synced/unsynced override (simulator)",
            check=one_of("auto", "synced", "unsynced"),
        ),
    },
    "logging": {
        "level": Key(str, "info", check=one_of("debug", "info", "warning", "error")),
    },
    "hotlines": {
        "service": Key(str, "12333", "service hotline, shown on tickets and the screen"),
        "complaint": Key(str, "12345", "complaint line, shown on tickets and the screen"),
    },
    "display": {
        "enabled": Key(bool, True),
        "device": Key(str, "max7219", check=one_of("max7219", "dummy")),
        "width": Key(int, 128, check=between(8, 4096, "pixels")),
        "height": Key(int, 32, check=between(8, 4096, "pixels")),
        "mode": Key(str, "1", "Pillow mode: 1 (monochrome) or RGB", check=one_of("1", "RGB")),
        "spi_port": Key(int, 0, check=between(0, 6, "an SPI port")),
        "spi_device": Key(int, 0, check=between(0, 3, "an SPI chip select")),
        "spi_speed_hz": Key(
            int,
            8_000_000,
            "MAX7219 limit 10 MHz",
            check=one_of(500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000),
        ),
        "cascaded": Key(int, 0, "number of 8x8 blocks; 0 = width*height/64"),
        "block_orientation": Key(int, 0, check=one_of(0, 90, -90, 180)),
        "rotate": Key(int, 0, check=one_of(0, 1, 2, 3)),
        "blocks_arranged_in_reverse_order": Key(bool, False),
        "font": Key(
            str,
            "/usr/share/fonts/opentype/unifont/unifont.otf",
            "GNU Unifont, 16 px; 12-px panels: /usr/share/fonts/X11/misc/wenquanyi_9pt.pcf, size 12",
        ),
        "font_size": Key(int, 16, "a bitmap font has one pixel size", check=between(8, 64, "pixels")),
        "small_font": Key(
            str,
            "/usr/share/fonts/X11/misc/wenquanyi_9pt.pcf",
            "the 更新于 marker (WenQuanYi 12 px); '' = font",
        ),
        "small_font_size": Key(int, 12, check=between(6, 64, "pixels")),
        "brightness": Key(int, 160, "day contrast 0-255", check=between(0, 255, "a level")),
        "night_brightness": Key(int, 40, check=between(0, 255, "a level")),
        "night_from": Key(str, "19:00", check=hhmm_check),
        "night_until": Key(str, "07:00", check=hhmm_check),
        "open_from": Key(str, "07:00", "screen on from (hall local time)", check=hhmm_check),
        "open_until": Key(str, "21:00", "screen off from", check=hhmm_check),
        "page_seconds": Key(float, 6.0, check=between(1, 120, "seconds")),
        "part_seconds": Key(
            float,
            3.0,
            "a job that needs more than one still page shows each part this long (read at a walking pace)",
            check=between(1, 30, "seconds"),
        ),
        "scroll_px_per_s": Key(float, 32.0, check=between(4, 512, "pixels per second")),
        "hotline_every_pages": Key(int, 5, check=between(1, 100, "pages")),
        "stale_after_minutes": Key(int, 30, check=between(1, 10080, "minutes")),
        "reinit_minutes": Key(
            int,
            5,
            "re-send the MAX7219 init sequence this often (noise garbles long chains); 0 = never",
            check=between(0, 1440, "minutes"),
        ),
        "frame_mirror": Key(str, "", "simulator only: unix datagram socket that receives each frame"),
    },
    "printer": {
        "enabled": Key(bool, True),
        "transport": Key(str, "serial", check=one_of("serial", "usblp")),
        "port": Key(str, "/dev/hall-printer", "serial device or /dev/usb/lp0"),
        "baudrate": Key(int, 9600, check=one_of(9600, 19200, 38400, 57600, 115200)),
        "paper_mm": Key(int, 58, check=one_of(58, 80)),
        "cut": Key(str, "partial", check=one_of("partial", "full", "none")),
        "status_poll_s": Key(float, 2.0, check=between(0.2, 60, "seconds")),
        "status_timeout_s": Key(float, 0.5, check=between(0.05, 10, "seconds")),
        "status_queries": Key(
            bool, True, "ask DLE EOT status; false for a printer that never answers (state from writes only)"
        ),
        "qr_url": Key(
            str,
            "https://example.gov.cn/lgsc/rate",
            "QR code on tickets; empty = none",
            check=_qr_url_check,
        ),
    },
    "queue": {
        "enabled": Key(bool, True),
        "reset_at": Key(str, "00:00", "daily number reset, hall local time", check=hhmm_check),
        "recall_max": Key(int, 5, check=between(1, 50, "recalls")),
        "priority_max_in_row": Key(int, 3, "then one normal ticket", check=between(1, 100, "calls")),
        "priority_pin": _pin("priority key"),
        "bounce_ms": Key(int, 50, check=between(0, 1000, "milliseconds")),
        "stuck_after_s": Key(
            float, 60.0, "alarm when a key is held this long", check=between(1, 3600, "seconds")
        ),
        "call_seconds": Key(float, 8.0, "a called ticket holds the screen", check=between(1, 120, "seconds")),
        "service_s_default": Key(
            float,
            180.0,
            "service time per worker for the wait estimate until today's calls give one",
            check=between(10, 3600, "seconds"),
        ),
        "rating_s": Key(
            float,
            30.0,
            "after a finish the window's rating keys (好差评) wait this long; then the ticket stays unrated",
            check=between(3, 600, "seconds"),
        ),
        "closing_at": Key(
            str, "18:00", "the daily report (report.daily) is made at this hall local time", check=hhmm_check
        ),
        "wait_text": Key(str, "请在休息区等候 注意呼叫及大屏显示信息"),
        "void_text": Key(str, "过号无效 请重新取号"),
        "categories": TableList(
            {
                "code": Key(str, "A", check=_category_code),
                "name": Key(str, "求职登记"),
                "pin": PIN,
            },
            default=[
                {"code": "A", "name": "求职登记", "pin": 5},
                {"code": "B", "name": "招聘登记", "pin": 6},
                {"code": "C", "name": "政策咨询", "pin": 13},
                {"code": "D", "name": "维权服务", "pin": 19},
                {"code": "E", "name": "技能培训", "pin": 26},
            ],
        ),
        "windows": TableList(
            {
                "number": Key(int, 1, check=between(1, 99, "a window number")),
                "call_pin": PIN,
                "recall_pin": PIN,
                "skip_pin": PIN,
                "finish_pin": PIN,
                "pause_pin": _pin("暂停/恢复: pauses the window; pressed again, resumes it"),
                "hold_pin": PIN,
                "bring_back_pin": PIN,
                "transfer_pin": PIN,
                "transfer_to": Key(
                    str,
                    "",
                    "the category code the transfer key sends the current ticket to",
                    check=_code_or_none,
                ),
                "serves": Key(list, [], "category codes this window calls; [] = every category"),
                "rate5_pin": _pin("rating keypad (好差评): 非常满意"),
                "rate4_pin": _pin("rating keypad: 满意"),
                "rate3_pin": _pin("rating keypad: 基本满意"),
                "rate2_pin": _pin("rating keypad: 不满意"),
                "rate1_pin": _pin("rating keypad: 非常不满意"),
            },
            default=[{"number": 1, "call_pin": 16, "recall_pin": 20, "skip_pin": 21}],
        ),
    },
    "buzzer": {
        "enabled": Key(bool, False),
        "pin": _pin("active buzzer"),
    },
    "rfid": {
        "enabled": Key(bool, False, "the locker's card reader"),
        "reader": Key(str, "rdm6300", check=one_of("rdm6300", "pn532")),
        "port": Key(str, "/dev/hall-rfid"),
        "baudrate": Key(int, 0, "0 = the reader's own (9600 RDM6300, 115200 PN532)"),
        "card_key_file": Key(str, "/etc/hall-edge/card.key", "site card key (HMAC)", secret_file=True),
        "card_key_id": Key(
            str, "", "the platform's id for that key: the cards snapshot's hash.key_id (empty = not checked)"
        ),
        "poll_ms": Key(int, 150, "PN532 polling interval", check=between(20, 5000, "milliseconds")),
        "same_card_s": Key(float, 1.0, "a held card is one tap", check=between(0.1, 10, "seconds")),
    },
    "locker": {
        "enabled": Key(bool, False, "the tool locker (needs rfid)"),
        "locks": Key(str, "gpio", check=one_of("gpio", "rs485")),
        "rs485_port": Key(str, "/dev/hall-locks"),
        "rs485_baudrate": Key(int, 19200),
        "rs485_poll_s": Key(float, 0.2, "board status poll", check=between(0.02, 10, "seconds")),
        "rs485_open_bit": Key(
            int, 1, "status bit value meaning door open (board revisions differ)", check=one_of(0, 1)
        ),
        "lock_pulse_s": Key(float, 0.5, check=between(0.05, 30, "seconds")),
        "unlock_timeout_s": Key(
            float, 30.0, "relock if the door never opens", check=between(0.5, 600, "seconds")
        ),
        "door_open_alarm_s": Key(float, 120.0, check=between(0.5, 86400, "seconds")),
        "loan_hours": Key(float, 72.0, "overdue after", check=between(0.0001, 8760, "hours")),
        "select_s": Key(
            float, 15.0, "a compartment button waits this long for a card", check=between(1, 300, "seconds")
        ),
        "approval_required": Key(list, ["drill"], "tool types that need prior approval (先批后租)"),
        "compartments": TableList(
            {
                "number": Key(int, 1, check=between(1, 256, "a compartment number")),
                "tool_id": Key(str, "T-hammer-01"),
                "tool_type": Key(str, "hammer"),
                "lock_pin": PIN,
                "door_pin": PIN,
                "select_pin": _pin("optional button at the compartment"),
                "board": Key(int, 0, "RS-485 board address", check=between(0, 15, "a board")),
                "lock": Key(int, 1, "RS-485 lock number", check=between(1, 16, "a lock")),
            },
            default=[
                {
                    "number": 1,
                    "tool_id": "T-hammer-01",
                    "tool_type": "hammer",
                    "lock_pin": 17,
                    "door_pin": 27,
                },
                {
                    "number": 2,
                    "tool_id": "T-shovel-01",
                    "tool_type": "shovel",
                    "lock_pin": 22,
                    "door_pin": 23,
                },
                {
                    "number": 3,
                    "tool_id": "T-drill-01",
                    "tool_type": "drill",
                    "lock_pin": 24,
                    "door_pin": 25,
                },
            ],
        ),
    },
    "snapshots": {
        "public_keys": Key(
            dict,
            {},
            "kid = base64 Ed25519 public key (raw 32 bytes) of the platform that signs the snapshots",
            check=_public_keys_check,
        ),
        "unsigned": Key(
            str,
            "refuse",
            "refuse = only signed snapshots count; accept = unsigned too (a platform that does not sign)",
            check=one_of("refuse", "accept"),
        ),
    },
    "commands": {
        "public_keys": Key(
            dict,
            {},
            "kid = base64 Ed25519 public key (raw 32 bytes), from hall-admin keygen",
            check=_public_keys_check,
        ),
        "max_body_bytes": Key(int, 65536, check=between(256, 1048576, "bytes")),
        "apply_deadline_s": Key(
            float,
            120.0,
            "config.set: roll back unless online and healthy this soon after the restart",
            check=between(2, 3600, "seconds"),
        ),
    },
    "releases": {
        "public_keys": Key(
            dict,
            {},
            "kid = base64 Ed25519 public key of a release key (hall-admin keygen --release): the"
            " signer of update bundles; never a command key (docs/releases.md)",
            check=_public_keys_check,
        ),
    },
    "health": {
        "overheat_c": Key(float, 80.0, check=between(40, 110, "degrees C")),
        "check_interval_s": Key(float, 60.0, check=between(1, 3600, "seconds")),
    },
    "voice": {
        "enabled": Key(bool, False, "say each call through the speaker (docs/voice.md)"),
        "repeat": Key(int, 2, "times each call is said", check=between(1, 5, "times")),
        "queue_max": Key(
            int,
            50,
            "waiting announcements; then the oldest drops",
            check=between(1, 1000, "announcements"),
        ),
        "clips_dir": Key(str, "", "recorded clips (same file names) over espeak-ng's voice; '' = none"),
        "alsa_device": Key(str, "default", "ALSA device for aplay -D (aplay -L lists them)"),
        "socket": Key(str, "", "simulator only: play into the simulator's speaker on this unix socket"),
        "volume": TableList(
            {
                "at": Key(str, "07:00", "from this time of day (hall local time)", check=hhmm_check),
                "percent": Key(int, 80, "0 = silent (closed)", check=between(0, 100, "percent")),
            },
            default=[
                {"at": "07:00", "percent": 80},
                {"at": "12:00", "percent": 60},
                {"at": "14:00", "percent": 80},
                {"at": "21:00", "percent": 0},
            ],
            doc="volume by time of day, each until the next; none = 100 % all day",
        ),
    },
    "console": {
        "enabled": Key(bool, False, "the staff console: web pages for windows and locker (docs/console.md)"),
        "listen": Key(list, [], "IP addresses of this controller to listen on (the hall LAN's), none = off"),
        "port": Key(int, 8443, check=port_check),
        "tls_cert_file": Key(str, "", "PEM certificate (docs/console.md makes one); '' = plain HTTP"),
        "tls_key_file": Key(str, "", "its private key", secret_file=True),
        "plain_http": Key(list, [], "listen addresses allowed without TLS: explicit LAN addresses only"),
        "closing_at": Key(str, "", "sessions end at this hall time; '' = queue.closing_at"),
    },
    "update": {
        "root": Key(str, "/opt/hall-edge", "the releases' folder: releases/VERSION, current, previous"),
        "allow_http_hosts": Key(
            list, [], "LAN mirrors that may serve bundles over plain HTTP (the signature still counts)"
        ),
        "ca_file": Key(str, "", "CA for the bundle server's certificate; '' = the system's CAs"),
        "timeout_s": Key(
            float, 30.0, "bundle download: connect and each read", check=between(1, 600, "seconds")
        ),
        "ready_within_s": Key(
            float,
            90.0,
            "after the switch: the new release must be READY this soon",
            check=between(5, 3600, "seconds"),
        ),
        "health_deadline_s": Key(
            float,
            180.0,
            "after the switch: roll back unless online, draining and healthy this soon",
            check=between(5, 3600, "seconds"),
        ),
    },
}


def parse(text: str, source: str = "<config>") -> Settings:
    """Validate TOML text; raises ConfigError listing every problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return validated(doc, source)


def validated(doc: dict[str, Any], source: str) -> Settings:
    """Validate a parsed TOML document; raises ConfigError listing every problem."""
    tables, errors = validate(doc, SCHEMA)
    settings = from_dict(Settings, tables)
    errors += _cross_checks(settings)
    if errors:
        raise ConfigError(source, errors)
    return settings


def load(path: str | Path) -> Settings:
    """Read and validate the configuration in force: the file, with the remote changes over it."""
    from edge.layers import Layers  # it builds on this module

    return Layers.read(path).settings()


def _cross_checks(cfg: Settings) -> list[str]:
    """Rules that span several keys."""
    errors: list[str] = []
    mqtt = cfg.mqtt
    if mqtt.tls and not mqtt.ca_file:
        errors.append("mqtt.ca_file: '' is not set; TLS needs a CA file (or set mqtt.tls = false)")
    if mqtt.username and not mqtt.password_file:
        errors.append("mqtt.password_file: '' is not set; username needs a password file")
    if bool(mqtt.cert_file) != bool(mqtt.key_file):
        errors.append("mqtt.key_file: a client certificate needs both cert_file and key_file")
    errors += _unique(cfg.queue.categories, "code", "queue.categories")
    errors += _unique(cfg.queue.windows, "number", "queue.windows")
    errors += _window_categories(cfg)
    errors += _unique(cfg.locker.compartments, "number", "locker.compartments")
    errors += _unique(cfg.locker.compartments, "tool_id", "locker.compartments")
    errors += conflicts(cfg)  # a pin or port wired twice (edge.wiring: the one list)
    errors += _secret_file_problems(cfg)
    errors += _console_listen(cfg)
    if cfg.locker.enabled and not cfg.rfid.enabled:
        errors.append("locker.enabled: true is not possible with rfid.enabled = false (cards open it)")
    if cfg.rfid.enabled and not cfg.rfid.card_key_file:
        errors.append("rfid.card_key_file: '' is not set; the reader needs the site card key")
    for kid, key in cfg.commands.public_keys.items():
        if not isinstance(key, str):
            errors.append(f"commands.public_keys.{kid}: {key!r} is not a base64 string")
    return errors


def placeholder_problems(cfg: Settings) -> list[str]:
    """What still holds the example's placeholders (the schema's defaults): a valid file that
    cannot work in a hall.  ``check-config`` fails on them (the installer only warns: it runs
    before the operator edits the file); parse and load accept them, as tests and the demo do."""
    problems = []
    site, device = SCHEMA["site"].default, SCHEMA["device"].default
    if (cfg.site, cfg.device) == (site, device):
        problems.append(
            f"site, device: '{site}/{device}' is the example's placeholder; set this controller's"
            " names as the platform knows them (its MQTT topics are lgsc/v1/SITE/DEVICE)"
        )
    if cfg.mqtt.host == SCHEMA["mqtt"]["host"].default:
        problems.append(
            f"mqtt.host: {cfg.mqtt.host!r} is the example's placeholder (no broker runs on the"
            " controller); set the platform broker's host name or address"
        )
    if not cfg.commands.public_keys:
        problems.append(
            "commands.public_keys: none is set, so no signed command (status, config.set, update)"
            " is accepted; add bureau IT's key: kid = public key, from `hall-admin keygen`"
        )
    return problems


def _secret_file_problems(cfg: Settings) -> list[str]:
    """Secret files of enabled features must exist and be private to this user."""
    errors = []
    tables = to_dict(cfg)
    for dotted in secret_paths(SCHEMA, files_only=True):
        section = lookup(tables, dotted.rsplit(".", 1)[0]) if "." in dotted else tables
        path = lookup(tables, dotted)
        if not path or not section.get("enabled", True):
            continue
        problem = secret_file_problem(path)
        if problem:
            errors.append(f"{dotted}: secret file {path} {problem}")
    return errors


def _unique(items: Sequence[object], field: str, where: str) -> list[str]:
    seen: dict[object, int] = {}
    errors = []
    for index, item in enumerate(items):
        value = getattr(item, field)
        if value in seen:
            errors.append(f"{where}[{index}].{field}: {value!r} is not unique (also {where}[{seen[value]}])")
        seen.setdefault(value, index)
    return errors


def _window_categories(cfg: Settings) -> list[str]:
    """A window's transfer target and the categories it serves must be this hall's categories."""
    codes = {c.code for c in cfg.queue.categories}
    known = ", ".join(sorted(codes))
    errors = []
    for i, w in enumerate(cfg.queue.windows):
        if w.transfer_to and w.transfer_to not in codes:
            errors.append(f"queue.windows[{i}].transfer_to: {w.transfer_to!r} is not a category ({known})")
        for code in w.serves:
            if code not in codes:
                errors.append(f"queue.windows[{i}].serves: {code!r} is not a category ({known})")
    return errors


def _console_listen(cfg: Settings) -> list[str]:
    """The console listens only on addresses named, each an IP literal; plain HTTP only on the
    addresses ``console.plain_http`` names (never a wildcard), else it needs a certificate."""
    console = cfg.console
    if not console.enabled:
        return []
    errors = []
    if not console.listen:
        errors.append("console.listen: name the hall LAN address(es) to listen on (e.g. 192.168.1.20)")
    tls = bool(console.tls_cert_file and console.tls_key_file)
    if bool(console.tls_cert_file) != bool(console.tls_key_file):
        errors.append("console.tls_cert_file and console.tls_key_file: give both or neither")
    for key, addresses in (("listen", console.listen), ("plain_http", console.plain_http)):
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                errors.append(f"console.{key}: {address!r} is not an IP address")
                continue
            if key == "plain_http" and ip.is_unspecified:
                errors.append(f"console.plain_http: {address!r} is every address, not one LAN address")
    if console.closing_at and hhmm_check(console.closing_at):
        errors.append(f"console.closing_at: {console.closing_at!r} is not a time of day HH:MM")
    if not tls:
        for address in console.listen:
            if address not in console.plain_http:
                errors.append(
                    f"console.listen: {address} has no TLS certificate: set console.tls_cert_file and"
                    f' tls_key_file, or allow plain HTTP there with console.plain_http = ["{address}"]'
                )
    return errors
