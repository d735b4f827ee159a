"""The core: one thread that owns the state and the storage.

Drivers (gpiozero callbacks, serial reader threads) and the MQTT network
thread never touch state; they ``post`` a message and return.  The core
thread takes messages one at a time from a single queue and hands each to
the handlers subscribed to its type; timers run on the same thread.  So no
part of the hall logic needs a lock, and the order of events is the order
in which they arrived.

A part of the daemon is a *feature* (display, tickets, locker, link,
commands, health): it subscribes to messages, registers its remote
commands and status, and records events through ``Core.emit``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge.clock import Clock
from edge.messages import LinkPort
from edge.outbox import Event, Outbox
from edge.protocol import did_you_mean
from edge.records import record
from edge.settings import Settings
from edge.storage import Storage

log = logging.getLogger(__name__)

Handler = Callable[[Any], None]


class CommandError(Exception):
    """A remote command that could not be carried out; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def acting_staff(body: dict[str, Any]) -> str:
    """Who acts through a command: its body's ``issuer`` (the signer of a remote command, or the
    staff member the console logged in), ``remote`` when it names nobody.  Identity comes from
    whoever authenticated the command, never from an argument anyone could write."""
    issuer = body.get("issuer")
    return issuer.strip() if isinstance(issuer, str) and issuer.strip() else "remote"


CommandHandler = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
"""(args, command body) -> result; raises CommandError."""

CommandTable = dict[str, tuple[CommandHandler, tuple[str, ...]]]
"""Commands by name: each handler and the argument names it accepts (``Core.register_command``)."""


@record
class RegisteredCommand:
    """A remote command's handler and the argument names it accepts.

    Calling it refuses unknown arguments (``bad_arguments``, naming them and what the command
    takes) before the handler runs: a misspelt ``--arg`` is never silently ignored, and no
    handler checks for strays itself.
    """

    name: str
    handler: CommandHandler
    args: tuple[str, ...]

    def __call__(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        unknown = [key for key in args if key not in self.args]
        if unknown:
            raise CommandError("bad_arguments", self.unknown_args_message(unknown))
        return self.handler(args, body)

    def unknown_args_message(self, unknown: list[str]) -> str:
        named = ", ".join(f"{key!r}{did_you_mean(key, self.args)}" for key in unknown)
        takes = f"takes {', '.join(self.args)}" if self.args else "takes no arguments"
        word = "argument" if len(unknown) == 1 else "arguments"
        return f"unknown {word} {named}: {self.name} {takes}"


class Feature(Protocol):
    """One part of the daemon, started and stopped by the daemon in order."""

    name: str

    def start(self, core: Core) -> None: ...

    def stop(self) -> None: ...


@record
class ComponentChanged:
    """A peripheral's health changed (``ok`` or a short fault word)."""

    name: str
    state: str


@dataclass(order=True)
class Timer:
    """A pending ``call_later`` / ``every``; ``cancel()`` drops it."""

    due: float
    order: int
    fn: Callable[[], object] = field(compare=False)  # what it returns is ignored
    interval: float | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)

    def cancel(self) -> None:
        self.cancelled = True


_STOP = object()


class Core:
    def __init__(self, config: Settings, storage: Storage, clock: Clock) -> None:
        self.config = config
        self.storage = storage
        self.clock = clock
        self.device = f"{config.site}/{config.device}"
        self.outbox = Outbox(storage, clock, self.device)
        self.components: dict[str, str] = {}
        self.started_monotonic = time.monotonic()
        self.started_at = clock.now()
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._timers: list[Timer] = []
        self._timer_order = itertools.count()
        self._commands: dict[str, RegisteredCommand] = {}
        self._status: dict[str, Callable[[], Any]] = {}
        self._accepting = True
        self._cut_short = False  # stop(): the backlog took too long, end after the message in hand
        self._thread: threading.Thread | None = None
        self.heartbeat = time.monotonic()  # last time the loop turned: the watchdog reads it
        self.stopped = threading.Event()
        self.link: LinkPort | None = None  # set by the link feature
        self.config_path: Path | None = None  # the file config came from: config.set rewrites it

    # -- intake (any thread) ----------------------------------------------

    def post(self, message: Any) -> None:
        """Queue a message for the core thread. Safe from any thread; dropped once stopping."""
        if self._accepting:
            self._inbox.put(message)

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the core thread (from any thread)."""
        self.post(_Call(fn))

    # -- wiring (before start, core thread) --------------------------------

    def subscribe(self, message_type: type, handler: Handler) -> None:
        self._handlers[message_type].append(handler)

    def register_command(self, name: str, handler: CommandHandler, *, args: Iterable[str]) -> None:
        """``args``: every argument name the command accepts (none: ``()``); others are refused."""
        if name in self._commands:
            raise ValueError(f"command {name} registered twice")
        self._commands[name] = RegisteredCommand(name, handler, tuple(args))

    def command(self, name: str) -> RegisteredCommand | None:
        return self._commands.get(name)

    def command_names(self) -> list[str]:
        return sorted(self._commands)

    def register_status(self, name: str, provider: Callable[[], Any]) -> None:
        """Contribute a section to the ``status`` command."""
        self._status[name] = provider

    def status(self) -> dict[str, Any]:
        return {name: provider() for name, provider in self._status.items()}

    # -- timers (core thread) ----------------------------------------------

    def call_later(self, delay_s: float, fn: Callable[[], object]) -> Timer:
        """Run ``fn`` on the core thread after ``delay_s``; ``.cancel()`` the result to drop it."""
        timer = Timer(time.monotonic() + delay_s, next(self._timer_order), fn)
        self._schedule(timer)
        return timer

    def every(self, interval_s: float, fn: Callable[[], object], first_after: float | None = None) -> Timer:
        delay = interval_s if first_after is None else first_after
        timer = Timer(time.monotonic() + delay, next(self._timer_order), fn, interval_s)
        self._schedule(timer)
        return timer

    def _schedule(self, timer: Timer) -> None:
        # The heap belongs to the core thread; from any other running thread it goes via the queue,
        # which also wakes the loop so that a near deadline is not overslept.
        if self._thread is None or threading.current_thread() is self._thread:
            heapq.heappush(self._timers, timer)
        else:
            self.call_soon(lambda: heapq.heappush(self._timers, timer))

    # -- state (core thread) -------------------------------------------------

    def emit(self, type_: str, data: dict[str, Any]) -> Event:
        """Record an event durably (outbox); it is published when the link can."""
        event = self.outbox.append(type_, data)
        log.info("event type=%s seq=%d", type_, event.seq)
        return event

    def set_component(self, name: str, state: str) -> None:
        """Record a peripheral's health; subscribers of ComponentChanged hear of changes only."""
        if self.components.get(name) == state:
            return
        self.components[name] = state
        log.info("component %s=%s", name, state)
        self.dispatch(ComponentChanged(name, state))

    def dispatch(self, message: Any) -> None:
        """Hand a message to its handlers now (core thread only)."""
        for handler in self._handlers.get(type(message), ()):
            try:
                handler(message)
            except Exception:
                # One failing handler must not take the hall down; the log says which.
                log.exception("handler %s failed on %s", _name(handler), type(message).__name__)

    # -- running -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="core", daemon=True)
        self._thread.start()

    def run(self) -> None:
        try:
            while True:
                self.heartbeat = time.monotonic()
                message = self._next(self._run_due_timers())
                if message is _STOP or self._cut_short:
                    break
                if message is not None:
                    self._handle(message)
        finally:
            self.stopped.set()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop intake and wait for the core thread; True once it has ended.

        What was queued before the stop is handled for up to ``timeout``; after that only the
        message in hand is finished, and the rest is left: an unhandled MQTT message was never
        acknowledged, so the broker delivers it again after the restart.  On a slow Pi with a
        backlog of commands this keeps a stop short and, above all, ends the core thread before
        the database is closed under it (``Daemon.stop``).  A handler that hangs is waited for
        once more, then given up on (False).
        """
        self._accepting = False
        self._inbox.put(_STOP)
        if self._thread is None or self._thread is threading.current_thread():
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._cut_short = True
            left = self._inbox.qsize()
            log.warning("stopping with %d queued message(s) unhandled: the time to stop is up", left)
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _handle(self, message: Any) -> None:
        if isinstance(message, _Call):
            try:
                message.fn()
            except Exception:
                log.exception("core call %s failed", _name(message.fn))
            return
        self.dispatch(message)

    def _next(self, wait_s: float | None) -> Any:
        try:
            return self._inbox.get(timeout=wait_s)
        except queue.Empty:
            return None

    def _run_due_timers(self) -> float:
        """Run timers that are due; return how long the loop may sleep."""
        while self._timers:
            timer = self._timers[0]
            now = time.monotonic()
            if timer.cancelled:
                heapq.heappop(self._timers)
                continue
            if timer.due > now:
                return min(timer.due - now, 1.0)
            heapq.heappop(self._timers)
            if timer.interval is not None:
                timer.due = max(timer.due + timer.interval, now)
                timer.order = next(self._timer_order)
                heapq.heappush(self._timers, timer)
            try:
                timer.fn()
            except Exception:
                log.exception("timer %s failed", _name(timer.fn))
        return 1.0


@record
class _Call:
    fn: Callable[[], object]


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))
