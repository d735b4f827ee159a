"""Health: CPU temperature and free disk space, raised and cleared as alarms.

Every ``health.check_interval_s`` the core thread reads the SoC temperature
(``/sys/class/thermal/thermal_zone0/temp``, millidegrees; a machine without
it simply has no reading) and the free space of the file system holding
``storage.dir``.  An incident is one ``alarm.overheat`` / ``alarm.disk_low``
event when it starts and one (``state: cleared``) when it ends, not one per
check.  Each alarm clears only with a margin (hysteresis), so a value that
hovers at the limit does not chatter.  Open incidents are kept in SQLite, so a
restart in the middle of one neither repeats nor forgets it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge.core import Core, Timer
from edge.diskspace import MIB, FreeBytes, free_bytes
from edge.settings import Settings
from edge.storage import DB_NAME

log = logging.getLogger(__name__)

THERMAL_ZONE = "/sys/class/thermal/thermal_zone0/temp"
OVERHEAT_CLEAR_MARGIN_C = 5.0  # cleared once 5 degrees below the limit
DISK_CLEAR_FACTOR = 1.1  # cleared once 10 % above the limit

MIGRATIONS = [
    """
    CREATE TABLE health_alarm (
        name TEXT PRIMARY KEY,   -- 'overheat' | 'disk_low'
        since TEXT NOT NULL      -- RFC 3339, when the incident was raised
    )
    """,
]


def read_cpu_temp_c(path: str = THERMAL_ZONE) -> float | None:
    """SoC temperature in degrees C, or None where there is no such sensor or it says nothing useful."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
        return round(int(text) / 1000.0, 1)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def disk_free_mb(path: str, probe: FreeBytes = free_bytes) -> float | None:
    """Free MiB on the file system holding ``path``, or None when it cannot be asked."""
    try:
        return round(probe(path) / (1024 * 1024), 1)
    except OSError:
        return None


class HealthFeature:
    name = "health"

    def __init__(
        self,
        config: Settings,
        thermal_path: str = THERMAL_ZONE,
        free_bytes_probe: FreeBytes = free_bytes,
    ) -> None:
        self.storage_dir = config.storage.dir
        self.overheat_c = config.health.overheat_c
        self.disk_low_mb = config.storage.disk_low_mb
        self.interval_s = config.health.check_interval_s
        self.thermal_path = thermal_path
        self.free_bytes_probe = free_bytes_probe
        self.core: Core  # set by start()
        self.timer: Timer | None = None
        self.cpu_temp_c: float | None = None
        self.disk_free_mb: float | None = None
        self.active: dict[str, str] = {}  # open incidents: name -> since

    def start(self, core: Core) -> None:
        self.core = core
        core.storage.migrate("health", MIGRATIONS)
        rows = core.storage.execute("SELECT name, since FROM health_alarm").fetchall()
        self.active = dict(rows)
        core.register_status("health", self.status)
        # A reserve released mid-write (the disk filled between checks): say so now, not at the next check.
        core.storage.reserve.on_release.append(lambda: core.call_soon(self.check))
        self.timer = core.every(self.interval_s, self.check, first_after=0.0)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def status(self) -> dict[str, Any]:
        return {
            "cpu_temp_c": self.cpu_temp_c,
            "disk_free_mb": self.disk_free_mb,
            "db_mb": self._db_mb(),
            "alarms": sorted(self.active),
            "disk_reserve": self._reserve_state(),
        }

    def _reserve_state(self) -> str:
        """held (the hall is safe), released (records go on in its space) or none (reserve_mb = 0)."""
        if self.core is None or not self.core.storage.reserve.size:
            return "none"
        return "held" if self.core.storage.reserve.held else "released"

    def check(self) -> None:
        """One reading of both sensors (core thread)."""
        self.cpu_temp_c = read_cpu_temp_c(self.thermal_path)
        self.disk_free_mb = disk_free_mb(self.storage_dir, self.free_bytes_probe)
        self._overheat(self.cpu_temp_c)
        self._disk_low(self.disk_free_mb)
        self._disk_full()

    def _overheat(self, temp: float | None) -> None:
        if temp is None:
            return  # no sensor (or an unreadable moment): neither raise nor clear on no news
        facts = {"cpu_temp_c": temp, "limit_c": self.overheat_c}
        if temp >= self.overheat_c:
            self._raise("overheat", facts)
        elif temp < self.overheat_c - OVERHEAT_CLEAR_MARGIN_C:
            self._clear("overheat", facts)

    def _disk_low(self, free_mb: float | None) -> None:
        if free_mb is None:
            return
        facts = {"disk_free_mb": free_mb, "limit_mb": self.disk_low_mb, "path": self.storage_dir}
        if free_mb < self.disk_low_mb:
            self._raise("disk_low", facts)
        elif free_mb >= self.disk_low_mb * DISK_CLEAR_FACTOR:
            self._clear("disk_low", facts)

    def _disk_full(self) -> None:
        """Raised while the reserve is not held (released, or no room for it); cleared once it is again."""
        if self.core is None or not self.core.storage.reserve.size:
            return
        storage = self.core.storage
        storage.reserve.restore()  # space came back: hold it again before clearing
        facts = {
            "disk_free_mb": self.disk_free_mb,
            "reserve_mb": storage.reserve.size // MIB,
            "path": self.storage_dir,
        }
        if storage.reserve.held:
            self._clear("disk_full", facts)
        else:
            self._raise("disk_full", {**facts, "started_full": storage.started_full})

    def _raise(self, name: str, facts: dict[str, Any]) -> None:
        if name in self.active:
            return
        since = self.core.clock.now().isoformat(timespec="seconds")
        with self.core.storage.transaction() as db:
            db.execute("INSERT OR REPLACE INTO health_alarm (name, since) VALUES (?, ?)", (name, since))
            self.core.emit(f"alarm.{name}", {"state": "raised", **facts})
        self.active[name] = since
        log.warning("health alarm %s raised: %s", name, facts)

    def _clear(self, name: str, facts: dict[str, Any]) -> None:
        if name not in self.active:
            return
        since = self.active[name]
        with self.core.storage.transaction() as db:
            db.execute("DELETE FROM health_alarm WHERE name = ?", (name,))
            self.core.emit(f"alarm.{name}", {"state": "cleared", "since": since, **facts})
        del self.active[name]
        log.info("health alarm %s cleared: %s", name, facts)

    def _db_mb(self) -> float | None:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += (Path(self.storage_dir) / (DB_NAME + suffix)).stat().st_size
            except OSError:
                continue
        return round(total / (1024 * 1024), 2)
