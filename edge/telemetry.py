"""Telemetry: the controller's health figures, published every ``mqtt.telemetry_interval_s`` (QoS 0).

Each reading is best effort: a figure the system cannot give is ``null``,
never a crash (a Raspberry Pi has a thermal zone, a container may not).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge.health.feature import disk_free_mb, read_cpu_temp_c
from edge.protocol import TELEMETRY_SCHEMA

MEMINFO = Path("/proc/meminfo")


def load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def mem_used_mb(path: Path = MEMINFO) -> int | None:
    """MemTotal - MemAvailable, the figure `free` shows as used."""
    try:
        fields = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
        total_kb = int(fields["MemTotal"].split()[0])
        available_kb = int(fields["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError, IndexError):
        return None
    return (total_kb - available_kb) // 1024


def reading(
    *, device: str, at: str, uptime_s: float, storage_dir: str, outbox_depth: int, reconnects: int, clock: str
) -> dict[str, Any]:
    """One ``lgsc.telemetry/1`` payload."""
    return {
        "schema": TELEMETRY_SCHEMA,
        "device": device,
        "at": at,
        "uptime_s": int(uptime_s),
        "cpu_temp_c": read_cpu_temp_c(),
        "load1": load1(),
        "mem_used_mb": mem_used_mb(),
        "disk_free_mb": _whole(disk_free_mb(storage_dir)),
        "outbox_depth": outbox_depth,
        "mqtt_reconnects": reconnects,
        "clock": clock,
    }


def _whole(mb: float | None) -> int | None:
    return None if mb is None else int(mb)
