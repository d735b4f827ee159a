"""The hall's keys: one service button per category, the priority key, staff keys per window.

Each is a gpiozero ``Button`` (pull-up, active low, debounced by
``queue.bounce_ms``).  Not every pin factory debounces (gpiozero's own
MockFactory ignores ``bounce_time``), so a press edge within ``bounce_ms``
of the key's previous edge is dropped here as well.  gpiozero calls back on
its own thread, so a callback only posts a message to the core.  A held button is one press; a button held
longer than ``queue.stuck_after_s`` (a jammed key, a leaning broom) posts
``KeyStuck`` once and ``KeyReleased`` when it lets go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from gpiozero import Button

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyPressed:
    key: str  # "A".."Z", "priority", "window1.call" (any WINDOW_ACTIONS), "window1.rate5".."window1.rate1"
    at: float  # time.monotonic() of the press (for latency figures)


@dataclass(frozen=True)
class KeyStuck:
    key: str
    held_s: float


@dataclass(frozen=True)
class KeyReleased:
    key: str


class Keys:
    """Opens the buttons and turns their edges into messages for ``post``."""

    def __init__(self, pins: dict[str, int], bounce_ms: int, stuck_after_s: float) -> None:
        self.pins = pins
        self.bounce_s = bounce_ms / 1000 or None
        self.stuck_after_s = stuck_after_s
        self.buttons: dict[str, Button] = {}
        self._last_edge: dict[str, float] = {}
        self.bounces = 0  # press edges dropped as contact bounce

    def open(self, post: Callable[[Any], None]) -> None:
        for key, pin in self.pins.items():
            button = Button(pin, pull_up=True, bounce_time=self.bounce_s, hold_time=self.stuck_after_s)
            button.when_pressed = _poster(post, partial(self._pressed, key))
            button.when_held = _poster(post, partial(_stuck, key, button))
            button.when_released = _poster(post, partial(self._released, key))
            self.buttons[key] = button

    def _pressed(self, key: str) -> KeyPressed | None:
        now = time.monotonic()
        previous = self._last_edge.get(key)
        self._last_edge[key] = now
        if previous is not None and now - previous < (self.bounce_s or 0.0):
            self.bounces += 1
            return None
        return KeyPressed(key, now)

    def _released(self, key: str) -> KeyReleased:
        self._last_edge[key] = time.monotonic()
        return KeyReleased(key)

    def close(self) -> None:
        for button in self.buttons.values():
            button.close()
        self.buttons.clear()


def _stuck(key: str, button: Button) -> KeyStuck:
    return KeyStuck(key, button.held_time or 0.0)


def _poster(post: Callable[[Any], None], make: Callable[[], Any]) -> Callable[[], None]:
    # gpiozero passes the device to callbacks that take an argument; these take none.
    def callback() -> None:
        message = make()
        if message is not None:
            post(message)

    return callback
