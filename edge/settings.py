"""The validated configuration as frozen, typed objects: ``cfg.mqtt.port`` is an ``int``.

``edge.config.SCHEMA`` stays the one place that says what a key is (type,
default, doc, check) and validates the file; the classes here only give the
validated values their types, one class per table and one per array-of-tables
item (a tuple of those).  They carry no defaults: the schema's are the only
ones.  ``tests/test_settings.py`` checks that the classes and the schema have
the same keys in the same order with the same types, so adding a key to the
schema without adding its field here fails a test.

``from_dict`` builds the objects from the validator's plain tables;
``to_dict`` turns them back into plain tables (``config.get``, the
comparison of two files in ``config.set``).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from edge.records import record


@record
class MqttSettings:
    host: str
    port: int
    tls: bool
    ca_file: str
    cert_file: str
    key_file: str
    username: str
    password_file: str
    keepalive: int
    protocol: str
    session_expiry_s: int
    reconnect_cap_s: float
    max_inflight: int
    flush_rate_per_s: float
    retry_no_subscribers: bool
    max_payload_bytes: int
    telemetry_interval_s: float


@record
class StorageSettings:
    dir: str
    outbox_max_events: int
    outbox_max_bytes: int
    disk_low_mb: int
    reserve_mb: int


@record
class TimeSettings:
    zone: str
    clock: str


@record
class LoggingSettings:
    level: str


@record
class HotlinesSettings:
    service: str
    complaint: str


@record
class DisplaySettings:
    enabled: bool
    device: str
    width: int
    height: int
    mode: str
    spi_port: int
    spi_device: int
    spi_speed_hz: int
    cascaded: int
    block_orientation: int
    rotate: int
    blocks_arranged_in_reverse_order: bool
    font: str
    font_size: int
    small_font: str
    small_font_size: int
    brightness: int
    night_brightness: int
    night_from: str
    night_until: str
    open_from: str
    open_until: str
    page_seconds: float
    part_seconds: float
    scroll_px_per_s: float
    hotline_every_pages: int
    stale_after_minutes: int
    reinit_minutes: int
    frame_mirror: str


@record
class PrinterSettings:
    enabled: bool
    transport: str
    port: str
    baudrate: int
    paper_mm: int
    cut: str
    status_poll_s: float
    status_timeout_s: float
    status_queries: bool
    qr_url: str


WINDOW_ACTIONS = ("call", "recall", "skip", "finish", "pause", "hold", "bring_back", "transfer")
RATE_KEYS = ("rate5", "rate4", "rate3", "rate2", "rate1")  # 非常满意 满意 基本满意 不满意 非常不满意
"""The window caller's keys and its rating keypad's, each ``<action>_pin`` in ``[[queue.windows]]``."""


@record
class CategorySettings:
    """One ``[[queue.categories]]``: a service and its ticket key."""

    code: str
    name: str
    pin: int


@record
class WindowSettings:
    """One ``[[queue.windows]]``: a service window and its three keys."""

    number: int
    call_pin: int
    recall_pin: int
    skip_pin: int
    finish_pin: int
    pause_pin: int
    hold_pin: int
    bring_back_pin: int
    transfer_pin: int
    transfer_to: str
    serves: tuple[str, ...]
    rate5_pin: int
    rate4_pin: int
    rate3_pin: int
    rate2_pin: int
    rate1_pin: int

    def key_pins(self) -> dict[str, int]:
        """The window's connected keys: action ("call", "bring_back", "rate5", ...) -> BCM pin."""
        pins = {action: getattr(self, f"{action}_pin") for action in (*WINDOW_ACTIONS, *RATE_KEYS)}
        return {key: pin for key, pin in pins.items() if pin >= 0}


@record
class QueueSettings:
    enabled: bool
    reset_at: str
    recall_max: int
    priority_max_in_row: int
    priority_pin: int
    bounce_ms: int
    stuck_after_s: float
    call_seconds: float
    service_s_default: float
    rating_s: float
    closing_at: str
    wait_text: str
    void_text: str
    categories: tuple[CategorySettings, ...]
    windows: tuple[WindowSettings, ...]


@record
class BuzzerSettings:
    enabled: bool
    pin: int


@record
class RfidSettings:
    enabled: bool
    reader: str
    port: str
    baudrate: int
    card_key_file: str
    card_key_id: str
    poll_ms: int
    same_card_s: float


@record
class CompartmentSettings:
    """One ``[[locker.compartments]]``: its tool, lock, door switch and optional button."""

    number: int
    tool_id: str
    tool_type: str
    lock_pin: int
    door_pin: int
    select_pin: int
    board: int
    lock: int


@record
class LockerSettings:
    enabled: bool
    locks: str
    rs485_port: str
    rs485_baudrate: int
    rs485_poll_s: float
    rs485_open_bit: int
    lock_pulse_s: float
    unlock_timeout_s: float
    door_open_alarm_s: float
    loan_hours: float
    select_s: float
    approval_required: tuple[str, ...]
    compartments: tuple[CompartmentSettings, ...]


@record
class SnapshotsSettings:
    public_keys: Mapping[str, str]
    unsigned: str


@record
class CommandsSettings:
    public_keys: Mapping[str, str]
    max_body_bytes: int
    apply_deadline_s: float


@record
class ReleasesSettings:
    public_keys: Mapping[str, str]


@record
class HealthSettings:
    overheat_c: float
    check_interval_s: float


@record
class VolumeSettings:
    """One ``[[voice.volume]]``: the speaker's volume from a time of day until the next one."""

    at: str
    percent: int


@record
class VoiceSettings:
    enabled: bool
    repeat: int
    queue_max: int
    clips_dir: str
    alsa_device: str
    socket: str
    volume: tuple[VolumeSettings, ...]


@record
class ConsoleSettings:
    enabled: bool
    listen: tuple[str, ...]
    port: int
    tls_cert_file: str
    tls_key_file: str
    plain_http: tuple[str, ...]
    closing_at: str


@record
class UpdateSettings:
    root: str
    allow_http_hosts: tuple[str, ...]
    ca_file: str
    timeout_s: float
    ready_within_s: float
    health_deadline_s: float


@record
class Settings:
    """The whole configuration file (``edge.config.load``)."""

    site: str
    device: str
    hall_name: str
    mqtt: MqttSettings
    storage: StorageSettings
    time: TimeSettings
    logging: LoggingSettings
    hotlines: HotlinesSettings
    display: DisplaySettings
    printer: PrinterSettings
    queue: QueueSettings
    buzzer: BuzzerSettings
    rfid: RfidSettings
    locker: LockerSettings
    snapshots: SnapshotsSettings
    commands: CommandsSettings
    releases: ReleasesSettings
    health: HealthSettings
    voice: VoiceSettings
    console: ConsoleSettings
    update: UpdateSettings


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


T = TypeVar("T", bound=_Dataclass)


def from_dict(cls: type[T], table: Mapping[str, Any]) -> T:
    """``cls`` from a validated table: sub-tables become their classes, lists become tuples."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _typed(hints[f.name], table[f.name]) for f in fields(cls)})


def _typed(hint: Any, value: Any) -> Any:
    if isinstance(hint, type) and is_dataclass(hint):
        return from_dict(hint, value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_typed(item, v) for v in value)
    if origin is Mapping:
        return dict(value)  # a copy: nobody else holds the table the settings read
    return value


def to_dict(settings: _Dataclass) -> dict[str, Any]:
    """Plain tables (dicts, lists, scalars) as the validator gives them, e.g. for JSON or TOML."""
    return {f.name: _plain(getattr(settings, f.name)) for f in fields(settings)}


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value
