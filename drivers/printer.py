"""The ticket printer's port: print jobs and status polling on one thread.

The transport comes from outside: a serial port through pyserial (USB-serial
adapters, the Pi's UART, the simulator's pty) or a ``/dev/usb/lp*`` file.
One thread owns it: it writes print jobs as soon as they arrive and, between
jobs (and right after each), polls ``DLE EOT 1/2/4`` every ``poll_s``.  A
printer that never answers status requests (some USB ones) is driven with
``status_queries=False``: then only a failing port makes it ``offline``.  A poll without a status
byte within ``timeout_s`` means the printer is offline; bytes on the status
line that are not status bytes are noise and skipped.  When the port
vanishes (USB unplugged) the thread closes it, reports ``offline`` and
tries to open it again at each poll, so the printer comes back by itself.

Callbacks run on the port thread: hand their news to the caller's own
thread (``core.post``) and return.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import termios
import threading
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
        self._port = serial.Serial(path, baudrate, timeout=0, write_timeout=WRITE_DEADLINE_S)

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
        self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

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
        try:
            return SerialTransport(path, baudrate)
        except serial.SerialException as exc:
            raise OSError(f"cannot open {path}: {exc}") from None
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


_STOP = object()


class PrinterPort:
    """One thread that owns the printer: ``submit`` jobs; hear back through the callbacks.

    ``on_status(word)``: ok, paper_low, paper_out, cover_open or offline, on each change.
    ``on_failed(job, reason)``: a job that could not be printed: port gone, or the status
    asked right after writing it says the printer cannot print (reason = the status word).
    ``on_written(job)``: a job handed in full to a printer that reports it can print.
    """

    def __init__(
        self,
        opener: Callable[[], Transport],
        *,
        poll_s: float,
        timeout_s: float,
        on_status: Callable[[str], None],
        on_failed: Callable[[PrintJob, str], None],
        on_written: Callable[[PrintJob], None] | None = None,
        status_queries: bool = True,
    ) -> None:
        self._opener = opener
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._on_status = on_status
        self._on_failed = on_failed
        self._on_written = on_written
        self.status_queries = status_queries  # False: a printer that never answers DLE EOT
        self._jobs: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._transport: Transport | None = None
        self._thread: threading.Thread | None = None
        self.status: str | None = None
        self.noise_bytes = 0
        self._poll_now = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._jobs.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def submit(self, key: str, data: bytes) -> None:
        """Queue bytes for the printer (any thread); written as soon as the port thread is free."""
        self._jobs.put(PrintJob(key, data))

    # -- the port thread ---------------------------------------------------

    def _run(self) -> None:
        next_poll = 0.0
        while True:
            try:
                item = self._jobs.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            job = item if isinstance(item, PrintJob) else None
            try:
                if job is not None:
                    self._print(job)
                elif time.monotonic() >= next_poll:
                    self._poll()
                    next_poll = time.monotonic() + self.poll_s
            except Exception:  # the port thread must outlive any surprise: tickets depend on it
                log.exception("printer port failed; closing it")
                self._close()
                self._report("offline")
                if job is not None:
                    self._on_failed(job, "offline")
                next_poll = time.monotonic() + self.poll_s

    def _print(self, job: PrintJob) -> None:
        if self._transport is None and not self._open():
            self._on_failed(job, "offline")
            return
        try:
            # _open() returned True, so there is a transport (mypy cannot see through the call).
            self._transport.write(job.data)  # type: ignore[union-attr]
        except OSError as exc:
            log.warning("printer write failed (%s); closing the port", exc)
            self._close()
            self._report("offline")
            self._on_failed(job, "offline")
            return
        # Ask at once whether it can print it: paper that ran out since the last poll, a cover
        # opened, a printer switched off (bytes into a dead cable) fail this job, not the next.
        self._poll()
        if self.status not in PRINTABLE:
            self._on_failed(job, self.status or "offline")
        elif self._on_written is not None:
            self._on_written(job)

    def _poll(self) -> None:
        if self._transport is None and not self._open():
            self._report("offline")
            return
        try:
            if not self.status_queries:
                # raises once the device is gone; set: _open() returned True (mypy cannot see it)
                self._transport.read(64, 0)  # type: ignore[union-attr]
                self._report("ok")  # all we can know: the port is there and takes bytes
                return
            status, noise = read_status(self._transport, self.timeout_s)  # type: ignore[arg-type]  # set, as above
        except OSError as exc:
            log.warning("printer status read failed (%s); closing the port", exc)
            self._close()
            self._report("offline")
            return
        if noise:
            self.noise_bytes += noise
            log.debug("printer status line: %d noise byte(s) skipped", noise)
        self._report(status.word if status is not None else "offline")

    def _open(self) -> bool:
        try:
            self._transport = self._opener()
        except OSError as exc:
            if self.status != "offline":
                log.warning("printer port cannot be opened: %s", exc)
            return False
        log.info("printer port open")
        return True

    def _close(self) -> None:
        if self._transport is not None:
            try:
                self._transport.close()
            except OSError:
                log.debug("printer port close failed", exc_info=True)
            self._transport = None

    def _report(self, word: str) -> None:
        if word != self.status:
            self.status = word
            self._on_status(word)
