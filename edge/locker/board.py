"""What the staff console's locker page shows (``locker.status``), made from the ledger's state.

Pure: the locker feature hands over, on the core thread, its tools, their latest ledger rows, the
door levels and the unlocks in progress; nothing here touches storage or hardware.  The shape is
documented in docs/locker.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from edge.clock import rfc3339
from edge.locker.ledger import STAFF_ACTS, STATE_NAMES, LastAct, Session, Tool, is_overdue
from edge.records import record

STAFF_ACTIONS = ("inspect", "repaired", "write_off", "open")
NOTED = ("repair", "written_off")  # ledger actions whose detail is the staff member's note


@record
class LockerState:
    """The locker as the feature knows it at one moment."""

    tools: list[Tool]
    last_acts: dict[str, LastAct]
    compartments: set[int]  # the configured compartments
    doors: dict[int, bool]  # compartment -> door open (absent: not known yet)
    sessions: dict[int, Session]  # unlocks in progress
    alarms: list[str]


def locker_board(state: LockerState, now: datetime, loan_hours: float) -> dict[str, Any]:
    """``locker.status``: every tool by compartment (compartment 0, no longer configured, last)."""
    loan_s = loan_hours * 3600
    tools = sorted(state.tools, key=lambda t: (t.compartment == 0, t.compartment, t.tool_id))
    entries = [_tool(state, tool, now, loan_s) for tool in tools]
    counts = dict.fromkeys([*STATE_NAMES.values(), "overdue"], 0)
    for entry in entries:
        counts[entry["state"]] += 1
    return {
        "now": rfc3339(now),
        "loan_hours": loan_hours,
        "tools": entries,
        "counts": {name: counts[name] for name in _COUNT_ORDER},
        "doors_open": sorted(n for n, is_open in state.doors.items() if is_open),
        "alarms": sorted(state.alarms),
        "actions": list(STAFF_ACTIONS),
    }


_COUNT_ORDER = ("in_stock", "out", "overdue", "awaiting_inspection", "in_repair", "written_off")


def _tool(state: LockerState, tool: Tool, now: datetime, loan_s: float) -> dict[str, Any]:
    last = state.last_acts.get(tool.tool_id)
    out = tool.state == "out"
    name = "overdue" if is_overdue(tool, now.timestamp(), loan_s) else STATE_NAMES[tool.state]
    staff = last is not None and last.action in STAFF_ACTS
    number = tool.compartment if tool.compartment in state.compartments else None
    session = state.sessions.get(number) if number is not None else None
    return {
        "compartment": tool.compartment,
        "tool_id": tool.tool_id,
        "tool_type": tool.tool_type,
        "state": name,
        "since": last.at if last else None,
        "due": _at(tool.out_epoch + loan_s, now) if out and tool.out_epoch is not None else None,
        "worker": _worker(tool, last),
        "rental_id": tool.rental_id if tool.state in ("out", "pending_inspection") else None,
        "by": last.worker if staff and last else None,
        "note": last.detail if last and last.action in NOTED else None,
        "door": None if number is None else _door(state.doors.get(number)),
        "unlocked_for": session.kind if session else None,
    }


def _worker(tool: Tool, last: LastAct | None) -> str | None:
    """The borrower (a worker id from the cards snapshot, never a card number): while the tool is
    out, and while it waits for inspection after its return."""
    if tool.state == "out":
        return tool.worker
    if tool.state == "pending_inspection" and last is not None and last.action == "return":
        return last.worker
    return None


def _door(is_open: bool | None) -> str:
    return "unknown" if is_open is None else ("open" if is_open else "closed")


def _at(epoch: float, now: datetime) -> str:
    return rfc3339(datetime.fromtimestamp(epoch, now.tzinfo))
