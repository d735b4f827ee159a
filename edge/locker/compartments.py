"""The locker's hardware: one compartment = a lock, a door sensor and an optional select button.

Wiring (GPIO, BCM numbers from ``[[locker.compartments]]``):
- ``lock_pin``: relay or MOSFET driving the solenoid lock, active high; the
  lock is energised for ``locker.lock_pulse_s`` to release the latch.
- ``door_pin``: reed switch between the pin and GND, closed while the door
  is shut (internal pull-up: low = shut, high = open).
- ``select_pin`` (optional): push button at the compartment to GND; pressed
  before a tap, it chooses this compartment.

With ``locker.locks = "rs485"`` the locks and the door sensing come from a
Kerong-style board instead (``drivers.lockboard``); select buttons stay GPIO.

gpiozero and serial callbacks run on their own threads: they only post a
message (with the level the door went to) to the core, which acts on
changes of level only, so a bounce's repeated edges do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.gpio import DigitalInputDevice, OutputDevice
from drivers.lockboard import BoardStatus, LockBoards
from edge.records import record
from edge.settings import CompartmentSettings, Settings


@record
class CardTapped:
    """A new tap on the reader: ``h`` only, never the UID."""

    h: str


@record
class ReaderHealth:
    ok: bool


@record
class DoorChanged:
    """A GPIO door sensor's edge, with the level it went to."""

    number: int
    is_open: bool


@record
class SelectPressed:
    number: int


@record
class BoardReport:
    """An RS-485 board's status: door bits for its compartments."""

    status: BoardStatus


@record
class BoardHealth:
    ok: bool


Post = Callable[[Any], None]


class GpioCompartment:
    def __init__(self, spec: CompartmentSettings, post: Post) -> None:
        self.number: int = spec.number
        self.board_door_open = False
        self._devices: list[Any] = []
        self.lock = self._add(OutputDevice(spec.lock_pin, active_high=True, initial_value=False))
        # Plain input devices, not Buttons: a Button's hold thread is of no use here.
        self.door = self._add(DigitalInputDevice(spec.door_pin, pull_up=True))
        self.door.when_activated = lambda: post(DoorChanged(self.number, False))
        self.door.when_deactivated = lambda: post(DoorChanged(self.number, True))
        self.select = _select_button(spec, post)
        if self.select is not None:
            self._add(self.select)

    def _add(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    def unlock(self) -> None:
        self.lock.on()

    def relock(self) -> None:
        self.lock.off()

    def door_open(self) -> bool:
        return not self.door.is_active

    def close(self) -> None:
        for device in reversed(self._devices):
            device.close()


class BoardCompartment:
    """A compartment on an RS-485 lock board; its door level comes from the board's status."""

    def __init__(self, spec: CompartmentSettings, boards: LockBoards, post: Post) -> None:
        self.number: int = spec.number
        self.board: int = spec.board
        self.lock_no: int = spec.lock
        self.board_door_open = False
        self._boards = boards
        self.select = _select_button(spec, post)

    def unlock(self) -> None:
        self._boards.unlock(self.board, self.lock_no)

    def relock(self) -> None:
        """A board lock latches again by itself when the door shuts."""

    def door_open(self) -> bool:
        return self.board_door_open

    def close(self) -> None:
        if self.select is not None:
            self.select.close()


Compartment = GpioCompartment | BoardCompartment


def _select_button(spec: CompartmentSettings, post: Post) -> DigitalInputDevice | None:
    if spec.select_pin == -1:
        return None
    button = DigitalInputDevice(spec.select_pin, pull_up=True, bounce_time=0.05)
    number = spec.number
    button.when_activated = lambda: post(SelectPressed(number))
    return button


def build(settings: Settings, post: Post) -> tuple[dict[int, Compartment], LockBoards | None]:
    """Compartments from ``[locker]``; the RS-485 board thread (not started) when configured."""
    cfg = settings.locker
    if cfg.locks == "gpio":
        missing = [c.number for c in cfg.compartments if c.lock_pin == -1 or c.door_pin == -1]
        if missing:
            raise ValueError(
                f"locker.compartments {missing}: lock_pin and door_pin must be set for GPIO locks"
            )
        built: dict[int, Compartment] = {}
        try:
            for spec in cfg.compartments:
                built[spec.number] = GpioCompartment(spec, post)
        except Exception:
            for compartment in built.values():
                compartment.close()
            raise
        return built, None
    boards = LockBoards(
        cfg.rs485_port,
        [c.board for c in cfg.compartments],
        lambda status: post(BoardReport(status)),
        lambda ok: post(BoardHealth(ok)),
        baudrate=cfg.rs485_baudrate,
        poll_s=cfg.rs485_poll_s,
    )
    return {c.number: BoardCompartment(c, boards, post) for c in cfg.compartments}, boards
