"""The link to the central platform (``lgsc/v1``, see docs/mqtt.md).

Out: the birth/death state (retained; the will says offline), events from the
durable outbox (QoS 1, ``seq`` order), telemetry (QoS 0), command results.
In: the jobs, notices and cards snapshots (validated, kept on disk) and the
signed commands (handed to the commands feature unverified).

The paho network thread (``connection.py``) only posts to the core; all
state, the outbox and the snapshot store are touched on the core thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.schema import Settings

if TYPE_CHECKING:
    from edge.link.feature import LinkFeature


def build(settings: Settings) -> LinkFeature:
    """The daemon's factory (the link always runs: it is how the hall reports)."""
    from edge.link.feature import LinkFeature

    return LinkFeature(settings)


__all__ = ["build"]
