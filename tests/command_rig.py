"""A whole daemon in this process (conftest's ``make_hall``), a signing key, and an MQTT watcher.

Used by the commands and hall-admin tests: commands travel over the real test
broker, through the real link, to the real commands feature.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from hall_rig import FeatureSpec, Hall
from paho.mqtt.enums import CallbackAPIVersion
from support import wait_for

from edge.admin import generate_key, load_private_key
from edge.protocol import sign

KID = "it-test"


class Watcher:
    """Collects every message under a device's topics (events, results, state)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watch-" + uuid.uuid4().hex[:8])
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        if not self._subscribed.wait(5):
            raise AssertionError("watcher not subscribed")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload) if message.payload else {}
        except ValueError:
            body = {"raw": message.payload}
        with self._lock:
            self.messages.append((message.topic, body))

    def bodies(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [b for t, b in self.messages if t.endswith(suffix)]

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [
            b for b in self.bodies("/events/audit") + self.bodies("/events/error") if b.get("type") == type_
        ]

    def result(self, command_id: str, timeout: float = 10.0) -> dict[str, Any]:
        return wait_for(
            lambda: next((b for b in self.bodies("/cmd/result") if b.get("id") == command_id), None),
            timeout,
            f"result of {command_id}",
        )

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()


class CommandHall(Hall):
    """A whole controller (every feature) for conftest's ``make_hall(None, ..., rig=CommandHall,
    port=broker.port)``: its config file, a signing key pair, a watcher on its topics.  Not
    started: the test calls ``start()``, and again after ``wait_exit()`` as systemd would."""

    def __init__(
        self,
        folder: Path,
        features: Sequence[FeatureSpec] | None,
        overrides: dict[str, Any] | None = None,
        *,
        port: int,
        site: str | None = None,
        device: str = "hall-01",
        **options: Any,
    ) -> None:
        self.port = port
        self.site = site or "t" + uuid.uuid4().hex[:12]
        self.device = device
        self.watcher = Watcher(port, self.topic + "/#")
        self.key_path = folder / "admin" / f"{KID}.key"
        self.public_key = generate_key(self.key_path)
        self.key = load_private_key(str(self.key_path))
        tables: dict[str, Any] = {
            "mqtt": {"port": port, "reconnect_cap_s": 1.0},
            "commands": {"public_keys": {KID: self.public_key}, "apply_deadline_s": 3.0},
        }
        for table, values in (overrides or {}).items():
            tables[table] = {**tables.get(table, {}), **values}
        super().__init__(folder, features, tables, start=False, site=self.site, device=device, **options)

    @property
    def target(self) -> str:
        return f"{self.site}/{self.device}"

    @property
    def topic(self) -> str:
        return f"lgsc/v1/{self.site}/{self.device}"

    def start(self, online: bool = True) -> CommandHall:
        super().start()
        if online:
            wait_for(lambda: self.core.link is not None and self.core.link.online, 10, "link online")
        return self

    def body(self, name: str, args: dict | None = None, **fields: Any) -> dict[str, Any]:
        now = datetime.now().astimezone().replace(microsecond=0)
        body = {
            "id": "c-" + uuid.uuid4().hex[:16],
            "name": name,
            "device": self.target,
            "issued_at": now.isoformat(),
            "expires_at": (now + timedelta(minutes=5)).isoformat(),
            "issuer": "it-test",
            "args": args or {},
        }
        body.update(fields)
        return body

    def signed(self, body: dict[str, Any] | str, key: Any = None, kid: str = KID) -> bytes:
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        return sign(text, key or self.key, kid)

    def publish(self, payload: bytes) -> None:
        """Publish on the cmd topic (through the watcher's connection)."""
        self.watcher.publish(f"{self.topic}/cmd", payload)

    def close(self) -> None:
        super().close()
        self.watcher.close()

    def admin_flags(self) -> list[str]:
        """hall-admin's own settings file for this hall (broker and signing key)."""
        path = self.folder / "hall-admin.toml"
        path.write_text(
            f'[broker]\nhost = "127.0.0.1"\nport = {self.port}\ntls = false\n'
            f'[signing]\nkey_file = "{self.key_path}"\nkid = "{KID}"\nissuer = "it-test"\n'
        )
        return ["--config", str(path)]
