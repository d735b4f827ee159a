"""The paho-mqtt client and its network thread: connect, reconnect with jittered backoff, route.

This thread never touches the hall's state or the database: every callback
turns what happened into a call of one of the ``Routes`` functions, which
only post to the core's queue.

Reconnecting is ours, not paho's (paho doubles its delay with no jitter):
full jitter, ``delay = random(0, min(cap, base * 2^n))``, so that a fleet of
controllers does not come back in lockstep after a broker restart; ``n`` is
reset only after a connection stayed up for ``RESET_AFTER_S``.

Messages received are acknowledged (PUBACK) only once the core has handled
them (``manual_ack``): a snapshot or command that arrived just before a
power cut is delivered again by the broker, not lost in the core's queue.

Messages published while the link is down stay in paho's memory and go out,
in order, right after the next CONNACK (paho resends unacknowledged QoS 1
messages on reconnect).  A restart forgets them: the SQLite outbox is what
makes events durable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.link.drain import Delivery
from edge.protocol import set_nodelay
from edge.records import record
from edge.schema import read_secret
from edge.settings import MqttSettings

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
RESET_AFTER_S = 30.0  # a connection that lasted this long was a good one: start backoff afresh
# After a good connection ended, the first retry is spread over this window (capped by
# mqtt.reconnect_cap_s): a broker restart ends every hall's connection at the same moment.
RECONNECT_SPREAD_S = 10.0
CONNECT_TIMEOUT_S = 5.0


class _EndOfLoop(logging.Filter):
    """paho 2.2's network thread runs its loop once more after the socket closed (a clean
    DISCONNECT, or a lost connection already reported through on_disconnect) and logs that as
    an error, "Client is not connected": the normal end of a connection, so not logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


PAHO_LOG = logging.getLogger("edge.link.paho")
PAHO_LOG.addFilter(_EndOfLoop())


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog's "Full Jitter"), and a spread
    first retry after a good connection ended (``after_connection``)."""

    def __init__(
        self,
        cap_s: float,
        base_s: float = BACKOFF_BASE_S,
        reset_after_s: float = RESET_AFTER_S,
        rng: Callable[[], float] = random.random,
        spread_s: float = RECONNECT_SPREAD_S,
    ) -> None:
        self.cap_s = cap_s
        self.base_s = base_s
        self.reset_after_s = reset_after_s
        self.rng = rng
        self.spread_s = spread_s
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return self.rng() * ceiling

    def after_connection(self, lasted_s: float) -> float:
        """The delay before reconnecting after a connection that lasted ``lasted_s`` ended.

        A short one (flapping) goes on backing off. A good one starts afresh, but not at
        ``base_s``: a broker restart ends every hall's good connection at the same moment, and
        with the same small first ceiling a whole province would reconnect within half a
        second (measured by bench/fleet.py). So the first retry is spread over ``spread_s``
        (at most ``cap_s``) and the backoff goes on from the first step above that window.
        """
        if lasted_s < self.reset_after_s:
            return self.next_delay()
        window = min(self.cap_s, self.spread_s)
        self.attempt = 0
        while self.attempt < 30 and self.base_s * 2**self.attempt < window:
            self.attempt += 1
        return self.rng() * window


NO_MATCHING_SUBSCRIBERS = 0x10


def delivery_of(reason: Any) -> Delivery:
    """What a PUBACK's reason code says about the message (MQTT 3.1.1 has none: delivered)."""
    if reason.is_failure:
        return "refused"
    if reason.value == NO_MATCHING_SUBSCRIBERS:
        return "unheard"
    return "delivered"


@record
class Routes:
    """Where the network thread sends what it hears (each must only post to the core)."""

    connected: Callable[[bool], None]  # session_present
    disconnected: Callable[[str], None]  # reason
    message: Callable[[mqtt.MQTTMessage], None]
    published: Callable[[int, Delivery], None]  # mid, what the PUBACK says


class Connection:
    """One paho client, connected by our own thread until ``stop``."""

    def __init__(
        self,
        mqtt_config: MqttSettings,
        client_id: str,
        subscriptions: list[str],
        will: tuple[str, bytes],
        routes: Routes,
    ) -> None:
        self.cfg = mqtt_config
        self.v5 = mqtt_config.protocol == "mqttv5"
        self.subscriptions = subscriptions
        self.routes = routes
        self.backoff = Backoff(mqtt_config.reconnect_cap_s)
        self.connects = 0
        self.generation = 0  # +1 per connection: a PUBACK is only sent on the connection it belongs to
        self.client = self._build_client(client_id, will)
        self._stopping = threading.Event()
        self._up_since: float | None = None
        self._session_over = threading.Event()  # the current connection ended (or stop)
        # The link is online from this connection's SUBACK, not its CONNACK: on a first, clean
        # session a command sent between the two finds no subscription and the broker drops it.
        self._subscribe_mid: int | None = None
        self._session_present = False
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)

    # -- building ------------------------------------------------------------

    def _build_client(self, client_id: str, will: tuple[str, bytes]) -> mqtt.Client:
        cfg = self.cfg
        if self.v5:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
                reconnect_on_failure=False,
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
                reconnect_on_failure=False,
            )
        client.enable_logger(PAHO_LOG)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.max_inflight_messages_set(cfg.max_inflight)
        client.will_set(will[0], will[1], qos=1, retain=True)
        if cfg.tls:
            client.tls_set_context(tls_context(cfg))
        if cfg.username:
            client.username_pw_set(cfg.username, read_secret(cfg.password_file).decode("utf-8"))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    # -- running (network thread) -----------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._session_over.clear()
            try:
                if self._connect_once():
                    self._serve()
            except Exception:
                # This thread is the hall's only link: whatever a connection raised, the next
                # one is tried (after the backoff) rather than the link ending for good.
                log.exception("mqtt connection failed unexpectedly; reconnecting")
            if self._stopping.is_set():
                break
            if self._up_since is not None:
                delay = self.backoff.after_connection(time.monotonic() - self._up_since)
                self._up_since = None
            else:
                delay = self.backoff.next_delay()
            log.info("mqtt reconnect in %.2f s", delay)
            self._stopping.wait(delay)

    def _connect_once(self) -> bool:
        cfg = self.cfg
        try:
            if self.v5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = cfg.session_expiry_s
                self.client.connect(cfg.host, cfg.port, cfg.keepalive, clean_start=False, properties=props)
            else:
                self.client.connect(cfg.host, cfg.port, cfg.keepalive)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.warning("mqtt connect to %s:%d failed: %s", cfg.host, cfg.port, exc)
            return False
        return True

    def _serve(self) -> None:
        """One connection, served by paho's own network thread (``loop_start``) until it ends.

        With that thread running, ``publish`` from the core only queues the packet and wakes
        it, so the core goes on while the packets are written.  paho does not reconnect by
        itself (``reconnect_on_failure=False``): its thread ends with the connection and
        this one reconnects with jitter.
        """
        self.client.loop_start()
        try:
            self._session_over.wait()
        finally:
            self._stop_paho_thread()

    def _stop_paho_thread(self) -> None:
        """``loop_stop``, which races with paho 2.2's thread ending by itself: when the
        connection ends, that thread clears ``client._thread`` in its last step, and a
        ``loop_stop`` between its own check and its ``join`` raises AttributeError ('NoneType'
        has no 'join'). Then the thread is ending already and nothing is left to stop. Seen
        with 1,000 controllers at a broker restart (bench/fleet.py): it ended this thread and
        that hall never reconnected."""
        try:
            self.client.loop_stop()
        except AttributeError:
            log.debug("paho's network thread ended by itself during loop_stop")

    # -- paho callbacks (network thread) ----------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("mqtt broker refused the connection: %s", reason)
            self._session_over.set()
            return
        self.connects += 1
        self.generation += 1
        self._up_since = time.monotonic()
        set_nodelay(client.socket())
        self._session_present = bool(flags.session_present)
        with self._guard(client):
            self._subscribe_mid = self._subscribe()

    def _on_subscribe(self, client: mqtt.Client, _userdata: Any, mid: int, reasons: Any, _props: Any) -> None:
        if mid != self._subscribe_mid:  # resubscribe()'s: this connection is online already
            return
        refused = [t for t, reason in zip(self.subscriptions, reasons, strict=False) if reason.is_failure]
        if refused:  # events still go up; what the broker refused will not come down
            log.error("mqtt broker refused the subscriptions %s", ", ".join(refused))
        with self._guard(client):
            self.routes.connected(self._session_present)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._subscribe_mid = None
        try:
            self.routes.disconnected(str(reason))
        finally:
            self._session_over.set()

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._guard(client):
            self.routes.message(message)

    def _on_publish(self, client: mqtt.Client, _userdata: Any, mid: int, reason: Any, _props: Any) -> None:
        with self._guard(client):
            self.routes.published(mid, delivery_of(reason))

    @contextlib.contextmanager
    def _guard(self, client: mqtt.Client) -> Iterator[None]:
        """What a callback raises would end paho's thread: log it and reconnect instead (the
        message, unacknowledged, is delivered again); this thread is the hall's only link."""
        try:
            yield
        except Exception:
            log.exception("mqtt callback failed; reconnecting")
            client.disconnect()
            self._session_over.set()

    # -- any thread ---------------------------------------------------------------

    @property
    def reconnects(self) -> int:
        return max(self.connects - 1, 0)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> int:
        """Hand a message to paho (kept in memory and sent after reconnect if offline); its mid."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        return info.mid

    def ack(self, mid: int, qos: int, generation: int) -> None:
        """PUBACK a received message once it is handled (none for one from an earlier connection:
        the broker sends that one again)."""
        if qos > 0 and generation == self.generation and self.client.is_connected():
            self.client.ack(mid, qos)

    def resubscribe(self) -> None:
        """Subscribe again: the broker sends the retained snapshots once more."""
        if self.client.is_connected():
            self.client.unsubscribe(self.subscriptions)
            self._subscribe()

    def _subscribe(self) -> int | None:
        """The SUBSCRIBE's packet id, which its SUBACK names (None: the connection is gone)."""
        if self.v5:
            _rc, mid = self.client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.subscriptions])
        else:
            _rc, mid = self.client.subscribe([(topic, 1) for topic in self.subscriptions])
        return mid

    def stop(self, last_words: tuple[str, bytes] | None, timeout_s: float = 1.0) -> None:
        """Publish ``last_words`` (retained, QoS 1) if connected, disconnect, end the thread."""
        deadline = time.monotonic() + timeout_s
        if last_words is not None and self.client.is_connected():
            info = self.client.publish(last_words[0], last_words[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=timeout_s / 2)
            except RuntimeError as exc:  # lost the connection meanwhile: the will says it
                log.warning("mqtt offline state not sent: %s", exc)
        self._stopping.set()
        self.client.disconnect()
        self._session_over.set()
        if self._thread.is_alive():
            self._thread.join(max(deadline - time.monotonic(), 0.1))


def tls_context(cfg: MqttSettings) -> ssl.SSLContext:
    """The broker's TLS: its certificate must chain to ``mqtt.ca_file`` and name ``mqtt.host``.

    ``ca_file`` may be a folder of certificates named by hash (``c_rehash``; the default is
    the system's, /etc/ssl/certs, which update-ca-certificates keeps with the same CAs as its
    bundle file): OpenSSL then reads only the CA a handshake asks for.  The bundle file is read
    whole, 144 CAs kept parsed for the life of the process (2.3 MiB of a Pi's daemon).
    """
    ca = cfg.ca_file or None
    if ca is not None and os.path.isdir(ca):
        context = ssl.create_default_context(capath=ca)
    else:
        context = ssl.create_default_context(cafile=ca)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    return context
