"""Helpers for the link tests: a hall with only the link feature, and a watching MQTT client."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from hall_rig import Hall
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import wait_for


def unique_site() -> str:
    """Tests share one broker (and its retained messages): each gets its own site."""
    return "t" + uuid.uuid4().hex[:12]


def start_link(
    make_hall: Callable[..., Hall],
    folder: Path,
    port: int,
    site: str,
    *,
    watch: tuple[type, ...] = (),
    storage_overrides: dict | None = None,
    tables: dict | None = None,
    **mqtt_overrides: Any,
) -> Hall:
    """A hall (conftest's ``make_hall``) with only the link, as ``site``/hall-01 on ``port``;
    ``tables``: more configuration tables (e.g. ``{"time": {"clock": "unsynced"}}``)."""
    overrides = {
        **(tables or {}),
        "mqtt": {"host": "127.0.0.1", "port": port, "tls": False, **mqtt_overrides},
        "storage": storage_overrides or {},
    }
    return make_hall(["link"], overrides, folder=folder, site=site, device="hall-01", watch=watch)


class Watcher:
    """A platform-side client that records everything under lgsc/v1/{site}/#."""

    def __init__(self, port: int, site: str, protocol: int = mqtt.MQTTv5) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{site}", protocol=protocol)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, *_: client.subscribe(f"lgsc/v1/{site}/#", qos=1)
        self.client.reconnect_delay_set(0.01, 0.1)
        if protocol == mqtt.MQTTv5:
            # A persistent session: what the controller publishes while this client reconnects
            # after a broker restart is kept for it.
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
            self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(self.client.is_connected, what="watcher connected")

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def on(self, suffix: str) -> list[dict]:
        with self.lock:
            found = [m for m in self.messages if m.topic.endswith(suffix)]
        return [json.loads(m.payload) for m in found if m.payload]

    def events(self) -> list[dict]:
        with self.lock:
            found = [m for m in self.messages if "/events/" in m.topic]
        return [json.loads(m.payload) for m in found]

    def publish(self, topic: str, payload: bytes | str, retain: bool = False, **kwargs: Any) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain, **kwargs).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


MQTT_PACKETS = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 8: "SUBSCRIBE", 9: "SUBACK"}


def mqtt_packets(buffer: bytearray) -> list[bytes]:
    """The whole MQTT packets at the start of ``buffer``, taken out of it (a partial one stays)."""
    packets = []
    while len(buffer) >= 2:
        length, shift, at = 0, 0, 1
        while at < len(buffer) and at <= 4:
            length |= (buffer[at] & 0x7F) << shift
            shift += 7
            at += 1
            if not buffer[at - 1] & 0x80:
                break
        else:
            return packets  # the remaining-length field itself is not all here yet
        if len(buffer) < at + length:
            return packets
        packets.append(bytes(buffer[: at + length]))
        del buffer[: at + length]
    return packets


class SubackHolder:
    """A TCP relay between a hall and the broker that holds each SUBACK back until the hall has
    sent a PUBLISH or ``hold_s`` has passed, and records the packets it passes on, in order
    (``"hall PUBLISH"``, ``"broker SUBACK"``): what the hall did before its subscriptions were in."""

    def __init__(self, broker_port: int, hold_s: float = 2.0) -> None:
        self.broker_port = broker_port
        self.hold_s = hold_s
        self.order: list[str] = []
        self._hall_published = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                hall, _ = self._listener.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.broker_port))
            threading.Thread(target=self._pump, args=(hall, broker, "hall"), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, hall, "broker"), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, side: str) -> None:
        buffer = bytearray()
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                buffer += data
                for packet in mqtt_packets(buffer):
                    kind = MQTT_PACKETS.get(packet[0] >> 4, str(packet[0] >> 4))
                    if side == "broker" and kind == "SUBACK":
                        self._hall_published.wait(self.hold_s)
                    self.order.append(f"{side} {kind}")
                    if side == "hall" and kind == "PUBLISH":
                        self._hall_published.set()
                    sink.sendall(packet)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
