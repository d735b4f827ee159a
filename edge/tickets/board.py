"""What a window's caller screen shows (``queue.status``), made from the queue's open tickets.

Pure: the tickets feature reads the queue on the core thread (``TicketQueue.open_tickets``,
``next_ticket``, ``paused_windows``) and hands the rows here; nothing here touches storage, so the
shape can be checked without a hall.  The shape is documented in docs/queue.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from edge.clock import rfc3339
from edge.records import record
from edge.tickets.queue import OpenTicket

CALLER_ACTIONS = ("call", "recall", "skip", "finish", "pause", "resume", "hold", "bring_back", "transfer")


@record
class QueuePlan:
    """What the configuration says about the hall's queue: services by code and the windows."""

    categories: dict[str, str]  # code -> name, in the configuration's order
    serves: dict[int, tuple[str, ...]]  # window -> the services it calls (() = all)
    transfer_to: dict[int, str]  # window -> its transfer key's service ("" = none)

    def services_of(self, window: int) -> tuple[str, ...]:
        return self.serves.get(window) or tuple(self.categories)

    def may_call(self, window: int, ticket: OpenTicket) -> bool:
        """The tickets ``call_next`` may pick at ``window``: sent to it, or of a service it serves
        and not sent to another window."""
        if ticket.for_window is not None:
            return ticket.for_window == window
        return ticket.service in self.services_of(window)


def caller_board(
    hall: QueuePlan,
    tickets: list[OpenTicket],
    *,
    day: str,
    round_: int,
    now: datetime,
    paused: dict[int, float],
    next_up: dict[int, str | None],
    only: int | None = None,
) -> dict[str, Any]:
    """``queue.status``: every window (or ``only`` that one) and the waiting tickets per service."""
    windows = [w for w in sorted(hall.serves) if only in (None, w)]
    waiting = [t for t in tickets if t.state == "waiting"]
    if only is not None:
        waiting = [t for t in waiting if hall.may_call(only, t)]
    served = sorted({c for w in hall.serves for c in hall.services_of(w)}, key=list(hall.categories).index)
    return {
        "day": day,
        "round": round_,
        "now": rfc3339(now),
        "categories": [{"code": code, "name": name} for code, name in hall.categories.items()],
        "windows": [
            _window(hall, w, tickets, now=now, paused_since=paused.get(w), next_up=next_up.get(w))
            for w in windows
        ],
        "waiting": {
            code: [_waiting(t, now) for t in waiting if t.service == code] for code in hall.categories
        },
        "actions": list(CALLER_ACTIONS),
        "transfer_targets": {"categories": served, "windows": sorted(hall.serves)},
    }


def _window(
    hall: QueuePlan,
    window: int,
    tickets: list[OpenTicket],
    *,
    now: datetime,
    paused_since: float | None,
    next_up: str | None,
) -> dict[str, Any]:
    at_window = [t for t in tickets if t.window == window]
    serving = next((t for t in at_window if t.state == "called"), None)
    state = "paused" if paused_since is not None else ("serving" if serving else "idle")
    return {
        "window": window,
        "name": f"{window}号窗口",
        "serves": list(hall.services_of(window)),
        "state": state,
        "paused_since": _at(paused_since, now),
        "serving": _serving(serving, now) if serving else None,
        "held": [
            {"ticket": t.ticket, "held_at": _at(t.held_at, now)}
            for t in sorted(_in_state(at_window, "held"), key=lambda t: t.held_at or 0.0)
        ],
        "skipped": [
            {"ticket": t.ticket, "skipped_at": _at(t.finished_at, now), "recalls": t.recalls}
            for t in _in_state(at_window, "skipped")
        ],
        "next": next_up,
        "waiting": sum(1 for t in tickets if t.state == "waiting" and hall.may_call(window, t)),
        "transfer_to": hall.transfer_to.get(window) or None,
    }


def _serving(ticket: OpenTicket, now: datetime) -> dict[str, Any]:
    called_at = ticket.called_at or now.timestamp()
    return {
        "ticket": ticket.ticket,
        "category": ticket.service,
        "issued_for": ticket.issued_for,
        "priority": ticket.priority,
        "issued_at": _at(ticket.issued_at, now),
        "called_at": _at(called_at, now),
        "waited_s": _seconds(called_at - ticket.issued_at),
        "served_s": _seconds(now.timestamp() - called_at),
        "recalls": ticket.recalls,
    }


def _waiting(ticket: OpenTicket, now: datetime) -> dict[str, Any]:
    return {
        "ticket": ticket.ticket,
        "issued_at": _at(ticket.issued_at, now),
        "waited_s": _seconds(now.timestamp() - ticket.issued_at),
        "priority": ticket.priority,
        "for_window": ticket.for_window,
        "transferred": ticket.transferred,
    }


def _in_state(tickets: Iterable[OpenTicket], state: str) -> list[OpenTicket]:
    return [t for t in tickets if t.state == state]


def _at(epoch: float | None, now: datetime) -> str | None:
    """Epoch seconds as RFC 3339 in the hall's zone (``now``'s)."""
    return None if epoch is None else rfc3339(datetime.fromtimestamp(epoch, now.tzinfo))


def _seconds(value: float) -> float:
    return round(max(0.0, value), 1)
