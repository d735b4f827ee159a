"""The controller's own health: CPU temperature and free disk space as alarms (``feature``).

The probes (``read_cpu_temp_c``, ``disk_free_mb``) live in ``edge.health.feature`` too:
telemetry and selftest read them from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.settings import Settings

if TYPE_CHECKING:
    from edge.health.feature import HealthFeature


def build(settings: Settings) -> HealthFeature:
    """Always on: a controller that cannot tell it is overheating or out of disk is worse off."""
    from edge.health.feature import HealthFeature

    return HealthFeature(settings)


__all__ = ["build"]
