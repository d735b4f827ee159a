"""ESC/POS bytes for a thermal ticket printer, built in pure code.

Only the commands a queue ticket needs, exactly as the printer manuals give
them (``shared/hardware.md``): initialise, Chinese mode (``FS &`` /
``FS .``) with GB18030 text, character size, alignment, bold, feed, cut and
the native QR code (``GS ( k``, model 2).  Nothing here touches a port:
``Receipt`` collects bytes, the caller writes them through a transport.

The status half parses the one-byte answers to ``DLE EOT n``.  Every real
status byte has bits 1 and 4 set and bits 0 and 7 clear, which is how a
byte from the printer is told apart from noise on the line.
"""

from __future__ import annotations

from dataclasses import dataclass

ESC = b"\x1b"
GS = b"\x1d"
FS = b"\x1c"
DLE = b"\x10"

INIT = ESC + b"@"
CHINESE_ON = FS + b"&"
CHINESE_OFF = FS + b"."
LF = b"\n"

LEFT, CENTER, RIGHT = 0, 1, 2
CUTS = {"full": GS + b"V\x00", "partial": GS + b"V\x01", "none": b""}
QR_ERROR_LEVELS = {"L": 0x30, "M": 0x31, "Q": 0x32, "H": 0x33}

# Characters GB18030 can only write in 4 bytes, which printers' Chinese fonts
# do not hold: the usual full-width look-alike (2 bytes in GB18030) instead.
LOOKALIKES = str.maketrans(
    {
        "¥": "￥",  # U+00A5 -> U+FFE5
        "€": "EUR",
        "•": "·",
        "–": "-",  # en dash
        "\u00a0": " ",  # no-break space
        "™": "TM",
        "©": "(C)",
        "®": "(R)",
    }
)


def encode_text(text: str) -> bytes:
    """``text`` as GB18030, one or two bytes per character; unprintable characters become '?'."""
    out = bytearray()
    for char in text.translate(LOOKALIKES):
        encoded = char.encode("gb18030")
        if len(encoded) > 2 or (len(encoded) == 1 and encoded < b" " and char not in "\n"):
            encoded = b"?"
        out += encoded
    return bytes(out)


def size(width: int = 1, height: int = 1) -> bytes:
    """GS ! n: width and height multipliers 1-8."""
    if not (1 <= width <= 8 and 1 <= height <= 8):
        raise ValueError(f"character size {width}x{height}: each multiplier must be 1-8")
    return GS + b"!" + bytes([((width - 1) << 4) | (height - 1)])


def align(where: int) -> bytes:
    """ESC a n: 0 left, 1 centre, 2 right."""
    if where not in (LEFT, CENTER, RIGHT):
        raise ValueError(f"alignment {where}: 0 (left), 1 (centre) or 2 (right)")
    return ESC + b"a" + bytes([where])


def bold(on: bool) -> bytes:
    return ESC + b"E" + (b"\x01" if on else b"\x00")


def feed(lines: int) -> bytes:
    """ESC d n: print and feed n lines."""
    if not 0 <= lines <= 255:
        raise ValueError(f"feed {lines} lines: 0-255")
    return ESC + b"d" + bytes([lines])


def cut(mode: str) -> bytes:
    """GS V 0 (full) or GS V 1 (partial); 'none' cuts nothing (tear-off bar)."""
    try:
        return CUTS[mode]
    except KeyError:
        raise ValueError(f"cut {mode!r}: one of {', '.join(CUTS)}") from None


def _qr_function(fn: bytes, payload: bytes) -> bytes:
    """GS ( k pL pH cn=49 fn payload; pL pH counts cn, fn and the payload."""
    length = len(payload) + 2
    return GS + b"(k" + length.to_bytes(2, "little") + b"1" + fn + payload


def qr(data: str, module: int = 6, error: str = "M") -> bytes:
    """Native QR code, model 2: select model, module size, error level, store, print."""
    if not 1 <= module <= 16:
        raise ValueError(f"QR module size {module}: 1-16")
    if error not in QR_ERROR_LEVELS:
        raise ValueError(f"QR error level {error!r}: one of L, M, Q, H")
    encoded = data.encode("utf-8")
    if len(encoded) > 7089:
        raise ValueError(f"QR data of {len(encoded)} bytes is too long")
    return (
        _qr_function(b"A", b"2\x00")  # model 2
        + _qr_function(b"C", bytes([module]))
        + _qr_function(b"E", bytes([QR_ERROR_LEVELS[error]]))
        + _qr_function(b"P", b"0" + encoded)  # store
        + _qr_function(b"Q", b"0")  # print
    )


class Receipt:
    """Collects the bytes of one printout; each method appends and returns self."""

    def __init__(self) -> None:
        self._buf = bytearray(INIT + CHINESE_ON)

    def line(self, text: str = "", *, width: int = 1, height: int = 1, bold_on: bool = False) -> Receipt:
        """One line of text in the given size; size and bold go back to normal after it."""
        styled = (width, height) != (1, 1)
        if styled:
            self._buf += size(width, height)
        if bold_on:
            self._buf += bold(True)
        self._buf += encode_text(text) + LF
        if bold_on:
            self._buf += bold(False)
        if styled:
            self._buf += size(1, 1)
        return self

    def align(self, where: int) -> Receipt:
        self._buf += align(where)
        return self

    def feed(self, lines: int) -> Receipt:
        self._buf += feed(lines)
        return self

    def qr(self, data: str, module: int = 6, error: str = "M") -> Receipt:
        self._buf += qr(data, module, error) + LF
        return self

    def cut(self, mode: str, feed_lines: int = 3) -> Receipt:
        self._buf += feed(feed_lines) + cut(mode)
        return self

    def bytes(self) -> bytes:
        """Everything so far, leaving Chinese mode so the printer is as we found it."""
        return bytes(self._buf) + CHINESE_OFF


# ---- status (DLE EOT) -------------------------------------------------------

STATUS_PRINTER, STATUS_OFFLINE_CAUSE, STATUS_PAPER = 1, 2, 4


def status_request(n: int) -> bytes:
    """DLE EOT n: ask for one real-time status byte (n = 1, 2 or 4)."""
    if n not in (STATUS_PRINTER, STATUS_OFFLINE_CAUSE, STATUS_PAPER):
        raise ValueError(f"DLE EOT {n}: 1 (printer), 2 (offline cause) or 4 (paper)")
    return DLE + b"\x04" + bytes([n])


def is_status_byte(value: int) -> bool:
    """Bits 1 and 4 set, bits 0 and 7 clear: a status byte, not noise."""
    return value & 0b1001_0011 == 0b0001_0010


@dataclass(frozen=True)
class PrinterStatus:
    """The three status bytes of one poll, reduced to one word for the hall."""

    printer: int
    offline_cause: int
    paper: int

    @property
    def word(self) -> str:
        """ok, paper_low, paper_out, cover_open or offline (worst first)."""
        if self.offline_cause & 0x04:
            return "cover_open"
        if self.offline_cause & 0x20 or self.paper & 0x60:
            return "paper_out"
        if self.printer & 0x08:
            # Offline for another cause (error bit, or one the manual does not list): it will not print.
            return "offline"
        if self.paper & 0x0C:
            return "paper_low"
        return "ok"


def first_status_byte(data: bytes) -> tuple[int | None, int]:
    """The first status byte in ``data`` and how many bytes before it were noise."""
    for index, value in enumerate(data):
        if is_status_byte(value):
            return value, index
    return None, len(data)
