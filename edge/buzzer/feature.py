"""The hall's buzzer: short patterns for a call, an OK, a denial, an alarm.

An active buzzer on ``buzzer.pin`` (gpiozero ``Buzzer``: high = sound).
Features post ``edge.messages.Buzz(pattern)``; the pattern plays on core
timers, so nothing blocks.  A new pattern cuts the one playing short.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge.core import Core, Timer
from edge.messages import Buzz

if TYPE_CHECKING:
    from drivers.gpio import Buzzer as GpioBuzzer

log = logging.getLogger(__name__)

# on, off, on, ... in seconds
PATTERNS: dict[str, tuple[float, ...]] = {
    "call": (0.3, 0.15, 0.3),
    "ok": (0.1,),
    "deny": (0.15, 0.1, 0.15, 0.1, 0.15),
    "alarm": (1.0, 0.3, 1.0),
}


class BuzzerFeature:
    name = "buzzer"

    def __init__(self, pin: int) -> None:
        self.pin = pin
        self.device: GpioBuzzer | None = None
        self.core: Core  # set by start()
        self._timers: list[Timer] = []
        self.played: list[str] = []  # patterns started, newest last (status, tests)

    def start(self, core: Core) -> None:
        from drivers.gpio import Buzzer as GpioBuzzer  # here: a hall without a buzzer never loads it

        self.core = core
        self.device = GpioBuzzer(self.pin)
        core.subscribe(Buzz, self.play)

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self.device is not None:
            self.device.off()
            self.device.close()
            self.device = None

    def play(self, buzz: Buzz) -> None:
        device = self.device
        if device is None:  # stopped
            return
        steps = PATTERNS.get(buzz.pattern)
        if steps is None:
            log.warning("buzzer pattern %r unknown; known: %s", buzz.pattern, ", ".join(PATTERNS))
            return
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        self.played = [*self.played[-9:], buzz.pattern]
        at = 0.0
        for index, length in enumerate(steps):
            self._at(at, device.on if index % 2 == 0 else device.off)
            at += length
        self._at(at, device.off)

    def _at(self, delay: float, action: Callable[[], None]) -> None:
        if delay == 0:
            action()
        else:
            self._timers.append(self.core.call_later(delay, action))
