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
from datetime import datetime, timedelta
from typing import Any

from edge.records import record
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
    # The window caller (issue 14): services a ticket waits for, transfers, holds, ratings, and one
    # log row per act on a ticket, which the daily report reads (a restart changes no figure).
    """
    ALTER TABLE tickets ADD COLUMN service TEXT;
    UPDATE tickets SET service = category;
    ALTER TABLE tickets ADD COLUMN for_window INTEGER;
    ALTER TABLE tickets ADD COLUMN rating INTEGER;
    CREATE TABLE ticket_log (
        id INTEGER PRIMARY KEY,
        day TEXT NOT NULL,
        ticket_id INTEGER,
        action TEXT NOT NULL,
        window INTEGER,
        at REAL NOT NULL,
        value REAL
    );
    CREATE INDEX ticket_log_by_day ON ticket_log (day, ticket_id, id);
    CREATE TABLE window_state (
        window INTEGER PRIMARY KEY,
        paused_at REAL
    );
    CREATE TABLE daily_reports (
        day TEXT PRIMARY KEY,
        made_at REAL NOT NULL
    )
    """,
]

# Ticket states: waiting -> called -> served (finished, or the window called the next one)
#                                  -> skipped (no-show; may be recalled later)
#                                  -> held (挂起: set aside at its window, brought back ahead of the queue)
#                                  -> waiting again (转移: transferred to another service or window)
# Tickets still open when the queue day ends become 'closed'.
OPEN_STATES = ("waiting", "called", "skipped", "held")
RECENT_SERVICES = 20  # service times averaged for the wait estimate
LONGEST_SERVICE_S = 3600.0  # a window left on one ticket over lunch says nothing about service time

Emit = Callable[[str, dict[str, Any]], object]


class QueueError(Exception):
    """An act on the queue that cannot be done (nothing changed); ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@record
class Issued:
    ticket: str
    category: str
    priority: bool
    waiting_ahead: int
    wait_estimate_s: float
    issued_at: float  # epoch seconds
    day: str
    round: int


@record
class Called:
    ticket: str
    window: int
    wait_s: float
    recalls: int = 0
    category: str = ""  # the service it was called for
    priority: bool = False


@record
class OpenTicket:
    """A ticket of the current queue day still in the queue's hands (what a caller screen shows)."""

    ticket: str
    issued_for: str  # the letter it was issued with
    service: str  # the service it waits for now (another after a transfer)
    priority: bool
    state: str  # one of OPEN_STATES
    issued_at: float
    window: int | None  # called, held or skipped at
    for_window: int | None  # transferred to this window
    called_at: float | None
    finished_at: float | None  # for a skipped ticket: when it was skipped
    recalls: int
    transferred: bool
    held_at: float | None


@record
class Finished:
    ticket: str
    window: int
    service_s: float


@record
class Transferred:
    ticket: str
    window: int
    to_category: str | None
    to_window: int | None


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
        serves: dict[int, tuple[str, ...]] | None = None,
        categories: tuple[str, ...] = (),
    ) -> None:
        self.storage = storage
        self.emit = emit
        self.reset_at = reset_at
        self.priority_max_in_row = priority_max_in_row
        self.recall_max = recall_max
        self.default_service_s = default_service_s
        self.windows = max(1, windows)
        self.clock_synced = clock_synced
        self.serves = serves or {}  # window -> the categories it calls; a window not named calls all
        self.categories = categories  # () = any category (tests that build a bare queue)
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
                "INSERT INTO tickets (day, round, ticket, category, service, number, priority, issued_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (day, round_, label, category, category, number, int(priority), now.timestamp()),
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
        return Issued(label, category, priority, ahead, estimate, now.timestamp(), day, round_)

    def _waiting_ahead(self, conn: sqlite3.Connection, day: str, round_: int, priority: bool) -> int:
        """Waiting tickets that will be called before a new one: all, or only priority ones."""
        sql = "SELECT COUNT(*) FROM tickets WHERE day = ? AND round = ? AND state = 'waiting'"
        if priority:
            sql += " AND priority = 1"
        return conn.execute(sql, (day, round_)).fetchone()[0]

    def record_print(self, issued: Issued, printed: bool | None, printer: str) -> None:
        """What became of the ticket on paper: its ``ticket.printed`` event and mark, together.

        ``printed`` None: the bytes went to the printer, which did not answer after them.
        """
        with self.storage.transaction() as conn:
            if printed:
                conn.execute(
                    "UPDATE tickets SET printed = 1 WHERE day = ? AND round = ? AND ticket = ?",
                    (issued.day, issued.round, issued.ticket),
                )
            self.emit(
                "ticket.printed",
                {
                    "ticket": issued.ticket,
                    "day": issued.day,
                    "round": issued.round,
                    "printed": printed,
                    "printer": printer,
                },
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
        """Finish the window's current ticket and call the next one (None: nobody waits).

        A paused window calls nobody (``window_paused``), and keeps its current ticket."""
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            if self.paused_at(window) is not None:
                raise QueueError("window_paused", f"window {window} is paused (暂停服务); resume it first")
            self._finish_current(conn, window, now, "call")
            row = self._pick_next(conn, day, round_, window)
            if row is None:
                return None
            ticket_id, label, priority, issued_at, service = row
            in_row = conn.execute("SELECT priority_in_row FROM queue_day WHERE id = 1").fetchone()[0]
            conn.execute(
                "UPDATE queue_day SET priority_in_row = ? WHERE id = 1", (in_row + 1 if priority else 0,)
            )
            conn.execute(
                "UPDATE tickets SET state = 'called', window = ?, called_at = ?, for_window = NULL"
                " WHERE id = ?",
                (window, now.timestamp(), ticket_id),
            )
            wait_s = max(0.0, now.timestamp() - issued_at)
            self._log(conn, ticket_id, "called", window, now, value=wait_s)
            self.emit(
                "ticket.called",
                {"ticket": label, "window": window, "wait_s": round(wait_s, 1), "priority": bool(priority)},
            )
        return Called(label, window, wait_s, category=service, priority=bool(priority))

    def _pick_next(self, conn: sqlite3.Connection, day: str, round_: int, window: int) -> tuple | None:
        """Oldest priority ticket first, but after priority_max_in_row of them one normal ticket.

        Only tickets this window may call: those sent to it, and those of a service it serves that
        were not sent to another window; a transferred ticket keeps its place by issue time (its id)."""
        serves = self.serves.get(window, ())
        mine = f" AND service IN ({', '.join('?' * len(serves))})" if serves else ""
        oldest = (
            "SELECT id, ticket, priority, issued_at, service FROM tickets"
            " WHERE day = ? AND round = ? AND state = 'waiting' AND priority = ?"
            f" AND (for_window = ? OR (for_window IS NULL{mine})) ORDER BY id LIMIT 1"
        )
        first_priority = conn.execute(oldest, (day, round_, 1, window, *serves)).fetchone()
        first_normal = conn.execute(oldest, (day, round_, 0, window, *serves)).fetchone()
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
                self._finish_current(conn, window, now, "recall", keep=ticket_id)
            conn.execute(
                "UPDATE tickets SET window = ?, recalls = recalls + 1,"
                # a skipped ticket that comes back starts its service now
                " called_at = CASE WHEN state = 'skipped' THEN ? ELSE called_at END,"
                " state = 'called', finished_at = NULL WHERE id = ?",
                (window, now.timestamp(), ticket_id),
            )
            self._log(conn, ticket_id, "recalled", window, now)
            self.emit("ticket.recalled", {"ticket": label, "window": window, "recalls": recalls + 1})
        return Called(label, window, max(0.0, now.timestamp() - issued_at), recalls + 1)

    def skip(self, window: int, now: datetime) -> str:
        """The window's called ticket did not come: skipped (过号), it can be recalled later."""
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            ticket_id, label = self._current(conn, window, day, round_, "skip")[:2]
            conn.execute(
                "UPDATE tickets SET state = 'skipped', finished_at = ? WHERE id = ?",
                (now.timestamp(), ticket_id),
            )
            self._log(conn, ticket_id, "skipped", window, now)
            self.emit("ticket.skipped", {"ticket": label, "window": window})
        return label

    def finish(self, window: int, now: datetime) -> Finished:
        """办结: the window's called ticket is served; its service time is call -> now."""
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            self._current(conn, window, day, round_, "finish")
            finished = self._finish_current(conn, window, now, "finish")
        assert finished is not None  # _current found the called ticket in this transaction
        return finished

    def called_ticket(self, window: int) -> str | None:
        """The ticket the window serves now (called today), if any."""
        day, round_ = self.current_day()
        row = self.storage.execute(
            "SELECT ticket FROM tickets WHERE day = ? AND round = ? AND state = 'called' AND window = ?",
            (day, round_, window),
        ).fetchone()
        return row[0] if row else None

    def _current(self, conn: sqlite3.Connection, window: int, day: str, round_: int, act: str) -> tuple:
        """The window's called ticket: (id, label, called_at, category), or QueueError nothing_called."""
        row = conn.execute(
            "SELECT id, ticket, called_at, category FROM tickets"
            " WHERE day = ? AND round = ? AND state = 'called' AND window = ?",
            (day, round_, window),
        ).fetchone()
        if row is None:
            raise QueueError("nothing_called", f"window {window} has no called ticket to {act}")
        return tuple(row)

    def _finish_current(
        self, conn: sqlite3.Connection, window: int, now: datetime, by: str, keep: int | None = None
    ) -> Finished | None:
        """Mark the window's called ticket served (``by`` finish, or the next call or recall)."""
        day, round_ = self.current_day()
        row = conn.execute(
            "SELECT id, ticket, called_at FROM tickets"
            " WHERE day = ? AND round = ? AND state = 'called' AND window = ? AND id IS NOT ?",
            (day, round_, window, keep),
        ).fetchone()
        if row is None:
            return None
        ticket_id, label, called_at = row
        service_s = max(0.0, now.timestamp() - (called_at or now.timestamp()))
        conn.execute(
            "UPDATE tickets SET state = 'served', finished_at = ? WHERE id = ?", (now.timestamp(), ticket_id)
        )
        self._log(conn, ticket_id, "finished", window, now, value=service_s)
        self.emit(
            "ticket.finished", {"ticket": label, "window": window, "service_s": round(service_s, 1), "by": by}
        )
        return Finished(label, window, service_s)

    def transfer(
        self, window: int, now: datetime, to_category: str | None = None, to_window: int | None = None
    ) -> Transferred:
        """转移: the window's called ticket waits again, for another service or another window, in its
        place by issue time.  A target this hall does not have is refused and the ticket stays called."""
        if (to_category is None) == (to_window is None):
            raise QueueError("bad_target", "transfer to a category or to a window, one of the two")
        if to_category is not None and self.categories and to_category not in self.categories:
            known = ", ".join(self.categories)
            raise QueueError("unknown_category", f"category {to_category!r} does not exist here ({known})")
        if to_category is not None and not any(self._window_serves(w, to_category) for w in self._windows()):
            raise QueueError("no_window_serves", f"no window calls category {to_category}")
        if to_window is not None and to_window not in self._windows():
            known = ", ".join(str(w) for w in self._windows())
            raise QueueError("unknown_window", f"window {to_window} does not exist here ({known})")
        if to_window == window:
            raise QueueError("same_window", f"the ticket is already at window {window}")
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            ticket_id, label, _called_at, category = self._current(conn, window, day, round_, "transfer")
            conn.execute(
                "UPDATE tickets SET state = 'waiting', window = NULL, called_at = NULL,"
                " service = COALESCE(?, service), for_window = ? WHERE id = ?",
                (to_category, to_window, ticket_id),
            )
            self._log(conn, ticket_id, "transferred", window, now)
            target: dict[str, Any] = {"to_category": to_category} if to_category else {"to_window": to_window}
            self.emit(
                "ticket.transferred", {"ticket": label, "window": window, "category": category, **target}
            )
        return Transferred(label, window, to_category, to_window)

    def _windows(self) -> list[int]:
        return sorted(self.serves) or list(range(1, self.windows + 1))

    def _window_serves(self, window: int, category: str) -> bool:
        serves = self.serves.get(window, ())
        return not serves or category in serves

    def hold(self, window: int, now: datetime) -> str:
        """挂起: the called ticket is set aside at this window (the worker fetches a document)."""
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            ticket_id, label = self._current(conn, window, day, round_, "hold")[:2]
            conn.execute("UPDATE tickets SET state = 'held' WHERE id = ?", (ticket_id,))
            self._log(conn, ticket_id, "held", window, now)
            self.emit("ticket.held", {"ticket": label, "window": window})
        return label

    def bring_back(self, window: int, now: datetime, label: str | None = None) -> Called:
        """回呼: call the window's held ticket (the oldest, or ``label``) again, ahead of the queue.

        The ticket the window serves meanwhile is finished first; the service time of the held one
        still counts from its first call at this window."""
        with self.storage.transaction() as conn:
            day, round_ = self.today(now)
            row = conn.execute(
                "SELECT id, ticket, issued_at FROM tickets WHERE day = ? AND round = ? AND state = 'held'"
                " AND window = ? AND ticket = COALESCE(?, ticket) ORDER BY called_at, id LIMIT 1",
                (day, round_, window, label),
            ).fetchone()
            if row is None:
                which = f"ticket {label}" if label else "no ticket"
                raise QueueError(
                    "nothing_held", f"window {window} holds {which}" + (" aside" if label else "")
                )
            ticket_id, label, issued_at = row
            self._finish_current(conn, window, now, "bring_back")
            conn.execute("UPDATE tickets SET state = 'called' WHERE id = ?", (ticket_id,))
            self._log(conn, ticket_id, "brought_back", window, now)
            self.emit("ticket.brought_back", {"ticket": label, "window": window})
        return Called(label, window, max(0.0, now.timestamp() - issued_at))

    # -- what a caller screen reads ----------------------------------------

    def open_tickets(self) -> list[OpenTicket]:
        """The current queue day's waiting, called, held and skipped tickets, in issue order."""
        day, round_ = self.current_day()
        rows = self.storage.execute(
            "SELECT t.ticket, t.category, t.service, t.priority, t.state, t.issued_at, t.window,"
            " t.for_window, t.called_at, t.finished_at, t.recalls,"
            # l.day first: the log's index (day, ticket_id), whatever months of log it holds
            " EXISTS (SELECT 1 FROM ticket_log l"
            " WHERE l.day = t.day AND l.ticket_id = t.id AND l.action = 'transferred'),"
            " (SELECT MAX(l.at) FROM ticket_log l"
            " WHERE l.day = t.day AND l.ticket_id = t.id AND l.action = 'held')"
            f" FROM tickets t WHERE t.day = ? AND t.round = ? AND t.state IN {OPEN_STATES} ORDER BY t.id",
            (day, round_),
        ).fetchall()
        return [
            OpenTicket(
                ticket=row[0],
                issued_for=row[1],
                service=row[2],
                priority=bool(row[3]),
                state=row[4],
                issued_at=row[5],
                window=row[6],
                for_window=row[7],
                called_at=row[8],
                finished_at=row[9],
                recalls=row[10],
                transferred=bool(row[11]),
                held_at=row[12],
            )
            for row in rows
        ]

    def next_ticket(self, window: int) -> str | None:
        """The ticket ``call_next`` would call at ``window`` now (None: nobody, or it is paused);
        a read, the same choice the call makes."""
        if self.paused_at(window) is not None:
            return None
        day, round_ = self.current_day()
        row = self._pick_next(self.storage.conn, day, round_, window)
        return row[1] if row else None

    def paused_windows(self) -> dict[int, float]:
        """Paused window -> since when (epoch seconds)."""
        return dict(
            self.storage.execute("SELECT window, paused_at FROM window_state WHERE paused_at IS NOT NULL")
        )

    # -- windows ---------------------------------------------------------

    def paused_at(self, window: int) -> float | None:
        row = self.storage.execute(
            "SELECT paused_at FROM window_state WHERE window = ?", (window,)
        ).fetchone()
        return row[0] if row else None

    def set_paused(self, window: int, paused: bool, now: datetime) -> bool:
        """暂停服务 / 恢复服务; False when the window already was so (no event then)."""
        with self.storage.transaction() as conn:
            self.today(now)
            since = self.paused_at(window)
            if (since is not None) == paused:
                return False
            conn.execute(
                "INSERT INTO window_state (window, paused_at) VALUES (?, ?)"
                " ON CONFLICT(window) DO UPDATE SET paused_at = excluded.paused_at",
                (window, now.timestamp() if paused else None),
            )
            action = "paused" if paused else "resumed"
            self._log(conn, None, action, window, now)
            data: dict[str, Any] = {"window": window}
            if since is not None:
                data["paused_s"] = round(now.timestamp() - since, 1)
            self.emit(f"window.{action}", data)
        return True

    # -- ratings (好差评) -------------------------------------------------

    def rate(self, window: int, label: str, level: int, now: datetime) -> bool:
        """Record the worker's rating of the service just finished; False if it was rated already."""
        with self.storage.transaction() as conn:
            day, round_ = self.current_day()
            row = conn.execute(
                "SELECT id, rating, category FROM tickets WHERE day = ? AND round = ? AND ticket = ?",
                (day, round_, label),
            ).fetchone()
            if row is None or row[1] is not None:
                return False
            conn.execute("UPDATE tickets SET rating = ? WHERE id = ?", (level, row[0]))
            self._log(conn, row[0], "rated", window, now, value=level)
            self.emit("ticket.rated", {"ticket": label, "window": window, "level": level, "category": row[2]})
        return True

    def rating_ignored(self, window: int, now: datetime) -> None:
        """A rating key pressed with no finished ticket waiting for one: counted for the report."""
        with self.storage.transaction() as conn:
            self._log(conn, None, "rating_ignored", window, now)

    def _log(  # noqa: PLR0917 (one row's columns, named at every call site by their order)
        self,
        conn: sqlite3.Connection,
        ticket_id: int | None,
        action: str,
        window: int,
        now: datetime,
        value: float | None = None,
    ) -> None:
        """One row per act on a ticket, in the act's transaction: what the daily report counts."""
        day = self.current_day()[0]
        conn.execute(
            "INSERT INTO ticket_log (day, ticket_id, action, window, at, value) VALUES (?, ?, ?, ?, ?, ?)",
            (day, ticket_id, action, window, now.timestamp(), value),
        )

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
        held: dict[str, list[str]] = {}
        for window, ticket in self.storage.execute(
            "SELECT window, ticket FROM tickets WHERE day = ? AND round = ? AND state = 'held' ORDER BY id",
            (day, round_),
        ):
            held.setdefault(str(window), []).append(ticket)
        paused = self.paused_windows()
        return {
            "day": day,
            "round": round_,
            "waiting": sum(c["waiting"] for c in categories.values()),
            "service_time_s": round(self.service_time_s(), 1),
            "categories": categories,
            "windows": windows,
            "held": held,
            "paused_windows": sorted(paused),
        }
