"""Which page is on the screen and for how long: the rotation and what interrupts it.

Precedence, highest first: an operator message (until its time ends), the
*announcements*: the windows' calls (each until its window calls again,
skips or finishes, at most its seconds on screen) and the transient lines
(one per source: a newer line of the same source replaces it, the end of
its moment withdraws it, and it is never shown after its deadline); the
newest announcement is shown at once and several take turns of
``TURN_S``; then a job that just appeared (marked 新, once), then the
rotation: jobs (urgent first) with a
current notice after every few job pages and the hotlines every
``hotline_every_pages`` pages; with nothing to show, a friendly page with
the hotline.  A job that does not fit the panel is shown as still parts,
``part_seconds`` each.  Pure logic over explicit times (``now`` monotonic seconds,
``wall`` hall-local datetime), so tests step through it without waiting.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from edge.display.content import JobCard, NoticeCard
from edge.display.pages import Layouts
from edge.display.render import Page, PageArt, Renderer

NOTICE_EVERY_PAGES = 3  # job pages between two notices
ART_CACHE = 128
QUEUE_MAX = 20  # new jobs waiting for their 新 page; beyond that they just join the rotation
TURN_S = 3.0  # several calls and lines alternate: each is read, none hidden longer than this per other
_MARKED = ("rotation", "new")  # sources whose pages carry the stale marker


@dataclass
class _Call:
    page: Page
    window: int
    left: float  # seconds on screen still owed
    arrived: float
    last_shown: float = -math.inf

    def remaining(self, _now: float) -> float:
        return self.left


@dataclass
class _Line:
    page: Page
    source: str
    cause: str
    until: float  # its moment ends by then at the latest
    arrived: float
    last_shown: float = -math.inf

    def remaining(self, now: float) -> float:
        return self.until - now


@dataclass
class Showing:
    art: PageArt
    started: float
    until: float
    source: str  # message, call, line, new, rotation
    entry: _Call | _Line | None = None  # the call or line shown: gone from the rotation means withdrawn
    counted: bool = False  # a call's time on screen has been taken off what it is owed


class Rotation:
    def __init__(
        self,
        renderer: Renderer,
        layouts: Layouts,
        page_seconds: float,
        scroll_px_per_s: float,
        hotline_every_pages: int,
        *,
        part_seconds: float = 3.0,
    ) -> None:
        self.renderer = renderer
        self.layouts = layouts
        self.page_seconds = page_seconds
        self.speed = scroll_px_per_s
        self.hotline_every = hotline_every_pages
        self.part_seconds = part_seconds
        self.jobs: list[JobCard] = []
        self.notices: list[NoticeCard] = []
        self.marker = ""
        self.current: Showing | None = None
        self._cards: dict[str, JobCard] = {}
        self._new: deque[str] = deque(maxlen=QUEUE_MAX)  # beyond that, new jobs just join the rotation
        self._fresh = False  # a snapshot brought new jobs: the first one is shown at once
        self._message: tuple[Page, float] | None = None
        self._calls: dict[int, _Call] = {}  # by window
        self._lines: dict[str, _Line] = {}  # by source, oldest first
        self._parts: deque[Page] = deque()  # the rest of the job on screen (a 新 job's too: plain pages)
        self._job_i = self._notice_i = 0
        self._since_hotline = self._since_notice = 0
        self._arts: dict[Page, PageArt] = {}

    # ---- inputs ---------------------------------------------------------------

    def set_jobs(self, cards: list[JobCard], new_ids: frozenset[str], now: float) -> None:
        self.jobs = cards
        self._cards = {card.id: card for card in cards}
        fresh = [card.id for card in cards if card.id in new_ids]  # urgent first, as sorted
        self._new.extend(fresh)
        self._fresh = self._fresh or bool(fresh)
        if fresh:
            self._parts.clear()  # the new job goes first; the one cut short comes round again
        shown = self.current.art.page if self.current else None
        gone = shown is not None and shown.kind == "job" and shown.key not in self._cards
        if gone or ((fresh or self._showing_empty()) and self._interruptible()):
            self._end_now(now)

    def set_notices(self, cards: list[NoticeCard], now: float) -> None:
        self.notices = cards
        shown = self.current.art.page if self.current else None
        gone = shown is not None and shown.kind == "notice" and shown.key not in {n.id for n in cards}
        if gone or (cards and self._showing_empty()):
            self._end_now(now)

    def call(self, ticket: str, window: int, seconds: float, now: float) -> None:
        """The window calls ``ticket``: it replaces the window's older call at once."""
        page = self.layouts.call(ticket, window)
        if not page.key:
            return  # no ticket number left after cleaning: nothing to call
        self._calls.pop(window, None)
        self._calls[window] = _Call(page, window, seconds, now)
        self._announce(now)

    def call_ended(self, window: int, now: float) -> None:
        """The window skipped or served its ticket: the number leaves the screen now."""
        entry = self._calls.pop(window, None)
        if entry is not None and self.current is not None and self.current.entry is entry:
            self._end_now(now)

    def line(
        self,
        text: str,
        seconds: float,
        now: float,
        *,
        source: str = "",
        cause: str = "",
        posted: float | None = None,
    ) -> None:
        """A transient line from ``source``; it replaces that source's older line, and is never
        shown after ``posted + seconds``."""
        until = (now if posted is None else posted) + seconds
        if until <= now:
            return  # its moment passed before the screen got to it: showing it now would mislead
        page = self.layouts.screen_line(text)
        if not page.lines:
            return  # nothing printable: a blank line would only blank the screen
        self._lines.pop(source, None)
        self._lines[source] = _Line(page, source, cause, until, now)
        self._announce(now)

    def _announce(self, now: float) -> None:
        """A new call or line goes on the screen at once (the person it is for is there now); what
        it interrupts gets its turn back.  Only an operator message holds it back."""
        if self.current is not None and self.current.source != "message":
            self._end_now(now)

    def line_ended(self, source: str, cause: str, now: float) -> None:
        """The moment of ``source``'s line (with ``cause``, or any) has passed: it leaves now."""
        entry = self._lines.get(source)
        if entry is None or (cause and entry.cause != cause):
            return
        del self._lines[source]
        if self.current is not None and self.current.entry is entry:
            self._end_now(now)

    def message(self, text: str, seconds: float, now: float) -> float:
        """An operator message overrides everything until it ends; returns when (monotonic)."""
        until = now + seconds
        self._message = (self.layouts.message(text), until)
        self._end_now(now)
        return until

    def clear(self, now: float) -> bool:
        """Drop the operator message and transient lines; back to the rotation."""
        had = self._message is not None or bool(self._lines)
        self._message = None
        self._lines.clear()
        self._end_now(now)
        return had

    def set_marker(self, marker: str) -> None:
        if marker == self.marker:
            return
        self.marker = marker
        cur = self.current
        if cur is not None and cur.source in _MARKED:
            cur.art = self._art(dataclasses.replace(cur.art.page, marker=marker))

    # ---- output ---------------------------------------------------------------

    def frame(self, now: float, wall: datetime) -> Image.Image:
        """The frame that belongs on the screen now, moving to the next page when due."""
        cur = self.current
        for _ in range(8):  # a page can end at once (an expired job); never loop forever
            if cur is not None and now < cur.until and self._still_valid(cur, wall):
                break
            cur = self.current = self._next(now, wall)
        if cur is None:
            cur = self.current = self._next(now, wall)
        return cur.art.frame(now - cur.started)

    def next_change(self, now: float, wall: datetime) -> float:
        """Seconds until the frame may change (page end, scroll step, expiry)."""
        cur = self.current
        if cur is None:
            return 0.0
        soonest = cur.until - now
        step = cur.art.next_change(now - cur.started)
        if step is not None:
            soonest = min(soonest, step)
        card = self._cards.get(cur.art.page.key) if cur.art.page.kind == "job" else None
        if card is not None and card.expires_at is not None:
            soonest = min(soonest, (card.expires_at - wall).total_seconds())
        return max(soonest, 0.001)

    @property
    def page(self) -> Page | None:
        return self.current.art.page if self.current else None

    # ---- choosing -------------------------------------------------------------

    def _showing_empty(self) -> bool:
        """The friendly no-jobs page gives way as soon as there is something to show."""
        return self.current is not None and self.current.art.page.kind == "empty"

    def _interruptible(self) -> bool:
        return self.current is None or self.current.source in ("rotation", "new")

    def _end_now(self, now: float) -> None:
        if self.current is not None:
            self.current.until = min(self.current.until, now)

    def _still_valid(self, cur: Showing, wall: datetime) -> bool:
        if isinstance(cur.entry, _Call):
            return self._calls.get(cur.entry.window) is cur.entry
        if isinstance(cur.entry, _Line):
            return self._lines.get(cur.entry.source) is cur.entry
        page = cur.art.page
        if page.kind != "job":
            return True
        card = self._cards.get(page.key)
        return card is not None and card.showable(wall)

    def _next(self, now: float, wall: datetime) -> Showing:
        self._account(now)
        if self._message is not None:
            page, until = self._message
            if now < until:
                return Showing(self._art(page), now, until, "message")
            self._message = None
        for source, entry in list(self._lines.items()):
            if entry.until <= now:
                del self._lines[source]
        if self._calls or self._lines:
            return self._next_announcement(now)
        if self._parts:  # the rest of a job an interruption cut short
            card = self._cards.get(self._parts[0].key)
            if card is not None and card.showable(wall):
                return self._timed(self._parts.popleft(), now, "rotation", self.part_seconds)
            self._parts.clear()
        # After the first new job, a due hotline page goes first: the bureau wants it seen regularly.
        while self._new and (self._fresh or self._since_hotline < self.hotline_every):
            card = self._cards.get(self._new.popleft())
            if card is not None and card.showable(wall):
                self._fresh = False
                self._since_hotline += 1
                return self._first_part(self.layouts.job(card, new=True), now, "new")
        self._fresh = False
        return self._first_part(self._rotation_page(wall), now, "rotation")

    def _account(self, now: float) -> None:
        """The call that leaves the screen has been shown that much longer; done once it had its time."""
        cur = self.current
        if cur is None or not isinstance(cur.entry, _Call) or cur.counted:
            return
        call, cur.counted = cur.entry, True
        call.left -= max(0.0, min(now, cur.until) - cur.started)
        if call.left <= 1e-6 and self._calls.get(call.window) is call:
            del self._calls[call.window]

    def _next_announcement(self, now: float) -> Showing:
        """The newest call or line not yet seen, else the one seen longest ago; several take turns."""
        waiting: list[_Call | _Line] = [*self._calls.values(), *self._lines.values()]
        item = min(waiting, key=lambda w: (w.last_shown, -w.arrived))
        item.last_shown = now
        left = item.remaining(now)
        turn = left if len(waiting) == 1 else min(left, TURN_S)
        kind = "call" if isinstance(item, _Call) else "line"
        return Showing(self._art(item.page), now, now + turn, kind, item)

    def _first_part(self, pages: tuple[Page, ...], now: float, source: str) -> Showing:
        self._parts = deque(pages[1:])
        seconds = self.page_seconds if len(pages) == 1 else self.part_seconds
        return self._timed(pages[0], now, source, seconds)

    def _timed(self, page: Page, now: float, source: str, seconds: float) -> Showing:
        art = self._art(dataclasses.replace(page, marker=self.marker))
        return Showing(art, now, now + art.duration(seconds), source)

    def _rotation_page(self, wall: datetime) -> tuple[Page, ...]:
        jobs = [card for card in self.jobs if card.showable(wall)]
        notices = [n for n in self.notices if n.current(wall)]
        if self._since_hotline >= self.hotline_every:
            self._since_hotline = 0
            return (self.layouts.hotline(),)
        self._since_hotline += 1
        if notices and (not jobs or self._since_notice >= NOTICE_EVERY_PAGES):
            self._since_notice = 0
            self._notice_i += 1
            return (self.layouts.notice(notices[(self._notice_i - 1) % len(notices)]),)
        if jobs:
            self._since_notice += 1
            self._job_i += 1
            return self.layouts.job(jobs[(self._job_i - 1) % len(jobs)])
        self._since_hotline = 0  # the empty page shows the hotline itself
        return (self.layouts.empty(),)

    def _art(self, page: Page) -> PageArt:
        art = self._arts.get(page)
        if art is None:
            if len(self._arts) >= ART_CACHE:
                self._arts.clear()
            art = self.renderer.art(page, self.speed)
            self._arts[page] = art
        return art
