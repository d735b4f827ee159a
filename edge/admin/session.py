"""hall-admin's MQTT side: one short-lived session, sending a signed command, reading states."""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.admin.settings import (
    DEFAULT_CONFIG,
    EXIT_FAILED,
    EXIT_LOCAL,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    AdminError,
    AdminSettings,
    Broker,
)
from edge.protocol import NAME_RE, REFUSAL_REASONS, Topics, command_body, set_nodelay, sign, state_topics
from edge.records import record

WHERE_SET = f"--host/--port, or [broker] in {DEFAULT_CONFIG}"
CLOSED_EARLY = "the broker closed the connection before answering"
LOGIN_HINT = f"; check --username/--password-file or the client certificate ([broker] in {DEFAULT_CONFIG})"
TLS_EXPECTED_HINT = "; if the broker speaks TLS on this port, leave out --no-tls (tls = true in [broker])"


def unreachable_message(broker: Broker, exc: Exception) -> str:
    """Why the connection failed, and what to try: the usual causes are a wrong port and TLS."""
    where = f"{broker.host}:{broker.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"broker {where}: its certificate is not trusted ({exc.verify_message}): give the CA "
            "that signed it with --ca-file FILE (ca_file in [broker])"
        )
    if broker.tls and isinstance(exc, ConnectionResetError | ssl.SSLError | ConnectionAbortedError):
        return (
            f"broker {where} closed the connection during the TLS handshake ({exc}): it may not speak "
            "TLS on this port; for a plain broker add --no-tls (tls = false in [broker]), "
            "or give its TLS port (usually 8883)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"broker {where} unreachable: nothing listens on port {broker.port} there; check {WHERE_SET}"
    if isinstance(exc, socket.gaierror):
        return f"broker {where} unreachable: no host named {broker.host!r}; check {WHERE_SET}"
    return f"broker {where} unreachable: {exc}; check {WHERE_SET}"


class Session:
    """One short-lived MQTT client with a queue of what arrives on its subscriptions."""

    def __init__(self, broker: Broker, timeout_s: float = 5.0) -> None:
        self.broker = broker
        self.v5 = broker.protocol == "mqttv5"
        self.client_id = f"hall-admin-{secrets.token_hex(6)}"
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.set_aside: list[mqtt.MQTTMessage] = []  # read while waiting for something else
        self._connected = threading.Event()
        self._acked = threading.Event()
        self._failure = ""
        try:
            self.client = self._build()
        except OSError as exc:  # a missing CA, certificate or password file
            raise AdminError(EXIT_LOCAL, f"broker settings: {exc}") from None
        self._connect(timeout_s)

    def _build(self) -> mqtt.Client:
        protocol = mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol)
        if self.broker.tls:
            client.tls_set(
                ca_certs=self.broker.ca_file or None,
                certfile=self.broker.cert_file or None,
                keyfile=self.broker.key_file or None,
            )
        if self.broker.username:
            password = Path(os.path.expanduser(self.broker.password_file)).read_text().strip()
            client.username_pw_set(self.broker.username, password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = lambda *_a: self._acked.set()
        client.on_message = lambda _c, _u, message: self.messages.put(message)
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._failure = str(reason)
        set_nodelay(client.socket())
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not self._connected.is_set():  # closed before any CONNACK: say so now, not at the timeout
            self._failure = CLOSED_EARLY
            self._connected.set()

    def _connect(self, timeout_s: float) -> None:
        where = f"{self.broker.host}:{self.broker.port}"
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise AdminError(EXIT_UNREACHABLE, unreachable_message(self.broker, exc)) from None
        self.client.loop_start()
        if not self._connected.wait(timeout_s) or self._failure:
            self.close()
            why = self._failure or f"no answer in {timeout_s:g} s"
            if self._failure in ("", CLOSED_EARLY):  # no MQTT answer at all: perhaps TLS expected
                hint = "" if self.broker.tls else TLS_EXPECTED_HINT
            else:  # the broker answered and refused: the login
                hint = LOGIN_HINT
            raise AdminError(EXIT_UNREACHABLE, f"broker {where} did not accept us: {why}{hint}")

    def subscribe(self, topic: str, timeout_s: float = 5.0) -> None:
        self._acked.clear()
        self.client.subscribe(topic, qos=1)
        if not self._acked.wait(timeout_s):
            raise AdminError(EXIT_UNREACHABLE, f"broker did not acknowledge the subscription to {topic}")

    def publish(self, topic: str, payload: bytes, properties: Properties | None = None) -> None:
        info = self.client.publish(topic, payload, qos=1, properties=properties)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@record
class Outcome:
    result: dict[str, Any]  # the lgsc.result/1 payload
    seconds: float

    @property
    def exit_code(self) -> int:
        if self.result.get("ok") is True:
            return EXIT_OK
        code = (self.result.get("error") or {}).get("code")
        return EXIT_REFUSED if code in REFUSAL_REASONS else EXIT_FAILED


def split_device(text: str) -> tuple[str, str]:
    site, _, device = text.partition("/")
    if not (NAME_RE.fullmatch(site) and NAME_RE.fullmatch(device)):
        raise AdminError(EXIT_USAGE, f"{text!r}: expected SITE/DEVICE, e.g. qinshui/hall-01")
    return site, device


def send(
    session: Session,
    target: str,
    name: str,
    *,
    args: dict[str, Any],
    settings: AdminSettings,
    key: Ed25519PrivateKey,
) -> Outcome:
    """Sign, publish and wait for the result (on the response topic or on cmd/result).

    With MQTT 5 the body names this session's response topic, inside the signature: the
    device answers there only because the signed body asks it to.
    """
    site, device = split_device(target)
    topics = Topics(site, device)
    response_topic = f"hall-admin/{session.client_id}/result" if session.v5 else None
    body_text = command_body(
        f"{site}/{device}",
        name,
        args,
        issuer=settings.signing.issuer,
        lifetime_s=settings.lifetime_s,
        response_topic=response_topic,
    )
    command_id = json.loads(body_text)["id"]
    session.subscribe(topics.result)
    properties = None
    if response_topic is not None:
        session.subscribe(response_topic)
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = response_topic
        properties.CorrelationData = command_id.encode()
    started = time.monotonic()
    session.publish(topics.cmd, sign(body_text, key, settings.signing.kid), properties)
    return Outcome(
        _await_result(session, command_id, started + settings.timeout_s), time.monotonic() - started
    )


def _next_json(session: Session, deadline: float, set_aside_first: bool = False) -> tuple[Any, Any] | None:
    """(message, its JSON) of the next JSON message before ``deadline``, or None then;
    ``set_aside_first``: the messages another wait put aside come first."""
    while (left := deadline - time.monotonic()) > 0:
        if set_aside_first and session.set_aside:
            message = session.set_aside.pop(0)
        else:
            try:
                message = session.messages.get(timeout=left)
            except queue.Empty:
                return None
        try:
            return message, json.loads(message.payload)
        except ValueError:
            continue
    return None


def _await_result(session: Session, command_id: str, deadline: float) -> dict[str, Any]:
    while (got := _next_json(session, deadline)) is not None:
        message, result = got
        if isinstance(result, dict) and result.get("id") == command_id and "ok" in result:
            return result
        session.set_aside.append(message)  # perhaps an event that await_outcome wants
    raise AdminError(EXIT_TIMEOUT, f"no result for {command_id} in time (is the device online?)")


def collect_states(session: Session, site: str | None, wait_s: float) -> dict[str, dict[str, Any]]:
    """Retained state messages arrive right after the SUBACK; stop once they stop coming."""
    session.subscribe(state_topics(site))
    states: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + wait_s
    quiet_s = 0.3
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = session.messages.get(timeout=min(left, quiet_s))
        except queue.Empty:
            break
        parts = message.topic.split("/")
        try:
            state = json.loads(message.payload) if message.payload else None
        except ValueError:
            state = None
        if isinstance(state, dict) and len(parts) == 5:
            states[f"{parts[2]}/{parts[3]}"] = state
    return states


# ---- long-running commands: the outcome after the restart ------------------------------------

# The commands whose result only says "accepted, restarting": the outcome comes later as an event.
# (name: (event kind, the event types that end it))
LONG_RUNNING: dict[str, tuple[str, list[str]]] = {
    "update": ("update", ["update.confirmed", "update.failed", "update.refused"]),
    "config.set": ("audit", ["audit.config_changed"]),
}


@record
class Final:
    """How a long-running command ended: ``confirmed``, ``rolled back``, ``refused`` (or timed out)."""

    word: str
    event: dict[str, Any]
    seconds: float

    @property
    def exit_code(self) -> int:
        return {"confirmed": EXIT_OK, "refused": EXIT_REFUSED}.get(self.word, EXIT_FAILED)

    @property
    def data(self) -> dict[str, Any]:
        data = self.event.get("data")
        return data if isinstance(data, dict) else {}


def waits_for_outcome(name: str, result: dict[str, Any]) -> bool:
    """Whether an ok result of ``name`` is only the start (a restart follows)."""
    if name not in LONG_RUNNING or result.get("ok") is not True:
        return False
    answer = result.get("result") or {}
    return bool(answer.get("accepted") or answer.get("restarting"))


def watch_outcome(session: Session, target: str, name: str) -> None:
    """Subscribe to the events that end ``name`` before sending it, so none is missed."""
    site, device = split_device(target)
    session.subscribe(Topics(site, device).event(LONG_RUNNING[name][0]))


def await_outcome(session: Session, command_id: str, name: str, deadline: float) -> Final:
    """The event that ends command ``command_id`` (after ``watch_outcome``); AdminError at the deadline."""
    found = await_outcomes(session, {command_id}, name, deadline)
    if command_id in found:
        return found[command_id]
    raise AdminError(
        EXIT_TIMEOUT,
        f"no outcome for {command_id} in time: the controller may still be on probation, or offline"
        " (hall-admin events SITE/DEVICE shows what it reports)",
    )


def await_outcomes(session: Session, command_ids: set[str], name: str, deadline: float) -> dict[str, Final]:
    """The outcomes of several commands of one kind, as they come; those found by the deadline."""
    started = time.monotonic()
    _kind, types = LONG_RUNNING[name]
    found: dict[str, Final] = {}
    while len(found) < len(command_ids) and (got := _next_json(session, deadline, True)) is not None:
        _message, event = got
        if not isinstance(event, dict) or event.get("type") not in types:
            continue
        data = event.get("data") or {}
        if isinstance(data, dict) and data.get("id") in command_ids:
            word = _outcome_word(event["type"], data)
            found[data["id"]] = Final(word, event, time.monotonic() - started)
    return found


def _outcome_word(type_: str, data: dict[str, Any]) -> str:
    if type_ == "update.confirmed":
        return "confirmed"
    if type_ == "update.refused":
        return "refused"
    if type_ == "update.failed":
        return "rolled back" if data.get("reason") in ("unhealthy", "crashed") else "failed"
    return "rolled back" if data.get("rolled_back") else "confirmed"  # audit.config_changed
