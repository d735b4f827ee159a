"""Signed remote commands (contract in ``edge.protocol``, docs/operator.md).

- ``verify``: the pure check of a signed command (``Command`` or ``Refusal``);
- ``feature``: the ``commands`` feature: replay cache, audit events, dispatch, answers;
- ``generic``: the commands every controller answers (status, config.get/set, logs.tail,
  sync, restart) and systemd's start limit.

Only the factory lives here: importing the package loads no more than the daemon needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.commands.feature import CommandsFeature
    from edge.settings import Settings


def build(settings: Settings) -> CommandsFeature:
    """The commands feature always runs: without keys it refuses everything (and says so)."""
    from edge.commands.feature import CommandsFeature

    return CommandsFeature(settings)
