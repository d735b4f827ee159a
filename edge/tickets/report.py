"""The daily figures (``report.daily``): computed from the stored tickets and their log, never counted
on the fly, so a restart during the day (or a report asked for a past day) gives the same figures.

Every figure is per category (the category a ticket was *issued* for, its letter) and per window:

- ``issued``: tickets issued (per window: none, a ticket belongs to no window until called);
- ``called``: tickets called at least once (per window: tickets that window called);
- ``served``: tickets finished (办结, or the window called its next ticket);
- ``no_show``: tickets skipped (过号) and not served afterwards (per window: the window that
  skipped it last);
- ``transferred``: tickets transferred at least once (per window: transfers made by that window);
- ``wait_s``: issue -> first call; ``service_s``: call -> finish; each ``{"n", "mean", "p90"}``
  (p90 by nearest rank: the smallest value that at least 90 % of the values do not exceed);
- ``ratings``: ``{"5": n, ..., "1": n}`` and ``unrated`` (served, not rated);
  per window also ``ratings_ignored`` (rating keys pressed with nothing to rate).

``hours`` gives per hour of the hall's day (local time, "08".."17") the tickets issued and served,
the tickets first called in that hour and the mean and longest wait (issue -> first call) of those:
the chart of the day.  Hours with nothing issued, called or served are left out.
Used on the core thread (closing time, the ``queue.report`` command); ``daily_reports`` remembers
which days were reported, so a report is made once per day, whatever restarts.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from edge.storage import Storage

LEVELS = ("5", "4", "3", "2", "1")


@dataclass
class Tally:
    """The figures of one category or one window."""

    issued: int = 0
    called: int = 0
    served: int = 0
    no_show: int = 0
    transferred: int = 0
    waits: list[float] = field(default_factory=list)
    services: list[float] = field(default_factory=list)
    ratings: Counter[str] = field(default_factory=Counter)
    ratings_ignored: int = 0

    def figures(self, *, window: bool) -> dict[str, Any]:
        out: dict[str, Any] = {} if window else {"issued": self.issued}
        out.update(
            called=self.called,
            served=self.served,
            no_show=self.no_show,
            transferred=self.transferred,
            wait_s=spread(self.waits),
            service_s=spread(self.services),
            ratings={level: self.ratings[level] for level in LEVELS},
            unrated=max(0, self.served - sum(self.ratings.values())),
        )
        if window:
            out["ratings_ignored"] = self.ratings_ignored
        return out


def spread(values: list[float]) -> dict[str, Any]:
    """Count, mean and p90 (nearest rank) of ``values``, in whole tenths of a second."""
    if not values:
        return {"n": 0, "mean": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {"n": len(values), "mean": round(sum(values) / len(values), 1), "p90": round(p90, 1)}


@dataclass
class _Ticket:
    category: str
    issued_at: float
    calls: set[int] = field(default_factory=set)
    first_call: bool = False
    last_skip: int | None = None
    served: bool = False
    transferred: bool = False


def daily_report(storage: Storage, day: str, zone: tzinfo) -> dict[str, Any]:
    """The figures of queue day ``day`` (every round of it), as ``report.daily`` carries them."""
    categories: defaultdict[str, Tally] = defaultdict(Tally)
    windows: defaultdict[int, Tally] = defaultdict(Tally)
    issued_by_hour: Counter[str] = Counter()
    served_by_hour: Counter[str] = Counter()
    waits_by_hour: defaultdict[str, list[float]] = defaultdict(list)
    tickets: dict[int, _Ticket] = {}
    for ticket_id, category, issued_at in storage.execute(
        "SELECT id, category, issued_at FROM tickets WHERE day = ? ORDER BY id", (day,)
    ):
        tickets[ticket_id] = _Ticket(category, issued_at)
        categories[category].issued += 1
        issued_by_hour[_hour(issued_at, zone)] += 1
    for ticket_id, action, window, at, value in storage.execute(
        "SELECT ticket_id, action, window, at, value FROM ticket_log WHERE day = ? ORDER BY id", (day,)
    ):
        ticket = tickets.get(ticket_id)
        if action == "rating_ignored":
            windows[window].ratings_ignored += 1
        if ticket is None:
            continue  # pause, resume, ignored ratings: no ticket
        per_category, per_window = categories[ticket.category], windows[window]
        if action == "called":
            if not ticket.first_call:
                ticket.first_call = True
                per_category.called += 1
                per_category.waits.append(value)
                per_window.waits.append(value)
                waits_by_hour[_hour(at, zone)].append(value)
            if window not in ticket.calls:
                ticket.calls.add(window)
                per_window.called += 1
        elif action == "finished":
            ticket.served = True
            for tally in (per_category, per_window):
                tally.served += 1
                tally.services.append(value)
            served_by_hour[_hour(at, zone)] += 1
        elif action == "skipped":
            ticket.last_skip = window
        elif action == "transferred":
            per_window.transferred += 1
            if not ticket.transferred:
                ticket.transferred = True
                per_category.transferred += 1
        elif action == "rated":
            level = str(int(value))
            per_category.ratings[level] += 1
            per_window.ratings[level] += 1
    for ticket in tickets.values():
        if ticket.last_skip is not None and not ticket.served:
            categories[ticket.category].no_show += 1
            windows[ticket.last_skip].no_show += 1
    hours = sorted(set(issued_by_hour) | set(served_by_hour) | set(waits_by_hour))
    return {
        "day": day,
        "categories": {code: categories[code].figures(window=False) for code in sorted(categories)},
        "windows": {str(w): windows[w].figures(window=True) for w in sorted(windows)},
        "hours": {h: _hour_figures(issued_by_hour[h], served_by_hour[h], waits_by_hour[h]) for h in hours},
    }


def _hour_figures(issued: int, served: int, waits: list[float]) -> dict[str, Any]:
    return {
        "issued": issued,
        "served": served,
        "called": len(waits),
        "wait_mean_s": round(sum(waits) / len(waits), 1) if waits else None,
        "wait_max_s": round(max(waits), 1) if waits else None,
    }


def unreported_days(storage: Storage, earliest: str, latest: str) -> list[str]:
    """Days from ``earliest`` to ``latest`` with tickets whose report.daily was not made yet."""
    return [
        day
        for (day,) in storage.execute(
            "SELECT DISTINCT day FROM tickets WHERE day BETWEEN ? AND ?"
            " AND day NOT IN (SELECT day FROM daily_reports) ORDER BY day",
            (earliest, latest),
        )
    ]


def reported(storage: Storage, day: str) -> bool:
    return storage.execute("SELECT 1 FROM daily_reports WHERE day = ?", (day,)).fetchone() is not None


def mark_reported(storage: Storage, day: str, at: float) -> None:
    """Call in the transaction that emits the day's report.daily: one report per day, ever."""
    storage.execute("INSERT INTO daily_reports (day, made_at) VALUES (?, ?)", (day, at))


def _hour(at: float, zone: tzinfo) -> str:
    return f"{datetime.fromtimestamp(at, zone).hour:02d}"
