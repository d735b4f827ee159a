"""RS-485 lock boards, Kerong KR-CU16 style (19200 8N1), an alternative to GPIO locks.

Frames: host -> board ``02 ADDR CMD 03 SUM``, SUM = low byte of the sum of the
bytes before it, ADDR = (board << 4) | lock.  Locks are numbered 1-16 on the
board's label and 0-15 on the wire.  ``0x31`` unlocks one lock, ``0x30``
asks a board for its status; the answer is 9 bytes
``02 ADDR 35 L1-8 L9-16 IR1-8 IR9-16 03 SUM`` (bit 0 of L1-8 is lock 1).
What a set bit means (door open or closed) differs between board
revisions, so this driver hands the raw bits upward and the caller maps them
from its configuration.

Wiring: a USB-RS-485 adapter (udev name ``/dev/hall-locks``), A/B to the
board's A/B, boards daisy-chained with distinct DIP-switch addresses.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from drivers.port import ONLINE, PortWorker, open_serial

log = logging.getLogger(__name__)

STX, ETX = 0x02, 0x03
CMD_STATUS, CMD_UNLOCK, REPLY_STATUS = 0x30, 0x31, 0x35
STATUS_LEN = 9


def address(board: int, lock: int) -> int:
    """ADDR byte for ``board`` 0-15 and ``lock`` 1-16 (0 = the board as a whole)."""
    if not 0 <= board <= 15 or not 0 <= lock <= 16:
        raise ValueError("board 0-15, lock 1-16")
    return (board << 4) | max(lock - 1, 0)


def command(board: int, lock: int, cmd: int) -> bytes:
    body = bytes([STX, address(board, lock), cmd, ETX])
    return body + bytes([sum(body) & 0xFF])


def unlock_frame(board: int, lock: int) -> bytes:
    return command(board, lock, CMD_UNLOCK)


def status_frame(board: int) -> bytes:
    return command(board, 0, CMD_STATUS)


@dataclass(frozen=True)
class BoardStatus:
    """Raw bits of one board: ``locks[i]`` and ``ir[i]`` for lock i+1."""

    board: int
    locks: tuple[bool, ...]
    ir: tuple[bool, ...]


def _bits(low: int, high: int) -> tuple[bool, ...]:
    value = low | (high << 8)
    return tuple(bool(value >> i & 1) for i in range(16))


class StatusParser:
    """Bytes in, status replies out; resynchronises on 02, drops and counts bad sums."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.bad = 0

    def feed(self, data: bytes) -> list[BoardStatus]:
        out: list[BoardStatus] = []
        self._buf += data
        while True:
            start = self._buf.find(bytes([STX]))
            if start < 0:
                self._buf.clear()
                return out
            del self._buf[:start]
            if len(self._buf) < STATUS_LEN:
                return out
            frame = bytes(self._buf[:STATUS_LEN])
            if frame[2] != REPLY_STATUS or frame[7] != ETX or sum(frame[:8]) & 0xFF != frame[8]:
                self.bad += 1
                del self._buf[:1]  # a false start: look for the next 02
                continue
            del self._buf[:STATUS_LEN]
            out.append(BoardStatus(frame[1] >> 4, _bits(frame[3], frame[4]), _bits(frame[5], frame[6])))


StatusCallback = Callable[[BoardStatus], None]
HealthCallback = Callable[[bool], None]


class BoardSilent(OSError):
    """A board stopped answering: the port is closed and opened again."""


class LockBoards(PortWorker[serial.Serial]):
    """One thread on the RS-485 port: sends unlocks as they come, polls every board's status.

    ``on_status`` gets each board's status (thread: post it and return);
    ``on_health`` False when the port fails or a board stops answering, True
    when all answer again.
    """

    def __init__(
        self,
        port: str,
        boards: list[int],
        on_status: StatusCallback,
        on_health: HealthCallback,
        *,
        baudrate: int = 19200,
        poll_s: float = 0.2,
        answer_timeout_s: float = 0.15,
        retry_s: float = 0.5,
    ) -> None:
        super().__init__(
            "lockboards",
            lambda: open_serial(port, baudrate, timeout=0.02),
            lambda word: on_health(word == ONLINE),
            retry_s=retry_s,
        )
        self.port = port
        self.boards = sorted(set(boards))
        self.on_status = on_status
        self.baudrate = baudrate
        self.poll_s = poll_s
        self.answer_timeout_s = answer_timeout_s
        self.parser = StatusParser()
        self._unlocks: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def unlock(self, board: int, lock: int) -> None:
        """Queue an unlock (any thread); it goes out before the next poll."""
        self._unlocks.put(unlock_frame(board, lock))
        self.wake()

    def serve(self, port: serial.Serial) -> None:
        misses = 0
        while not self.stopping:
            self._send_unlocks(port)
            answered = all(self._poll(port, board) for board in self.boards)
            misses = 0 if answered else misses + 1
            if misses >= 2:
                raise BoardSilent("a lock board does not answer")
            if answered:
                self.report(ONLINE)
            self.pause(self.poll_s)

    def _send_unlocks(self, port: serial.Serial) -> None:
        while True:
            try:
                frame = self._unlocks.get_nowait()
            except queue.Empty:
                return
            port.write(frame)

    def _poll(self, port: serial.Serial, board: int) -> bool:
        port.reset_input_buffer()
        port.write(status_frame(board))
        deadline = time.monotonic() + self.answer_timeout_s
        while time.monotonic() < deadline and not self.stopping:
            self._send_unlocks(port)  # an unlock never waits behind a slow poll
            for status in self.parser.feed(port.read(max(1, port.in_waiting))):
                if status.board == board:
                    self.on_status(status)
                    return True
        return False
