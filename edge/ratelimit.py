"""Events that anyone outside can cause, recorded at a bounded rate.

Anyone who can publish on the hall's topics can make the controller refuse a
command or a snapshot, and every event is an outbox row written with a full
sync: without a bound, a flood of junk would fill the disk and wear the SD
card.  ``Throttle`` records the first ``limit`` such events per window one by
one and only counts the rest; one summary event of the same type
(``reason: rate_limited``) says how many were counted, by key, when the
window ends or the daemon stops.  Commands (``audit.command_refused``) and
the link (``error.invalid_payload``) share it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.protocol import RATE_LIMITED

if TYPE_CHECKING:
    from edge.core import Core

log = logging.getLogger(__name__)


class RateLimit:
    """At most ``limit`` admitted per ``window_s``; the rest are counted by key for a summary."""

    def __init__(self, limit: int, window_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.now = now
        self._window_start = -window_s
        self._admitted = 0
        self.suppressed: Counter[str] = Counter()  # by key, since the last summary

    def admit(self, key: str) -> bool:
        """True: record this one; False: it was counted for the next summary."""
        now = self.now()
        if now - self._window_start >= self.window_s:
            self._window_start, self._admitted = now, 0
        if self._admitted < self.limit:
            self._admitted += 1
            return True
        self.suppressed[key] += 1
        return False

    def window_left_s(self) -> float:
        return max(self._window_start + self.window_s - self.now(), 0.0)

    def summary(self, counted_as: str = "reasons") -> dict[str, Any] | None:
        """The data of one summary event for what was counted since the last one (None: nothing)."""
        if not self.suppressed:
            return None
        counts, self.suppressed = self.suppressed, Counter()
        return {
            "reason": RATE_LIMITED,
            "suppressed": sum(counts.values()),
            counted_as: dict(sorted(counts.items())),
            "limit": self.limit,
            "window_s": self.window_s,
        }


class Throttle:
    """Emits events of one type through a ``RateLimit``; the counted rest as one summary event.

    ``counted_as`` names the summary's field of counts by key (``reasons`` for refusals,
    ``topics`` for invalid payloads); ``summary_fields`` adds what the event type requires
    (e.g. a ``topic``), computed from that summary.
    """

    def __init__(
        self,
        event_type: str,
        limit: RateLimit,
        counted_as: str = "reasons",
        summary_fields: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.event_type = event_type
        self.limit = limit
        self.counted_as = counted_as
        self.summary_fields = summary_fields
        self._core: Core | None = None
        self._timer: Any = None

    def emit(self, core: Core, key: str, data: dict[str, Any], say: Callable[[], None] | None = None) -> bool:
        """Record ``data`` (and ``say`` its log line) unless over the limit; True when recorded."""
        self._core = core
        if self.limit.admit(key):
            if say is not None:
                say()
            core.emit(self.event_type, data)
            return True
        if self._timer is None:
            self._timer = core.call_later(self.limit.window_left_s(), self.flush)
        return False

    def flush(self) -> None:
        """Record the summary of what was only counted (at the window's end, or at the stop)."""
        self._timer = None
        data = self.limit.summary(self.counted_as)
        if data is None or self._core is None:
            return
        if self.summary_fields is not None:
            data = {**self.summary_fields(data), **data}
        log.warning(
            "%d more %s in %.0f s, recorded as one event: %s",
            data["suppressed"],
            self.event_type,
            data["window_s"],
            data[self.counted_as],
        )
        self._core.emit(self.event_type, data)
