"""What ``config.set`` and ``update`` share across their restart: the one pending row each
keeps in SQLite, and waiting for the link.

Both answer their command a second time (``ok: false``) when the change was
rolled back, and that answer can only go out once the link is online again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.core import Core, Timer
from edge.storage import Storage

CHECK_EVERY_S = 0.5


def when_online(core: Core, fn: Callable[[], object]) -> Timer:
    """Run ``fn`` once on the core thread, as soon as the link is online; cancel the result to drop it."""
    timer: Timer | None = None

    def check() -> None:
        link = core.link
        if link is None or not link.online:
            return
        if timer is not None:
            timer.cancel()
        fn()

    timer = core.every(CHECK_EVERY_S, check, first_after=0)
    return timer


def pending_row(storage: Storage, table: str) -> dict[str, Any] | None:
    """The change ``table`` holds (one row at most, ``singleton = 1``), by column name."""
    cursor = storage.execute(f"SELECT * FROM {table} WHERE singleton = 1")
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cursor.description], row, strict=True))
