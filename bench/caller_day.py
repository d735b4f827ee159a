"""A busy hall's day through the window caller: report.daily against counts made from the events.

One simulated day (08:30-17:30 hall time) on the real queue and outbox in SQLite: 500 tickets over
5 categories (arrivals at random, a busy hall's rate), 3 windows (1 calls A and B, 2 calls C, D
and E, 3 calls every category), each call finished (办结) or finished by the next call, with
no-shows (some recalled later), transfers to another category, tickets held aside and brought
back, a lunch pause per window, and ratings (好差评) on most finished services plus stray presses.

The daily figures (``edge.tickets.report.daily_report``, what ``report.daily`` carries) are then
compared with the same figures counted independently from the ``ticket.*`` events in the outbox
(and the hours against the simulation's own log, since an event's ``at`` is the wall clock):
both are printed side by side and any difference fails the run (exit 1).

    .venv/bin/python bench/caller_day.py --tickets 500 --seed 14
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge.clock import Clock
from edge.outbox import Outbox
from edge.storage import Storage
from edge.tickets.queue import QueueError, TicketQueue
from edge.tickets.report import LEVELS, daily_report, spread

ZONE = ZoneInfo("Asia/Shanghai")
DAY = "2026-11-30"
OPEN, CLOSE = "08:30", "17:30"
CATEGORIES = {"A": 130.0, "B": 160.0, "C": 90.0, "D": 200.0, "E": 100.0}  # mean service seconds
MIX = {"A": 0.35, "B": 0.15, "C": 0.2, "D": 0.1, "E": 0.2}
SERVES = {1: ("A", "B"), 2: ("C", "D", "E"), 3: ()}
LUNCH = {1: "11:45", 2: "12:15", 3: "12:45"}  # each window pauses 40 minutes, one after another
RATING_LEVELS = (5, 4, 3, 2, 1)
RATING_WEIGHTS = (0.6, 0.25, 0.1, 0.03, 0.02)


def at(hhmm: str, seconds: float = 0.0) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hhmm}:00").replace(tzinfo=ZONE) + timedelta(seconds=seconds)


class Day:
    """The simulated day: a heap of (time, n, act) and the windows' state."""

    def __init__(self, queue: TicketQueue, tickets: int, rng: random.Random) -> None:
        self.queue, self.rng = queue, rng
        self.heap: list[tuple[datetime, int, str, tuple[Any, ...]]] = []
        self.n = 0
        self.held: dict[int, list[str]] = defaultdict(list)
        self.skipped: dict[int, list[str]] = defaultdict(list)
        self.paused: set[int] = set()
        self.issued_by_hour: Counter[str] = Counter()
        self.served_by_hour: Counter[str] = Counter()
        self.waits_by_hour: defaultdict[str, list[float]] = defaultdict(list)  # of first calls
        self.first_called: set[str] = set()
        self.acts: Counter[str] = Counter()
        span = (at(CLOSE) - at(OPEN)).total_seconds() * 0.92  # the last arrivals half an hour before closing
        for moment in sorted(rng.uniform(0, span) for _ in range(tickets)):
            category = rng.choices(list(MIX), weights=list(MIX.values()))[0]
            self.push(at(OPEN, moment), "issue", category)
        for window, lunch in LUNCH.items():
            self.push(at(OPEN), "free", window)
            self.push(at(lunch), "pause", window)

    def push(self, moment: datetime, act: str, *args: Any) -> None:
        self.n += 1
        heapq.heappush(self.heap, (moment, self.n, act, args))

    def run(self) -> None:
        while self.heap:
            now, _, act, args = heapq.heappop(self.heap)
            if now >= at(CLOSE):
                break
            getattr(self, f"on_{act}")(now, *args)

    def on_issue(self, now: datetime, category: str) -> None:
        self.queue.issue(category, self.rng.random() < 0.05, now)
        self.issued_by_hour[f"{now.hour:02d}"] += 1

    def on_pause(self, now: datetime, window: int) -> None:
        self.paused.add(window)  # takes effect when the window is next free

    def on_resume(self, now: datetime, window: int) -> None:
        self.queue.set_paused(window, False, now)
        self.acts["resume"] += 1
        self.push(now, "free", window)

    def on_free(self, now: datetime, window: int) -> None:
        """The window's current service is over (or it was idle): what does its staff press now?"""
        if window in self.paused:
            self.paused.discard(window)
            self.queue.set_paused(window, True, now)
            self.acts["pause"] += 1
            self.push(now + timedelta(minutes=40), "resume", window)
            return
        if self.held[window]:
            self.queue.bring_back(window, now, self.held[window].pop(0))
            self.acts["bring_back"] += 1
            self.serve(now, window, self._called(window))
            return
        if self.skipped[window] and self.rng.random() < 0.5:  # the no-show turned up at the window
            try:
                called = self.queue.recall(window, now, self.skipped[window].pop(0)).ticket
                self.acts["recall"] += 1
                self.serve(now, window, called)
                return
            except QueueError:
                pass  # recalled too often already: the window calls the next one
        called_ticket = self.queue.call_next(window, now)
        if called_ticket is None:
            self.push(now + timedelta(seconds=30), "free", window)
            return
        self.acts["call"] += 1
        if called_ticket.ticket not in self.first_called:  # a transferred ticket is called again
            self.first_called.add(called_ticket.ticket)
            self.waits_by_hour[f"{now.hour:02d}"].append(called_ticket.wait_s)
        self.serve(now, window, called_ticket.ticket)

    def _called(self, window: int) -> str:
        ticket = self.queue.called_ticket(window)
        assert ticket is not None
        return ticket

    def serve(self, now: datetime, window: int, ticket: str) -> None:
        """Decide what becomes of the ticket just called and when the window is free again."""
        roll = self.rng.random()
        if roll < 0.05:  # no-show: skipped after a minute
            self.push(now + timedelta(seconds=60), "skip", window, ticket)
        elif roll < 0.08:  # the wrong service: sent on
            self.push(now + timedelta(seconds=90), "transfer", window, ticket)
        elif roll < 0.11:  # a document missing: set aside, brought back after the next service
            self.push(now + timedelta(seconds=45), "hold", window, ticket)
        else:
            category = self.queue.storage.execute(
                "SELECT service FROM tickets WHERE ticket = ? AND state = 'called'", (ticket,)
            ).fetchone()[0]
            seconds = min(1800.0, 20 + self.rng.expovariate(1 / CATEGORIES[category]))
            self.push(now + timedelta(seconds=seconds), "finish", window, ticket)

    def on_skip(self, now: datetime, window: int, ticket: str) -> None:
        self.queue.skip(window, now)
        self.acts["skip"] += 1
        if self.rng.random() < 0.5:  # half the no-shows turn up later and are recalled
            self.skipped[window].append(ticket)
        self.push(now, "free", window)

    def on_transfer(self, now: datetime, window: int, ticket: str) -> None:
        service = self.queue.storage.execute(
            "SELECT service FROM tickets WHERE ticket = ? AND state = 'called'", (ticket,)
        ).fetchone()[0]
        target = self.rng.choice([c for c in CATEGORIES if c != service])
        self.queue.transfer(window, now, to_category=target)
        self.acts["transfer"] += 1
        self.push(now, "free", window)

    def on_hold(self, now: datetime, window: int, ticket: str) -> None:
        self.queue.hold(window, now)
        self.acts["hold"] += 1
        self.held[window].append(ticket)
        self.push(now, "free", window)

    def on_finish(self, now: datetime, window: int, ticket: str) -> None:
        if self.rng.random() < 0.2:  # staff press call without 办结: the call finishes it
            self.served_by_hour[f"{now.hour:02d}"] += 1
            self.push(now, "free", window)  # the call (in on_free) finishes it
            return
        self.queue.finish(window, now)
        self.acts["finish"] += 1
        self.served_by_hour[f"{now.hour:02d}"] += 1
        if self.rng.random() < 0.85:
            level = self.rng.choices(RATING_LEVELS, weights=RATING_WEIGHTS)[0]
            self.queue.rate(window, ticket, level, now + timedelta(seconds=5))
            self.acts["rate"] += 1
        if self.rng.random() < 0.03:
            self.queue.rating_ignored(window, now + timedelta(seconds=40))
            self.acts["rating_ignored"] += 1
        self.push(now + timedelta(seconds=10), "free", window)


# ---- counting from the events alone --------------------------------------------------------


def from_events(storage: Storage) -> dict[str, Any]:
    """The report's figures, counted from the outbox's ticket.* events only."""
    category_of: dict[str, str] = {}
    cats: dict[str, dict[str, Any]] = defaultdict(lambda: _blank(window=False))
    wins: dict[int, dict[str, Any]] = defaultdict(lambda: _blank(window=True))
    first_called: set[str] = set()
    called_at: set[tuple[str, int]] = set()
    transferred: set[str] = set()
    last_skip: dict[str, int] = {}
    served: set[str] = set()
    for type_, payload in storage.execute("SELECT type, payload FROM outbox ORDER BY seq"):
        data = json.loads(payload)["data"]
        ticket, window = data.get("ticket"), data.get("window")
        if type_ == "ticket.issued":
            category_of[ticket] = data["category"]
            cats[data["category"]]["issued"] += 1
            continue
        if type_ not in (
            "ticket.called",
            "ticket.finished",
            "ticket.skipped",
            "ticket.transferred",
            "ticket.rated",
        ):
            continue
        cat, win = cats[category_of[ticket]], wins[window]
        if type_ == "ticket.called":
            if ticket not in first_called:
                first_called.add(ticket)
                cat["called"] += 1
                cat["waits"].append(data["wait_s"])
                win["waits"].append(data["wait_s"])
            if (ticket, window) not in called_at:
                called_at.add((ticket, window))
                win["called"] += 1
        elif type_ == "ticket.finished":
            served.add(ticket)
            for tally in (cat, win):
                tally["served"] += 1
                tally["services"].append(data["service_s"])
        elif type_ == "ticket.skipped":
            last_skip[ticket] = window
        elif type_ == "ticket.transferred":
            win["transferred"] += 1
            if ticket not in transferred:
                transferred.add(ticket)
                cat["transferred"] += 1
        else:
            cat["ratings"][str(data["level"])] += 1
            win["ratings"][str(data["level"])] += 1
    for ticket, window in last_skip.items():
        if ticket not in served:
            cats[category_of[ticket]]["no_show"] += 1
            wins[window]["no_show"] += 1
    return {
        "categories": {c: _figures(t) for c, t in sorted(cats.items())},
        "windows": {str(w): _figures(t) for w, t in sorted(wins.items())},
    }


def _blank(*, window: bool) -> dict[str, Any]:
    blank: dict[str, Any] = {"called": 0, "served": 0, "no_show": 0, "transferred": 0,
                             "waits": [], "services": [], "ratings": Counter()}  # fmt: skip
    if not window:
        blank["issued"] = 0
    return blank


def _figures(tally: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in tally.items() if k not in ("waits", "services", "ratings")}
    out["wait_s"], out["service_s"] = spread(tally["waits"]), spread(tally["services"])
    out["ratings"] = {level: tally["ratings"][level] for level in LEVELS}
    out["unrated"] = max(0, out["served"] - sum(out["ratings"].values()))
    return out


# ---- comparing and printing ----------------------------------------------------------------

COLUMNS = ("issued", "called", "served", "no_show", "transferred")


def flat(figures: dict[str, Any]) -> dict[str, Any]:
    out = {k: figures.get(k) for k in COLUMNS if k in figures}
    for name in ("wait_s", "service_s"):
        for part in ("n", "mean", "p90"):
            out[f"{name}.{part}"] = figures[name][part]
    out.update({f"rated {level}": n for level, n in figures["ratings"].items()})
    out["unrated"] = figures["unrated"]
    return out


def same(a: Any, b: Any) -> bool:
    """Equal, but for means and p90s the events carry in tenths: 0.1 s apart is the same."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 0.1 + 1e-9
    return bool(a == b)


def compare(report: dict[str, Any], counted: dict[str, Any]) -> list[str]:
    lines, problems = [], []
    for part in ("categories", "windows"):
        for name in sorted(set(report[part]) | set(counted[part])):
            mine = flat(report[part].get(name) or _figures(_blank(window=part == "windows")))
            theirs = flat(counted[part].get(name) or _figures(_blank(window=part == "windows")))
            label = name if part == "categories" else f"window {name}"
            lines.append(f"  {label}")
            for key in mine:
                ok = same(mine[key], theirs.get(key))
                verdict = "" if ok else "DIFFERS"
                lines.append(
                    f"    {key:<16} report {mine[key]!s:>9}   events {theirs.get(key)!s:>9}  {verdict}"
                )
                if not ok:
                    problems.append(f"{label} {key}: report {mine[key]} events {theirs.get(key)}")
    print("\n".join(lines))
    return problems


def hour_log(day: Day, hour: str) -> dict[str, Any]:
    """One hour of the chart as the simulation itself saw it (issued, served, first calls' waits)."""
    waits = day.waits_by_hour.get(hour, [])
    return {
        "issued": day.issued_by_hour[hour],
        "served": day.served_by_hour[hour],
        "called": len(waits),
        "wait_mean_s": round(sum(waits) / len(waits), 1) if waits else None,
        "wait_max_s": round(max(waits), 1) if waits else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        storage = Storage(Path(folder))
        outbox = Outbox(storage, Clock("Asia/Shanghai", "synced"), "qinshui/hall-01")
        queue = TicketQueue(storage, outbox.append, windows=3, serves=SERVES, categories=tuple(CATEGORIES))
        day = Day(queue, args.tickets, random.Random(args.seed))
        started = time.perf_counter()
        day.run()
        simulated_s = time.perf_counter() - started
        started = time.perf_counter()
        report = daily_report(storage, DAY, ZONE)
        report_ms = (time.perf_counter() - started) * 1000
        events = storage.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        print(f"day {DAY}: {args.tickets} tickets, seed {args.seed}; {events} events; acts {dict(day.acts)}")
        print(
            f"simulated in {simulated_s:.1f} s; report computed from the stored tickets in {report_ms:.0f} ms"
        )
        print("report.daily (report) against counts from the events (events):")
        problems = compare(report, from_events(storage))
        logged = set(day.issued_by_hour) | set(day.served_by_hour) | set(day.waits_by_hour)
        hours = {h: hour_log(day, h) for h in sorted(logged)}
        print("  per hour: report / the simulation's own log")
        for hour in sorted(set(hours) | set(report["hours"])):
            mine, theirs = report["hours"].get(hour), hours.get(hour)
            print(f"    {hour}:00  report {mine}  simulation {theirs}  {'' if mine == theirs else 'DIFFERS'}")
            if mine != theirs:
                problems.append(f"hour {hour}: report {mine} simulation {theirs}")
        storage.close()
    if problems:
        print(f"{len(problems)} figure(s) differ:", *problems, sep="\n  ")
        return 1
    print("every figure agrees")
    return 0


if __name__ == "__main__":
    sys.exit(main())
