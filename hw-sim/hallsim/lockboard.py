"""A simulated RS-485 lock board (Kerong KR-CU16 style) on a pseudo-terminal.

Written from shared/hardware.md, independently of the daemon's driver.
Host frames ``02 ADDR CMD 03 SUM`` (ADDR = board << 4 | lock-1);
``0x31`` unlocks (recorded, and the lock's latch opens), ``0x30`` is answered
with ``02 ADDR 35 L1-8 L9-16 IR1-8 IR9-16 03 SUM``.  The L bits report the
doors: a set bit means open when ``open_bit`` is 1 (this revision), closed
when it is 0 (the other revision).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from pathlib import Path

from hallsim.pty_port import close_pty, open_pty


class SimLockBoard:
    def __init__(
        self, boards: tuple[int, ...] = (0,), open_bit: int = 1, link: str | Path | None = None
    ) -> None:
        self.boards = boards
        self.open_bit = open_bit
        self.doors: dict[tuple[int, int], bool] = {}  # (board, lock) -> open
        self.tools: dict[tuple[int, int], bool] = {}  # IR: a tool is in the compartment
        self.unlocks: list[tuple[int, int, float]] = []  # (board, lock, monotonic time)
        self.status_replies = 0  # answers to 0x30 sent: the controller has read the doors this often
        self.muted = False
        self.link = Path(link) if link else None
        self._master: int | None = None
        self._slave: int | None = None
        self.port = ""
        self.plug()
        self._buf = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sim-lockboard", daemon=True)

    def start(self) -> SimLockBoard:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.unplug()

    def unplug(self) -> None:
        """The RS-485 adapter is pulled: the pty (and ``link``) go away."""
        master, self._master = self._master, None
        close_pty(master, self._slave, self.link)
        self._slave = None

    def plug(self) -> None:
        """A new pty; ``port`` is ``link`` when given (it survives a replug), else the pty's path."""
        if self._master is None:
            self._master, self._slave, name = open_pty(self.link, blocking=False)
            self.port = str(self.link) if self.link else name

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def __enter__(self) -> SimLockBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_door(self, board: int, lock: int, is_open: bool) -> None:
        self.doors[(board, lock)] = is_open

    def _serve(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master is None:
                self._stop.wait(0.02)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.02)
                if ready:
                    self._buf += os.read(master, 1024)
            except OSError:
                self._stop.wait(0.02)
                continue
            self._handle_frames()

    def _handle_frames(self) -> None:
        while True:
            start = self._buf.find(b"\x02")
            if start < 0:
                self._buf.clear()
                return
            del self._buf[:start]
            if len(self._buf) < 5:
                return
            frame = bytes(self._buf[:5])
            if frame[3] != 0x03 or (frame[0] + frame[1] + frame[2] + frame[3]) % 256 != frame[4]:
                del self._buf[:1]
                continue
            del self._buf[:5]
            board, lock = frame[1] >> 4, (frame[1] & 0x0F) + 1
            if board in self.boards and not self.muted:
                self._command(board, lock, frame[2])

    def _command(self, board: int, lock: int, cmd: int) -> None:
        if cmd == 0x31:
            self.unlocks.append((board, lock, time.monotonic()))
        elif cmd == 0x30:
            self._reply(board)

    def _reply(self, board: int) -> None:
        doors = tools = 0
        for n in range(1, 17):
            is_open = self.doors.get((board, n), False)
            if is_open == bool(self.open_bit):
                doors |= 1 << (n - 1)
            if self.tools.get((board, n), True):
                tools |= 1 << (n - 1)
        body = bytes([0x02, board << 4, 0x35, doors & 0xFF, doors >> 8, tools & 0xFF, tools >> 8, 0x03])
        master = self._master
        if master is None:
            return
        with contextlib.suppress(OSError):
            os.write(master, body + bytes([sum(body) % 256]))
        self.status_replies += 1
