"""One thread that owns one port: open with retry, serve it, report its health, close it.

The same idea as pyserial's ``serial.threaded.ReaderThread`` with its
``Protocol``: the thread and the port's life cycle live here once, and each
driver keeps only its bytes.  A driver subclasses ``PortWorker`` and writes
``serve(port)``: talk to the device until the port fails (raise) or the
worker stops (return).  Its framers and parsers stay pure functions of the
bytes, with no thread in them.

The worker:

- opens the port through the ``opener`` it is given (a serial port path, a
  device file, a test's fake), exclusively (``open_serial``): a second
  process on the same port (a second daemon, ``selftest`` while the service
  runs) would read the answers meant for this one, so it is refused instead;
- retries a port that cannot be opened or that failed, after ``retry_s``,
  doubling up to ``retry_max_s`` while it stays away (a re-plugged USB
  adapter is found again by itself; an absent one is not hammered);
- reports health words on changes only: whatever ``serve`` reports
  (``report("ok")``), and ``OFFLINE`` by one rule for every port device:
  ``failures_offline`` (3) failed attempts in a row to reach it (a port that
  does not open, a session that failed, an answer that did not come:
  ``missed()``), and, for a device not heard from since the start, not
  before ``grace_s`` (5 s) have passed: a clean start is never an outage,
  and one lost answer is not either.  Until it is offline a lost port is
  retried every ``retry_s``, so a real unplug is seen within about
  ``(failures_offline - 1) * retry_s`` after the first failure;
- stops within a bounded time: ``stop()`` wakes any ``pause`` and calls
  ``interrupt(port)`` for a read that blocks.

Callbacks run on the worker's thread: hand the news to the caller's own
thread (``core.post``) and return.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import termios
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import serial

ONLINE = "ok"
OFFLINE = "offline"
FAILURES_OFFLINE = 3  # failed attempts in a row before a device counts as offline
GRACE_S = 5.0  # after start, a device not heard from yet is not offline before this

PORT_ERRORS: tuple[type[BaseException], ...] = (OSError, termios.error)
"""What a vanishing port raises: OSError (pyserial's SerialException is one) and termios.error,
which pyserial's flush() lets through when a USB adapter is pulled."""


class Closable(Protocol):
    def close(self) -> None: ...


PortT = TypeVar("PortT", bound=Closable)


class PortInUse(OSError):
    """Another process holds the port open (exclusively)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is in use by another process (is hall-edge running?)")


def open_serial(
    path: str, baudrate: int, timeout: float | None, write_timeout: float | None = None
) -> serial.Serial:
    """A pyserial port opened exclusively; OSError (``PortInUse`` when another process holds it)."""
    try:
        return serial.Serial(path, baudrate, timeout=timeout, write_timeout=write_timeout, exclusive=True)
    except serial.SerialException as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            raise PortInUse(path) from None
        raise OSError(f"cannot open {path}: {exc}") from None


def lock_exclusively(fd: int, path: str) -> None:
    """flock a device file as pyserial's ``exclusive=True`` does; closes ``fd`` and raises on failure."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            raise PortInUse(path) from None
        raise


class PortWorker(Generic[PortT]):
    """Owns one port on one thread; subclasses write ``serve`` (and may override the hooks)."""

    def __init__(
        self,
        name: str,
        opener: Callable[[], PortT],
        on_health: Callable[[str], None],
        *,
        retry_s: float = 0.5,
        retry_max_s: float = 2.0,
        failures_offline: int = FAILURES_OFFLINE,
        grace_s: float = GRACE_S,
    ) -> None:
        self.name = name
        self._opener = opener
        self._on_health = on_health
        self.retry_s = retry_s
        self.retry_max_s = max(retry_max_s, retry_s)
        self.health: str | None = None  # None until the first report
        self.failures_offline = max(1, failures_offline)
        self.grace_s = grace_s
        self.failures = 0  # failed attempts to reach the device since it last answered
        self._started_at = time.monotonic()
        self._port: PortT | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.log = logging.getLogger(type(self).__module__)  # journal lines name the driver

    # -- life cycle (any thread) -------------------------------------------

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        port = self._port
        if port is not None:
            with contextlib.suppress(*PORT_ERRORS):  # the port may be gone already: we are leaving
                self.interrupt(port)
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def wake(self) -> None:
        """Work was queued: end the thread's current ``pause`` (or its wait before reopening)."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- for subclasses (the worker's thread) ----------------------------------

    def serve(self, port: PortT) -> None:
        """Talk to the device until the worker stops (return) or the port fails (raise)."""
        raise NotImplementedError

    def interrupt(self, port: PortT) -> None:
        """Called by ``stop`` from another thread: end a blocking read (pyserial: cancel_read)."""

    def while_closed(self) -> None:
        """Called after each failed open: deal with work queued meanwhile (fail it, keep it)."""

    def pause(self, seconds: float) -> bool:
        """Wait up to ``seconds`` or until ``wake``/``stop``; True when the worker is stopping."""
        if seconds > 0:
            self._wake.wait(seconds)
        self._wake.clear()
        return self._stop.is_set()

    def missed(self) -> bool:
        """One failed attempt to reach the device; True when it now counts as offline."""
        self.failures += 1
        in_grace = self.health is None and time.monotonic() - self._started_at < self.grace_s
        if self.failures >= self.failures_offline and not in_grace:
            self.report(OFFLINE)
        return self.health == OFFLINE

    def report(self, word: str) -> None:
        """The device's health word; passed on when it changed."""
        if word != OFFLINE:
            self.failures = 0
        if word != self.health:
            self.health = word
            self.log.info("%s: %s", self.name, "answering" if word == ONLINE else word)
            self._on_health(word)

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        delay = self.retry_s
        while not self._stop.is_set():
            came_up = self._session()
            if self._stop.is_set():
                return
            if came_up:
                self.missed()  # the port failed under a working device: the first miss
            if self.health != OFFLINE:
                delay = self.retry_s  # not (yet) offline: try again soon, then back off
            if self.pause(delay):
                return
            delay = min(delay * 2, self.retry_max_s)

    def _session(self) -> bool:
        """Open the port and serve it until it fails; True when the device came up meanwhile."""
        try:
            port = self._opener()
        except PORT_ERRORS as exc:
            was_offline = self.health == OFFLINE
            if self.missed() and not was_offline:  # once an outage, not at each retry
                self.log.warning("%s: port cannot be opened: %s", self.name, exc)
            self.while_closed()
            return False
        self._port = port
        try:
            self.serve(port)
        except PORT_ERRORS as exc:
            if not self._stop.is_set() and self.health != OFFLINE:
                self.log.warning("%s: port failed (%s); closing it", self.name, exc)
        except Exception:  # the port thread must outlive any surprise: the hall depends on it
            self.log.exception("%s: port failed; closing it", self.name)
        finally:
            self._close()
        if self.health in (None, OFFLINE):
            if not self._stop.is_set():
                self.missed()  # opened, but the device never answered in this session
            return False
        return True

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(*PORT_ERRORS):  # closing a port whose device vanished
                port.close()
