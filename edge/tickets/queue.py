"""The ticket queue: numbering, calling, recall and skip, kept in SQLite.

A *queue day* is the time between two resets: the daily one at
``queue.reset_at`` (hall local time) or a ``queue.reset`` command, which
starts a new round of the same date.  Within a queue day every number is
issued once: the counter and the ticket row and its ``ticket.issued`` event
are written in one transaction, so after a power cut or kill -9 either all
three exist or none does, and the next number is always a new one.

Numbers are counted per (day, round, category) and those counters are never
deleted, so whatever the clock does a number cannot come twice.  While the
clock is not NTP-synchronised (a Pi without an RTC boots with the time it
saved last) the queue day never goes backwards; once the clock is synced it
follows the clock both ways (a clock that had run ahead comes back), and a
day entered again continues its own numbers.

Used by the tickets feature on the core thread only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from edge.storage import Storage

MIGRATIONS = [
    """
    CREATE TABLE queue_day (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        day TEXT NOT NULL,
        round INTEGER NOT NULL,
        priority_in_row INTEGER NOT NULL
    );
    CREATE TABLE ticket_numbers (
        day TEXT NOT NULL,
        round INTEGER NOT NULL,
        category TEXT NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (day, round, category)
    );
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        day TEXT NOT NULL,
        round INTEGER NOT NULL,
        ticket TEXT NOT NULL,
        category TEXT NOT NULL,
        number INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        issued_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'waiting',
        window INTEGER,
        called_at REAL,
        finished_at REAL,
        recalls INTEGER NOT NULL DEFAULT 0,
        printed INTEGER NOT NULL DEFAULT 0,
        UNIQUE (day, round, ticket)
    );
    CREATE INDEX tickets_by_state ON tickets (day, round, state, priority, id)
    """,
]

# Ticket states: waiting -> called -> served (the window called the next one)
#                                  -> skipped (no-show; may be recalled later)
# Tickets still open when the queue day ends become 'closed'.
OPEN_STATES = ("waiting", "called", "skipped")
RECENT_SERVICES = 20  # service times averaged for the wait estimate
LONGEST_SERVICE_S = 3600.0  # a window left on one ticket over lunch says nothing about service time

Emit = Callable[[str, dict[str, Any]], object]


class QueueError(Exception):
    """A call, recall or skip that cannot be done; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Issued:
    ticket: str
    category: str
    priority: bool
    waiting_ahead: int
    wait_estimate_s: float
    issued_at: float  # epoch seconds


@dataclass(frozen=True)
class Called:
    ticket: str
    window: int
    wait_s: float
    recalls: int = 0


def business_day(now: datetime, reset_at: str) -> str:
    """The date whose queue day ``now`` belongs to: before ``reset_at`` it is still yesterday's."""
    hours, minutes = (int(part) for part in reset_at.split(":"))
    return (now - timedelta(hours=hours, minutes=minutes)).date().isoformat()


def ticket_label(category: str, number: int) -> str:
    return f"{category}{number:03d}"


class TicketQueue:
    def __init__(
        self,
        storage: Storage,
        emit: Emit,
        *,
        reset_at: str = "00:00",
        priority_max_in_row: int = 3,
        recall_max: int = 5,
        default_service_s: float = 180.0,
        windows: int = 1,
        clock_synced: Callable[[], bool] = lambda: True,
    ) -> None:
        self.storage = storage
        self.emit = emit
        self.reset_at = reset_at
        self.priority_max_in_row = priority_max_in_row
        self.recall_max = recall_max
        self.default_service_s = default_service_s
        self.windows = max(1, windows)
        self.clock_synced = clock_synced
        storage.migrate("tickets", MIGRATIONS)

    # -- the queue day ---------------------------------------------------

    def current_day(self) -> tuple[str, int]:
        row = self.storage.execute("SELECT day, round FROM queue_day WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else ("", 0)

    def roll_day(self, now: datetime) -> bool:
        """Start a new queue day when the reset time has passed; True when it did."""
        today = business_day(now, self.reset_at)
        with self.storage.transaction() as conn:
            day, _ = self.current_day()
            if today == day or (today < day and not self.clock_synced()):
                return False  # same day, or an unsynced clock that went backwards
            self._close_open_tickets(conn, now)
            # A day seen before (the clock had run ahead) continues its last round's numbers.
            round_ = conn.execute(
                "SELECT COALESCE(MAX(round), 0) FROM ticket_numbers WHERE day = ?", (today,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO queue_day (id, day, round, priority_in_row) VALUES (1, ?, ?, 0)"
                " ON CONFLICT(id) DO UPDATE SET"
                " day = excluded.day, round = excluded.round, priority_in_row = 0",
                (today, round_),
            )
        return True

    def today(self, now: datetime) -> tuple[str, int]:
        """The queue day and round ``now`` belongs to, rolling over first if the reset time passed
        (every act on the queue does this, so none touches yesterday's tickets)."""
        self.roll_day(now)
        return self.current_day()

    def reset(self, now: datetime) -> tuple[str, int]:
        """Start numbering again from 001 (a new round of the day); open tickets are closed."""
        with self.storage.transaction() as conn:
            self.roll_day(now)
            self._close_open_tickets(conn, now)
            conn.execute("UPDATE queue_day SET round = round + 1, priority_in_row = 0 WHERE id = 1")
        return self.current_day()

    def _close_open_tickets(self, conn: sqlite3.Connection, now: datetime) -> None:
        conn.execute(
            f"UPDATE tickets SET state = 'closed', finished_at = ? WHERE state IN {OPEN_STATES}",
            (now.timestamp(),),
        )

    # -- issuing ---------------------------------------------------------

    def issue(
        self, category: str, priority: bool, now: datetime, extra: dict[str, Any] | None = None
    ) -> Issued:
        """Give the next number of ``category``; the ticket and its event are one transaction."""
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            number = conn.execute(
                "INSERT INTO ticket_numbers (day, round, category, last) VALUES (?, ?, ?, 1)"
                " ON CONFLICT(day, round, category) DO UPDATE SET last = last + 1 RETURNING last",
                (day, round_, category),
            ).fetchone()[0]
            label = ticket_label(category, number)
            ahead = self._waiting_ahead(conn, day, round_, priority)
            conn.execute(
                "INSERT INTO tickets (day, round, ticket, category, number, priority, issued_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (day, round_, label, category, number, int(priority), now.timestamp()),
            )
            estimate = ahead * self.service_time_s() / self.windows
            self.emit(
                "ticket.issued",
                {
                    "ticket": label,
                    "category": category,
                    "priority": priority,
                    "waiting_ahead": ahead,
                    "wait_estimate_s": round(estimate),
                    "day": day,
                    "round": round_,
                    **(extra or {}),
                },
            )
        return Issued(label, category, priority, ahead, estimate, now.timestamp())

    def _waiting_ahead(self, conn: sqlite3.Connection, day: str, round_: int, priority: bool) -> int:
        """Waiting tickets that will be called before a new one: all, or only priority ones."""
        sql = "SELECT COUNT(*) FROM tickets WHERE day = ? AND round = ? AND state = 'waiting'"
        if priority:
            sql += " AND priority = 1"
        return conn.execute(sql, (day, round_)).fetchone()[0]

    def mark_printed(self, label: str) -> None:
        day, round_ = self.current_day()
        with self.storage.transaction() as conn:
            conn.execute(
                "UPDATE tickets SET printed = 1 WHERE day = ? AND round = ? AND ticket = ?",
                (day, round_, label),
            )

    def service_time_s(self) -> float:
        """Average of the recent service times today (call to next call), or the configured default."""
        day, _ = self.current_day()
        rows = self.storage.execute(
            "SELECT finished_at - called_at FROM tickets WHERE day = ? AND state = 'served'"
            " AND finished_at - called_at BETWEEN 0 AND ? ORDER BY finished_at DESC LIMIT ?",
            (day, LONGEST_SERVICE_S, RECENT_SERVICES),
        ).fetchall()
        if not rows:
            return self.default_service_s
        return sum(r[0] for r in rows) / len(rows)

    # -- calling ---------------------------------------------------------

    def call_next(self, window: int, now: datetime) -> Called | None:
        """Finish the window's current ticket and call the next one (None: nobody waits)."""
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            conn.execute(
                "UPDATE tickets SET state = 'served', finished_at = ?"
                " WHERE day = ? AND round = ? AND state = 'called' AND window = ?",
                (now.timestamp(), day, round_, window),
            )
            row = self._pick_next(conn, day, round_)
            if row is None:
                return None
            ticket_id, label, priority, issued_at = row
            in_row = conn.execute("SELECT priority_in_row FROM queue_day WHERE id = 1").fetchone()[0]
            conn.execute(
                "UPDATE queue_day SET priority_in_row = ? WHERE id = 1", (in_row + 1 if priority else 0,)
            )
            conn.execute(
                "UPDATE tickets SET state = 'called', window = ?, called_at = ? WHERE id = ?",
                (window, now.timestamp(), ticket_id),
            )
            wait_s = max(0.0, now.timestamp() - issued_at)
            self.emit(
                "ticket.called",
                {"ticket": label, "window": window, "wait_s": round(wait_s, 1), "priority": bool(priority)},
            )
        return Called(label, window, wait_s)

    def _pick_next(self, conn: sqlite3.Connection, day: str, round_: int) -> tuple | None:
        """Oldest priority ticket first, but after priority_max_in_row of them one normal ticket."""
        oldest = (
            "SELECT id, ticket, priority, issued_at FROM tickets"
            " WHERE day = ? AND round = ? AND state = 'waiting' AND priority = ? ORDER BY id LIMIT 1"
        )
        first_priority = conn.execute(oldest, (day, round_, 1)).fetchone()
        first_normal = conn.execute(oldest, (day, round_, 0)).fetchone()
        if first_priority is None or first_normal is None:
            return first_priority or first_normal
        in_row = conn.execute("SELECT priority_in_row FROM queue_day WHERE id = 1").fetchone()[0]
        return first_normal if in_row >= self.priority_max_in_row else first_priority

    def recall(self, window: int, now: datetime, label: str | None = None) -> Called:
        """Call again the window's current ticket, or ``label`` (a skipped one comes back)."""
        explicit = label is not None
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            if not explicit:
                row = conn.execute(
                    "SELECT id, ticket, recalls, issued_at FROM tickets"
                    " WHERE day = ? AND round = ? AND state = 'called' AND window = ?",
                    (day, round_, window),
                ).fetchone()
                if row is None:
                    raise QueueError("nothing_called", f"window {window} has no called ticket to recall")
            else:
                row = conn.execute(
                    "SELECT id, ticket, recalls, issued_at, state FROM tickets"
                    " WHERE day = ? AND round = ? AND ticket = ?",
                    (day, round_, label),
                ).fetchone()
                if row is None:
                    raise QueueError("unknown_ticket", f"ticket {label} was not issued in this queue day")
                if row[4] not in ("called", "skipped"):
                    raise QueueError("not_recallable", f"ticket {label} is {row[4]}, not called or skipped")
            ticket_id, label, recalls, issued_at = row[:4]
            if recalls >= self.recall_max:
                raise QueueError("recall_limit", f"ticket {label} was recalled {recalls} times already")
            if explicit:
                # The window moves on from whatever it was serving before taking this one back.
                conn.execute(
                    "UPDATE tickets SET state = 'served', finished_at = ?"
                    " WHERE day = ? AND round = ? AND state = 'called' AND window = ? AND id != ?",
                    (now.timestamp(), day, round_, window, ticket_id),
                )
            conn.execute(
                "UPDATE tickets SET window = ?, recalls = recalls + 1,"
                # a skipped ticket that comes back starts its service now
                " called_at = CASE WHEN state = 'skipped' THEN ? ELSE called_at END,"
                " state = 'called', finished_at = NULL WHERE id = ?",
                (window, now.timestamp(), ticket_id),
            )
            self.emit("ticket.recalled", {"ticket": label, "window": window, "recalls": recalls + 1})
        return Called(label, window, max(0.0, now.timestamp() - issued_at), recalls + 1)

    def skip(self, window: int, now: datetime) -> str:
        """The window's called ticket did not come: skipped (过号), it can be recalled later."""
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            row = conn.execute(
                "SELECT id, ticket FROM tickets"
                " WHERE day = ? AND round = ? AND state = 'called' AND window = ?",
                (day, round_, window),
            ).fetchone()
            if row is None:
                raise QueueError("nothing_called", f"window {window} has no called ticket to skip")
            conn.execute(
                "UPDATE tickets SET state = 'skipped', finished_at = ? WHERE id = ?",
                (now.timestamp(), row[0]),
            )
            self.emit("ticket.skipped", {"ticket": row[1], "window": window})
        return row[1]

    # -- figures ---------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and waits per category for the current queue day, and what each window serves."""
        day, round_ = self.current_day()
        categories: dict[str, dict[str, Any]] = {}
        for category, issued, waiting, skipped, served, priority, avg_wait in self.storage.execute(
            "SELECT category, COUNT(*), SUM(state = 'waiting'), SUM(state = 'skipped'),"
            " SUM(state IN ('called', 'served')), SUM(priority),"
            " AVG(CASE WHEN called_at IS NOT NULL THEN called_at - issued_at END)"
            " FROM tickets WHERE day = ? AND round = ? GROUP BY category",
            (day, round_),
        ):
            categories[category] = {
                "issued": issued,
                "waiting": waiting,
                "called": served,
                "skipped": skipped,
                "priority": priority,
                "avg_wait_s": None if avg_wait is None else round(avg_wait, 1),
            }
        windows = {
            str(window): ticket
            for window, ticket in self.storage.execute(
                "SELECT window, ticket FROM tickets WHERE day = ? AND round = ? AND state = 'called'",
                (day, round_),
            )
        }
        return {
            "day": day,
            "round": round_,
            "waiting": sum(c["waiting"] for c in categories.values()),
            "service_time_s": round(self.service_time_s(), 1),
            "categories": categories,
            "windows": windows,
        }
