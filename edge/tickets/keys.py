"""The hall's keys: one service button per category, the priority key, staff keys per window.

Each is a gpiozero ``DigitalInputDevice`` (pull-up, active low, debounced by
``queue.bounce_ms``).  Not every pin factory debounces (gpiozero's own
MockFactory ignores ``bounce_time``), so a press edge within ``bounce_ms``
of the key's previous edge is dropped here as well.  gpiozero calls back on
its own thread, so a callback only posts a message to the core.  A held key is one press.  A key
held longer than ``queue.stuck_after_s`` (a jammed key, a leaning broom) is found by the core,
which asks ``held_too_long`` once a second, and its letting go posts ``KeyReleased``.

Not a ``Button``: a Button times its hold on a thread of its own that wakes every 0.1 s, which
for a hall's keys is a dozen threads and over a hundred wake-ups a second on an idle Pi.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from drivers.gpio import DigitalInputDevice
from edge.records import record

log = logging.getLogger(__name__)


@record
class KeyPressed:
    key: str  # "A".."Z", "priority", "window1.call" (any WINDOW_ACTIONS), "window1.rate5".."window1.rate1"
    at: float  # time.monotonic() of the press (for latency figures)


@record
class KeyStuck:
    key: str
    held_s: float


@record
class KeyReleased:
    key: str


class Keys:
    """Opens the buttons and turns their edges into messages for ``post``."""

    def __init__(self, pins: dict[str, int], bounce_ms: int, stuck_after_s: float) -> None:
        self.pins = pins
        self.bounce_s = bounce_ms / 1000 or None
        self.stuck_after_s = stuck_after_s
        self.lines: dict[str, DigitalInputDevice] = {}
        self._last_edge: dict[str, float] = {}
        self.bounces = 0  # press edges dropped as contact bounce

    def open(self, post: Callable[[Any], None]) -> None:
        for key, pin in self.pins.items():
            line = DigitalInputDevice(pin, pull_up=True, bounce_time=self.bounce_s)
            line.when_activated = _poster(post, partial(self._pressed, key))
            line.when_deactivated = _poster(post, partial(self._released, key))
            self.lines[key] = line

    def held_too_long(self) -> list[KeyStuck]:
        """The keys held down for ``stuck_after_s`` or longer, now."""
        held = ((key, line.active_time) for key, line in self.lines.items())
        return [KeyStuck(key, seconds) for key, seconds in held if seconds and seconds >= self.stuck_after_s]

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
        for line in self.lines.values():
            line.close()
        self.lines.clear()


def _poster(post: Callable[[Any], None], make: Callable[[], Any]) -> Callable[[], None]:
    # gpiozero passes the device to callbacks that take an argument; these take none.
    def callback() -> None:
        message = make()
        if message is not None:
            post(message)

    return callback
