"""The link to the central platform (``lgsc/v1``): MQTT, birth/will, the outbox drain, snapshots
in, commands in, results out.  The feature is in ``feature.py``; docs/mqtt.md has the choices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.settings import Settings

if TYPE_CHECKING:
    from edge.link.feature import LinkFeature


def build(settings: Settings) -> LinkFeature:
    """The daemon's factory (the link always runs: it is how the hall reports)."""
    from edge.link.feature import LinkFeature

    return LinkFeature(settings)


__all__ = ["build"]
