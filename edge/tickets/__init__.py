"""Queue tickets: service buttons, numbering, printed tickets, calling to windows (docs/queue.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.settings import Settings

if TYPE_CHECKING:
    from edge.tickets.feature import Tickets


def factory(config: Settings) -> Tickets | None:
    """The tickets feature, or None when queue.enabled is false (then its modules, gpiozero and
    the printer driver are not even imported)."""
    if not config.queue.enabled:
        return None
    from edge.tickets.feature import Tickets

    return Tickets(config)


__all__ = ["factory"]
