"""The durable outbox: every event is on disk before anything else happens.

``append`` gives the event its ULID ``event_id`` and the device's next ``seq``
in one transaction (which joins a caller's transaction, so that a ticket and
its ``ticket.issued`` event are recorded together or not at all).  The link
publishes rows in ``seq`` order and deletes them once the broker has
acknowledged them.

Storage is bounded (``storage.outbox_max_events`` and ``outbox_max_bytes``,
set by the link through ``set_limits``): at the cap the oldest droppable
events go first (``error`` before ``alarm``), ``rental``, ``ticket`` and
``audit`` events are never dropped, and one ``alarm.outbox_full`` event says
so (again only after the outbox has drained below 90 % of the cap).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from edge.clock import Clock, rfc3339
from edge.protocol import EVENT_SCHEMA, dumps, new_ulid
from edge.records import record
from edge.storage import Additive, Storage

log = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        kind TEXT NOT NULL,
        keep INTEGER NOT NULL,
        payload BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO counters (name, value) VALUES ('event_seq', 0)
    """,
    # At the cap the oldest droppable row is looked up on every append: keep that cheap.
    Additive("CREATE INDEX outbox_droppable ON outbox (keep, kind = 'alarm', seq)"),
]

EVENT_KINDS = ("rental", "ticket", "window", "report", "alarm", "audit", "error", "update")
KEPT_KINDS = ("rental", "ticket", "window", "report", "audit", "update")  # never dropped at the storage cap
DEFAULT_MAX_EVENTS = 200_000  # a week offline at a busy hall is ~20,000 events
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
_REARM_FRACTION = 0.9  # the cap alarm fires again only after the outbox fell below this


@record
class Event:
    seq: int
    event_id: str
    type: str
    kind: str
    payload: bytes  # the exact JSON published

    def body(self) -> dict[str, Any]:
        return json.loads(self.payload)


class Outbox:
    def __init__(self, storage: Storage, clock: Clock, device: str) -> None:
        self.storage = storage
        self.clock = clock
        self.device = device  # "site/device"
        self.listeners: list[Callable[[Event], None]] = []
        self.max_events = DEFAULT_MAX_EVENTS
        self.max_bytes = DEFAULT_MAX_BYTES
        self.dropped = 0  # events given up at the cap since start
        self._alarmed = False
        storage.migrate("outbox", MIGRATIONS)
        self._count, self._bytes = storage.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()

    def set_limits(self, max_events: int, max_bytes: int) -> None:
        """The storage cap (the link sets it from ``storage.outbox_max_*``)."""
        self.max_events = max_events
        self.max_bytes = max_bytes

    def append(self, type_: str, data: dict[str, Any]) -> Event:
        """Record an event durably and return it; listeners (the link) are told after commit."""
        return self._append(type_, data, keep=type_.split(".", 1)[0] in KEPT_KINDS)

    def _append(self, type_: str, data: dict[str, Any], keep: bool) -> Event:
        kind = type_.split(".", 1)[0]
        if kind not in EVENT_KINDS:
            raise ValueError(f"event type {type_!r}: kind must be one of {', '.join(EVENT_KINDS)}")
        with self.storage.transaction() as conn:
            seq = conn.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'event_seq' RETURNING value"
            ).fetchone()[0]
            at = self.clock.now()
            body = {
                "schema": EVENT_SCHEMA,
                "event_id": new_ulid(int(at.timestamp() * 1000)),
                "seq": seq,
                "epoch": self.storage.epoch,
                "device": self.device,
                "type": type_,
                "at": rfc3339(at),
                "clock": self.clock.status(),
                "data": data,
            }
            payload = dumps(body)
            conn.execute(
                "INSERT INTO outbox (seq, event_id, type, kind, keep, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, body["event_id"], type_, kind, keep, payload, body["at"]),
            )
            event = Event(seq, body["event_id"], type_, kind, payload)
            self._count += 1
            self._bytes += len(payload)
            self.storage.on_rollback(self.recount)  # a caller's rollback takes this row back out
            self._enforce_cap(conn)
            self.storage.after_commit(lambda: self._tell(event))
        return event

    def _enforce_cap(self, conn: sqlite3.Connection) -> None:
        """Drop the oldest droppable events while over the cap; raise the alarm once per episode."""
        if not self._over_cap():
            if self._alarmed and self._count < _REARM_FRACTION * self.max_events:
                self._alarmed = False
            return
        while self._over_cap():
            row = conn.execute(
                "DELETE FROM outbox WHERE seq = (SELECT seq FROM outbox WHERE keep = 0"
                " ORDER BY kind = 'alarm', seq LIMIT 1) RETURNING LENGTH(payload)"
            ).fetchone()
            if row is None:
                break  # only events that are never dropped are left: keep them all
            self._count -= 1
            self._bytes -= row[0]
            self.dropped += 1
        if not self._alarmed:
            self._alarmed = True  # before append: the alarm itself passes through here
            log.error(
                "outbox at its cap (%d events, %d bytes): dropped %d droppable events",
                self._count,
                self._bytes,
                self.dropped,
            )
            # Kept like a rental: the platform must learn why seq has gaps.
            self._append(
                "alarm.outbox_full",
                {
                    "depth": self._count,
                    "bytes": self._bytes,
                    "max_events": self.max_events,
                    "max_bytes": self.max_bytes,
                    "dropped": self.dropped,
                },
                keep=True,
            )

    def _over_cap(self) -> bool:
        return self._count > self.max_events or self._bytes > self.max_bytes

    def _tell(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    def pending(self, after_seq: int = 0, limit: int = 500) -> list[Event]:
        rows = self.storage.execute(
            "SELECT seq, event_id, type, kind, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [Event(*row) for row in rows]

    def acknowledge(self, seqs: list[int]) -> None:
        """Delete delivered events (batched by the caller: one commit for many)."""
        if not seqs:
            return
        removed_count = removed_bytes = 0
        # No sync: a delete lost to a power cut only sends those events once more (the platform
        # de-duplicates by event_id), and the next event's durable commit syncs it anyway.
        with self.storage.transaction(durable=False) as conn:
            for start in range(0, len(seqs), _CHUNK):
                chunk = seqs[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"DELETE FROM outbox WHERE seq IN ({marks}) RETURNING LENGTH(payload)",
                    chunk,
                ).fetchall()
                removed_count += len(rows)
                removed_bytes += sum(r[0] for r in rows)
        self._count -= removed_count
        self._bytes -= removed_bytes

    def depth(self) -> int:
        return self._count

    def recount(self) -> None:
        """Re-read depth and size from the table (a caller's rolled-back append left them high)."""
        self._count, self._bytes = self.storage.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()

    def size_bytes(self) -> int:
        return self._bytes


_CHUNK = 500  # SQLite's host parameter limit is 32766; stay far below it
