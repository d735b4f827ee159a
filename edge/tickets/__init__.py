"""Queue tickets: service buttons, numbering, printed tickets, calling to windows (docs/queue.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.settings import Settings

if TYPE_CHECKING:
    from edge.tickets.feature import TicketsFeature


def build(settings: Settings) -> TicketsFeature | None:
    """The tickets feature, or None when queue.enabled is false (then its modules, gpiozero and
    the printer driver are not even imported)."""
    if not settings.queue.enabled:
        return None
    from edge.tickets.feature import TicketsFeature

    return TicketsFeature(settings)


__all__ = ["build"]
