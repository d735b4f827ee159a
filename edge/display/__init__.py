"""The LED vacancy screen: pure rendering, the page rotation, and the feature that drives the panel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.settings import Settings

if TYPE_CHECKING:
    from edge.display.feature import DisplayFeature


def build(settings: Settings) -> DisplayFeature | None:
    """The daemon's factory: None when the display is disabled (then Pillow and luma are not
    even imported)."""
    if not settings.display.enabled:
        return None
    from edge.display.feature import DisplayFeature

    return DisplayFeature(settings)


__all__ = ["build"]
