"""A signed command from the simulator, as the platform sends one (shared/mqtt-contract.md).

For the acts a demo's window has no key for (``hall-sim transfer 1 D``: a key cannot name its
target): the body is signed with the demo's admin key (Ed25519, the signature over the body's
exact bytes), published on ``lgsc/v1/{site}/{device}/cmd`` and the result awaited on
``.../cmd/result``.  Written from the contract, independently of the daemon's code.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SHANGHAI = timezone(timedelta(hours=8))
LIFETIME = timedelta(minutes=2)


def signed_command(key_pem: bytes, kid: str, device: str, name: str, args: dict[str, Any]) -> bytes:
    """The envelope {body, kid, sig} of command ``name`` for ``device`` (site/device)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the admin key is not an Ed25519 private key")
    now = datetime.now(SHANGHAI).replace(microsecond=0)
    body = json.dumps(
        {
            "id": f"sim-{uuid.uuid4().hex[:12]}",
            "name": name,
            "device": device,
            "issued_at": now.isoformat(),
            "expires_at": (now + LIFETIME).isoformat(),
            "issuer": "hall-sim",
            "args": args,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    sig = base64.b64encode(key.sign(body.encode())).decode()
    return json.dumps({"body": body, "kid": kid, "sig": sig}).encode()


def send(  # noqa: PLR0917 (the broker, the device and the command: each is needed)
    host: str, port: int, site: str, device: str, key_path: Path, kid: str, name: str,
    args: dict[str, Any], timeout_s: float = 10.0,
) -> dict[str, Any]:  # fmt: skip
    """Send command ``name`` and return its result payload (``ok``, ``result`` or ``error``)."""
    envelope = signed_command(key_path.read_bytes(), kid, f"{site}/{device}", name, args)
    command_id = json.loads(json.loads(envelope)["body"])["id"]
    base = f"lgsc/v1/{site}/{device}/cmd"
    answered = threading.Event()
    result: dict[str, Any] = {}

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(payload, dict) and payload.get("id") == command_id:
            result.update(payload)
            answered.set()

    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hall-sim-cmd-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(host, port)
    client.loop_start()
    try:
        client.subscribe(f"{base}/result", qos=1)
        if not subscribed.wait(timeout_s):
            raise TimeoutError(f"the broker at {host}:{port} did not confirm the subscription")
        client.publish(base, envelope, qos=1)
        if not answered.wait(timeout_s):
            raise TimeoutError(f"no result for {name} within {timeout_s:.0f} s (is the daemon online?)")
    finally:
        client.loop_stop()
        client.disconnect()
    return result
