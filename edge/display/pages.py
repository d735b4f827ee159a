"""What each kind of page says, laid out for the panel's number of text rows.

Two 16-px rows (128x32, 256x32) give a title row and a detail row; a single
row (64x16) gets everything on one scrolling line; more rows spread the
fields out.  Free text (notices, operator messages) is wrapped onto the rows
and whatever does not fit scrolls on the last one.
"""

from __future__ import annotations

import dataclasses

from edge.display.content import JobCard, NoticeCard
from edge.display.linebreak import break_lines
from edge.display.render import GAP_PX, Line, Page, Renderer
from edge.display.text import clean

MESSAGE_CHARS = 200
SCREEN_LINE_CHARS = 80


class Layouts:
    def __init__(self, renderer: Renderer, *, hall_name: str, service: str, complaint: str) -> None:
        self.glyphs = renderer.glyphs
        self.width = renderer.width
        self.rows = renderer.rows
        self.label_width = renderer.label_width
        self.hall_name = clean(hall_name, 24)
        self.service = clean(service, 20)
        self.complaint = clean(complaint, 20)

    def job(self, card: JobCard, new: bool = False) -> tuple[Page, ...]:
        """A job as one or more still pages (parts) a worker reads in turn.

        Trade and pay first (what a worker scans for), then headcount, place, contact, and the
        employer and start time where there is room.  Each field sits whole on a row; several share
        a row when they fit; a field wider than a row is broken by the Chinese rules onto more rows.
        The rows are then cut into parts of the panel's height.  A single-row panel scrolls one line.
        """
        badges = ("新",) if new else ("急",) if card.urgent else ()
        show = self.glyphs.showable  # □ for what the font lacks, measured as it will be drawn
        contact = f"电话{card.contact}" if card.contact else ""
        details = tuple(
            show(f) for f in (f"招{card.headcount}", card.location, contact, card.employer, card.starts)
        )
        card = dataclasses.replace(card, title=show(card.title), wage=show(card.wage))
        if self.rows == 1:
            return (Page("job", (Line(_join(card.title, card.wage, *details), badges),), key=card.id),)
        badge_w = sum(self.label_width(b) + GAP_PX for b in badges)
        head = f"{card.title}\t{card.wage}"
        if self.glyphs.width(head) <= self.width - badge_w:
            rows = [head]
            fields: list[str] = []
        else:
            rows = self._broken(card.title, self.width - badge_w)
            fields = [card.wage]
        for text in [*fields, *details]:
            self._place(rows, text, badge_w)
        parts = [rows[i : i + self.rows] for i in range(0, len(rows), self.rows)]
        return tuple(
            Page(
                "job",
                tuple(Line(row, badges if n == 0 and r == 0 else ()) for r, row in enumerate(part)),
                key=card.id,
            )
            for n, part in enumerate(parts)
        )

    def _place(self, rows: list[str], text: str, badge_w: int) -> None:
        """Put a field on the first row it fits beside others, else on new rows of its own."""
        if not text:
            return
        for r, row in enumerate(rows):
            room = self.width - (badge_w if r == 0 else 0)
            if self.glyphs.width(f"{row}\t{text}") <= room:
                rows[r] = f"{row}\t{text}"
                return
        rows.extend(self._broken(text, self.width))

    def _broken(self, text: str, first_room: int) -> list[str]:
        return break_lines(text, self.glyphs.width, self.width, first_room)

    def notice(self, card: NoticeCard) -> Page:
        return Page("notice", self._wrapped(card.text, ("公告",)), key=card.id)

    def hotline(self) -> Page:
        service, complaint = f"服务热线 {self.service}", f"投诉电话 {self.complaint}"
        if self.rows == 1:
            return Page("hotline", (Line(f"{service} {complaint}", center=True),))
        return Page("hotline", (Line(service, center=True), Line(complaint, center=True)))

    def empty(self) -> Page:
        """No jobs to show: a friendly screen with the hotline, never a blank one."""
        wait = f"岗位信息更新中 咨询请拨{self.service}"
        if self.rows == 1:
            return Page("empty", (Line(f"{self.hall_name} {wait}", center=True),))
        return Page("empty", (Line(self.hall_name, center=True), Line(wait, center=True)))

    def call(self, ticket: str, window: int) -> Page:
        ticket = clean(ticket, 8)
        if self.rows == 1:
            return Page("call", (Line(f"请{ticket}号到{window}号窗口", center=True),), key=ticket)
        lines = (Line(f"请 {ticket} 号", center=True), Line(f"到 {window} 号窗口", center=True))
        return Page("call", lines, key=ticket)

    def message(self, text: str) -> Page:
        return Page("message", self._wrapped(clean(text, MESSAGE_CHARS)))

    def screen_line(self, text: str) -> Page:
        return Page("line", self._wrapped(clean(text, SCREEN_LINE_CHARS)))

    def _wrapped(self, text: str, badges: tuple[str, ...] = ()) -> tuple[Line, ...]:
        """Fill the rows by the Chinese line-breaking rules; what is left goes on the last row,
        which scrolls if it must."""
        text = self.glyphs.showable(text)
        if not text:
            return ()
        badge_w = sum(self.label_width(b) + GAP_PX for b in badges)
        rows = break_lines(text, self.glyphs.width, self.width, self.width - badge_w)
        if len(rows) > self.rows:
            kept = rows[: self.rows - 1]
            end = 0
            for row in kept:  # the rows are the text's own pieces, less the spaces at the breaks
                end = text.index(row, end) + len(row)
            rows = [*kept, text[end:].strip()]
        lines = [Line(row, badges if i == 0 else ()) for i, row in enumerate(rows)]
        if badges:
            return tuple(lines)
        return tuple(Line(line.text, center=True) for line in lines)


def _join(*parts: str) -> str:
    return "\t".join(p for p in parts if p)
