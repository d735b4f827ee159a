"""Outbox drain: publish events in ``seq`` order with a bounded in-flight window, delete on PUBACK.

Core thread only.  Rows stay in SQLite until the broker acknowledged them;
acknowledgements are deleted in batches (one commit for many: an SD card
syncs each commit).  A restart or a failed PUBACK sends the row again: the
platform de-duplicates by ``event_id``.

After each (re)connect the window starts small and grows by one per
acknowledgement (up to ``mqtt.max_inflight``), so that a fleet flushing its
backlogs after a broker restart does not hit the broker all at once; a
healthy link reaches the full window within a few round trips.

A backlog is also paced: at most ``mqtt.flush_rate_per_s`` events a second
(a token bucket holding one second's worth), so that a province's halls coming
back together after an outage each send their backlog over time rather than
all at once into the broker and the platform's queue. Live traffic (tens of
events an hour) never meets the limit.

A PUBACK "no matching subscribers" (0x10) is a success code in MQTT 5, but it
says nobody received the event: ejabberd answers it for everything published
after its restart until the platform has subscribed again (it keeps no MQTT
session over a restart). With ``mqtt.retry_no_subscribers`` (the default) such
a row stays in the outbox and the drain sends the unacknowledged rows again
after a backoff (1 s, doubling to 60 s, back to 1 s after a delivered one),
without reconnecting.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from edge.outbox import Event, Outbox

log = logging.getLogger(__name__)

START_WINDOW = 8
ACK_BATCH = 256  # delete after this many acknowledgements ...
ACK_DELAY_S = 0.05  # ... or this long after the first one, whichever comes first
FETCH_ROWS = 256
RETRY_FIRST_S = 1.0  # a row nobody received: first resend after this ...
RETRY_CAP_S = 60.0  # ... doubling up to this

Delivery = Literal["delivered", "refused", "unheard"]
"""What a PUBACK says: received by the broker and routed, refused (reason >= 0x80), or accepted
with "no matching subscribers" (0x10: nobody got it)."""

Publish = Callable[[str, bytes], int]
"""(topic, payload) -> mid, QoS 1."""


class Drain:
    def __init__(
        self,
        outbox: Outbox,
        publish: Publish,
        topic_for_kind: Callable[[str], str],
        max_inflight: int,
        call_later: Callable[[float, Callable[[], None]], object],
        *,
        rate_per_s: float = 0.0,
        retry_unheard: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.publish = publish
        self.topic_for_kind = topic_for_kind
        self.max_inflight = max_inflight
        self.call_later = call_later
        self.online = False
        self.window = START_WINDOW
        self.inflight: dict[int, int] = {}  # mid -> seq (kept over a reconnect: paho resends them)
        self.cursor = 0  # highest seq read from the outbox on this connection
        self.ready: deque[Event] = deque()  # read ahead, not yet published (one query per many)
        self.acked: list[int] = []
        self.published = 0
        self.failed = 0
        self._flush_scheduled = False
        self.rate_per_s = rate_per_s  # 0: no limit
        self.clock = clock
        self.tokens = max(rate_per_s, 1.0)
        self._tokens_at = clock()
        self._paced = False  # a fill is scheduled for when the next token is there
        self.retry_unheard = retry_unheard
        self.unheard = 0  # rows kept because nobody subscribed (0x10), all along
        self._retry_s = RETRY_FIRST_S
        self._retry_scheduled = False

    def connected(self) -> None:
        """A new connection: start the window small, resend from the oldest unacknowledged row."""
        self.flush()
        self.online = True
        self.window = min(START_WINDOW, self.max_inflight)
        self.cursor = 0
        self.ready.clear()
        self.fill()

    def disconnected(self) -> None:
        self.online = False

    def fill(self) -> None:
        """Publish pending rows, oldest first, until the window is full."""
        if not self.online:
            return
        in_flight_seqs: set[int] | None = None
        while len(self.inflight) < self.window:
            if not self.ready and not self._read_ahead():
                return
            if self.inflight:
                if in_flight_seqs is None:
                    in_flight_seqs = set(self.inflight.values())
                if self.ready[0].seq in in_flight_seqs:
                    self.ready.popleft()
                    continue  # paho is resending this one itself
            if not self._take_token():
                return
            event = self.ready.popleft()
            mid = self.publish(self.topic_for_kind(event.kind), event.payload)
            self.inflight[mid] = event.seq
            self.published += 1

    def _take_token(self) -> bool:
        """One event's worth of the rate; without one, fill again when the next is there."""
        if self.rate_per_s <= 0:
            return True
        now = self.clock()
        burst = max(self.rate_per_s, 1.0)
        self.tokens = min(burst, self.tokens + (now - self._tokens_at) * self.rate_per_s)
        self._tokens_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        if not self._paced:
            self._paced = True
            self.call_later((1.0 - self.tokens) / self.rate_per_s, self._paced_fill)
        return False

    def _paced_fill(self) -> None:
        self._paced = False
        self.fill()

    def _read_ahead(self) -> bool:
        rows = self.outbox.pending(self.cursor, FETCH_ROWS)
        if rows:
            self.cursor = rows[-1].seq
            self.ready.extend(rows)
        return bool(rows)

    def acknowledged(self, acks: list[tuple[int, Delivery]]) -> None:
        """PUBACKs (mid, what it says) from the network thread, batched."""
        for mid, delivery in acks:
            seq = self.inflight.pop(mid, None)
            if seq is None:
                continue  # a birth, result or telemetry message
            if delivery == "delivered" or (delivery == "unheard" and not self.retry_unheard):
                self.acked.append(seq)
                self._retry_s = RETRY_FIRST_S
            elif delivery == "unheard":
                self.unheard += 1
                self._schedule_retry(seq)
            else:
                # Refused by the broker (e.g. not authorised): kept, sent again on the next connect.
                self.failed += 1
                log.error("broker refused event seq=%d; it stays in the outbox", seq)
            self.window = min(self.window + 1, self.max_inflight)
        if len(self.acked) >= ACK_BATCH:
            self.flush()
        elif self.acked and not self._flush_scheduled:
            self._flush_scheduled = True
            self.call_later(ACK_DELAY_S, self.flush)
        self.fill()

    def _schedule_retry(self, seq: int) -> None:
        """Nobody subscribed when ``seq`` arrived: keep it and send the kept rows again later."""
        if self._retry_scheduled:
            return
        log.warning(
            "broker had no subscriber for event seq=%d (no platform session); it stays in the"
            " outbox and is sent again in %.0f s",
            seq,
            self._retry_s,
        )
        self._retry_scheduled = True
        self.call_later(self._retry_s, self._resend_kept)
        self._retry_s = min(self._retry_s * 2, RETRY_CAP_S)

    def _resend_kept(self) -> None:
        """Read the outbox again from its oldest row (what is in flight is skipped)."""
        self._retry_scheduled = False
        if not self.online:
            return  # the next connect reads from the oldest row anyway
        self.flush()
        self.cursor = 0
        self.ready.clear()
        self.fill()

    def flush(self) -> None:
        """Delete the acknowledged rows in one transaction."""
        self._flush_scheduled = False
        acked, self.acked = self.acked, []
        self.outbox.acknowledge(acked)
