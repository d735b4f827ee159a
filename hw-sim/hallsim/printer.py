"""A simulated ESC/POS thermal ticket printer on a pseudo-terminal.

Written from the printer manual (``shared/hardware.md``), not from the
daemon's driver: it parses what arrives on its pty the way a printer does
(initialise, Chinese mode, character size, alignment, bold, feed, cut,
native QR codes, raster images) and answers ``DLE EOT n`` with a status
byte for its state.  Each cut ends a ticket: it is rendered to a PNG with a
CJK font (QR codes drawn from the stored data with segno and decoded back
with zxing-cpp, to check them) and to text, and saved in ``folder``.

    printer = SimPrinter(tmp_path).start()
    ... daemon prints to printer.port ...
    printer.set_status("paper-out")
    printer.lose_answers = 1  # the next status answer is lost on the line
    printer.tickets[-1].text

``unplug()`` / ``plug()`` model a USB printer that vanishes and comes back:
give ``link`` (a path the daemon is configured with) and it is pointed at
each new pty.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from hallsim.pty_port import close_pty, open_pty

FONT_PATH = "/usr/share/fonts/opentype/unifont/unifont.otf"
BASE_DOTS = 24  # font A: 12x24 dots for ASCII, 24x24 for Chinese
LINE_GAP = 6  # the default line spacing is 30 dots

# Status bytes: bits 1 and 4 are always set (0x12).
_FIXED = 0x12
STATUS_BYTES: dict[str, dict[int, int] | None] = {
    "ok": {1: _FIXED, 2: _FIXED, 4: _FIXED},
    "paper-low": {1: _FIXED, 2: _FIXED, 4: _FIXED | 0x0C},
    "paper-out": {1: _FIXED | 0x08, 2: _FIXED | 0x20, 4: _FIXED | 0x0C | 0x60},
    "cover-open": {1: _FIXED | 0x08, 2: _FIXED | 0x04, 4: _FIXED},
    "offline": None,  # powered off or cable out: no answer at all
}
PRINTS_IN = ("ok", "paper-low")


@dataclass
class SimTicket:
    """One printout, from its first byte to the cut."""

    text: str
    qr: list[str]  # data stored and printed with GS ( k
    qr_decoded: list[str]  # what zxing-cpp read back from the rendered codes
    cut: str  # "full", "partial"
    started_at: float  # time.monotonic() when its first byte was read
    bytes: int
    chinese_mode: bool  # FS & was sent before its first Chinese character
    png: Path | None = None
    lines: list[dict] = field(default_factory=list)  # text lines with size, bold, align


@dataclass
class _Segment:
    text: str
    width: int
    height: int
    bold: bool


class _Page:
    """What a ticket has printed so far (elements in paper order)."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.elements: list[tuple] = []  # ("text", [segments], align) / ("qr", data, module) / ("image", img)
        self.bytes = 0
        self.qr: list[str] = []
        self.chinese_used_in_mode = True


class SimPrinter:
    def __init__(self, folder: str | Path, paper_dots: int = 384, link: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.paper_dots = paper_dots
        self.link = Path(link) if link else None
        self.tickets: list[SimTicket] = []
        # A folder used again (hall-sim demo --data DIR): number on, never print over a ticket.
        numbers = [
            int(p.stem[len("ticket-") :])
            for p in self.folder.glob("ticket-*.txt")
            if p.stem[len("ticket-") :].isdigit()
        ]
        self._first_number = max(numbers, default=0) + 1
        self.state = "ok"
        self.status_queries = 0
        self.unprinted_cuts = 0  # cuts received while the printer could not print
        self.status_noise = b""  # garbage sent before each status byte (a noisy line)
        self.lose_answers = 0  # the next N status answers are lost on the line (then it answers again)
        self._master: int | None = None
        self._slave: int | None = None
        self.port = ""
        self._thread: threading.Thread | None = None
        self._renderer: threading.Thread | None = None
        self._pages: queue.SimpleQueue[tuple[_Page, str] | None] = queue.SimpleQueue()
        self._running = False
        self._buf = bytearray()
        self._font = ImageFont.truetype(FONT_PATH, BASE_DOTS)
        self._reset_modes()
        self._page: _Page | None = None
        self._line: list[_Segment] = []

    # -- life cycle ------------------------------------------------------

    def start(self) -> SimPrinter:
        self._master, self._slave, self.port = open_pty(self.link)
        self._running = True
        # Rendering (PNG, QR read-back) runs apart from the port, as a printer answers DLE EOT
        # in real time while it prints.
        self._renderer = threading.Thread(target=self._render_pages, name="sim-printer-render", daemon=True)
        self._renderer.start()
        self._thread = threading.Thread(target=self._run, name="sim-printer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port; pages already cut are still rendered before this returns."""
        self._running = False
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self._renderer is not None:
            self._pages.put(None)
            self._renderer.join(10)
            self._renderer = None
        close_pty(self._master, self._slave, self.link)
        self._master = self._slave = None

    def unplug(self) -> None:
        """The cable is pulled: the pty goes away (the daemon's writes fail)."""
        self.stop()

    def plug(self) -> None:
        """Plugged back in: a new pty, ``link`` points at it."""
        self.start()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def set_status(self, word: str) -> None:
        """ok, paper-low, paper-out, cover-open or offline (underscores accepted)."""
        word = word.replace("_", "-")
        if word not in STATUS_BYTES:
            raise ValueError(f"printer status {word!r}: one of {', '.join(STATUS_BYTES)}")
        self.state = word

    def __enter__(self) -> SimPrinter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        master = self._master
        if master is None:  # stopped before the thread ran
            return
        while self._running:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                continue  # EIO while the other side reopens
            self.feed(data, time.monotonic())

    def _answer(self, value: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, self.status_noise + bytes([value]))

    # -- parsing ---------------------------------------------------------

    def feed(self, data: bytes, at: float | None = None) -> None:
        """Bytes from the host, split anywhere."""
        if self.state == "offline":
            return  # powered off: nothing is read, nothing is answered
        self._buf += data
        while self._buf:
            used = self._step(self._buf, time.monotonic() if at is None else at)
            if used == 0:
                return  # an incomplete command: wait for the rest
            del self._buf[:used]

    def _reset_modes(self) -> None:
        self.chinese = False
        self.width = self.height = 1
        self.bold = False
        self.align = 0
        self.qr_data = ""
        self.qr_module = 3
        self.qr_error = "L"

    def _step(self, buf: bytearray, at: float) -> int:
        first = buf[0]
        if first == 0x10:
            return self._dle(buf)
        if first == 0x1C and self._page is None:
            return self._fs(buf)  # a mode switch after the cut does not start a ticket
        if self._page is None:
            self._page = _Page(at)
        page = self._page
        if first == 0x1B:
            used = self._esc(buf)
        elif first == 0x1C:
            used = self._fs(buf)
        elif first == 0x1D:
            used = self._gs(buf)
        elif first == 0x0A:
            self._end_line()
            used = 1
        elif first < 0x20 or first == 0x7F:
            used = 1  # other control bytes print nothing
        else:
            used = self._text(buf)
        page.bytes += used  # the page a cut just finished still counts the cut's bytes
        return used

    def _dle(self, buf: bytearray) -> int:
        if len(buf) < 3:
            return 0
        if buf[1] != 0x04:
            return 1
        self.status_queries += 1
        replies = STATUS_BYTES[self.state]
        if replies is not None and buf[2] in replies:
            if self.lose_answers > 0:
                self.lose_answers -= 1
            else:
                self._answer(replies[buf[2]])
        return 3

    def _esc(self, buf: bytearray) -> int:
        if len(buf) < 2:
            return 0
        cmd = buf[1]
        if cmd == ord("@"):
            self._reset_modes()
            return 2
        if len(buf) < 3:
            return 0
        arg = buf[2]
        if cmd == ord("a"):
            self.align = arg % 48 if arg >= 48 else arg
        elif cmd == ord("E"):
            self.bold = bool(arg & 1)
        elif cmd == ord("d"):
            self._end_line(only_if_pending=True)
            self._add(("feed", arg))
        elif cmd == ord("!"):
            self.bold = bool(arg & 0x08)
            self.width = 2 if arg & 0x20 else 1
            self.height = 2 if arg & 0x10 else 1
        return 3

    def _fs(self, buf: bytearray) -> int:
        if len(buf) < 2:
            return 0
        if buf[1] == ord("&"):
            self.chinese = True
        elif buf[1] == ord("."):
            self.chinese = False
        return 2

    def _gs(self, buf: bytearray) -> int:
        if len(buf) < 3:
            return 0
        cmd = buf[1]
        if cmd == ord("!"):
            self.width = (buf[2] >> 4) + 1
            self.height = (buf[2] & 0x0F) + 1
            return 3
        if cmd == ord("V"):
            mode = buf[2]
            if mode in (65, 66):
                if len(buf) < 4:
                    return 0
                self._cut("partial" if mode == 66 else "full")
                return 4
            self._cut("partial" if mode in (1, 49) else "full")
            return 3
        if cmd == ord("("):
            return self._gs_paren(buf)
        if cmd == ord("v"):
            return self._raster(buf)
        return 3

    def _gs_paren(self, buf: bytearray) -> int:
        if len(buf) < 5:
            return 0
        length = buf[3] | (buf[4] << 8)
        if len(buf) < 5 + length:
            return 0
        body = bytes(buf[5 : 5 + length])
        if buf[2] == ord("k") and length >= 2 and body[0] == 49:
            self._qr_function(body[1], body[2:])
        return 5 + length

    def _qr_function(self, fn: int, args: bytes) -> None:
        if fn == ord("C") and args:
            self.qr_module = max(1, min(16, args[0]))
        elif fn == ord("E") and args:
            self.qr_error = "LMQH"[min(3, max(0, args[0] - 48))]
        elif fn == ord("P"):
            self.qr_data = args[1:].decode("utf-8", errors="replace")
        elif fn == ord("Q"):
            self._end_line(only_if_pending=True)
            self._add(("qr", self.qr_data, self.qr_module, self.qr_error))

    def _raster(self, buf: bytearray) -> int:
        if len(buf) < 8:
            return 0
        mode = buf[3]
        x_bytes = buf[4] | (buf[5] << 8)
        rows = buf[6] | (buf[7] << 8)
        end = 8 + x_bytes * rows
        if len(buf) < end:
            return 0
        bits = bytes(b ^ 0xFF for b in buf[8:end])  # ESC/POS 1 = black; Pillow "1" 1 = white
        image = Image.frombytes("1", (x_bytes * 8, rows), bits) if rows and x_bytes else None
        if image is not None:
            scale = (2 if mode & 1 else 1, 2 if mode & 2 else 1)
            if scale != (1, 1):
                image = image.resize((image.width * scale[0], image.height * scale[1]))
            self._end_line(only_if_pending=True)
            self._add(("image", image))
        return end

    def _text(self, buf: bytearray) -> int:
        first = buf[0]
        if self.chinese and first >= 0x81:
            if len(buf) < 2:
                return 0
            if 0x30 <= buf[1] <= 0x39:  # a 4-byte GB18030 sequence: not in the printer's font
                if len(buf) < 4:
                    return 0
                self._put("??")
                return 4
            self._put(bytes(buf[:2]).decode("gb18030", errors="replace"))
            return 2
        if first >= 0x80:
            # Not in Chinese mode, a high byte is one character of the code page (mojibake).
            self._put(bytes([first]).decode("cp437"))
            if self._page is not None:
                self._page.chinese_used_in_mode = False
            return 1
        self._put(chr(first))
        return 1

    def _put(self, text: str) -> None:
        if self._line and (self._line[-1].width, self._line[-1].height, self._line[-1].bold) == (
            self.width,
            self.height,
            self.bold,
        ):
            self._line[-1].text += text
        else:
            self._line.append(_Segment(text, self.width, self.height, self.bold))

    def _end_line(self, only_if_pending: bool = False) -> None:
        if only_if_pending and not self._line:
            return
        self._add(("text", self._line, self.align))
        self._line = []

    def _add(self, element: tuple) -> None:
        if self._page is not None and self.state in PRINTS_IN:
            self._page.elements.append(element)

    def _cut(self, mode: str) -> None:
        self._end_line(only_if_pending=True)
        page, self._page = self._page, None
        if page is None:
            return
        if self.state not in PRINTS_IN:
            self.unprinted_cuts += 1
            return
        if self._renderer is not None:
            self._pages.put((page, mode))
        else:
            self.tickets.append(self._finish(page, mode))  # fed directly, no port running

    def _render_pages(self) -> None:
        while (item := self._pages.get()) is not None:
            self.tickets.append(self._finish(*item))

    # -- rendering -------------------------------------------------------

    def _finish(self, page: _Page, mode: str) -> SimTicket:
        image, decoded = self._render(page)
        text_lines, line_info = _as_text(page)
        number = self._first_number + len(self.tickets)
        png = self.folder / f"ticket-{number:04d}.png"
        image.save(png)
        text = "\n".join(text_lines)
        (self.folder / f"ticket-{number:04d}.txt").write_text(text + "\n", encoding="utf-8")
        return SimTicket(
            text=text,
            qr=list(page.qr),
            qr_decoded=decoded,
            cut=mode,
            started_at=page.started_at,
            bytes=page.bytes,
            chinese_mode=page.chinese_used_in_mode,
            png=png,
            lines=line_info,
        )

    def _render(self, page: _Page) -> tuple[Image.Image, list[str]]:
        blocks: list[tuple[Image.Image, int]] = []
        decoded: list[str] = []
        for element in page.elements:
            kind = element[0]
            if kind == "text":
                blocks.append((self._text_block(element[1]), element[2]))
            elif kind == "feed":
                blocks.append((Image.new("1", (1, (BASE_DOTS + LINE_GAP) * element[1]), 1), 0))
            elif kind == "qr":
                block, read_back = _qr_block(element[1], element[2], element[3])
                page.qr.append(element[1])
                decoded += read_back
                blocks.append((block, 1))
            elif kind == "image":
                blocks.append((element[1], 0))
        height = sum(block.height for block, _ in blocks) or 1
        paper = Image.new("1", (self.paper_dots, height), 1)
        y = 0
        for block, where in blocks:
            x = {0: 0, 1: (self.paper_dots - block.width) // 2, 2: self.paper_dots - block.width}[where]
            paper.paste(block, (max(0, x), y))
            y += block.height
        return paper, decoded

    def _text_block(self, segments: list[_Segment]) -> Image.Image:
        pieces = []
        for segment in segments:
            box = self._font.getbbox(segment.text) if segment.text else (0, 0, 0, 0)
            width = max(1, math.ceil(box[2]))  # a TrueType box may be fractional
            glyphs = Image.new("1", (width + 1, BASE_DOTS), 1)
            draw = ImageDraw.Draw(glyphs)
            draw.text((0, 0), segment.text, font=self._font, fill=0)
            if segment.bold:
                draw.text((1, 0), segment.text, font=self._font, fill=0)
            pieces.append(glyphs.resize((glyphs.width * segment.width, BASE_DOTS * segment.height)))
        height = max((p.height for p in pieces), default=BASE_DOTS) + LINE_GAP
        line = Image.new("1", (max(1, sum(p.width for p in pieces)), height), 1)
        x = 0
        for piece in pieces:
            line.paste(piece, (x, height - LINE_GAP - piece.height))
            x += piece.width
        return line


def _qr_block(data: str, module: int, error: str) -> tuple[Image.Image, list[str]]:
    """Draw the QR code as a printer would, and read it back."""
    import segno
    import zxingcpp

    code = segno.make_qr(data, error=error.lower(), boost_error=False)
    matrix = code.matrix
    size = len(matrix)
    quiet = 4
    image = Image.new("1", ((size + 2 * quiet) * module,) * 2, 1)
    draw = ImageDraw.Draw(image)
    for row, bits in enumerate(matrix):
        for col, bit in enumerate(bits):
            if bit:
                x, y = (col + quiet) * module, (row + quiet) * module
                draw.rectangle((x, y, x + module - 1, y + module - 1), fill=0)
    found = zxingcpp.read_barcodes(image.convert("L"))
    return image, [result.text for result in found]


def _as_text(page: _Page) -> tuple[list[str], list[dict]]:
    lines: list[str] = []
    info: list[dict] = []
    qr_index = 0
    for element in page.elements:
        if element[0] == "text":
            segments = element[1]
            text = "".join(s.text for s in segments)
            lines.append(text)
            info.append(
                {
                    "text": text,
                    "align": element[2],
                    "width": max((s.width for s in segments), default=1),
                    "height": max((s.height for s in segments), default=1),
                    "bold": any(s.bold for s in segments),
                }
            )
        elif element[0] == "qr":
            lines.append(f"[QR {element[1]}]")
            qr_index += 1
        elif element[0] == "image":
            lines.append(f"[image {element[1].width}x{element[1].height}]")
    return lines, info
