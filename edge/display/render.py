"""Pages to Pillow frames, in pure code: no device, no clock, no core.

A ``Page`` is a few lines of text.  ``Renderer.art(page)`` draws it once into
a ``PageArt``: a base image with everything that stands still, plus one
strip per line that is too wide and must scroll.  ``PageArt.frame(t)`` is the
frame ``t`` seconds into the page: the base itself while nothing moves (so a
static page costs nothing per frame), else the base with each strip pasted
at its scroll offset.  Scrolling holds still for ``HOLD_S`` at both ends so
that the start and the end of a long line can be read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from PIL import Image, ImageDraw, ImageFont

from edge.records import record

HOLD_S = 1.0
GAP_PX = 2  # between a badge and its text
FIELD_GAP_PX = 4  # a tab in a line: narrower than a 16-px font's 8-px space, so a job's head fits 128 px
MISSING_PROBE = "\U0010ffff"  # a noncharacter: every font draws its .notdef box for it
Colour = int | tuple[int, int, int]  # a pixel of the panel's Pillow mode ("1", "L" or "RGB")
# RGB panels: amber, like the single-colour ones
LIT: dict[str, Colour] = {"1": 1, "L": 255, "RGB": (255, 160, 0)}
DARK: dict[str, Colour] = {"1": 0, "L": 0, "RGB": (0, 0, 0)}


class Glyphs:
    """A bitmap-style font at one pixel size, knowing which characters it can draw."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self._font: ImageFont.FreeTypeFont | None = None
        self._notdef = self._mask_key(MISSING_PROBE)
        self._has: dict[str, bool] = {}
        top, bottom = self.font.getbbox("新")[1::2]
        # Centre the CJK cell in the line: WenQuanYi 12 px draws it two rows down.
        self.y_offset = -top + max(0, (size - (bottom - top)) // 2)
        self.replacement = "□" if self.has("□") else "?"

    @property
    def font(self) -> ImageFont.FreeTypeFont:
        if self._font is None:
            # Basic layout: the panel draws Chinese and Latin left to right, which needs no
            # shaping, and the pixels are the same as with Raqm's.  Raqm would bring HarfBuzz
            # into use for every line: about 0.8 MiB more of the idle daemon's memory.
            self._font = ImageFont.truetype(self.path, self.size, layout_engine=ImageFont.Layout.BASIC)
        return self._font

    def _mask_key(self, ch: str) -> tuple[tuple[int, int], bytes]:
        mask = self.font.getmask(ch, mode="1")
        return mask.size, bytes(mask)

    def has(self, ch: str) -> bool:
        known = self._has.get(ch)
        if known is None:
            known = ch == " " or self._mask_key(ch) != self._notdef
            self._has[ch] = known
        return known

    def showable(self, text: str) -> str:
        """The text with every character the font lacks replaced by □."""
        if all(ch == "\t" or self.has(ch) for ch in text):
            return text
        return "".join(ch if ch == "\t" or self.has(ch) else self.replacement for ch in text)

    def width(self, text: str) -> int:
        """Pixels across; a tab is a narrow field gap."""
        fields = text.split("\t")
        return sum(math.ceil(self.font.getlength(f)) for f in fields) + FIELD_GAP_PX * (len(fields) - 1)

    def draw(self, draw: ImageDraw.ImageDraw, x: int, y: int, text: str, fill: Colour) -> None:
        for field_text in text.split("\t"):
            draw.text((x, y + self.y_offset), field_text, font=self.font, fill=fill)
            x += math.ceil(self.font.getlength(field_text)) + FIELD_GAP_PX


class KeptGlyphs(Glyphs):
    """A font whose characters are each drawn once and kept as cells; what the daemon draws with.

    FreeType holds a bitmap CJK font's tables for every glyph while it is open, and the file's
    pages it reads stay in the daemon's memory (Unifont 16: about 1.2 MiB, WenQuanYi 12: about
    2 MiB).  So the font is open only while a text brings characters not met before (once for
    all of them: opening it costs well under a millisecond at full speed); after that a text is
    pasted from the kept cells, pixel for pixel what ``Glyphs`` draws (for a bitmap font, whose
    glyphs have whole-pixel advances and no kerning).  A cell is its glyph's bits packed eight
    to a byte (a 16-px CJK glyph: 72 bytes); at most ``MAX_KEPT`` are kept, the oldest dropped
    first (and learnt again when met again), so months of job texts cannot grow the daemon.
    """

    PAD = 4  # a glyph may reach beyond its advance: the cell keeps that much around it
    MAX_KEPT = 4096  # characters; a hall's job texts use a few hundred

    def __init__(self, path: str, size: int) -> None:
        self._cells: dict[str, _Cell | None] = {}  # None: the font has no glyph for it
        super().__init__(path, size)
        self._close()

    def has(self, ch: str) -> bool:
        if ch == " ":
            return True
        self._learn(ch)
        return self._cells[ch] is not None

    def showable(self, text: str) -> str:
        self._learn(text)
        return super().showable(text)

    def width(self, text: str) -> int:
        self._learn(text)
        fields = text.split("\t")
        return sum(self._field_width(f) for f in fields) + FIELD_GAP_PX * (len(fields) - 1)

    def draw(self, draw: ImageDraw.ImageDraw, x: int, y: int, text: str, fill: Colour) -> None:
        self._learn(text)
        for field_text in text.split("\t"):
            advance = 0.0
            for ch in field_text:
                cell = self._cell(ch)
                bits = Image.frombytes("1", cell.size, cell.bits)
                draw.bitmap((x + math.floor(advance) - self.PAD, y - self.PAD), bits, fill=fill)
                advance += cell.step
            x += math.ceil(advance) + FIELD_GAP_PX

    def _cell(self, ch: str) -> _Cell:
        cell = self._cells[ch]
        if cell is None:  # drawn all the same, as FreeType would: the font's .notdef box
            cell = self._cells[MISSING_PROBE]
            assert cell is not None
        return cell

    def _field_width(self, text: str) -> int:
        return math.ceil(sum(self._cell(ch).step for ch in text))

    def _learn(self, text: str) -> None:
        """Keep the cell of (or that the font lacks) every character of ``text`` not met before."""
        new = {ch for ch in text if ch != "\t" and ch not in self._cells}
        if not new:
            return
        new.add(MISSING_PROBE)  # the box drawn for what the font lacks: kept while anything is
        for ch in new:
            self._cells[ch] = self._drawn(ch) if ch == MISSING_PROBE or super().has(ch) else None
        self._has.clear()  # the base's answers: the cells keep them now
        self._close()
        self._forget_oldest(keep=set(text) | {MISSING_PROBE})

    def _drawn(self, ch: str) -> _Cell:
        step = self.font.getlength(ch)
        cell = Image.new("1", (math.ceil(step) + 2 * self.PAD, self.size + 2 * self.PAD), 0)
        ImageDraw.Draw(cell).text((self.PAD, self.PAD + self.y_offset), ch, font=self.font, fill=1)
        return _Cell(step, cell.size, cell.tobytes())

    def _forget_oldest(self, keep: set[str]) -> None:
        excess = len(self._cells) - self.MAX_KEPT
        if excess > 0:
            for ch in [ch for ch in self._cells if ch not in keep][:excess]:
                del self._cells[ch]

    def _close(self) -> None:
        self._font = None  # FreeType frees the face and unmaps the file


class _Cell(NamedTuple):  # a tuple: thousands of them may be kept
    step: float  # the advance, in pixels
    size: tuple[int, int]
    bits: bytes  # mode "1", packed


@record
class Line:
    text: str
    badges: tuple[str, ...] = ()  # short inverted labels before the text: 新, 急, 公告
    # A tab in ``text`` separates fields with a narrow gap.
    center: bool = False


@record
class Page:
    kind: str  # job, notice, hotline, empty, call, line, message
    lines: tuple[Line, ...]
    key: str = ""  # what it shows (a job id...): the same key means the same page
    marker: str = ""  # small inverted corner label (更新于 08:30)


@dataclass
class _Scroller:
    strip: Image.Image
    x: int
    y: int
    width: int
    distance: int  # pixels to travel from the start to the end of the strip


@dataclass
class PageArt:
    page: Page
    base: Image.Image
    scrollers: list[_Scroller] = field(default_factory=list)
    speed: float = 32.0  # pixels per second

    @property
    def cycle_s(self) -> float:
        """One pass of the longest scrolling line: hold, travel, hold (0 when static)."""
        if not self.scrollers:
            return 0.0
        return 2 * HOLD_S + max(s.distance for s in self.scrollers) / self.speed

    def duration(self, page_seconds: float) -> float:
        return max(page_seconds, self.cycle_s)

    def _offset(self, scroller: _Scroller, phase: float) -> int:
        if phase < HOLD_S:
            return 0
        return min(scroller.distance, math.floor((phase - HOLD_S) * self.speed + 1e-6))

    def frame(self, elapsed: float) -> Image.Image:
        """The frame ``elapsed`` seconds into the page (scrolling repeats every cycle)."""
        if not self.scrollers:
            return self.base
        phase = elapsed % self.cycle_s
        image = self.base.copy()
        for s in self.scrollers:
            offset = self._offset(s, phase)
            image.paste(s.strip.crop((offset, 0, offset + s.width, s.strip.height)), (s.x, s.y))
        return image

    def next_change(self, elapsed: float) -> float | None:
        """Seconds from ``elapsed`` until the frame can look different; None if never."""
        if not self.scrollers:
            return None
        cycle = self.cycle_s
        phase = elapsed % cycle
        soonest = cycle - phase  # the wrap back to the start
        for s in self.scrollers:
            offset = self._offset(s, phase)
            if offset < s.distance:
                soonest = min(soonest, HOLD_S + (offset + 1) / self.speed - phase)
        return max(soonest, 0.001)


class Renderer:
    """Draws pages at the panel's size and mode; knows nothing of devices or time."""

    def __init__(
        self, width: int, height: int, mode: str, glyphs: Glyphs, small: Glyphs | None = None
    ) -> None:
        self.width = width
        self.height = height
        self.mode = mode
        self.glyphs = glyphs
        self.small = small or glyphs
        self.line_height = glyphs.size
        self.rows = max(1, height // glyphs.size)
        self.top = max(0, (height - self.rows * glyphs.size) // 2)
        self.lit = LIT[mode]
        self.dark = DARK[mode]

    def blank(self) -> Image.Image:
        return Image.new(self.mode, (self.width, self.height), self.dark)

    def art(self, page: Page, speed: float = 32.0) -> PageArt:
        art = PageArt(page, self.blank(), speed=speed)
        draw = self._draw(art.base)
        lines = page.lines[: self.rows]
        for row, line in enumerate(lines):
            y = self.top + row * self.line_height
            right = self.width
            text = line.text
            if page.marker and row == len(lines) - 1:
                right, text = self._marker(draw, page.marker, y, text)
            self._line(art, draw, line, text, y=y, right=right)
        return art

    def _draw(self, image: Image.Image) -> ImageDraw.ImageDraw:
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no anti-aliasing: LEDs are on or off
        return draw

    def _marker(self, draw: ImageDraw.ImageDraw, marker: str, y: int, text: str) -> tuple[int, str]:
        """Draw the marker at the right end of the row; too narrow a panel gets it as a prefix."""
        box_w = self.label_width(marker)
        if self.width - box_w - GAP_PX < 32:
            return self.width, f"{marker} {text}"
        x = self.width - box_w
        self._label(draw, marker, x, y)
        return x - GAP_PX, text

    def _line(
        self, art: PageArt, draw: ImageDraw.ImageDraw, line: Line, text: str, *, y: int, right: int
    ) -> None:
        x = 0
        for badge in line.badges:
            x = self._label(draw, badge, x, y) + GAP_PX
        text = self.glyphs.showable(text)
        text_w = self.glyphs.width(text)
        room = right - x
        if room <= 0:
            return  # badges and marker fill the row
        if text_w <= room:
            left = x + (room - text_w) // 2 if line.center else x
            self.glyphs.draw(draw, left, y, text, self.lit)
            return
        strip = Image.new(self.mode, (text_w, self.line_height), self.dark)
        self.glyphs.draw(self._draw(strip), 0, 0, text, self.lit)
        art.scrollers.append(_Scroller(strip, x, y, room, text_w - room))

    def label_width(self, text: str) -> int:
        if self._framed:
            return self.small.width(self.small.showable(text)) + 4
        return self.glyphs.width(self.glyphs.showable(text))

    @property
    def _framed(self) -> bool:
        """Labels are small text in a 1-px frame when the small font leaves room, else inverted."""
        return self.small.size + 4 <= self.line_height

    def _label(self, draw: ImageDraw.ImageDraw, text: str, x: int, y: int) -> int:
        """A badge (新, 急, 公告) or the stale marker; returns the x just after it.

        Inverted full-size glyphs read badly on LED dots, so a 16-px row gets a
        12-px label inside a frame; a row too low for that gets inverted text.
        """
        right = x + self.label_width(text) - 1
        bottom = y + self.line_height - 1
        if self._framed:
            draw.rectangle((x, y, right, bottom), outline=self.lit)
            small_y = y + (self.line_height - self.small.size) // 2
            self.small.draw(draw, x + 2, small_y, self.small.showable(text), self.lit)
        else:
            draw.rectangle((x, y, right, bottom), fill=self.lit)
            self.glyphs.draw(draw, x, y, self.glyphs.showable(text), self.dark)
        return right + 1
