"""Card readers at the tool locker: RDM6300 (125 kHz EM4100) and PN532 (13.56 MHz, HSU mode).

Two layers, as in pyserial's threaded reader:

- pure framers that turn bytes into card UIDs and know nothing of threads
  (``Rdm6300Framer``, ``Pn532Parser``); they are fed bytes split anywhere,
  with noise in between;
- ``CardReader``, one thread that owns the serial port, speaks to the chip,
  turns a held card into one tap, and watches the reader's health.

Card identity: the canonical UID (uppercase hex of the UID bytes) is hashed
here, with the site card key, into ``h`` (first 16 bytes of
HMAC-SHA256, lowercase hex, as in the cards snapshot).  Only ``h`` leaves
this module; the raw UID is never stored, logged or handed upward.

Wiring: the reader's TX to the Pi's RX (``/dev/serial0``) or a USB-serial
adapter (a udev rule names it ``/dev/hall-rfid``).  The PN532 board's mode
switches must select HSU (UART).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from drivers.port import ONLINE, PortWorker, open_serial

log = logging.getLogger(__name__)

# ---- card identity ------------------------------------------------------------


def card_hash(card_key: bytes, uid_hex: str) -> str:
    """``h`` of a card: first 16 bytes of HMAC-SHA256(site key, canonical UID), lowercase hex."""
    canonical = uid_hex.strip().upper().encode("ascii")
    return hmac.new(card_key, canonical, hashlib.sha256).hexdigest()[:32]


# ---- RDM6300 ---------------------------------------------------------------------

STX, ETX = 0x02, 0x03
RDM6300_FRAME_LEN = 14
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


def rdm6300_frame(uid_hex: str) -> bytes:
    """The 14 bytes an RDM6300 sends for a card (5 UID bytes as 10 hex digits)."""
    data = bytes.fromhex(uid_hex)
    if len(data) != 5:
        raise ValueError("an EM4100 UID is 5 bytes (10 hex digits)")
    checksum = 0
    for byte in data:
        checksum ^= byte
    return bytes([STX]) + f"{data.hex().upper()}{checksum:02X}".encode() + bytes([ETX])


class Rdm6300Framer:
    """Bytes in, canonical UIDs out.  Resynchronises on ``02``; bad frames are dropped and counted."""

    def __init__(self) -> None:
        self._frame = bytearray()
        self._in_frame = False
        self.frames = 0  # good frames
        self.bad_checksum = 0
        self.broken = 0  # a frame cut short by noise or a missing 03
        self.noise = 0  # bytes outside any frame

    def feed(self, data: bytes) -> list[str]:
        uids = []
        for byte in data:
            uid = self._byte(byte)
            if uid is not None:
                uids.append(uid)
        return uids

    def _byte(self, byte: int) -> str | None:
        if byte == STX:
            if self._in_frame:
                self.broken += 1  # a new frame began before this one ended
            self._frame = bytearray([byte])
            self._in_frame = True
            return None
        if not self._in_frame:
            self.noise += 1
            return None
        self._frame.append(byte)
        if len(self._frame) < RDM6300_FRAME_LEN:
            if byte not in _HEX_DIGITS:
                self._drop()
            return None
        frame, self._frame, self._in_frame = bytes(self._frame), bytearray(), False
        if frame[-1] != ETX:
            self.broken += 1
            return None
        return self._check(frame)

    def _drop(self) -> None:
        self.broken += 1
        self._frame = bytearray()
        self._in_frame = False

    def _check(self, frame: bytes) -> str | None:
        digits = frame[1:13].decode("ascii")
        data = bytes.fromhex(digits[:10])
        checksum = 0
        for byte in data:
            checksum ^= byte
        if checksum != int(digits[10:], 16):
            self.bad_checksum += 1
            return None
        self.frames += 1
        return digits[:10].upper()


# ---- PN532 (HSU) -------------------------------------------------------------------

PN532_WAKEUP = bytes([0x55, 0x55] + [0x00] * 15)
PN532_ACK = bytes([0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00])
TFI_HOST, TFI_CHIP = 0xD4, 0xD5
CMD_SAM_CONFIGURATION = 0x14
CMD_RF_CONFIGURATION = 0x32
CMD_IN_LIST_PASSIVE_TARGET = 0x4A


def pn532_frame(command: int, params: bytes = b"") -> bytes:
    """A host->chip information frame: 00 00 FF LEN LCS D4 cmd params DCS 00."""
    data = bytes([TFI_HOST, command]) + params
    length = len(data)
    if length > 255:
        raise ValueError("extended frames are not used")
    return bytes([0x00, 0x00, 0xFF, length, (-length) & 0xFF, *data, (-sum(data)) & 0xFF, 0x00])


SAM_CONFIGURATION = pn532_frame(CMD_SAM_CONFIGURATION, bytes([0x01, 0x14, 0x01]))
IN_LIST_PASSIVE_TARGET = pn532_frame(CMD_IN_LIST_PASSIVE_TARGET, bytes([0x01, 0x00]))
# MxRtyPassiveActivation = 1: without it a real chip waits for a card forever
# instead of answering "no card", and the poll loop could not tell a quiet
# field from a dead chip.
RF_RETRIES = pn532_frame(CMD_RF_CONFIGURATION, bytes([0x05, 0xFF, 0x01, 0x01]))


@dataclass(frozen=True)
class Pn532Ack:
    pass


@dataclass(frozen=True)
class Pn532Frame:
    """A normal information frame: ``tfi`` (D5 from the chip) and the bytes after it."""

    tfi: int
    data: bytes


class Pn532Parser:
    """Bytes in, ACKs and checked frames out.  Bad LCS/DCS frames are dropped and counted."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.bad_checksum = 0
        self.noise = 0

    def feed(self, data: bytes) -> list[Pn532Ack | Pn532Frame]:
        self._buf += data
        out: list[Pn532Ack | Pn532Frame] = []
        while True:
            item = self._next()
            if item is None:
                return out
            if not isinstance(item, bool):
                out.append(item)

    def _next(self) -> Pn532Ack | Pn532Frame | bool | None:
        """One parsed item, True when bytes were consumed without an item, None when more are needed."""
        start = self._buf.find(b"\x00\xff")
        if start < 0:
            keep = 1 if self._buf.endswith(b"\x00") else 0  # may be the first byte of a start code
            self.noise += sum(1 for byte in self._buf[: len(self._buf) - keep] if byte)
            del self._buf[: len(self._buf) - keep]
            return None
        self.noise += sum(1 for byte in self._buf[:start] if byte)  # preamble zeros are not noise
        del self._buf[:start]
        if len(self._buf) < 4:
            return None
        length, lcs = self._buf[2], self._buf[3]
        if length == 0 and lcs == 0xFF:
            del self._buf[:4]  # ACK; its postamble 00 is skipped like any padding
            return Pn532Ack()
        if (length + lcs) & 0xFF or length == 0:
            return self._false_start()
        if len(self._buf) < 4 + length + 1:
            return None
        body = bytes(self._buf[4 : 4 + length])
        if (sum(body) + self._buf[4 + length]) & 0xFF:
            return self._false_start()
        del self._buf[: 4 + length + 1]
        return Pn532Frame(body[0], body[1:])

    def _false_start(self) -> bool:
        """Noise that looked like a start code, or a damaged frame: skip only the start code,
        so that a real frame hidden in what followed is still found."""
        self.bad_checksum += 1
        del self._buf[:2]
        return True


def target_uid(frame: Pn532Frame) -> str | None:
    """The canonical UID in an InListPassiveTarget answer, or None for "no card" / another frame.

    Answer: D5 4B NbTg Tg SENS_RES(2) SEL_RES UIDlen UID...
    """
    data = frame.data
    if frame.tfi != TFI_CHIP or len(data) < 2 or data[0] != CMD_IN_LIST_PASSIVE_TARGET + 1:
        return None
    if data[1] == 0 or len(data) < 7:
        return None
    uid_len = data[6]
    uid = data[7 : 7 + uid_len]
    if uid_len == 0 or len(uid) != uid_len:
        return None
    return uid.hex().upper()


# ---- a held card is one tap ------------------------------------------------------------


class HeldCard:
    """Debounce: a card read again within ``same_card_s`` of its last read is the same tap.

    The window restarts at every read, so a card left on the reader for a
    minute is still one tap; another card is a new tap at once.
    """

    def __init__(self, same_card_s: float) -> None:
        self.same_card_s = same_card_s
        self._last: str | None = None
        self._last_seen = 0.0

    def is_new_tap(self, uid: str, now: float) -> bool:
        same = uid == self._last and now - self._last_seen < self.same_card_s
        self._last, self._last_seen = uid, now
        return not same


# ---- the reader thread -----------------------------------------------------------------

TapCallback = Callable[[str], None]
"""Receives ``h`` of a new tap (reader thread: post it, return)."""
HealthCallback = Callable[[bool], None]
"""Receives True when the reader is answering, False when it is not (on changes only)."""

DEFAULT_BAUD = {"rdm6300": 9600, "pn532": 115200}
READERS = tuple(DEFAULT_BAUD)


class ReaderSilent(OSError):
    """A PN532 that does not answer: the port is closed and opened again, as after a re-plug."""


class CardReader(PortWorker[serial.Serial]):
    """One thread per reader: opens the port, reads cards, reconnects after a re-plug.

    ``kind`` is ``rdm6300`` or ``pn532``; ``port`` a device path (a stable
    udev name survives a re-plug).  A port that cannot be opened or fails,
    or a PN532 that stops answering, reports ``on_health(False)``; the
    worker keeps trying from every ``retry_s`` and reports True when it is back.
    """

    def __init__(
        self,
        kind: str,
        port: str,
        card_key: bytes,
        on_tap: TapCallback,
        on_health: HealthCallback,
        *,
        baudrate: int = 0,
        same_card_s: float = 1.0,
        poll_s: float = 0.15,
        retry_s: float = 0.5,
        answer_timeout_s: float = 0.3,
    ) -> None:
        if kind not in READERS:
            raise ValueError(f"unknown reader {kind!r}; one of {', '.join(READERS)}")
        self.kind = kind
        self.port = port
        self.baudrate = baudrate or DEFAULT_BAUD[kind]
        super().__init__(
            f"rfid-{kind}",
            lambda: open_serial(port, self.baudrate, timeout=0.2),
            lambda word: on_health(word == ONLINE),
            retry_s=retry_s,
        )
        self._key = card_key
        self.on_tap = on_tap
        self.poll_s = poll_s
        self.answer_timeout_s = answer_timeout_s
        self.held = HeldCard(same_card_s)
        self.rdm = Rdm6300Framer()
        self.pn = Pn532Parser()
        self.taps = 0

    @property
    def healthy(self) -> bool:
        return self.health == ONLINE

    # -- the port thread --------------------------------------------------------

    def serve(self, port: serial.Serial) -> None:
        if self.kind == "rdm6300":
            self.report(ONLINE)  # an RDM6300 speaks only when a card is there
            self._read_rdm6300(port)
        else:
            self._run_pn532(port)

    def interrupt(self, port: serial.Serial) -> None:
        port.cancel_read()

    def _read_rdm6300(self, port: serial.Serial) -> None:
        while not self.stopping:
            data = port.read(max(1, port.in_waiting))
            if data:
                self._uids(self.rdm.feed(data))

    def _run_pn532(self, port: serial.Serial) -> None:
        """Wake the chip, configure it, then poll; a missed answer sends us back to waking it."""
        port.write(PN532_WAKEUP)
        for command in (SAM_CONFIGURATION, RF_RETRIES):
            if self._exchange(port, command) is None:
                raise ReaderSilent("PN532 does not answer")
        self.report(ONLINE)
        misses = 0
        while not self.stopping:
            answer = self._exchange(port, IN_LIST_PASSIVE_TARGET)
            if answer is None:
                misses += 1
                if misses >= 2:
                    raise ReaderSilent("PN532 stopped answering")
                continue
            misses = 0
            uid = target_uid(answer)
            if uid is not None:
                self._uids([uid])
            self.pause(self.poll_s)

    def _exchange(self, port: serial.Serial, command: bytes) -> Pn532Frame | None:
        """Send one command; the chip's answer frame (after its ACK), or None on a timeout."""
        port.reset_input_buffer()
        self.pn = Pn532Parser()
        port.write(command)
        deadline = time.monotonic() + self.answer_timeout_s
        expected = command[6] + 1
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            port.timeout = min(left, 0.05)
            for item in self.pn.feed(port.read(max(1, port.in_waiting))):
                if isinstance(item, Pn532Frame) and item.data[:1] == bytes([expected]):
                    return item
        return None

    def _uids(self, uids: list[str]) -> None:
        now = time.monotonic()
        for uid in uids:
            if self.held.is_new_tap(uid, now):
                self.taps += 1
                self.on_tap(card_hash(self._key, uid))
