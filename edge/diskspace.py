"""Space held in reserve, so a full disk does not stop the hall.

The SD card fills from outside our control (a runaway journal, a copied log,
an operator's file): SQLite then refuses every write, and a press, a tap or
a command that must record something fails.  ``SpaceReserve`` keeps a file
of ``storage.reserve_mb`` (16 MiB: thousands of tickets, taps and events,
and the WAL's growth) in ``storage.dir``.  Before each write transaction the
storage asks ``guard()``: when the free space has fallen below
``LOW_WATER_BYTES`` the reserve is deleted, and the database's records go on
in the space it held while the health feature raises ``alarm.disk_full``
(``alarm.disk_low`` is already up by then).  A write that failed with "disk
full" releases it too, so the next one succeeds.  When space returns
(``RESTORE_BYTES`` free beyond the reserve), ``restore()`` creates the
reserve again and the alarm clears: the hall recovers by itself.

The file is allocated with ``posix_fallocate`` (real blocks, not a sparse
file that would hold nothing back) under a temporary name and renamed into
place, so a half-made reserve is never mistaken for a whole one.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MIB = 1024 * 1024
RESERVE_NAME = "hall-edge.reserve"
LOW_WATER_BYTES = 2 * MIB  # fewer free bytes than this: release the reserve before writing
RESTORE_BYTES = 2 * LOW_WATER_BYTES  # free beyond the reserve before it is made again (no flapping)

FreeBytes = Callable[[str], int]


def free_bytes(path: str) -> int:
    """Free bytes for an unprivileged user on the file system holding ``path``."""
    return shutil.disk_usage(path).free


class SpaceReserve:
    def __init__(self, folder: Path, size: int = 0, probe: FreeBytes = free_bytes) -> None:
        """``size`` 0: no reserve (a Storage made without one, as in most tests)."""
        self.folder = folder
        self.path = folder / RESERVE_NAME
        self.size = size
        self.probe = probe
        self.held = size > 0 and self.path.is_file() and self.path.stat().st_size >= size
        self.released_at: float | None = None  # time.time() of the last release, for the alarm
        self.on_release: list[Callable[[], None]] = []  # told (on the writing thread) after a release

    def free(self) -> int | None:
        try:
            return self.probe(str(self.folder))
        except OSError:
            return None

    def guard(self) -> None:
        """Before a write: release the reserve if the disk is nearly full (a statvfs, a few µs)."""
        if not self.held:
            return
        free = self.free()
        if free is not None and free < LOW_WATER_BYTES:
            self.release(f"{free // 1024} KiB free")

    def release(self, why: str) -> bool:
        """Delete the reserve so the records can go on; True if there was one to release."""
        if not self.held:
            return False
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # a read-only remount: nothing we can free
            log.error("cannot release the disk reserve %s: %s", self.path, exc)
            return False
        self.held = False
        self.released_at = time.time()
        log.error(
            "disk nearly full (%s): released the %d MiB reserve in %s; records go on in its space",
            why, self.size // MIB, self.folder,
        )  # fmt: skip
        for listener in self.on_release:
            listener()
        return True

    def restore(self) -> bool:
        """Make the reserve (again) if there is room for it and a margin; True if made now."""
        if self.held or not self.size:
            return False
        free = self.free()
        if free is None or free < self.size + RESTORE_BYTES:
            return False
        partial = self.path.with_name(self.path.name + ".new")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(partial, self.path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            log.warning("disk reserve %s not made: %s", self.path, exc)
            return False
        self.held = True
        log.info("disk reserve of %d MiB held in %s", self.size // MIB, self.path)
        return True
