"""The hall's buzzer: short patterns for a call, an OK, a denial, an alarm (``feature``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.settings import Settings

if TYPE_CHECKING:
    from edge.buzzer.feature import BuzzerFeature


def build(settings: Settings) -> BuzzerFeature | None:
    """The buzzer, or None when buzzer.enabled is false or no pin is set (then gpiozero is not
    even imported)."""
    if not settings.buzzer.enabled or settings.buzzer.pin < 0:
        return None
    from edge.buzzer.feature import BuzzerFeature

    return BuzzerFeature(settings.buzzer.pin)


__all__ = ["build"]
