"""The durable outbox: every event is on disk before anything else happens.

``append`` gives the event its ULID ``event_id`` and the device's next ``seq``
in one transaction (which joins a caller's transaction, so that a ticket and
its ``ticket.issued`` event are recorded together or not at all).  The link
publishes rows in ``seq`` order and deletes them once the broker has
acknowledged them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.clock import Clock, rfc3339
from edge.storage import Storage
from edge.ulid import new_ulid

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
]

EVENT_KINDS = ("rental", "ticket", "alarm", "audit", "error")
KEPT_KINDS = ("rental", "ticket", "audit")  # never dropped at the storage cap


@dataclass(frozen=True)
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
        storage.migrate("outbox", MIGRATIONS)

    def append(self, type_: str, data: dict[str, Any]) -> Event:
        """Record an event durably and return it; listeners (the link) are told after commit."""
        kind = type_.split(".", 1)[0]
        if kind not in EVENT_KINDS:
            raise ValueError(f"event type {type_!r}: kind must be one of {', '.join(EVENT_KINDS)}")
        with self.storage.transaction() as conn:
            seq = conn.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'event_seq' RETURNING value"
            ).fetchone()[0]
            at = self.clock.now()
            body = {
                "schema": "lgsc.event/1",
                "event_id": new_ulid(int(at.timestamp() * 1000)),
                "seq": seq,
                "device": self.device,
                "type": type_,
                "at": rfc3339(at),
                "clock": self.clock.status(),
                "data": data,
            }
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            conn.execute(
                "INSERT INTO outbox (seq, event_id, type, kind, keep, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, body["event_id"], type_, kind, kind in KEPT_KINDS, payload, body["at"]),
            )
            event = Event(seq, body["event_id"], type_, kind, payload)
            self.storage.after_commit(lambda: self._tell(event))
        return event

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
        with self.storage.transaction() as conn:
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def depth(self) -> int:
        return self.storage.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
