"""A fake central platform: snapshots out (retained), events in, counted.

Written from the MQTT contract alone (it never imports ``edge``): it publishes
the jobs, notices and cards snapshots a hall controller subscribes to,
collects the controller's events, de-duplicates them by ``event_id`` and
reports gaps in ``seq``.  Cards are given with their raw UID and hashed here
with the site card key, as the platform does (HMAC-SHA256, first 16 bytes).
Snapshots are signed as the contract says: an envelope ``{"body", "kid",
"sig"}`` with an Ed25519 signature over the body's UTF-8 bytes, the body
naming the site.  The controller needs ``public_key_b64`` under
``snapshots.public_keys`` (kid ``signing_kid``).

    central = Central("127.0.0.1", broker.port, "qinshui", "hall-01", folder, card_key=b"...",
                      signing_key=seed_or_pem_path_or_key)  # None: a fresh key
    central.start()
    central.add_job(title="瓦工", headcount=3)
    central.publish_cards([{"uid": "0A1B2C3D4E", "worker": "W000123"}])
    ...
    central.report()  # {"received": ..., "duplicates": ..., "gaps": [...], "by_type": {...}}

``hall-sim central`` runs one on its own (see ``main``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import signal
import sys
import tempfile
import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HALL_ZONE = ZoneInfo("Asia/Shanghai")
SIGNING_KID = "platform"
_JSON: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":")}


def card_hash(key: bytes, uid: str) -> str:
    """The contract's card hash: HMAC-SHA256(site key, UID as uppercase hex), first 16 bytes, hex."""
    return hmac.new(key, uid.strip().upper().encode("ascii"), hashlib.sha256).hexdigest()[:32]


def load_signing_key(source: Ed25519PrivateKey | bytes | str | Path | None) -> Ed25519PrivateKey:
    """The platform's snapshot signing key: a key, a raw 32-byte seed, a PEM file (made, mode
    0600, when it does not exist yet) or None for a fresh one."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    if source is None:
        return Ed25519PrivateKey.generate()
    if isinstance(source, bytes):
        return Ed25519PrivateKey.from_private_bytes(source)
    path = Path(source)
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
        return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return loaded


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The raw 32-byte public key in base64, as the controller's configuration takes it."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def signed_envelope(key: Ed25519PrivateKey, kid: str, body: dict[str, Any]) -> bytes:
    """The contract's envelope: the body as JSON text, signed over its exact UTF-8 bytes."""
    text = json.dumps(body, **_JSON)
    sig = base64.b64encode(key.sign(text.encode("utf-8"))).decode("ascii")
    return json.dumps({"body": text, "kid": kid, "sig": sig}, **_JSON).encode()


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


# What a county's public day-labour market posts on a winter morning (wages as the bureau checks them).
SAMPLE_JOBS: list[dict[str, Any]] = [
    {
        "title": "瓦工",
        "headcount": 3,
        "wage": {"amount": 300, "unit": "day"},
        "location": "南山公园东侧工地",
        "employer": "恒达建筑",
        "contact": "13812345678",
    },
    {
        "title": "装卸工",
        "headcount": 5,
        "wage": {"amount": 200, "unit": "day"},
        "urgent": True,
        "location": "城北物流园3号库",
        "employer": "顺通物流",
        "contact": "13935561208",
    },
    {
        "title": "保洁员",
        "headcount": 2,
        "wage": {"amount": 130, "unit": "day"},
        "location": "县人民医院住院部",
        "employer": "康洁物业",
        "contact": "15034412976",
    },
    {
        "title": "钟点工",
        "headcount": 1,
        "wage": {"amount": 25, "unit": "hour"},
        "location": "滨河小区",
        "employer": "巧手家政",
        "contact": "18603567731",
    },
    {
        "title": "电工",
        "headcount": 2,
        "wage": {"amount": 320, "unit": "day"},
        "location": "经济开发区",
        "employer": "晋安电力安装",
        "contact": "13703568842",
    },
    {
        "title": "缝纫工",
        "headcount": 4,
        "wage": {"amount": 1.2, "unit": "piece"},
        "location": "东关服装加工厂",
        "employer": "锦绣制衣",
        "contact": "13994402215",
    },
    {
        "title": "大棚采摘",
        "headcount": 10,
        "wage": {"amount": 160, "unit": "day"},
        "location": "西坪村蔬菜基地",
        "employer": "西坪合作社",
        "contact": "15835610094",
    },
    {
        "title": "厨房帮工",
        "headcount": 1,
        "wage": {"amount": 18, "unit": "hour"},
        "location": "鼓楼街",
        "employer": "老街面馆",
        "contact": "13613560287",
    },
]


class Central:
    """One fake platform for one controller (``site``/``device``) on one broker."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        device: str,
        folder: str | Path | None = None,
        *,
        card_key: bytes | str | Path | None = None,
        key_id: str = "k2026",
        signing_key: Ed25519PrivateKey | bytes | str | Path | None = None,
        signing_kid: str = SIGNING_KID,
        sign: bool = True,
    ) -> None:
        self.host, self.port, self.site, self.device = host, port, site, device
        self.folder = Path(folder or tempfile.mkdtemp(prefix="hall-central-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.card_key = _read_key(card_key)
        self.key_id = key_id
        self.signing_key = load_signing_key(signing_key)
        self.signing_kid = signing_kid
        self.sign = sign  # False: bare documents, for a controller with snapshots.unsigned = "accept"
        self.base = f"lgsc/v1/{site}"
        self.jobs: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []
        self.cards: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []  # every state message, births and deaths
        self.telemetry: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.invalid: list[tuple[str, bytes]] = []  # messages that broke the contract
        self._events: dict[str, dict[str, Any]] = {}
        self._seqs: dict[str, set[int]] = {}  # by device, in its latest epoch
        self._epochs: dict[str, list[str]] = {}  # by device, in the order first seen
        self._duplicates = 0
        self._by_type: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._last_generated: datetime | None = None
        self._job_counter = 0
        self._remember(self.folder / "events.jsonl")  # a folder used again: what came before
        self._log = (self.folder / "events.jsonl").open("a", encoding="utf-8")
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"lgsc-central-{site}", protocol=mqtt.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        # paho annotates whole seconds but sleeps the value as given: a 50 ms first retry
        # keeps a broker restart short in the tests.
        self.client.reconnect_delay_set(0.05, 1.0)  # type: ignore[arg-type]
        self.connected = threading.Event()

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Central:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 86400  # events sent during a broker restart are kept
        self.client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise RuntimeError(f"central could not connect to {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._log.close()

    def __enter__(self) -> Central:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- snapshots out ---------------------------------------------------------------

    def add_job(self, **fields: Any) -> str:
        """Add one job (defaults for what is not given) and publish the jobs snapshot; its id."""
        now = datetime.now(HALL_ZONE)
        self._job_counter += 1
        job: dict[str, Any] = {
            "id": f"J{now:%Y%m%d}-{self._job_counter:04d}",
            "title": "瓦工",
            "headcount": 1,
            "wage": {"amount": 300, "unit": "day"},
            "location": "南山公园东侧工地",
            "employer": "恒达建筑",
            "contact": "13812345678",
            "posted_at": _stamp(now),
            "starts_at": _stamp(now + timedelta(hours=12)),
            "expires_at": _stamp(now + timedelta(days=1)),
            "urgent": False,
            "verified": True,
        }
        job.update(fields)
        self.publish_jobs([*self.jobs, job])
        return job["id"]

    def generate_jobs(self, count: int) -> list[str]:
        """``count`` jobs such as a county hall posts (SAMPLE_JOBS in turn): daily wages in 元/天,
        hourly in 元/时, piece rates only for piece work."""
        return [self.add_job(**SAMPLE_JOBS[n % len(SAMPLE_JOBS)]) for n in range(count)]

    def publish_jobs(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = list(jobs)
        self._publish_snapshot("jobs", {"jobs": self.jobs})

    def publish_notices(self, notices: list[dict[str, Any]]) -> None:
        self.notices = list(notices)
        self._publish_snapshot("notices", {"notices": self.notices})

    def publish_cards(self, cards: list[dict[str, Any]]) -> None:
        """Cards as {"uid": "0A1B2C3D4E", "worker": ..., ...} (hashed here) or already with "h"."""
        self.cards = [self._card(entry) for entry in cards]
        header = {"alg": "hmac-sha256", "key_id": self.key_id}
        self._publish_snapshot("cards", {"hash": header, "cards": self.cards})

    @property
    def public_key_b64(self) -> str:
        return public_key_b64(self.signing_key)

    def clear(self, kind: str) -> None:
        """There are none (jobs, notices or cards): a snapshot with an empty list (signed), or
        unsigned the contract's empty retained payload."""
        if not self.sign:
            self.publish_raw(f"{self.base}/{kind}", b"", retain=True)
        elif kind == "cards":
            self.publish_cards([])
        else:
            self._publish_snapshot(kind, {kind: []})

    def publish_raw(self, topic: str, payload: bytes, retain: bool = False, timeout: float = 5.0) -> None:
        """Any bytes on any topic (for bad-input trials)."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout)

    def _card(self, entry: dict[str, Any]) -> dict[str, Any]:
        card = {"role": "worker", "status": "active", "tools_max": 1, "approved": [], **entry}
        uid = card.pop("uid", None)
        if uid is not None:
            if self.card_key is None:
                raise ValueError("a card given by UID needs the site card key (card_key=...)")
            card["h"] = card_hash(self.card_key, uid)
        if "h" not in card:
            raise ValueError("a card needs a uid or its hash h")
        return card

    def _publish_snapshot(self, kind: str, fields: dict[str, Any]) -> None:
        body = {
            "schema": f"lgsc.{kind}/1",
            "site": self.site,
            "generated_at": _stamp(self._next_generated_at()),
            **fields,
        }
        if self.sign:
            payload = signed_envelope(self.signing_key, self.signing_kid, body)
        else:
            payload = json.dumps(body, **_JSON).encode()
        self.publish_raw(f"{self.base}/{kind}", payload, retain=True)

    def _next_generated_at(self) -> datetime:
        """Strictly increasing, so the edge never takes a new snapshot for an old one."""
        now = datetime.now(HALL_ZONE)
        if self._last_generated is not None and now <= self._last_generated:
            now = self._last_generated + timedelta(milliseconds=1)
        self._last_generated = now
        return now

    # -- events in --------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            return
        device = f"{self.base}/{self.device}"
        client.subscribe(
            [
                (f"{device}/events/#", 1),
                (f"{device}/state", 1),
                (f"{device}/telemetry", 0),
                (f"{device}/cmd/result", 1),
            ]
        )
        self.connected.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            with self._lock:
                self.invalid.append((message.topic, bytes(message.payload)))
            return
        suffix = message.topic.rsplit("/", 1)[-1]
        with self._lock:
            if "/events/" in message.topic:
                self._count_event(body)
            elif suffix == "state":
                self.states.append(body)
            elif suffix == "telemetry":
                self.telemetry.append(body)
            elif suffix == "result":
                self.results.append(body)

    def _remember(self, path: Path) -> None:
        """The events an earlier run logged count as received (gaps, duplicates), as the
        platform's own records would."""
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                body = json.loads(line)
            except ValueError:
                continue  # a line cut off when that run was killed
            if isinstance(body, dict) and "event_id" in body and body["event_id"] not in self._events:
                self._add_event(str(body["event_id"]), body)

    def _add_event(self, event_id: str, body: dict[str, Any]) -> None:
        self._events[event_id] = body
        self._note_seq(body)
        self._by_type[str(body.get("type", "?"))] += 1

    def _count_event(self, body: dict[str, Any]) -> None:
        event_id = str(body.get("event_id"))
        if event_id in self._events:
            self._duplicates += 1
            return
        self._add_event(event_id, body)
        self._log.write(json.dumps(body, **_JSON) + "\n")
        self._log.flush()

    def _note_seq(self, body: dict[str, Any]) -> None:
        # seq counts within one epoch (the controller's event store); a new epoch starts at 1.
        epoch = str(body.get("epoch", ""))
        device = str(body.get("device", "?"))
        epochs = self._epochs.setdefault(device, [])
        if not epochs or epochs[-1] != epoch:
            epochs.append(epoch)
            self._seqs[device] = set()
        seq = body.get("seq")
        if isinstance(seq, int):  # an event without one still counts as received, not as a gap
            self._seqs[device].add(seq)

    # -- reports --------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Unique events, in seq order."""
        with self._lock:
            return sorted(self._events.values(), key=lambda e: e.get("seq", 0))

    @property
    def online(self) -> bool | None:
        """What the controller's last state message said (None before any)."""
        with self._lock:
            return self.states[-1].get("online") if self.states else None

    def report(self) -> dict[str, Any]:
        with self._lock:
            seqs = self._seqs.get(f"{self.site}/{self.device}", set())
            return {
                "received": len(self._events),
                "duplicates": self._duplicates,
                "gaps": _gaps(seqs),
                "max_seq": max(seqs, default=0),
                "epochs": len(self._epochs.get(f"{self.site}/{self.device}", [])),
                "by_type": dict(self._by_type),
                "births": sum(1 for s in self.states if s.get("online")),
                "online": self.states[-1].get("online") if self.states else None,
                "telemetry": len(self.telemetry),
                "results": len(self.results),
            }


def _gaps(seqs: set[int]) -> list[list[int]]:
    """Missing seq ranges [first, last] between 1 and the highest seen."""
    gaps, expected = [], 1
    for seq in sorted(seqs):
        if seq > expected:
            gaps.append([expected, seq - 1])
        expected = max(expected, seq + 1)
    return gaps


def _read_key(card_key: bytes | str | Path | None) -> bytes | None:
    if card_key is None or isinstance(card_key, bytes):
        return card_key
    return Path(card_key).read_bytes().strip()


# ---- hall-sim central ------------------------------------------------------------------


CENTRAL_HELP = "Run a fake central platform until Ctrl-C, then print its report."


def main(argv: list[str] | None = None) -> int:
    """``hall-sim central``: see CENTRAL_HELP (a release's bytecode has no function docstrings)."""
    parser = argparse.ArgumentParser(prog="hall-sim central", description=CENTRAL_HELP)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--site", default="qinshui")
    parser.add_argument("--device", default="hall-01")
    parser.add_argument("--folder", help="where events.jsonl is written (default: a new temp folder)")
    parser.add_argument("--card-key-file", help="site card key, to hash the UIDs in --cards")
    parser.add_argument("--card-key-id", default="k2026", help="its id (rfid.card_key_id on the controller)")
    parser.add_argument("--signing-key", help="PEM Ed25519 key signing the snapshots (made if missing)")
    parser.add_argument("--unsigned", action="store_true", help="bare snapshots (unsigned = accept)")
    parser.add_argument("--jobs", help="JSON file: a list of jobs or a whole jobs snapshot")
    parser.add_argument("--notices", help="JSON file: a list of notices or a whole snapshot")
    parser.add_argument("--cards", help="JSON file: a list of cards (with uid or h)")
    parser.add_argument("--generate-jobs", type=int, default=0, help="publish N generated jobs")
    parser.add_argument("--report-every", type=float, default=0, help="print the report every S seconds")
    args = parser.parse_args(argv)
    central = Central(
        args.host,
        args.port,
        args.site,
        args.device,
        args.folder,
        card_key=args.card_key_file,
        key_id=args.card_key_id,
        signing_key=args.signing_key,
        sign=not args.unsigned,
    )
    try:
        central.start()
    except (OSError, RuntimeError) as exc:
        print(f"hall-sim central: {exc}", file=sys.stderr)
        return 1
    try:
        if args.jobs:
            central.publish_jobs(_entries(args.jobs, "jobs"))
        if args.generate_jobs:
            central.generate_jobs(args.generate_jobs)
        if args.notices:
            central.publish_notices(_entries(args.notices, "notices"))
        if args.cards:
            central.publish_cards(_entries(args.cards, "cards"))
        print(f"central for {args.site}/{args.device} on {args.host}:{args.port}; events in {central.folder}")
        if central.sign:
            key = f'{central.signing_kid} = "{central.public_key_b64}"'
            print(f"snapshots signed; the controller needs [snapshots] public_keys = {{{key}}}")
        _run_until_signalled(central, args.report_every)
    finally:
        print(json.dumps(central.report(), **_JSON))
        central.stop()
    return 0


def _entries(path: str, kind: str) -> list[dict[str, Any]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return doc[kind] if isinstance(doc, dict) else doc


def _run_until_signalled(central: Central, report_every: float) -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(report_every or 3600):
        if report_every:
            print(json.dumps(central.report(), **_JSON), flush=True)
