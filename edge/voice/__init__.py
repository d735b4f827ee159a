"""The voice: calls said in Mandarin through the hall's speaker, from word clips (docs/voice.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.settings import Settings

if TYPE_CHECKING:
    from edge.voice.feature import VoiceFeature


def build(settings: Settings) -> VoiceFeature | None:
    """The daemon's factory: None when voice.enabled is false."""
    if not settings.voice.enabled:
        return None
    from edge.voice.feature import VoiceFeature

    return VoiceFeature(settings)


__all__ = ["build"]
