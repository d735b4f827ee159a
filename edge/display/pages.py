"""What each kind of page says, laid out for the panel's number of text rows.

Two 16-px rows (128x32, 256x32) give a title row and a detail row; a single
row (64x16) gets everything on one scrolling line; more rows spread the
fields out.  Free text (notices, operator messages) is wrapped onto the rows
and whatever does not fit scrolls on the last one.
"""

from __future__ import annotations

from edge.display.content import JobCard, NoticeCard
from edge.display.render import GAP_PX, Glyphs, Line, Page, Renderer
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

    def job(self, card: JobCard, new: bool = False) -> Page:
        """Trade and pay first (what a worker scans for), then headcount, place and contact."""
        badges = ("新",) if new else ("急",) if card.urgent else ()
        head = f"{card.title}\t{card.wage}"
        wanted = f"招{card.headcount}"
        contact = f"电话{card.contact}" if card.contact else ""
        if self.rows == 1:
            lines = [Line(_join(head, wanted, card.location, contact), badges)]
        elif self.rows == 2:
            lines = [Line(head, badges), Line(_join(wanted, card.location, contact))]
        else:
            lines = [Line(head, badges), Line(_join(wanted, card.location)), Line(contact)]
        return Page("job", tuple(lines), key=card.id)

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
        """Fill the rows; the last row takes the rest of the text and scrolls if it must."""
        text = self.glyphs.showable(text)
        badge_w = sum(self.label_width(b) + GAP_PX for b in badges)
        lines: list[Line] = []
        rest = text
        while len(lines) < self.rows - 1 and rest:
            room = self.width - (badge_w if not lines else 0)
            head, rest = _split(self.glyphs, rest, room)
            lines.append(Line(head, badges if not lines else ()))
        if rest:
            lines.append(Line(rest, badges if not lines else ()))
        if badges:
            return tuple(lines)
        return tuple(Line(line.text, center=True) for line in lines)


def _join(*parts: str) -> str:
    return "\t".join(p for p in parts if p)


def _split(glyphs: Glyphs, text: str, room: int) -> tuple[str, str]:
    """The longest head of ``text`` that fits in ``room`` px, preferring a break at a space."""
    if glyphs.width(text) <= room:
        return text, ""
    end = 0
    while end < len(text) and glyphs.width(text[: end + 1]) <= room:
        end += 1
    end = max(end, 1)
    space = text.rfind(" ", 0, end + 1)
    if space > end // 2:
        return text[:space], text[space + 1 :]
    # Do not split a ticket number or a phone number between rows.
    start = end
    while (
        start > 0
        and text[start - 1].isascii()
        and text[start - 1].isalnum()
        and text[end : end + 1].isalnum()
    ):
        start -= 1
    if start > 0 and start != end:
        end = start
    return text[:end], text[end:].lstrip()
