"""Queue tickets: service buttons, numbering, printed tickets, calling to windows (docs/queue.md)."""

from edge.tickets.feature import Tickets, factory

__all__ = ["Tickets", "factory"]
