"""The ticket printer's port: print jobs and status polling on one thread.

The transport comes from outside: a serial port through pyserial (USB-serial
adapters, the Pi's UART, the simulator's pty) or a ``/dev/usb/lp*`` file,
either opened exclusively (a second process on the port would take the
status answers meant for this one).  One thread (``drivers.port.PortWorker``)
owns it: it writes print jobs as soon as they arrive and, between jobs (and
right after each), polls ``DLE EOT 1/2/4`` every ``poll_s``.

A missed answer is not an outage: a poll without a status byte within
``timeout_s`` is asked again at once, and only ``misses_offline`` misses in
a row make the printer ``offline`` (the rule of every port device,
``drivers.port``: failures in a row, and none during the start-up grace; a
printer switched off is seen within ``misses_offline * timeout_s``).  Bytes on the status line that are not
status bytes are noise and skipped.  A printer that never answers status
requests (some USB ones) is driven with ``status_queries=False``: then only
a failing port makes it ``offline``.  When the port vanishes (USB unplugged)
the worker closes it, reports ``offline`` and opens it again by itself.

Each job ends in one ``PrintResult``: printed (the printer took it and said
right after that it can print), not printed (and why), or unconfirmed (the
bytes went out but the printer did not answer after them).

Callbacks run on the port thread: hand their news to the caller's own
thread (``core.post``) and return.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import serial

from drivers.escpos import (
    STATUS_OFFLINE_CAUSE,
    STATUS_PAPER,
    STATUS_PRINTER,
    PrinterStatus,
    first_status_byte,
    status_request,
)
from drivers.port import (
    FAILURES_OFFLINE,
    GRACE_S,
    OFFLINE,
    ONLINE,
    PORT_ERRORS,
    PortWorker,
    lock_exclusively,
    open_serial,
)

log = logging.getLogger(__name__)

PRINTABLE = ("ok", "paper_low")
WRITE_DEADLINE_S = 5.0  # a ticket is < 1 KB: ~1 s at 9600 baud; longer means a stalled printer


class Transport(Protocol):
    """Bytes to and from the printer."""

    def write(self, data: bytes) -> None: ...

    def read(self, size: int, timeout: float) -> bytes: ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port (pyserial): /dev/ttyUSB0, /dev/serial0, a pty."""

    def __init__(self, path: str, baudrate: int) -> None:
        self._port = open_serial(path, baudrate, timeout=0, write_timeout=WRITE_DEADLINE_S)

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()  # tcdrain: termios.error (not an OSError) once the adapter is gone
        except (serial.SerialException, termios.error) as exc:
            raise OSError(f"serial write failed: {exc}") from None

    def read(self, size: int, timeout: float) -> bytes:
        try:
            self._port.timeout = max(timeout, 0.0)
            # read(size) would wait the whole timeout for ``size`` bytes: wait for one, take the rest.
            data = self._port.read(1)
            if data and size > 1:
                data += self._port.read(min(size - 1, self._port.in_waiting))
            return data
        except (serial.SerialException, termios.error) as exc:
            raise OSError(f"serial read failed: {exc}") from None

    def discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, termios.error) as exc:
            raise OSError(f"serial flush failed: {exc}") from None

    def close(self) -> None:
        self._port.close()


class FileTransport:
    """A printer device file (/dev/usb/lp0): writes, and reads its back channel."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        lock_exclusively(fd, path)
        self._fd = fd

    def write(self, data: bytes) -> None:
        deadline = time.monotonic() + WRITE_DEADLINE_S
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OSError("printer write timed out")
            _, ready, _ = select.select([], [self._fd], [], remaining)
            if ready:
                try:
                    view = view[os.write(self._fd, view) :]
                except BlockingIOError:
                    continue

    def read(self, size: int, timeout: float) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        if not ready:
            return b""
        try:
            data = os.read(self._fd, size)
        except BlockingIOError:
            return b""
        if not data:
            raise OSError("printer device closed")
        return data

    def discard_input(self) -> None:
        while self.read(256, 0):
            pass

    def close(self) -> None:
        os.close(self._fd)


def open_transport(kind: str, path: str, baudrate: int) -> Transport:
    """``kind`` 'serial' (pyserial) or 'usblp' (device file). Raises OSError when absent."""
    if kind == "serial":
        return SerialTransport(path, baudrate)
    if kind == "usblp":
        return FileTransport(path)
    raise ValueError(f"printer transport {kind!r}: 'serial' or 'usblp'")


def read_status(transport: Transport, timeout_s: float) -> tuple[PrinterStatus | None, int]:
    """Ask DLE EOT 1, 2 and 4; (status or None when the printer did not answer, noise bytes seen)."""
    replies = []
    noise = 0
    for n in (STATUS_PRINTER, STATUS_OFFLINE_CAUSE, STATUS_PAPER):
        transport.discard_input()  # a late answer to an earlier poll must not pass as this one
        transport.write(status_request(n))
        value, skipped = _await_status_byte(transport, timeout_s)
        noise += skipped
        if value is None:
            return None, noise
        replies.append(value)
    return PrinterStatus(*replies), noise


def _await_status_byte(transport: Transport, timeout_s: float) -> tuple[int | None, int]:
    deadline = time.monotonic() + timeout_s
    noise = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, noise
        data = transport.read(64, remaining)
        value, skipped = first_status_byte(data)
        noise += skipped
        if value is not None:
            return value, noise


@dataclass(frozen=True)
class PrintJob:
    key: str  # the caller's name for it (a ticket number)
    data: bytes


@dataclass(frozen=True)
class PrintResult:
    """What became of one job.

    ``printed``: True when the printer took it in full and its status right after says it can
    print; False when it did not come out (``status`` says why: paper_out, cover_open,
    offline); None when the bytes went out but the printer did not answer after them (or is
    driven with ``status_queries=False``): whether it came out is not known.
    """

    job: PrintJob
    printed: bool | None
    status: str


class PrinterPort(PortWorker[Transport]):
    """One thread that owns the printer: ``submit`` jobs; hear back through the callbacks.

    ``on_status(word)``: ok, paper_low, paper_out, cover_open or offline, on each change.
    ``on_result(result)``: once for every job (``PrintResult``).
    """

    def __init__(
        self,
        opener: Callable[[], Transport],
        *,
        poll_s: float,
        timeout_s: float,
        on_status: Callable[[str], None],
        on_result: Callable[[PrintResult], None],
        status_queries: bool = True,
        misses_offline: int = FAILURES_OFFLINE,
        grace_s: float = GRACE_S,
    ) -> None:
        super().__init__(
            "printer",
            opener,
            on_status,
            retry_s=min(poll_s, 0.5),  # a pulled cable: three quick tries, then offline
            retry_max_s=max(poll_s, 5.0),
            failures_offline=misses_offline,
            grace_s=grace_s,
        )
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._on_result = on_result
        self.status_queries = status_queries  # False: a printer that never answers DLE EOT
        self._jobs: queue.SimpleQueue[PrintJob] = queue.SimpleQueue()
        self.noise_bytes = 0
        self.missed_answers = 0  # polls without an answer (each asked again at once)

    @property
    def status(self) -> str | None:
        return self.health

    def submit(self, key: str, data: bytes) -> None:
        """Queue bytes for the printer (any thread); written as soon as the port thread is free."""
        self._jobs.put(PrintJob(key, data))
        self.wake()

    # -- the port thread ---------------------------------------------------

    def serve(self, port: Transport) -> None:
        next_poll = 0.0
        while not self.stopping:
            job = self._next_job()
            if job is not None:
                self._print(port, job)
                next_poll = time.monotonic() + self.poll_s
            elif time.monotonic() >= next_poll:
                self._poll(port)
                next_poll = time.monotonic() + self.poll_s
            else:
                self.pause(next_poll - time.monotonic())

    def while_closed(self) -> None:
        # No port: the jobs queued meanwhile cannot come out; the caller shows their numbers.
        while (job := self._next_job()) is not None:
            self._on_result(PrintResult(job, False, OFFLINE))

    def _next_job(self) -> PrintJob | None:
        try:
            return self._jobs.get_nowait()
        except queue.Empty:
            return None

    def _print(self, port: Transport, job: PrintJob) -> None:
        try:
            port.write(job.data)
        except PORT_ERRORS:
            self._on_result(PrintResult(job, False, OFFLINE))
            raise  # the worker closes the port and opens it again
        # Ask at once whether it can print it: paper that ran out since the last poll, a cover
        # opened, a printer switched off (bytes into a dead cable) fail this job, not the next.
        answered = self._poll(port)
        word = self.health or OFFLINE
        # Not answered: it took the bytes, then said nothing; it may or may not have printed them.
        printed = (word in PRINTABLE) if answered else None
        self._on_result(PrintResult(job, printed, word))

    def _poll(self, port: Transport) -> bool:
        """Ask the status and report it; False when the printer did not answer."""
        if not self.status_queries:
            port.read(64, 0)  # raises once the device is gone
            self.report(ONLINE)  # all we can know: the port is there and takes bytes
            return False
        for _ in range(self.failures_offline):
            status, noise = read_status(port, self.timeout_s)
            if noise:
                self.noise_bytes += noise
                log.debug("printer status line: %d noise byte(s) skipped", noise)
            if status is not None:
                self.report(status.word)
                return True
            self.missed_answers += 1
            log.debug("printer: no status answer within %.2f s; asking again", self.timeout_s)
            if self.missed():  # the port worker's rule: misses in a row, none in the start-up grace
                return False
        return False
