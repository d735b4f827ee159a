"""Messages that cross between features on the core's queue.

Drivers and the network thread post these; features subscribe to them with
``Core.subscribe``.  Keep them small, immutable and free of raw card UIDs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import field
from datetime import datetime
from typing import Any, Protocol

from edge.records import record

# ---- link (MQTT) ------------------------------------------------------------


@record
class LinkStatus:
    """The broker connection came up or went down."""

    online: bool


@record
class SnapshotUpdated:
    """A validated jobs/notices/cards snapshot is now the current one.

    ``live`` is False when it comes from the on-disk cache at start.
    ``new_ids`` are entry ids that the previous snapshot did not have.
    """

    kind: str  # "jobs" | "notices" | "cards"
    snapshot: dict[str, Any]
    received_at: datetime
    live: bool = True
    new_ids: frozenset[str] = field(default_factory=frozenset)


@record
class CommandReceived:
    """A message on the cmd topic, unverified: the commands feature checks it."""

    payload: bytes
    response_topic: str | None = None
    correlation_data: bytes | None = None


@record
class LocalCommand:
    """A command from a person on this controller (the staff console), already authenticated there.

    The commands feature runs it exactly as a signed command (the same registered handler, the
    same ``audit.command`` event with ``issuer``, e.g. ``console:w1``); ``deliver`` gets the
    result payload ``cmd/result`` would carry, on the core thread (it must only hand it over).
    """

    id: str
    name: str
    args: dict[str, Any]
    issuer: str
    deliver: Callable[[bytes], None]


class LinkPort(Protocol):
    """What other features may ask of the link (``core.link``; None when no link runs)."""

    @property
    def online(self) -> bool: ...

    def publish_result(
        self, payload: bytes, response_topic: str | None, correlation_data: bytes | None
    ) -> None: ...

    def republish_birth(self) -> None: ...

    def resync(self) -> None:
        """Re-read snapshots, republish the birth, flush the outbox (the ``sync`` command)."""


# ---- screen -----------------------------------------------------------------


@record
class ScreenCall:
    """A window calls a ticket: 请 A023 号 / 到 2 号窗口.

    It stays until that window calls again, skips or finishes (``ScreenCallEnded``), or has been
    on the screen for ``seconds`` in all (calls of several windows take turns).
    """

    ticket: str
    window: int
    seconds: float


@record
class ScreenCallEnded:
    """The window's called ticket was skipped or served: off the screen in the same frame."""

    window: int


@record
class ScreenLine:
    """A short transient line bound to its moment (A023 号 打印机缺纸 请到窗口, a locker denial).

    ``source`` is the place that speaks (``locker``, ``printer``, ``keys``): its newer line replaces
    this one at once.  ``cause`` names the moment it belongs to (``door:2``, ``ticket:A023``), so
    that ``ScreenLineEnded`` can withdraw it when that moment passes.  It is never shown after
    ``posted_at + seconds`` (monotonic), however late the display gets to it.
    """

    text: str
    seconds: float
    source: str = ""
    cause: str = ""
    posted_at: float = field(default_factory=time.monotonic)


@record
class ScreenLineEnded:
    """The moment of ``source``'s line has passed (a door shut, a ticket called): it leaves now.

    ``cause`` empty: whatever ``source`` shows; else only a line with that cause."""

    source: str
    cause: str = ""


# ---- buzzer -----------------------------------------------------------------


@record
class Buzz:
    """Sound a pattern on the buzzer, if one is configured: 'call', 'ok', 'deny', 'alarm'."""

    pattern: str


# ---- voice ------------------------------------------------------------------


@record
class Announce:
    """Say a sentence through the hall's speaker (the voice feature), if one is configured.

    ``words`` come from the fixed vocabulary (``edge.phrases.VOCABULARY``; build them with
    ``edge.phrases``: ``call_words``, ``pause_words``, ``RATE_PROMPT``); each word is one clip.
    ``key`` names what is said (``ticket:A001``): an announcement with the same key that is
    still waiting is replaced in its place rather than queued twice (a recall while the call
    waits).  ``repeat`` is how many times it is said; None means ``voice.repeat``.
    """

    words: tuple[str, ...]
    key: str | None = None
    repeat: int | None = None
