"""What every simulated device offers the demo: start, stop, and a cable to pull and plug back."""

from __future__ import annotations

from typing import Protocol


class Part(Protocol):
    """Anything the demo starts and, at the end, stops (devices, the broker, the fake central)."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


class Device(Part, Protocol):
    """Printer, card reader, pin board, screen and lock board all look like this to the demo."""

    def unplug(self) -> None:
        """The cable is pulled: the daemon's reads and writes fail from now on."""

    def plug(self) -> None:
        """Plugged back in, under the same path the daemon is configured with."""

    @property
    def plugged(self) -> bool: ...
