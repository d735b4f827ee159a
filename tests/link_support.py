"""Helpers for the link tests: a hall with only the link feature, and a watching MQTT client."""

from __future__ import annotations

import json
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
