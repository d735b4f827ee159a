"""Hall local time and whether the system clock can be trusted.

A Raspberry Pi has no real-time clock: until NTP has synchronised, the wall
clock may be far off, and every event says so (``"clock": "unsynced"``).
"""

from __future__ import annotations

import ctypes
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from edge.libc import libc

_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised
_CACHE_S = 30.0


class _Timex(ctypes.Structure):
    # struct timex is 208 bytes on 64-bit Linux; only the return value matters here.
    _fields_ = [("modes", ctypes.c_int), ("_rest", ctypes.c_byte * 204)]


def kernel_clock_synced() -> bool:
    """The kernel's own answer (adjtimex), the same one timedatectl reports as NTPSynchronized."""
    try:
        state = libc().adjtimex(ctypes.byref(_Timex()))
    except (OSError, AttributeError):
        return False
    return 0 <= state < _TIME_ERROR


class Clock:
    """Wall time in the hall's zone plus the synced/unsynced verdict."""

    def __init__(self, zone: str = "Asia/Shanghai", mode: str = "auto") -> None:
        self.zone = ZoneInfo(zone)
        self.mode = mode
        self._verdict = "unsynced"
        self._checked = -_CACHE_S

    def now(self) -> datetime:
        return datetime.now(self.zone)

    def status(self) -> str:
        """'synced' or 'unsynced'."""
        if self.mode != "auto":
            return self.mode
        mono = time.monotonic()
        if mono - self._checked >= _CACHE_S:
            self._verdict = "synced" if kernel_clock_synced() else "unsynced"
            self._checked = mono
        return self._verdict


def rfc3339(moment: datetime) -> str:
    """2026-11-22T09:01:02.123+08:00"""
    return moment.isoformat(timespec="milliseconds")
