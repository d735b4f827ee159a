"""Simulated card readers on a pseudo-terminal: an RDM6300 or a PN532 in HSU mode.

Written from the manuals (shared/hardware.md), independently of the
daemon's driver.  The daemon opens ``SimReader.port`` as if it were
``/dev/hall-rfid``.

- RDM6300: when a card is tapped it sends the 14-byte frame
  ``02 <10 hex digits> <2 hex digits XOR> 03`` every 50-100 ms while the
  card is held.
- PN532: answers the host's frames (ACK, then the answer frame).  An
  InListPassiveTarget poll is answered with the held card, or "no target".

``unplug()`` makes the device vanish (the daemon's reads fail and the path
disappears); ``plug()`` brings a new one under the same ``port`` path (a
symlink, like the udev name of a USB adapter).  ``mute()`` makes a PN532
stop answering while the port stays open.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
from pathlib import Path

from hallsim.pty_port import close_pty, open_pty

KINDS = ("rdm6300", "pn532")
ACK = b"\x00\x00\xff\x00\xff\x00"


def em4100_frame(uid_hex: str) -> bytes:
    """RDM6300 frame for a 5-byte EM4100 UID."""
    raw = bytes.fromhex(uid_hex)
    if len(raw) != 5:
        raise ValueError("an RDM6300 card has 5 UID bytes (10 hex digits)")
    xor = raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4]
    return b"\x02" + (raw.hex().upper() + format(xor, "02X")).encode("ascii") + b"\x03"


def chip_frame(payload: bytes) -> bytes:
    """PN532 -> host information frame around ``payload`` (which starts with D5)."""
    n = len(payload)
    return b"\x00\x00\xff" + bytes([n, (0x100 - n) & 0xFF]) + payload + bytes([(-sum(payload)) & 0xFF, 0])


class SimReader:
    """A card reader of ``kind`` (rdm6300 | pn532) behind a pty; ``port`` is the path to open."""

    def __init__(self, kind: str, link: str | os.PathLike[str] | None = None, hold_s: float = 0.3) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.kind = kind
        self.hold_s = hold_s
        self._link = Path(link) if link else None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name = ""
        self._lock = threading.Lock()
        self._held: bytes | None = None  # UID bytes of the card in the field
        self._held_until = 0.0
        self._muted = False
        self._card_in_field = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = bytearray()  # host bytes not yet answered (PN532)
        self.polls = 0

    # -- device lifecycle ----------------------------------------------------------

    @property
    def port(self) -> str:
        return str(self._link) if self._link else self._slave_name

    def start(self) -> SimReader:
        self._plug()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"sim-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._card_in_field.set()
        if self._thread is not None:
            self._thread.join(2)
        self._unplug()

    def unplug(self) -> None:
        """The USB adapter is pulled: the pty goes away and so does the path."""
        with self._lock:
            self._unplug()

    def plug(self) -> None:
        """Plugged back in: a new pty under the same ``port`` path."""
        with self._lock:
            if self._master is None:
                self._plug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def mute(self, muted: bool = True) -> None:
        """A PN532 that hangs: the port stays, no answers come."""
        self._muted = muted

    def __enter__(self) -> SimReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _plug(self) -> None:
        self._master, self._slave, self._slave_name = open_pty(self._link, blocking=False)

    def _unplug(self) -> None:
        close_pty(self._master, self._slave, self._link)
        self._master = self._slave = None

    # -- cards -----------------------------------------------------------------------

    def tap(self, uid_hex: str, hold_s: float | None = None) -> None:
        """A card enters the field and stays ``hold_s`` seconds."""
        uid = bytes.fromhex(uid_hex)
        if self.kind == "rdm6300" and len(uid) != 5:
            raise ValueError("an RDM6300 reads 5-byte EM4100 cards")
        if self.kind == "pn532" and len(uid) not in (4, 7):
            raise ValueError("a PN532 (ISO 14443A) UID is 4 or 7 bytes")
        self._held = uid
        self._held_until = time.monotonic() + (self.hold_s if hold_s is None else hold_s)
        self._card_in_field.set()

    def write_raw(self, data: bytes) -> float:
        """Put bytes on the line (noise, broken frames); returns the time the last one was written."""
        with self._lock:
            if self._master is None:
                raise OSError("reader unplugged")
            view = memoryview(data)
            while view:
                written = os.write(self._master, view)
                view = view[written:]
            return time.perf_counter()

    def send_frame(self, uid_hex: str) -> float:
        """RDM6300: one frame for a card, now; returns the perf_counter time of its last byte."""
        return self.write_raw(em4100_frame(uid_hex))

    # -- the device's own loop ---------------------------------------------------------

    def _serve(self) -> None:
        next_frame = 0.0
        while not self._stop.is_set():
            master = self._master
            if master is None:
                self._stop.wait(0.02)
                continue
            if self.kind == "rdm6300":
                next_frame = self._rdm6300_step(next_frame)
            else:
                self._pn532_step(master)

    def _rdm6300_step(self, next_frame: float) -> float:
        now = time.monotonic()
        held = self._held if now < self._held_until else None
        if held is not None and now >= next_frame:
            with contextlib.suppress(OSError):
                self.write_raw(em4100_frame(held.hex()))
            return now + random.uniform(0.05, 0.1)
        # Idle: sleep until a card is tapped, not in short naps (they would steal CPU from the host).
        self._card_in_field.wait(0.005 if held is not None else 0.5)
        self._card_in_field.clear()
        return next_frame

    def _pn532_step(self, master: int) -> None:
        try:
            ready, _, _ = select.select([master], [], [], 0.02)
            if not ready:
                return
            data = os.read(master, 4096)
        except (OSError, ValueError):
            self._stop.wait(0.02)  # unplugged under our feet, or nobody has the port open
            return
        self.received += data
        self._answer_frames()

    def _answer_frames(self) -> None:
        """Find complete host frames in what was received and answer each."""
        buf = self.received
        while True:
            start = buf.find(b"\x00\xff")
            if start < 0 or len(buf) < start + 4:
                return
            n, lcs = buf[start + 2], buf[start + 3]
            if (n + lcs) & 0xFF or n == 0:
                del buf[: start + 2]
                continue
            end = start + 4 + n + 1
            if len(buf) < end:
                return
            payload = bytes(buf[start + 4 : start + 4 + n])
            good = (sum(payload) + buf[end - 1]) & 0xFF == 0
            del buf[:end]
            if good and payload[0] == 0xD4 and len(payload) >= 2 and not self._muted:
                self._answer(payload[1])

    def _answer(self, command: int) -> None:
        if command == 0x4A:
            self.polls += 1
            reply = b"\xd5\x4b\x00"
            if self._held is not None and time.monotonic() < self._held_until:
                uid = self._held
                reply = b"\xd5\x4b\x01\x01\x00\x04\x08" + bytes([len(uid)]) + uid
        elif command == 0x02:
            reply = b"\xd5\x03\x32\x01\x06\x07"  # firmware PN532 v1.6
        else:
            reply = bytes([0xD5, command + 1])
        with contextlib.suppress(OSError):
            self.write_raw(ACK + chip_frame(reply))
