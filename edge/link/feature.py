"""The link to the central platform (``lgsc/v1``, see docs/mqtt.md).

Out: the birth/death state (retained; the will says offline), events from the
durable outbox (QoS 1, ``seq`` order), telemetry (QoS 0), command results.
In: the jobs, notices and cards snapshots (validated, kept on disk) and the
signed commands (handed to the commands feature unverified).

The paho network thread (``connection.py``) only posts to the core; all
state, the outbox and the snapshot store are touched on the core thread.

paho (with urllib.request, http.client, email and ssl: ~0.3 s of CPU on a Pi 3
core) is imported, and the client built, on the ``mqtt-open`` thread once the
core runs, that is after READY=1: READY says the hall works (keys, printer,
screen, locker), never that the platform is reachable; the link connects in the
background either way.  What the connection needs from files (the password,
the TLS files) is still read at start, so a file that cannot be used fails the
feature before READY as it did.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge import __version__, snapshots, telemetry
from edge.clock import rfc3339
from edge.core import ComponentChanged, Core
from edge.link.drain import RETRY_CAP_S, RETRY_FIRST_S, Delivery, Drain
from edge.messages import CommandReceived, LinkStatus, SnapshotUpdated
from edge.outbox import Event
from edge.protocol import STATE_SCHEMA, Topics, usable_response_topic
from edge.ratelimit import RateLimit, Throttle
from edge.records import record
from edge.schema import read_secret
from edge.settings import MqttSettings, Settings

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from edge.link.connection import Connection

log = logging.getLogger(__name__)

_JSON: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":")}
# error.invalid_payload events recorded one by one per window (the rest counted): one snapshot's
# full report of bad entries (snapshots.MAX_ENTRY_PROBLEMS and a summary) and a few more.
INVALID_PER_WINDOW = snapshots.MAX_ENTRY_PROBLEMS + 10
INVALID_WINDOW_S = 60.0


# ---- messages from the network thread to the core (private to the link) ----------


@record
class BrokerConnected:
    session_present: bool


@record
class BrokerDisconnected:
    reason: str


@record
class SnapshotArrived:
    kind: str
    topic: str
    payload: bytes


@record
class PayloadRefused:
    """A message refused before it reached the core (e.g. over the size cap)."""

    topic: str
    reason: str


@record
class InboundHandled:
    """Posted right after an inbound message: once the core gets here, it has handled it."""

    mid: int
    qos: int
    generation: int


@record
class AcksWaiting:
    """PUBACKs are waiting in the link's queue (one wake-up for many)."""


OFFLINE = json.dumps({"schema": STATE_SCHEMA, "online": False}, **_JSON).encode()


class LinkFeature:
    """The ``link`` feature; ``core.link`` (``edge.messages.LinkPort``)."""

    name = "link"

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.mqtt = config.mqtt
        self.topics = Topics(config.site, config.device)
        self.client_id = f"lgsc-{config.site}-{config.device}"
        self._online = False
        self._acks: deque[tuple[int, Delivery]] = deque()
        self._acks_posted = False
        self.connection: Connection | None = None
        self.core: Core  # set by start()
        self.store: snapshots.SnapshotStore  # from start()
        self.drain: Drain
        self.first_online_s: float | None = None
        self.last_connect_at: datetime | None = None
        self.births = 0
        self._birth_mid: int | None = None
        self._lock = threading.Lock()  # self.connection and _closing: mqtt-open vs stop
        self._closing = False
        self._opener: threading.Thread | None = None
        self._birth_retry_s = RETRY_FIRST_S
        self._fill_posted = False
        self.trust, self.key_problems = snapshots.trust_from(config)
        # Anyone who can publish on the site's topics can send junk: one event each would fill
        # the disk (and sync the SD card for each), so they are recorded at a bounded rate.
        self.invalid_payloads = Throttle(
            "error.invalid_payload",
            RateLimit(INVALID_PER_WINDOW, INVALID_WINDOW_S),
            counted_as="topics",
            summary_fields=lambda summary: {"topic": max(summary["topics"], key=summary["topics"].get)},
        )

    # -- LinkPort ------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._online

    def publish_result(
        self, payload: bytes, response_topic: str | None, correlation_data: bytes | None
    ) -> None:
        """Send a command result to cmd/result and, with MQTT 5, to the command's response topic."""
        connection = self._connection()
        connection.publish(self.topics.result, payload)
        if not (response_topic and connection.v5):
            return
        if not usable_response_topic(response_topic):
            log.warning("command response topic refused (wildcard, $ or empty)")
            return
        from paho.mqtt.packettypes import PacketTypes  # loaded by the connection already
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)
        if correlation_data is not None:
            props.CorrelationData = correlation_data
        try:
            connection.publish(response_topic, payload, properties=props)
        except ValueError as exc:  # paho refuses it (e.g. longer than MQTT allows)
            log.warning("command response topic refused: %s", exc)

    def republish_birth(self) -> None:
        if self._online:
            self._birth_mid = self._connection().publish(self.topics.state, self._birth(), retain=True)
            self.births += 1

    def _birth_heard(self, delivery: Delivery) -> None:
        """A birth nobody was subscribed for (PUBACK 0x10: the platform not yet back on a broker
        that lost its session) is published again later, so the platform learns the state."""
        if delivery != "unheard" or not self.mqtt.retry_no_subscribers:
            self._birth_retry_s = RETRY_FIRST_S
            return
        self.core.call_later(self._birth_retry_s, self.republish_birth)
        self._birth_retry_s = min(self._birth_retry_s * 2, RETRY_CAP_S)

    def resync(self) -> None:
        """The ``sync`` command: snapshots again from the broker, the birth, the outbox."""
        self._connection().resubscribe()
        self.republish_birth()
        self.drain.fill()

    # -- feature -------------------------------------------------------------------

    def start(self, core: Core) -> None:
        self.core = core
        # The files first: a TLS or password file that cannot be used fails here, before wiring.
        check_connection_files(self.mqtt)
        core.outbox.set_limits(core.config.storage.outbox_max_events, core.config.storage.outbox_max_bytes)
        self.store = snapshots.SnapshotStore(core.storage)
        self.drain = Drain(
            core.outbox,
            self._publish_event,
            self.topics.event,
            self.mqtt.max_inflight,
            core.call_later,
            rate_per_s=self.mqtt.flush_rate_per_s,
            retry_unheard=self.mqtt.retry_no_subscribers,
        )
        core.subscribe(BrokerConnected, self._on_connected)
        core.subscribe(BrokerDisconnected, self._on_disconnected)
        core.subscribe(SnapshotArrived, self._on_snapshot)
        core.subscribe(PayloadRefused, self._on_refused)
        core.subscribe(AcksWaiting, self._on_acks)
        core.subscribe(InboundHandled, self._on_inbound_handled)
        core.subscribe(ComponentChanged, lambda _change: self.republish_birth())
        core.outbox.listeners.append(self._on_event_recorded)
        core.register_status("link", self.status)
        self._check_trust()
        core.every(self.mqtt.telemetry_interval_s, self._publish_telemetry)
        self._post_cached_snapshots()
        core.link = self
        self._opener = threading.Thread(target=self._open, name="mqtt-open", daemon=True)
        core.call_soon(self._opener.start)  # once the core runs: READY follows at once

    def _open(self) -> None:
        """Import paho, build the client and start connecting (mqtt-open)."""
        core = self.core
        try:
            from edge.link.connection import Connection, Routes

            routes = Routes(
                connected=lambda present: core.post(BrokerConnected(present)),
                disconnected=lambda reason: core.post(BrokerDisconnected(reason)),
                message=self._route_message,
                published=self._on_puback,
            )
            connection = Connection(
                self.mqtt, self.client_id, self.topics.subscriptions(), (self.topics.state, OFFLINE), routes
            )
        except Exception as exc:  # e.g. a TLS file that is not a certificate: no link, the hall runs
            log.exception("the mqtt client could not be built; running without the link")
            reason = type(exc).__name__
            core.call_soon(lambda: self._failed(reason))
            return
        with self._lock:
            if self._closing:
                return
            self.connection = connection
            connection.start()

    def _failed(self, reason: str) -> None:
        self.core.emit("error.feature_failed", {"feature": self.name, "reason": reason})
        self.core.set_component(self.name, "failed")

    def stop(self) -> None:
        """Say offline (retained), then disconnect: the will is for unclean ends only."""
        if self.core.stopped.is_set():
            self.invalid_payloads.flush()  # what was only counted (the core has ended: storage is ours)
        with self._lock:
            self._closing = True  # a client still being built is not started
            connection = self.connection
        if connection is not None:
            connection.stop(last_words=(self.topics.state, OFFLINE))
        self._online = False

    def status(self) -> dict[str, Any]:
        outbox = self.core.outbox
        return {
            "online": self._online,
            "broker": f"{self.mqtt.host}:{self.mqtt.port}",
            "connected_at": rfc3339(self.last_connect_at) if self.last_connect_at else None,
            "reconnects": self.connection.reconnects if self.connection else 0,
            "outbox_depth": outbox.depth(),
            "outbox_bytes": outbox.size_bytes(),
            "outbox_dropped": outbox.dropped,
            "inflight": len(self.drain.inflight),
            "snapshots": {
                kind: {
                    "generated_at": held.snapshot.get("generated_at"),
                    "received_at": rfc3339(held.received_at),
                    "live": held.live,
                    "entries": len(held.snapshot.get(kind, [])),
                }
                for kind, held in self.store.held.items()
            },
        }

    # -- network thread: route only ---------------------------------------------------

    def _route_message(self, message: mqtt.MQTTMessage) -> None:
        core, connection = self.core, self._connection()
        topic, payload = message.topic, bytes(message.payload)
        if len(payload) > self.mqtt.max_payload_bytes:
            reason = f"payload of {len(payload)} bytes is over the {self.mqtt.max_payload_bytes} byte cap"
            core.post(PayloadRefused(topic, reason))
        elif topic == self.topics.cmd:
            response_topic, correlation = _response_properties(message)
            core.post(CommandReceived(payload, response_topic, correlation))
        elif topic in self.topics.snapshots:
            core.post(SnapshotArrived(self.topics.snapshots[topic], topic, payload))
        else:
            log.warning("mqtt message on unexpected topic ignored (%d bytes)", len(payload))
            connection.ack(message.mid, message.qos, connection.generation)
            return
        core.post(InboundHandled(message.mid, message.qos, connection.generation))

    def _on_puback(self, mid: int, delivery: Delivery) -> None:
        self._acks.append((mid, delivery))
        if not self._acks_posted:
            # One wake-up for all acks that arrive before the core gets to them.
            self._acks_posted = True
            self.core.post(AcksWaiting())

    # -- core thread ---------------------------------------------------------------------

    def _on_connected(self, message: BrokerConnected) -> None:
        core = self.core
        self._online = True
        self.last_connect_at = core.clock.now()
        if self.first_online_s is None:
            self.first_online_s = time.monotonic() - core.started_monotonic
            log.info("link online %.3f s after start", self.first_online_s)
        else:
            log.info("link online again (session present: %s)", message.session_present)
        self.republish_birth()
        core.dispatch(LinkStatus(True))
        self.drain.connected()

    def _on_disconnected(self, message: BrokerDisconnected) -> None:
        self.drain.disconnected()
        if not self._online:
            return  # another failed attempt: nothing changed for the others
        log.warning("link offline: %s", message.reason)
        self._online = False
        self.core.dispatch(LinkStatus(False))

    def _on_inbound_handled(self, message: InboundHandled) -> None:
        self._connection().ack(message.mid, message.qos, message.generation)

    def _on_acks(self, _message: AcksWaiting) -> None:
        self._acks_posted = False
        acks = []
        while self._acks:
            mid, delivery = self._acks.popleft()
            if mid == self._birth_mid:
                self._birth_mid = None
                self._birth_heard(delivery)
            else:
                acks.append((mid, delivery))
        self.drain.acknowledged(acks)

    def _on_event_recorded(self, _event: Event) -> None:
        # Called inside whoever emitted; publish a moment later, many events at once.
        if not self._fill_posted and self._online:
            self._fill_posted = True
            self.core.call_soon(self._fill)

    def _fill(self) -> None:
        self._fill_posted = False
        self.drain.fill()

    def _publish_event(self, topic: str, payload: bytes) -> int:
        return self._connection().publish(topic, payload)

    def _publish_telemetry(self) -> None:
        core = self.core
        if not self._online:
            return
        body = telemetry.reading(
            device=core.device,
            at=rfc3339(core.clock.now()),
            uptime_s=time.monotonic() - core.started_monotonic,
            storage_dir=core.config.storage.dir,
            outbox_depth=core.outbox.depth(),
            reconnects=self._connection().reconnects,
            clock=core.clock.status(),
        )
        self._connection().publish(self.topics.telemetry, json.dumps(body, **_JSON).encode(), qos=0)

    def _birth(self) -> bytes:
        core = self.core
        body = {
            "schema": STATE_SCHEMA,
            "online": True,
            "version": __version__,
            "started_at": rfc3339(core.started_at),
            "components": dict(sorted(core.components.items())),
        }
        return json.dumps(body, **_JSON).encode()

    # -- snapshots ------------------------------------------------------------------

    def _post_cached_snapshots(self) -> None:
        """Work from the last good snapshots at once, before the broker answers."""
        for kind, held in self.store.load().items():
            self.core.post(SnapshotUpdated(kind, held.snapshot, held.received_at, live=False))

    def _on_refused(self, message: PayloadRefused) -> None:
        self._invalid(message.topic, message.reason)

    def _check_trust(self) -> None:
        for problem in self.key_problems:
            log.error("config %s", problem)
        if not self.trust.keys and not self.trust.accept_unsigned:
            log.error("no usable snapshots.public_keys and unsigned = refuse: every snapshot is refused")
        if self.config.rfid.enabled and not self.trust.card_key_id:
            log.warning("rfid.card_key_id is not set: the cards snapshot's hash.key_id is not checked")

    def _on_snapshot(self, message: SnapshotArrived) -> None:
        kind, core = message.kind, self.core
        parsed = snapshots.receive(kind, message.payload, self.mqtt.max_payload_bytes, self.trust)
        if parsed.snapshot is None:
            self._refuse(message.topic, kind, parsed.reason)
            return
        now = core.clock.now()
        synced = core.clock.status() == "synced"  # an unsynced clock cannot tell the future
        if synced and snapshots.ahead_of(parsed.generated_at, now):
            reason = (
                f"generated_at is more than {snapshots.MAX_AHEAD.total_seconds():.0f} s ahead of the"
                f" controller's synced clock ({rfc3339(now)})"
            )
            self._refuse(message.topic, kind, reason)
            return
        held = self.store.held.get(kind)
        if held is not None and not self._is_newer(parsed, held, message.topic, now if synced else None):
            return
        previous = snapshots.entry_ids(held.snapshot, kind) if held else None
        # One transaction: once the snapshot is held, its retained copy is never taken again, so
        # a power cut between the two would lose the events about its invalid entries.
        with core.storage.transaction():
            self.store.save(kind, parsed.snapshot, now)
            self._report_entry_problems(message.topic, parsed.problems)
        current = snapshots.entry_ids(parsed.snapshot, kind)
        # The very first snapshot a controller ever gets has no "new" entries: all would be.
        new_ids = frozenset(current - previous) if previous is not None else frozenset()
        log.info(
            "%s snapshot generated_at=%s: %d entries, %d new, %d skipped",
            kind,
            parsed.snapshot.get("generated_at"),
            len(current),
            len(new_ids),
            len(parsed.problems),
        )
        core.dispatch(SnapshotUpdated(kind, parsed.snapshot, now, live=True, new_ids=new_ids))

    def _refuse(self, topic: str, kind: str, reason: str) -> None:
        def say() -> None:
            log.warning("%s snapshot refused, keeping the last good one: %s", kind, reason)

        self._invalid(topic, reason, say=say)

    def _is_newer(
        self, parsed: snapshots.Parsed, held: snapshots.Held, topic: str, synced_now: datetime | None
    ) -> bool:
        """Older snapshots are ignored; the same one again only confirms a cached copy is live.

        A held snapshot dated ahead of the synced clock (taken while the clock was not synced, or
        cached by an earlier version) orders nothing: the next valid snapshot replaces it.
        """
        if synced_now is not None and snapshots.ahead_of(held.generated_at, synced_now):
            reason = (
                f"the held snapshot's generated_at {held.snapshot.get('generated_at')} is ahead of the"
                f" controller's synced clock ({rfc3339(synced_now)}): replaced by this one"
            )
            log.warning("%s %s", parsed.kind, reason)
            self._invalid(topic, reason)
            return True
        if parsed.empty:
            return bool(held.snapshot.get(parsed.kind)) or held.generated_at is not None
        new_at, held_at = parsed.generated_at, held.generated_at
        if held_at is None or (new_at is not None and new_at > held_at):
            return True
        if new_at == held_at and not held.live:
            held.live = True
            self.core.dispatch(SnapshotUpdated(parsed.kind, held.snapshot, held.received_at, live=True))
        elif new_at is not None and new_at < held_at:
            log.info("%s snapshot generated_at=%s is older than the one held: ignored", parsed.kind, new_at)
        return False

    def _report_entry_problems(self, topic: str, problems: list[tuple[str, str]]) -> None:
        for ref, reason in problems[: snapshots.MAX_ENTRY_PROBLEMS]:
            self._invalid(topic, reason, entry=ref)
        extra = len(problems) - snapshots.MAX_ENTRY_PROBLEMS
        if extra > 0:
            self._invalid(topic, f"{extra} more invalid entries skipped")

    def _invalid(
        self, topic: str, reason: str, entry: str | None = None, say: Callable[[], None] | None = None
    ) -> None:
        data = {"topic": topic, "reason": reason}
        if entry is not None:
            data["entry"] = entry
        self.invalid_payloads.emit(self.core, topic, data, say)

    # -- plumbing --------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self.connection is None:
            raise RuntimeError("link not started")
        return self.connection


def check_connection_files(cfg: MqttSettings) -> None:
    """Read what the client will need from files (the password, the TLS files): one that is
    missing, unreadable or (a secret) readable by others raises here, at start."""
    if cfg.username:
        read_secret(cfg.password_file)
    if cfg.tls:
        for path in (cfg.ca_file, cfg.cert_file):
            if path and os.path.isdir(path):
                os.listdir(path)  # a folder of CAs (by hash): it must be readable
            elif path:
                with open(path, "rb"):
                    pass
        if cfg.key_file:
            read_secret(cfg.key_file)


def _response_properties(message: mqtt.MQTTMessage) -> tuple[str | None, bytes | None]:
    props = getattr(message, "properties", None)
    if props is None:
        return None, None
    return getattr(props, "ResponseTopic", None), getattr(props, "CorrelationData", None)
