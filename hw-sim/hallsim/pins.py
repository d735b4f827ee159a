"""GPIO at the pin boundary: a gpiozero pin factory in the daemon, a pin board in the simulator.

The daemon runs unchanged with ``GPIOZERO_PIN_FACTORY=hallsim`` and
``HALLSIM_PINS=<unix socket>``: gpiozero finds ``SimFactory`` through the
``gpiozero_pin_factories`` entry point ``hallsim`` and builds every Button and
OutputDevice on ``SimPin`` s.  Each pin connects to ``PinBoard`` in the
simulator process over that socket, one JSON object per line:

    daemon -> board   {"op": "hello", "pid": 123}
                      {"op": "setup", "pin": 17, "function": "output", "pull": "floating", "state": 0}
                      {"op": "out", "pin": 17, "state": 1, "at": 1764061234.5}
    board -> daemon   {"op": "level", "pin": 5, "level": 0}      (0 low, 1 high, null = let the pull decide)
                      {"op": "replayed"}     (after the levels set before this connection)

The board drives input pins (a pull-up service button pressed = low, a door
reed switch closed = low) and sees every output change (locks, buzzer) with
its wall-clock time.  Levels the board has set are replayed to a daemon that
connects later, so an open door stays open across a daemon restart; the
factory waits for that replay, so a pin read at once reads the board's level.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero.exc import BadPinFactory
from gpiozero.pins.mock import MockFactory, MockPin

from hallsim.listener import UnixListener

log = logging.getLogger(__name__)

ENV_SOCKET = "HALLSIM_PINS"
Level = bool | None  # None: not driven, the pin's pull resistor decides


def daemon_env(socket_path: str | Path) -> dict[str, str]:
    """The environment variables that put a daemon's GPIO on the pin board at ``socket_path``."""
    return {"GPIOZERO_PIN_FACTORY": "hallsim", ENV_SOCKET: str(socket_path)}


def _bcm(info: Any) -> int | None:
    name = getattr(info, "name", "")
    return int(name[4:]) if name.startswith("GPIO") and name[4:].isdigit() else None


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _lines(sock: socket.socket) -> Iterator[dict[str, Any]]:
    """JSON objects from a stream socket until it closes; malformed lines are skipped."""
    buffer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("pins: skipped a malformed line")
                continue
            if isinstance(message, dict):
                yield message


# ---- in the daemon process ----------------------------------------------------


class SimPin(MockPin):
    """A gpiozero mock pin whose level the pin board drives and whose outputs it sees."""

    def _bcm(self) -> int | None:
        return _bcm(self.info)

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        # MockPin keeps every change for its assert_states(); the pin board records what the
        # simulator needs, and a hall simulated for days must not grow the daemon by every edge.
        del self.states[:-1]
        if changed and self._function == "output":
            self.factory.send({"op": "out", "pin": self._bcm(), "state": int(value), "at": time.time()})
        return changed

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        self.factory.send(
            {
                "op": "setup",
                "pin": self._bcm(),
                "function": value,
                "pull": self._pull,
                "state": int(self._state),
            }
        )

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)  # drives the input to its pull, as an open switch would
        self.apply_board_level()

    def apply_board_level(self) -> None:
        """Take the level the board drives, if any (inputs only)."""
        level = self.factory.levels.get(self._bcm())
        if level is None or self._function != "input":
            return
        if level:
            self.drive_high()
        else:
            self.drive_low()


class SimFactory(MockFactory):
    """gpiozero pin factory for the simulator; found via ``GPIOZERO_PIN_FACTORY=hallsim``."""

    def __init__(self, socket_path: str | None = None, connect_timeout: float = 5.0) -> None:
        super().__init__(pin_class=SimPin)
        path = socket_path or os.environ.get(ENV_SOCKET)
        if not path:
            raise BadPinFactory(f"the hallsim pin factory needs {ENV_SOCKET}=<pin board socket>")
        self.levels: dict[int | None, Level] = {}
        self._send_lock = threading.Lock()
        self._sock = _connect(path, connect_timeout)
        self._replayed = threading.Event()
        self.send({"op": "hello", "pid": os.getpid()})
        self._reader = threading.Thread(target=self._read, name="hallsim-pins", daemon=True)
        self._reader.start()
        if not self._replayed.wait(connect_timeout):
            log.warning("pins: the board did not replay its levels within %.1f s", connect_timeout)

    def send(self, message: dict[str, Any]) -> None:
        """Tell the board; a board that has gone away is not the daemon's problem."""
        with self._send_lock:
            try:
                self._sock.sendall(_encode(message))
            except OSError:
                log.debug("pins: board unreachable, dropped %s", message.get("op"))

    def _read(self) -> None:
        for message in _lines(self._sock):
            if message.get("op") == "replayed":
                self._replayed.set()
            if message.get("op") != "level":
                continue
            number, level = message.get("pin"), message.get("level")
            self.levels[number] = None if level is None else bool(level)
            for pin in list(self.pins.values()):
                if _bcm(pin.info) == number:
                    self._apply(pin, level)

    @staticmethod
    def _apply(pin: SimPin, level: int | None) -> None:
        if pin.function != "input":
            return
        try:
            if level is None:
                pin._set_pull(pin._pull)  # released: back to what the pull resistor gives
            else:
                pin.apply_board_level()
        except Exception:
            # A device half-built or just closed: the level stays recorded for the next one.
            log.exception("pins: GPIO%s level change not delivered", _bcm(pin.info))

    def close(self) -> None:
        super().close()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def _connect(path: str, timeout: float) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError as exc:
            sock.close()
            if time.monotonic() > deadline:
                raise BadPinFactory(f"no hallsim pin board at {path}: {exc.strerror}") from None
            threading.Event().wait(0.05)


# ---- in the simulator process -------------------------------------------------


@dataclass(frozen=True)
class OutputChange:
    pin: int
    state: bool
    at: float  # wall-clock time in the daemon when the pin changed
    received: float  # wall-clock time the board heard of it


class PinBoard:
    """The simulator's side: drives inputs and records outputs of whatever daemon connects."""

    def __init__(self, socket_path: str | Path) -> None:
        self.socket_path = str(socket_path)
        self.levels: dict[int, Level] = {}
        self.outputs: dict[int, bool] = {}
        self.functions: dict[int, str] = {}
        self.history: list[OutputChange] = []
        self.clients = 0
        self._changed = threading.Condition()
        self._listener = UnixListener(self.socket_path, self._serve, "pinboard", backlog=4)

    # -- running --------------------------------------------------------------

    def start(self) -> PinBoard:
        self._listener.start()
        return self

    def stop(self) -> None:
        self._listener.stop()
        for conn in list(self._listener.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def unplug(self) -> None:
        """The daemon loses the board: its pins keep their last levels."""
        self.stop()

    def plug(self) -> None:
        self.start()

    @property
    def plugged(self) -> bool:
        return self._listener.listening

    def __enter__(self) -> PinBoard:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _serve(self, conn: socket.socket) -> None:
        for pin, level in list(self.levels.items()):
            self._send(conn, pin, level)  # a restarted daemon finds doors as they are
        with contextlib.suppress(OSError):
            conn.sendall(_encode({"op": "replayed"}))
        for message in _lines(conn):
            self._on_message(message)
        with self._changed:
            self.clients = max(0, self.clients - 1)
            self._changed.notify_all()

    def _on_message(self, message: dict[str, Any]) -> None:
        op, pin = message.get("op"), message.get("pin")
        with self._changed:
            if op == "hello":
                self.clients += 1
            elif op == "setup" and isinstance(pin, int):
                self.functions[pin] = str(message.get("function"))
                if message.get("function") == "output":
                    self.outputs[pin] = bool(message.get("state"))
            elif op == "out" and isinstance(pin, int):
                state = bool(message.get("state"))
                self.outputs[pin] = state
                at = float(message.get("at") or time.time())
                self.history.append(OutputChange(pin, state, at, time.time()))
            self._changed.notify_all()

    # -- driving inputs ---------------------------------------------------------

    def drive(self, pin: int, level: Level) -> None:
        """Set an input's level (True high, False low, None released to its pull)."""
        self.levels[pin] = level
        for conn in list(self._listener.connections):
            self._send(conn, pin, level)

    def press(self, pin: int) -> None:
        """Press a pull-up button: it shorts the pin to ground."""
        self.drive(pin, False)

    def release(self, pin: int) -> None:
        """Release a pull-up button: the pin reads high again."""
        self.drive(pin, True)

    def click(self, pin: int, hold_s: float = 0.12) -> None:
        """Press, hold (longer than the buttons' debounce) and release."""
        self.press(pin)
        threading.Event().wait(hold_s)
        self.release(pin)

    def set_switch(self, pin: int, closed: bool) -> None:
        """A reed switch to ground: closed (door shut, magnet near) reads low, open reads high."""
        self.drive(pin, not closed)

    @staticmethod
    def _send(conn: socket.socket, pin: int, level: Level) -> None:
        message = {"op": "level", "pin": pin, "level": None if level is None else int(level)}
        with contextlib.suppress(OSError):
            conn.sendall(_encode(message))

    # -- watching outputs ---------------------------------------------------------

    def output(self, pin: int) -> bool | None:
        return self.outputs.get(pin)

    def changes(self, pin: int) -> list[OutputChange]:
        return [c for c in self.history if c.pin == pin]

    def wait_output(self, pin: int, state: bool, timeout: float = 5.0) -> bool:
        """Wait until output ``pin`` is at ``state``; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.outputs.get(pin) == state, timeout)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.clients > 0, timeout)

    def wait_setup(self, pin: int, timeout: float = 10.0) -> bool:
        """Wait until the daemon has set ``pin`` up (as input or output)."""
        with self._changed:
            return self._changed.wait_for(lambda: pin in self.functions, timeout)

    def snapshot(self) -> dict[str, Any]:
        """What the board sees, for ``hall-sim status``."""
        return {
            "connected": self.clients,
            "outputs": {str(p): int(s) for p, s in sorted(self.outputs.items())},
            "inputs": {str(p): (None if lvl is None else int(lvl)) for p, lvl in sorted(self.levels.items())},
            "functions": {str(p): f for p, f in sorted(self.functions.items())},
            "output_changes": len(self.history),
        }
