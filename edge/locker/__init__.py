"""The tool locker feature: RFID taps, compartments, rentals, inspections, the per-tool ledger, alarms.

- ``feature``: the flows (checkout, return, inspection, alarms, restart recovery);
- ``ledger``: the durable records (SQLite) and their events;
- ``compartments``: locks, door sensors and select buttons (GPIO or an RS-485 board).

See docs/locker.md for hall staff, docs/architecture.md for the design.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.schema import read_secret
from edge.settings import Settings

if TYPE_CHECKING:
    from edge.locker.feature import LockerFeature


def build(settings: Settings) -> LockerFeature | None:
    """The locker, or None when it is disabled (then its modules, gpiozero and the reader and
    board drivers are not even imported).  The site card key is read once, here."""
    if not settings.locker.enabled:
        return None
    from edge.locker.feature import LockerFeature

    return LockerFeature(settings, read_secret(settings.rfid.card_key_file))


__all__ = ["build"]
