"""The locker's durable records: tools, rentals, door sessions, the per-tool ledger, open alarms.

Every change that has an event is written in the same transaction as that
event (``core.emit`` joins it), so after a power loss either both are on the
disk or neither is.  A *session* is a compartment unlocked for a checkout or
a return; it becomes a rental (or a return) only once the door sensor shows
the door was opened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from edge.clock import rfc3339
from edge.core import Core
from edge.protocol import new_ulid
from edge.records import record
from edge.settings import CompartmentSettings
from edge.storage import Additive

MIGRATIONS = [
    """
    CREATE TABLE locker_tools (
        tool_id TEXT PRIMARY KEY,
        tool_type TEXT NOT NULL,
        compartment INTEGER NOT NULL,
        state TEXT NOT NULL,      -- available | out | pending_inspection | repair | written_off
        rental_id TEXT            -- the rental it is out on, or was last returned from
    );
    CREATE TABLE locker_rentals (
        rental_id TEXT PRIMARY KEY,
        tool_id TEXT NOT NULL,
        tool_type TEXT NOT NULL,
        compartment INTEGER NOT NULL,
        worker TEXT NOT NULL,
        out_at TEXT NOT NULL,
        out_epoch REAL NOT NULL,
        returned_by TEXT,
        returned_at TEXT,
        duration_s REAL,
        result TEXT,
        inspector TEXT,
        inspected_at TEXT,
        note TEXT
    );
    CREATE TABLE locker_sessions (
        compartment INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,       -- checkout | return
        rental_id TEXT NOT NULL,
        tool_id TEXT NOT NULL,
        worker TEXT NOT NULL,     -- who tapped
        started_at TEXT NOT NULL,
        door_opened INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE locker_ledger (
        id INTEGER PRIMARY KEY,
        tool_id TEXT NOT NULL,
        at TEXT NOT NULL,
        action TEXT NOT NULL,     -- added | checkout | return | inspected | repair | repaired | written_off
        rental_id TEXT,
        worker TEXT,
        detail TEXT
    );
    CREATE INDEX locker_ledger_tool ON locker_ledger (tool_id, id);
    CREATE TABLE locker_alarms (
        key TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        since TEXT NOT NULL,
        facts TEXT NOT NULL
    )
    """,
    Additive("ALTER TABLE locker_sessions ADD COLUMN unlocked_at TEXT"),
]

LENDABLE = "available"
# The states as staff name them (locker.status, audit.tool_written_off); the table keeps its words.
STATE_NAMES = {
    LENDABLE: "in_stock",
    "out": "out",
    "pending_inspection": "awaiting_inspection",
    "repair": "in_repair",
    "written_off": "written_off",
}
STAFF_ACTS = ("inspected", "repair", "repaired", "written_off")  # ledger actions whose worker is staff


@dataclass
class Tool:
    tool_id: str
    tool_type: str
    compartment: int
    state: str
    rental_id: str | None
    worker: str | None = None  # the borrower while out
    out_epoch: float | None = None


def is_overdue(tool: Tool, now: float, loan_s: float) -> bool:
    """Out longer than the loan time (``now`` epoch seconds)."""
    return tool.state == "out" and tool.out_epoch is not None and now - tool.out_epoch > loan_s


@record
class LastAct:
    """A tool's latest ledger row: when it entered its state, and who (worker or staff) did it."""

    action: str
    at: str
    worker: str | None
    detail: str | None


@record
class Session:
    compartment: int
    kind: str
    rental_id: str
    tool_id: str
    worker: str
    started_at: str
    door_opened: bool


class Ledger:
    """Reads and writes the locker tables; keeps the tools in memory for fast decisions."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.db = core.storage
        self.db.migrate("locker", MIGRATIONS)
        self.tools: dict[str, Tool] = {}
        self.alarms: dict[str, dict[str, Any]] = {}

    # -- loading ----------------------------------------------------------------

    def sync_tools(self, compartments: Iterable[CompartmentSettings]) -> None:
        """Add tools named in the configuration; a known tool keeps its state and history."""
        with self.db.transaction() as conn:
            for spec in compartments:
                known = conn.execute(
                    "SELECT 1 FROM locker_tools WHERE tool_id = ?", (spec.tool_id,)
                ).fetchone()
                if known:
                    conn.execute(
                        "UPDATE locker_tools SET tool_type = ?, compartment = ? WHERE tool_id = ?",
                        (spec.tool_type, spec.number, spec.tool_id),
                    )
                    continue
                conn.execute(
                    "INSERT INTO locker_tools (tool_id, tool_type, compartment, state) VALUES (?, ?, ?, ?)",
                    (spec.tool_id, spec.tool_type, spec.number, LENDABLE),
                )
                self._ledger(spec.tool_id, "added", None, None, f"compartment {spec.number}")
            # A tool taken out of the configuration keeps its history (and its open rental,
            # which can still be returned by command) but no longer has a compartment.
            names = [spec.tool_id for spec in compartments]
            conn.execute(
                "UPDATE locker_tools SET compartment = 0"
                f" WHERE tool_id NOT IN ({','.join('?' * len(names))})",
                names,
            )
        self.load()

    def load(self) -> None:
        rows = self.db.execute(
            "SELECT t.tool_id, t.tool_type, t.compartment, t.state, t.rental_id, r.worker, r.out_epoch"
            " FROM locker_tools t LEFT JOIN locker_rentals r ON r.rental_id = t.rental_id"
        ).fetchall()
        self.tools = {row[0]: Tool(*row) for row in rows}
        for tool in self.tools.values():
            if tool.state != "out":
                tool.worker = tool.out_epoch = None
        self.alarms = {
            key: {"type": type_, "since": since, **json.loads(facts)}
            for key, type_, since, facts in self.db.execute(
                "SELECT key, type, since, facts FROM locker_alarms"
            ).fetchall()
        }

    def sessions(self) -> dict[int, Session]:
        rows = self.db.execute(
            "SELECT compartment, kind, rental_id, tool_id, worker, started_at, door_opened"
            " FROM locker_sessions"
        ).fetchall()
        return {
            number: Session(number, kind, rental_id, tool_id, worker, started_at, bool(door_opened))
            for number, kind, rental_id, tool_id, worker, started_at, door_opened in rows
        }

    # -- queries ----------------------------------------------------------------

    def held_by(self, worker: str) -> list[Tool]:
        """Tools out on this worker's rentals, oldest first."""
        held = [t for t in self.tools.values() if t.state == "out" and t.worker == worker]
        return sorted(held, key=lambda t: t.out_epoch or 0.0)

    def in_compartment(self, number: int) -> Tool | None:
        for tool in self.tools.values():
            if tool.compartment == number and number:
                return tool
        return None

    def history(self, tool_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT at, action, rental_id, worker, detail FROM locker_ledger WHERE tool_id = ? ORDER BY id",
            (tool_id,),
        ).fetchall()
        return [
            dict(zip(("at", "action", "rental_id", "worker", "detail"), row, strict=True)) for row in rows
        ]

    def last_acts(self) -> dict[str, LastAct]:
        """Each tool's latest ledger row."""
        rows = self.db.execute(
            "SELECT tool_id, action, at, worker, detail FROM locker_ledger"
            " WHERE id IN (SELECT MAX(id) FROM locker_ledger GROUP BY tool_id)"
        ).fetchall()
        return {row[0]: LastAct(*row[1:]) for row in rows}

    # -- sessions -----------------------------------------------------------------

    def open_session(self, kind: str, tool: Tool, worker: str) -> Session:
        rental_id = tool.rental_id if kind == "return" and tool.rental_id else f"R-{new_ulid()}"
        session = Session(tool.compartment, kind, rental_id, tool.tool_id, worker, self._now(), False)
        # This commit sits between a tap and the latch: it skips the fsync (WAL, synchronous
        # NORMAL).  A killed process cannot lose it (it is in the OS cache); only a power loss
        # can, and mark_unlocked() makes it power-safe a moment after the pulse starts.  A power
        # loss in that moment also drops the lock before anyone could have opened the door.
        with self.db.transaction(durable=False) as conn:
            conn.execute(
                "INSERT INTO locker_sessions (compartment, kind, rental_id, tool_id, worker, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (session.compartment, kind, rental_id, tool.tool_id, worker, session.started_at),
            )
        return session

    def mark_unlocked(self, session: Session) -> None:
        """The lock was pulsed: recorded with a full sync (it also makes the session power-safe)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE locker_sessions SET unlocked_at = ? WHERE compartment = ?",
                (self._now(), session.compartment),
            )

    def door_opened(self, session: Session) -> Session:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE locker_sessions SET door_opened = 1 WHERE compartment = ?", (session.compartment,)
            )
        return replace(session, door_opened=True)

    def drop_session(self, session: Session, reason: str) -> None:
        """An unlock that never became a rental or a return: the tapper is told why."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM locker_sessions WHERE compartment = ?", (session.compartment,))
            self.core.emit(
                "rental.denied",
                {"reason": reason, "worker": session.worker, "compartment": session.compartment},
            )

    # -- rentals ------------------------------------------------------------------

    def checkout(self, session: Session) -> dict[str, Any]:
        tool = self.tools[session.tool_id]
        epoch, at = time.time(), self._now()
        data = {
            "rental_id": session.rental_id,
            "worker": session.worker,
            "tool_id": tool.tool_id,
            "tool_type": tool.tool_type,
            "compartment": tool.compartment,
        }
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO locker_rentals (rental_id, tool_id, tool_type, compartment, worker, out_at,"
                " out_epoch) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session.rental_id,
                    tool.tool_id,
                    tool.tool_type,
                    tool.compartment,
                    session.worker,
                    at,
                    epoch,
                ),
            )
            self._set_tool(tool.tool_id, "out", session.rental_id)
            self._ledger(tool.tool_id, "checkout", session.rental_id, session.worker, None)
            conn.execute("DELETE FROM locker_sessions WHERE compartment = ?", (session.compartment,))
            self.core.emit("rental.checkout", data)
        tool.state, tool.rental_id, tool.worker, tool.out_epoch = (
            "out",
            session.rental_id,
            session.worker,
            epoch,
        )
        return data

    def give_back(self, session: Session) -> dict[str, Any]:
        """The tool is back in its compartment: the rental ends, the tool waits for inspection."""
        tool = self.tools[session.tool_id]
        row = self.db.execute(
            "SELECT worker, out_epoch FROM locker_rentals WHERE rental_id = ?", (session.rental_id,)
        ).fetchone()
        borrower, out_epoch = row if row else (session.worker, time.time())
        duration = round(max(0.0, time.time() - out_epoch), 3)
        data = {
            "rental_id": session.rental_id,
            "worker": borrower,
            "tool_id": tool.tool_id,
            "compartment": tool.compartment,
            "duration_s": duration,
            "returned_by": session.worker,  # another worker may bring a tool back: both are recorded
        }
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE locker_rentals SET returned_by = ?, returned_at = ?, duration_s = ?"
                " WHERE rental_id = ?",
                (session.worker, self._now(), duration, session.rental_id),
            )
            self._set_tool(tool.tool_id, "pending_inspection", session.rental_id)
            detail = None if borrower == session.worker else f"returned by {session.worker}"
            self._ledger(tool.tool_id, "return", session.rental_id, borrower, detail)
            conn.execute("DELETE FROM locker_sessions WHERE compartment = ?", (session.compartment,))
            self.core.emit("rental.return", data)
        tool.state, tool.worker, tool.out_epoch = "pending_inspection", None, None
        return data

    def inspect(self, tool: Tool, result: str, inspector: str, note: str) -> dict[str, Any]:
        """ok -> lendable again; damaged -> repair; lost -> written off."""
        new_state = {"ok": LENDABLE, "damaged": "repair", "lost": "written_off"}[result]
        data: dict[str, Any] = {
            "rental_id": tool.rental_id,
            "tool_id": tool.tool_id,
            "result": result,
            "inspector": inspector,
            "note": note,
        }
        if tool.state == "repair" and result == "ok":
            data["repaired"] = True  # back from repair (locker.repaired)
        with self.db.transaction() as conn:
            if tool.rental_id:
                conn.execute(
                    "UPDATE locker_rentals SET result = ?, inspector = ?, inspected_at = ?, note = ?"
                    " WHERE rental_id = ?",
                    (result, inspector, self._now(), note, tool.rental_id),
                )
            action = "repaired" if tool.state == "repair" and result == "ok" else "inspected"
            self._ledger(tool.tool_id, action, tool.rental_id, inspector, f"{result} {note}".strip())
            if new_state != LENDABLE:
                self._ledger(tool.tool_id, new_state, tool.rental_id, inspector, note or None)
            self._set_tool(tool.tool_id, new_state, tool.rental_id)
            self.core.emit("rental.inspected", data)
        tool.state = new_state
        return data

    def write_off(self, tool: Tool, by: str, note: str) -> dict[str, Any]:
        """报损: a tool not out (in stock but found missing, awaiting inspection, in repair) is never
        lent again.  One awaiting inspection has its rental's inspection recorded as lost too."""
        data = {
            "tool_id": tool.tool_id,
            "tool_type": tool.tool_type,
            "compartment": tool.compartment,
            "from": STATE_NAMES[tool.state],
            "by": by,
            "note": note,
            "rental_id": tool.rental_id,
        }
        with self.db.transaction():
            if tool.state == "pending_inspection" and tool.rental_id:
                self.inspect(tool, "lost", by, note)  # the ledger rows and the new state with it
            else:
                self._ledger(tool.tool_id, "written_off", tool.rental_id, by, note or None)
                self._set_tool(tool.tool_id, "written_off", tool.rental_id)
            self.core.emit("audit.tool_written_off", data)
        tool.state = "written_off"
        return data

    # -- alarms: one event when an incident starts, one when it clears ---------------

    def raise_alarm(self, key: str, type_: str, facts: dict[str, Any]) -> bool:
        if key in self.alarms:
            return False
        since = self._now()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO locker_alarms (key, type, since, facts) VALUES (?, ?, ?, ?)",
                (key, type_, since, json.dumps(facts, ensure_ascii=False)),
            )
            self.core.emit(type_, {"state": "raised", **facts})
        self.alarms[key] = {"type": type_, "since": since, **facts}
        return True

    def clear_alarm(self, key: str, extra: dict[str, Any] | None = None) -> bool:
        alarm = self.alarms.get(key)
        if alarm is None:
            return False
        facts = {k: v for k, v in alarm.items() if k != "type"}
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM locker_alarms WHERE key = ?", (key,))
            self.core.emit(alarm["type"], {"state": "cleared", **facts, **(extra or {})})
        del self.alarms[key]
        return True

    # -- internals ---------------------------------------------------------------------

    def _set_tool(self, tool_id: str, state: str, rental_id: str | None) -> None:
        self.db.execute(
            "UPDATE locker_tools SET state = ?, rental_id = ? WHERE tool_id = ?", (state, rental_id, tool_id)
        )

    def _ledger(
        self, tool_id: str, action: str, rental_id: str | None, worker: str | None, detail: str | None
    ) -> None:
        self.db.execute(
            "INSERT INTO locker_ledger (tool_id, at, action, rental_id, worker, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (tool_id, self._now(), action, rental_id, worker, detail),
        )

    def _now(self) -> str:
        return rfc3339(self.core.clock.now())
