"""Contract check for the whole test session: every message the daemon publishes is recorded
and validated against docs/schemas/.

A session-scoped, autouse fixture subscribes to ``lgsc/#`` on the session broker (the
``broker`` fixture), so whatever any test makes the controller publish there lands here.
At the end of the session every edge -> platform message is checked against its JSON Schema,
its topic (event kind = the type's first word, device = the topic's) and its flags (state
retained, events QoS 1 and not retained, telemetry QoS 0); any violation fails the session
at teardown with the list of offending messages.

Registered by ``tests/conftest.py`` (``from contract_recorder import contract_recorder``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"
_EDGE_TOPIC = re.compile(
    r"^lgsc/v1/(?P<site>[a-z0-9-]{1,32})/(?P<device>[a-z0-9-]{1,32})/"
    r"(?P<what>state|telemetry|cmd/result|events/(?P<kind>[a-z]+))$"
)
_SCHEMA_FOR = {"state": "state", "telemetry": "telemetry", "cmd/result": "result", "events": "event"}


CONTRACT = SCHEMAS.parent / "contract.md"
_JSON_BLOCK = re.compile(r"^[ \t]*```json\n(.*?)\n[ \t]*```", re.M | re.S)
_KIND_OF_SCHEMA = {
    "lgsc.event/1": "event",
    "lgsc.state/1": "state",
    "lgsc.telemetry/1": "telemetry",
    "lgsc.result/1": "result",
    "lgsc.jobs/1": "jobs",
    "lgsc.notices/1": "notices",
    "lgsc.cards/1": "cards",
}


def contract_examples() -> dict[str, dict[str, Any]]:
    """The first example of each payload kind in docs/contract.md, keyed by its schema's file name.

    A signed envelope (body, kid, sig) is a ``cmd`` and its body a ``cmd-body``.
    """
    found: dict[str, dict[str, Any]] = {}
    for block in _JSON_BLOCK.findall(CONTRACT.read_text(encoding="utf-8")):
        doc = json.loads(block)
        if {"body", "kid", "sig"} <= doc.keys():
            found.setdefault("cmd", doc)
            found.setdefault("cmd-body", json.loads(doc["body"]))
        else:
            found.setdefault(_KIND_OF_SCHEMA[doc["schema"]], doc)
    return found


def validators() -> dict[str, jsonschema.Draft202012Validator]:
    found = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        found[path.stem] = jsonschema.Draft202012Validator(schema)
    return found


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def problems_with(message: Seen, checkers: dict[str, jsonschema.Draft202012Validator]) -> list[str]:
    """Why one edge -> platform message breaks the contract ([] when it does not)."""
    match = _EDGE_TOPIC.match(message.topic)
    if match is None or not message.payload:
        return []  # not published by a controller, or a cleared retained message
    what = "events" if match["kind"] else match["what"]
    try:
        body = json.loads(message.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return [f"{message.topic}: not UTF-8 JSON"]
    found = [
        f"{message.topic}: {error.json_path}: {error.message}"
        for error in checkers[_SCHEMA_FOR[what]].iter_errors(body)
    ]
    found += _topic_problems(message, what, match, body)
    return found


def _topic_problems(message: Seen, what: str, match: re.Match[str], body: Any) -> list[str]:
    found = []
    if what == "events" and isinstance(body, dict):
        if str(body.get("type", "")).split(".", 1)[0] != match["kind"]:
            found.append(f"{message.topic}: event type {body.get('type')!r} on the wrong kind topic")
        if body.get("device") != f"{match['site']}/{match['device']}":
            found.append(f"{message.topic}: device {body.get('device')!r} is not the topic's")
    if what == "state" and not message.retain:
        found.append(f"{message.topic}: state not retained")
    if what in ("events", "state", "cmd/result") and (
        message.qos != 1 or (what != "state" and message.retain)
    ):
        found.append(f"{message.topic}: must be QoS 1{'' if what == 'state' else ', not retained'}")
    if what == "telemetry" and message.qos != 0:
        found.append(f"{message.topic}: telemetry must be QoS 0")
    return found


class Recorder:
    def __init__(self, port: int) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="contract-recorder", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("contract recorder could not subscribe")

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        # retainAsPublished: see the retain flag as the controller set it.
        client.subscribe("lgsc/#", options=SubscribeOptions(qos=1, retainAsPublished=True))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.append(Seen(message.topic, bytes(message.payload), message.qos, bool(message.retain)))

    def messages(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until what was published before now has arrived (a marker comes back after it)."""
        marker = f"lgsc/_recorder/{len(self.seen)}"
        self.client.publish(marker, b"", qos=1)
        done = threading.Event()
        while not done.wait(0.01) and timeout > 0:
            timeout -= 0.01
            with self._lock:
                if any(m.topic == marker for m in self.seen):
                    done.set()

    def close(self) -> None:
        self.settle()
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="session", autouse=True)
def contract_recorder(broker: Any) -> Iterator[Recorder]:
    recorder = Recorder(broker.port)
    yield recorder
    recorder.close()
    checkers = validators()
    problems = [p for message in recorder.messages() for p in problems_with(message, checkers)]
    checked = sum(1 for m in recorder.messages() if _EDGE_TOPIC.match(m.topic) and m.payload)
    assert not problems, f"{len(problems)} of {checked} published messages break the contract:\n" + "\n".join(
        problems[:50]
    )
