"""``hall-admin``: bureau IT's tool for signed remote commands and the fleet view.

    hall-admin keygen --kid it-2026a
    hall-admin send qinshui/hall-01 status
    hall-admin send qinshui/hall-01 display.message --arg text=今日下午停电 --arg seconds=3600
    hall-admin status [qinshui]
    hall-admin snapshot qinshui/hall-01 -o screen.png
    hall-admin events qinshui/hall-01 --follow

Broker settings and the signing key come from ``~/.config/hall-admin.toml``
(or ``--config FILE``); flags override the file.  See docs/operator.md.

Exit codes (scripts may rely on them):
    0 ok
    1 the command ran on the device and failed (ok: false)
    2 usage error (bad flags or arguments)
    3 refused by the device (bad signature, expired, unknown command, ...)
    4 timed out: no result within --timeout
    5 broker unreachable (connection refused, TLS or login failed)
    6 local problem (key file, config file, output file)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import secrets
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.commands import REFUSAL_REASONS
from edge.link.connection import set_nodelay
from edge.schema import NAME_RE, secret_file_problem
from edge.ulid import new_ulid

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_TIMEOUT = 4
EXIT_UNREACHABLE = 5
EXIT_LOCAL = 6

DEFAULT_CONFIG = "~/.config/hall-admin.toml"


class AdminError(Exception):
    """A failure with the exit code it maps to."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---- settings -------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    host: str = "localhost"
    port: int = 8883
    tls: bool = True
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""
    protocol: str = "mqttv5"


@dataclass(frozen=True)
class Signing:
    key_file: str = ""
    kid: str = ""
    issuer: str = ""


@dataclass(frozen=True)
class AdminSettings:
    broker: Broker = field(default_factory=Broker)
    signing: Signing = field(default_factory=Signing)
    timeout_s: float = 10.0
    lifetime_s: float = 300.0


def load_settings(path: str | None, args: argparse.Namespace) -> AdminSettings:
    """The config file (when there is one) with the command line's flags over it."""
    settings = AdminSettings()
    file = Path(os.path.expanduser(path or DEFAULT_CONFIG))
    if file.exists():
        try:
            doc = tomllib.loads(file.read_text(encoding="utf-8"))
            settings = AdminSettings(
                broker=Broker(**doc.get("broker", {})),
                signing=Signing(**doc.get("signing", {})),
                **doc.get("defaults", {}),
            )
        except (tomllib.TOMLDecodeError, TypeError, OSError, UnicodeDecodeError) as exc:
            raise AdminError(EXIT_LOCAL, f"{file}: {exc}") from None
    elif path:
        raise AdminError(EXIT_LOCAL, f"{file}: no such config file")
    return _with_flags(settings, args)


def _with_flags(settings: AdminSettings, args: argparse.Namespace) -> AdminSettings:
    broker_flags = {
        k: getattr(args, k, None)
        for k in ("host", "port", "tls", "ca_file", "cert_file", "username", "password_file", "protocol")
    }
    if getattr(args, "client_key", None):
        broker_flags["key_file"] = args.client_key
    signing_flags = {"key_file": getattr(args, "key", None), "kid": args.kid, "issuer": args.issuer}
    broker = replace(settings.broker, **{k: v for k, v in broker_flags.items() if v is not None})
    signing = replace(settings.signing, **{k: v for k, v in signing_flags.items() if v is not None})
    timeout = args.timeout if args.timeout is not None else settings.timeout_s
    return replace(settings, broker=broker, signing=signing, timeout_s=timeout)


# ---- signing --------------------------------------------------------------------


def generate_key(path: Path) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600) and return its public key, base64."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL: never overwrite a key that may already be configured on devices.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    return public_key_b64(key)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: str) -> Ed25519PrivateKey:
    expanded = os.path.expanduser(path)
    problem = secret_file_problem(expanded)
    if problem:
        raise AdminError(EXIT_LOCAL, f"signing key {expanded} {problem}")
    try:
        key = serialization.load_pem_private_key(Path(expanded).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise AdminError(EXIT_LOCAL, f"signing key {expanded}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AdminError(EXIT_LOCAL, f"signing key {expanded} is not an Ed25519 key")
    return key


def command_body(
    device: str,
    name: str,
    args: dict[str, Any],
    *,
    issuer: str,
    lifetime_s: float,
    now: datetime | None = None,
) -> str:
    """The body text to sign: a fresh id, this machine's time with its offset."""
    issued = (now or datetime.now(UTC)).astimezone().replace(microsecond=0)
    body = {
        "id": "c-" + new_ulid(),
        "name": name,
        "device": device,
        "issued_at": issued.isoformat(),
        "expires_at": (issued + timedelta(seconds=lifetime_s)).isoformat(),
        "issuer": issuer,
        "args": args,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def sign(body_text: str, key: Ed25519PrivateKey, kid: str) -> bytes:
    """The envelope: the signature covers exactly the UTF-8 bytes of ``body_text``."""
    signature = base64.b64encode(key.sign(body_text.encode("utf-8"))).decode()
    envelope = {"body": body_text, "kid": kid, "sig": signature}
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8")


def parse_arg(text: str) -> tuple[str, Any]:
    """k=v; v is JSON when it parses as JSON (90, true, {"a": 1}, "007"), else a plain string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise AdminError(EXIT_USAGE, f"--arg {text!r}: expected key=value")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def split_device(text: str) -> tuple[str, str]:
    site, _, device = text.partition("/")
    if not (NAME_RE.fullmatch(site) and NAME_RE.fullmatch(device)):
        raise AdminError(EXIT_USAGE, f"{text!r}: expected SITE/DEVICE, e.g. qinshui/hall-01")
    return site, device


# ---- MQTT -----------------------------------------------------------------------


class Session:
    """One short-lived MQTT client with a queue of what arrives on its subscriptions."""

    def __init__(self, broker: Broker, timeout_s: float = 5.0) -> None:
        self.broker = broker
        self.v5 = broker.protocol == "mqttv5"
        self.client_id = f"hall-admin-{secrets.token_hex(6)}"
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
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
        client.on_subscribe = lambda *_a: self._acked.set()
        client.on_message = lambda _c, _u, message: self.messages.put(message)
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._failure = str(reason)
        set_nodelay(client)
        self._connected.set()

    def _connect(self, timeout_s: float) -> None:
        where = f"{self.broker.host}:{self.broker.port}"
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise AdminError(EXIT_UNREACHABLE, f"broker {where} unreachable: {exc}") from None
        self.client.loop_start()
        if not self._connected.wait(timeout_s) or self._failure:
            self.close()
            raise AdminError(
                EXIT_UNREACHABLE, f"broker {where} did not accept us: {self._failure or 'timeout'}"
            )

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


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]  # the lgsc.result/1 payload
    seconds: float

    @property
    def exit_code(self) -> int:
        if self.result.get("ok") is True:
            return EXIT_OK
        code = (self.result.get("error") or {}).get("code")
        return EXIT_REFUSED if code in REFUSAL_REASONS else EXIT_FAILED


def send(
    session: Session,
    target: str,
    name: str,
    *,
    args: dict[str, Any],
    settings: AdminSettings,
    key: Ed25519PrivateKey,
) -> Outcome:
    """Sign, publish and wait for the result (on the response topic or on cmd/result)."""
    site, device = split_device(target)
    body_text = command_body(
        f"{site}/{device}", name, args, issuer=settings.signing.issuer, lifetime_s=settings.lifetime_s
    )
    command_id = json.loads(body_text)["id"]
    base = f"lgsc/v1/{site}/{device}"
    response_topic = f"hall-admin/{session.client_id}/result"
    session.subscribe(f"{base}/cmd/result")
    properties = None
    if session.v5:
        session.subscribe(response_topic)
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = response_topic
        properties.CorrelationData = command_id.encode()
    started = time.monotonic()
    session.publish(f"{base}/cmd", sign(body_text, key, settings.signing.kid), properties)
    return Outcome(
        _await_result(session, command_id, started + settings.timeout_s), time.monotonic() - started
    )


def _await_result(session: Session, command_id: str, deadline: float) -> dict[str, Any]:
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = session.messages.get(timeout=left)
        except queue.Empty:
            break
        try:
            result = json.loads(message.payload)
        except ValueError:
            continue
        if isinstance(result, dict) and result.get("id") == command_id:
            return result
    raise AdminError(EXIT_TIMEOUT, f"no result for {command_id} in time (is the device online?)")


# ---- printing -------------------------------------------------------------------

LONG_TEXT = 200


def readable(value: Any, indent: int = 0) -> list[str]:
    """Nested results as indented 'key: value' lines; long strings (images) shortened."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines += [f"{pad}{key}:", *readable(item, indent + 1)]
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                lines += [f"{pad}-", *readable(item, indent + 1)]
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [pad + _scalar(value)]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value if len(value) <= LONG_TEXT else f"{value[:60]}... ({len(value)} characters)"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, ensure_ascii=False)


def fleet_rows(states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for device, state in sorted(states.items()):
        components = state.get("components") or {}
        faults = {k: v for k, v in components.items() if v != "ok"}
        rows.append(
            {
                "device": device,
                "online": bool(state.get("online")),
                "version": state.get("version", "-"),
                "components": components,
                "faults": faults,
                "last_seen": _last_seen(state),
            }
        )
    return rows


def _last_seen(state: dict[str, Any]) -> str:
    if state.get("online"):
        return "now (up since " + str(state.get("started_at", "?")) + ")"
    for key in ("last_seen", "at", "stopped_at", "started_at"):
        if state.get(key):
            return str(state[key])
    return "unknown"


def fleet_table(rows: list[dict[str, Any]]) -> str:
    header = ("DEVICE", "ONLINE", "VERSION", "COMPONENTS", "LAST SEEN")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        if row["faults"]:
            components = " ".join(f"{k}={v}" for k, v in sorted(row["faults"].items()))
        else:
            components = f"all ok ({len(row['components'])})" if row["components"] else "-"
        online = "yes" if row["online"] else "NO"
        lines.append((row["device"], online, row["version"], components, row["last_seen"]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    online_count = sum(1 for r in rows if r["online"])
    text.append(f"{len(rows)} controller(s), {online_count} online")
    return "\n".join(text)


def collect_states(session: Session, site: str | None, wait_s: float) -> dict[str, dict[str, Any]]:
    """Retained state messages arrive right after the SUBACK; stop once they stop coming."""
    session.subscribe(f"lgsc/v1/{site or '+'}/+/state")
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


def find_png(result: dict[str, Any]) -> bytes | None:
    """The PNG in a display.snapshot result (``png_base64``), wherever the display put it."""
    candidates = [result.get("png_base64"), *result.values()]
    for value in candidates:
        if isinstance(value, str) and len(value) > 16:
            try:
                data = base64.b64decode(value, validate=True)
            except ValueError:
                continue
            if data.startswith(b"\x89PNG\r\n\x1a\n"):
                return data
    return None


# ---- the command line ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "action", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.action(args)
    except AdminError as exc:
        print(f"hall-admin: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help=f"settings file (default {DEFAULT_CONFIG})")
    common.add_argument("--host", help="broker host")
    common.add_argument("--port", type=int, help="broker port")
    common.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None, help="TLS on/off")
    common.add_argument("--ca-file", dest="ca_file")
    common.add_argument("--cert-file", dest="cert_file", help="client certificate")
    common.add_argument("--client-key", dest="client_key", help="client certificate's private key")
    common.add_argument("--username")
    common.add_argument("--password-file", dest="password_file")
    common.add_argument("--protocol", choices=("mqttv5", "mqttv311"))
    common.add_argument("--key", help="signing key file (from keygen)")
    common.add_argument("--kid", help="the signing key's id, as configured on the devices")
    common.add_argument("--issuer", help="who sends the command (shown in the audit trail)")
    common.add_argument("--timeout", type=float, help="seconds to wait for a result (default 10)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    parser = argparse.ArgumentParser(
        prog="hall-admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")

    keygen = sub.add_parser("keygen", parents=[common], help="make a signing key pair")
    keygen.add_argument("-o", "--out", help="private key file (default ~/.config/hall-admin/KID.key)")
    keygen.set_defaults(action=cmd_keygen)

    send_p = sub.add_parser("send", parents=[common], help="send a signed command and print its result")
    send_p.add_argument("target", metavar="SITE/DEVICE")
    send_p.add_argument("name", metavar="NAME", help="e.g. status, display.message, config.set")
    send_p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    send_p.set_defaults(action=cmd_send)

    status = sub.add_parser("status", parents=[common], help="fleet view from the retained state topics")
    status.add_argument("site", nargs="?", help="one market only")
    status.add_argument("--wait", type=float, default=3.0, help="longest wait for retained states")
    status.set_defaults(action=cmd_status)

    snapshot = sub.add_parser("snapshot", parents=[common], help="save what the screen shows as PNG")
    snapshot.add_argument("target", metavar="SITE/DEVICE")
    snapshot.add_argument("-o", "--out", required=True, help="PNG file to write")
    snapshot.set_defaults(action=cmd_snapshot)

    events = sub.add_parser("events", parents=[common], help="print a controller's events as they come")
    events.add_argument("target", metavar="SITE/DEVICE")
    events.add_argument("--follow", action="store_true", help="keep printing until Ctrl-C")
    events.add_argument(
        "--wait",
        type=float,
        default=5.0,
        help="without --follow: listen this many seconds (default 5); only events sent meanwhile show",
    )
    events.set_defaults(action=cmd_events)
    return parser


def cmd_keygen(args: argparse.Namespace) -> int:
    kid = args.kid or f"it-{datetime.now().strftime('%Y%m%d')}"
    if not NAME_RE.fullmatch(kid):
        raise AdminError(EXIT_USAGE, f"--kid {kid!r}: use 1-32 characters from a-z, 0-9 and -")
    out = Path(os.path.expanduser(args.out or f"~/.config/hall-admin/{kid}.key"))
    try:
        public = generate_key(out)
    except FileExistsError:
        raise AdminError(EXIT_LOCAL, f"{out} exists; keygen never overwrites a key") from None
    except OSError as exc:
        raise AdminError(EXIT_LOCAL, f"{out}: {exc.strerror}") from None
    if args.json:
        print(json.dumps({"kid": kid, "public_key": public, "private_key_file": str(out)}))
        return EXIT_OK
    print(f"private key: {out} (mode 0600; keep it on this machine only)")
    print(f"public key:  {public}")
    print("add to [commands] in each controller's /etc/hall-edge/hall-edge.toml:")
    print(f'public_keys = {{ {kid} = "{public}" }}')
    print("or, on a running controller, signed with a key it already trusts (a rotation):")
    print(f"hall-admin send SITE/DEVICE keys.add --arg kid={kid} --arg public_key={public}")
    print("and to [signing] in ~/.config/hall-admin.toml:")
    print(f'key_file = "{out}"\nkid = "{kid}"')
    return EXIT_OK


def _signing_ready(settings: AdminSettings) -> Ed25519PrivateKey:
    if not (settings.signing.key_file and settings.signing.kid and settings.signing.issuer):
        raise AdminError(
            EXIT_LOCAL, "signing needs key_file, kid and issuer (config [signing] or --key/--kid/--issuer)"
        )
    return load_private_key(settings.signing.key_file)


def run_send(args: argparse.Namespace, name: str, command_args: dict[str, Any]) -> Outcome:
    settings = load_settings(args.config, args)
    key = _signing_ready(settings)
    session = Session(settings.broker, timeout_s=min(settings.timeout_s, 10.0))
    try:
        return send(session, args.target, name, args=command_args, settings=settings, key=key)
    finally:
        session.close()


def cmd_send(args: argparse.Namespace) -> int:
    command_args = dict(parse_arg(a) for a in args.arg)
    outcome = run_send(args, args.name, command_args)
    if args.json:
        print(json.dumps(outcome.result, ensure_ascii=False))
        return outcome.exit_code
    result = outcome.result
    millis = outcome.seconds * 1000
    if result.get("ok"):
        print(f"ok  {args.name}  {args.target}  id {result.get('id')}  {millis:.0f} ms")
        print("\n".join(readable(result.get("result") or {}, 1)))
    else:
        error = result.get("error") or {}
        word = "refused" if outcome.exit_code == EXIT_REFUSED else "failed"
        print(f"{word}  {args.name}  {args.target}  id {result.get('id')}  {millis:.0f} ms", file=sys.stderr)
        print(f"  {error.get('code')}: {error.get('message')}", file=sys.stderr)
    return outcome.exit_code


def cmd_status(args: argparse.Namespace) -> int:
    if args.site and not NAME_RE.fullmatch(args.site):
        raise AdminError(EXIT_USAGE, f"{args.site!r} is not a site name")
    settings = load_settings(args.config, args)
    session = Session(settings.broker, timeout_s=min(settings.timeout_s, 10.0))
    try:
        rows = fleet_rows(collect_states(session, args.site, args.wait))
    finally:
        session.close()
    print(json.dumps(rows, ensure_ascii=False) if args.json else fleet_table(rows))
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    outcome = run_send(args, "display.snapshot", {})
    if outcome.exit_code != EXIT_OK:
        error = outcome.result.get("error") or {}
        print(f"hall-admin: snapshot {error.get('code')}: {error.get('message')}", file=sys.stderr)
        return outcome.exit_code
    png = find_png(outcome.result.get("result") or {})
    if png is None:
        raise AdminError(EXIT_FAILED, "the result holds no PNG image")
    try:
        Path(args.out).write_bytes(png)
    except OSError as exc:
        raise AdminError(EXIT_LOCAL, f"{args.out}: {exc.strerror}") from None
    print(f"{args.out}: {len(png)} bytes")
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    site, device = split_device(args.target)
    settings = load_settings(args.config, args)
    session = Session(settings.broker, timeout_s=min(settings.timeout_s, 10.0))
    try:
        session.subscribe(f"lgsc/v1/{site}/{device}/events/#")
        deadline = None if args.follow else time.monotonic() + args.wait
        while deadline is None or time.monotonic() < deadline:
            left = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                message = session.messages.get(timeout=left)
            except queue.Empty:
                continue
            print(_event_line(message.payload, args.json), flush=True)
    finally:
        session.close()
    return EXIT_OK


def _event_line(payload: bytes | bytearray, as_json: bool) -> str:
    try:
        event = json.loads(payload)
    except ValueError:
        return f"(not JSON: {len(payload)} bytes)"
    if as_json or not isinstance(event, dict):
        return json.dumps(event, ensure_ascii=False)
    data = json.dumps(event.get("data", {}), ensure_ascii=False, separators=(",", ":"))
    return f"{event.get('at', '?')}  #{event.get('seq', '?')}  {event.get('type', '?')}  {data}"


if __name__ == "__main__":
    raise SystemExit(main())
