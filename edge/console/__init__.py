"""The staff console: web pages on the hall LAN for the windows, the locker, the day and the device.

Only the factory lives here: Jinja2 and the server are imported only when the console is enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.console.feature import ConsoleFeature
    from edge.settings import Settings


def build(settings: Settings) -> ConsoleFeature | None:
    if not settings.console.enabled:
        return None
    from edge.console.feature import ConsoleFeature

    return ConsoleFeature(settings)
