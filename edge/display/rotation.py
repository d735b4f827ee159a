"""Which page is on the screen and for how long: the rotation and what interrupts it.

Precedence, highest first: an operator message (until its time ends), a
called ticket (for its seconds), a transient line, a job that just appeared
(marked 新, once), then the rotation: jobs (urgent first) with a current
notice after every few job pages and the hotlines every
``hotline_every_pages`` pages; with nothing to show, a friendly page with
the hotline.  Pure logic over explicit times (``now`` monotonic seconds,
``wall`` hall-local datetime), so tests step through it without waiting.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from edge.display.content import JobCard, NoticeCard
from edge.display.pages import Layouts
from edge.display.render import Page, PageArt, Renderer

NOTICE_EVERY_PAGES = 3  # job pages between two notices
ART_CACHE = 128
QUEUE_MAX = 20  # calls or lines waiting; a flood drops the oldest, the screen never falls behind
_MARKED = ("rotation", "new")  # sources whose pages carry the stale marker


@dataclass
class Showing:
    art: PageArt
    started: float
    until: float
    source: str  # message, call, line, new, rotation


class Rotation:
    def __init__(
        self,
        renderer: Renderer,
        layouts: Layouts,
        page_seconds: float,
        scroll_px_per_s: float,
        hotline_every_pages: int,
    ) -> None:
        self.renderer = renderer
        self.layouts = layouts
        self.page_seconds = page_seconds
        self.speed = scroll_px_per_s
        self.hotline_every = hotline_every_pages
        self.jobs: list[JobCard] = []
        self.notices: list[NoticeCard] = []
        self.marker = ""
        self.current: Showing | None = None
        self._cards: dict[str, JobCard] = {}
        self._new: deque[str] = deque(maxlen=QUEUE_MAX)  # beyond that, new jobs just join the rotation
        self._fresh = False  # a snapshot brought new jobs: the first one is shown at once
        self._message: tuple[Page, float] | None = None
        self._calls: deque[tuple[Page, float, int]] = deque(maxlen=QUEUE_MAX)  # page, seconds, window
        self._window_shown: int | None = None  # the window of the call on screen
        self._lines: deque[tuple[Page, float]] = deque(maxlen=QUEUE_MAX)
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
        page = self.layouts.call(ticket, window)
        if not page.key:
            return  # no ticket number left after cleaning: nothing to call
        # A window's newer call replaces its older one: it serves that ticket now, not the last.
        entry = (page, seconds, window)
        same = [i for i, queued in enumerate(self._calls) if queued[2] == window]
        if self.current is not None and self.current.source == "call" and self._window_shown == window:
            for i in reversed(same):
                del self._calls[i]
            self._calls.appendleft(entry)
            self._end_now(now)
        elif same:
            self._calls[same[0]] = entry
        else:
            self._calls.append(entry)
        if self.current is None or self.current.source not in ("message", "call"):
            self._end_now(now)

    def line(self, text: str, seconds: float, now: float) -> None:
        page = self.layouts.screen_line(text)
        if not page.lines:
            return  # nothing printable: a blank line would only blank the screen
        self._lines.append((page, seconds))
        if self._interruptible():
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
        page = cur.art.page
        if page.kind != "job" or cur.source == "call":
            return True
        card = self._cards.get(page.key)
        return card is not None and card.showable(wall)

    def _next(self, now: float, wall: datetime) -> Showing:
        if self._message is not None:
            page, until = self._message
            if now < until:
                return Showing(self._art(page), now, until, "message")
            self._message = None
        self._window_shown = None
        if self._calls:
            page, seconds, self._window_shown = self._calls.popleft()
            return Showing(self._art(page), now, now + seconds, "call")
        if self._lines:
            page, seconds = self._lines.popleft()
            return Showing(self._art(page), now, now + seconds, "line")
        # After the first new job, a due hotline page goes first: the bureau wants it seen regularly.
        while self._new and (self._fresh or self._since_hotline < self.hotline_every):
            card = self._cards.get(self._new.popleft())
            if card is not None and card.showable(wall):
                self._fresh = False
                self._since_hotline += 1
                return self._timed(self.layouts.job(card, new=True), now, "new")
        self._fresh = False
        return self._timed(self._rotation_page(wall), now, "rotation")

    def _timed(self, page: Page, now: float, source: str) -> Showing:
        art = self._art(dataclasses.replace(page, marker=self.marker))
        return Showing(art, now, now + art.duration(self.page_seconds), source)

    def _rotation_page(self, wall: datetime) -> Page:
        jobs = [card for card in self.jobs if card.showable(wall)]
        notices = [n for n in self.notices if n.current(wall)]
        if self._since_hotline >= self.hotline_every:
            self._since_hotline = 0
            return self.layouts.hotline()
        self._since_hotline += 1
        if notices and (not jobs or self._since_notice >= NOTICE_EVERY_PAGES):
            self._since_notice = 0
            self._notice_i += 1
            return self.layouts.notice(notices[(self._notice_i - 1) % len(notices)])
        if jobs:
            self._since_notice += 1
            self._job_i += 1
            return self.layouts.job(jobs[(self._job_i - 1) % len(jobs)])
        self._since_hotline = 0  # the empty page shows the hotline itself
        return self.layouts.empty()

    def _art(self, page: Page) -> PageArt:
        art = self._arts.get(page)
        if art is None:
            if len(self._arts) >= ART_CACHE:
                self._arts.clear()
            art = self.renderer.art(page, self.speed)
            self._arts[page] = art
        return art
