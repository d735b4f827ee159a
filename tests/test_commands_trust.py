"""Issue 18's command cases: lone surrogates, replay after a database reset, response topics
outside the signature, control characters in the log.  Each runs the whole daemon over the
test broker (tests/command_rig.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from command_rig import CommandHall
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import wait_for

from edge.logs import LogfmtFormatter
from edge.storage import DB_NAME


@pytest.fixture
def hall(make_hall, broker):
    return make_hall(None, rig=CommandHall, port=broker.port).start()


def audit(hall: CommandHall, type_: str, command_id: str) -> list[dict]:
    return [e for e in hall.watcher.events(type_) if e["data"].get("id") == command_id]


# ---- P4: lone surrogates -----------------------------------------------------------------


def test_a_signed_body_with_a_lone_surrogate_is_refused_answered_and_audited(hall):
    body = hall.body("status", issuer="\ud800")
    text = json.dumps(body)  # ASCII: the surrogate travels as the escape \ud800, validly signed
    hall.publish(hall.signed(text))
    result = hall.watcher.result(body["id"])
    assert result["ok"] is False
    assert result["error"]["code"] == "malformed"
    wait_for(lambda: audit(hall, "audit.command_refused", body["id"]), 10, "the refusal's audit event")
    assert audit(hall, "audit.command", body["id"]) == []  # it did not run


def test_an_unsigned_envelope_whose_id_is_a_lone_surrogate_is_answered_with_the_id_escaped(hall):
    claimed = "c-\ud800-forged"
    envelope = {"body": json.dumps({"id": claimed, "name": "status"}), "kid": "nobody", "sig": ""}
    hall.publish(json.dumps(envelope).encode())
    escaped = "c-\\ud800-forged"
    result = hall.watcher.result(escaped)
    assert result["error"]["code"] == "unknown_kid"
    wait_for(lambda: audit(hall, "audit.command_refused", escaped), 10, "the refusal's audit event")


def test_an_envelope_holding_a_lone_surrogate_itself_is_refused_as_malformed(hall):
    before = len(hall.watcher.bodies("/cmd/result"))
    hall.publish(b'{"body": "\\ud800", "kid": "it-test", "sig": ""}')
    answer = wait_for(lambda: hall.watcher.bodies("/cmd/result")[before:], 10, "an answer")[0]
    assert answer["error"]["code"] == "malformed"


# ---- P6: replay after the database is reset ----------------------------------------------------


def _captured_command(hall: CommandHall) -> tuple[dict, bytes]:
    """A command issued 2 minutes ago and valid for 5 more, run once (and captured)."""
    now = datetime.now().astimezone().replace(microsecond=0)
    times = {
        "issued_at": (now - timedelta(minutes=2)).isoformat(),
        "expires_at": (now + timedelta(minutes=5)).isoformat(),
    }
    body = hall.body("status", **times)
    return body, hall.signed(body)


def _database_an_hour_old(hall: CommandHall) -> None:
    # The rig's database is seconds old; a controller's has usually existed far longer.
    hall.core.storage.restamp_created_at(time.time() - 3600)


@pytest.mark.parametrize("reset", ["deleted", "zero_length", "garbage"])
def test_a_command_captured_before_a_database_reset_is_refused_after_it(hall, reset):
    _database_an_hour_old(hall)
    body, payload = _captured_command(hall)
    hall.publish(payload)
    assert hall.watcher.result(body["id"])["ok"] is True
    first_epoch = wait_for(lambda: hall.watcher.events("audit.command"), 10, "audit.command")[0]["epoch"]

    hall.stop()
    db = next(hall.folder.rglob(DB_NAME))
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    if reset == "deleted":
        db.unlink()
    elif reset == "zero_length":
        db.write_bytes(b"")
    else:
        db.write_bytes(b"this is not a database" * 100)
    hall.start()

    before = len(hall.watcher.bodies("/cmd/result"))
    hall.publish(payload)
    answers = wait_for(
        lambda: [b for b in hall.watcher.bodies("/cmd/result")[before:] if b.get("id") == body["id"]],
        10,
        "the replay's answer",
    )
    assert answers[0]["ok"] is False
    assert answers[0]["error"]["code"] == "replayed"

    # The platform can tell the new numbering from lost events: a new epoch, seq from 1 again.
    refused = wait_for(lambda: audit(hall, "audit.command_refused", body["id"]), 10, "refusal event")[0]
    assert refused["epoch"] != first_epoch
    new_events = [b for t, b in list(hall.watcher.messages) if "/events/" in t]
    assert min(e["seq"] for e in new_events if e["epoch"] == refused["epoch"]) == 1
    if reset != "deleted":
        corrupt = wait_for(lambda: hall.watcher.events("error.storage_corrupt"), 10, "storage_corrupt")
        assert corrupt[0]["epoch"] == refused["epoch"]


def test_a_new_command_runs_right_after_a_database_reset(hall):
    hall.stop()
    db = next(hall.folder.rglob(DB_NAME))
    db.write_bytes(b"")
    hall.start()
    body = hall.body("status")
    hall.publish(hall.signed(body))
    assert hall.watcher.result(body["id"])["ok"] is True


def test_a_creation_time_stamped_by_a_clock_far_ahead_does_not_lock_commands_out(hall):
    hall.core.storage.restamp_created_at(time.time() + 86400 * 365)
    body = hall.body("status")
    hall.publish(hall.signed(body))
    assert hall.watcher.result(body["id"])["ok"] is True


# ---- P8: response topics ----------------------------------------------------------------------


def test_a_response_topic_outside_the_signature_gets_no_result(hall, broker):
    received: list[tuple[str, bytes]] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="p8-" + uuid.uuid4().hex[:8], protocol=mqtt.MQTTv5
    )
    client.on_message = lambda _c, _u, m: received.append((m.topic, m.payload))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        wait_for(client.is_connected, 5, "v5 client")
        elsewhere = f"lgsc/v1/{hall.site}/jobs"
        signed_reply = f"it-desk/{uuid.uuid4().hex[:8]}/reply"
        client.subscribe([(elsewhere, 1), (signed_reply, 1)])
        redirect = Properties(PacketTypes.PUBLISH)
        redirect.ResponseTopic = elsewhere
        captured = hall.body("status")
        client.publish(f"{hall.topic}/cmd", hall.signed(captured), qos=1, properties=redirect)
        assert hall.watcher.result(captured["id"])["ok"] is True  # answered on cmd/result

        # A later command whose signed body names a reply topic: answered there (and the device
        # publishes in order, so an answer on `elsewhere` would have come first).
        named = hall.body("status", response_topic=signed_reply)
        client.publish(f"{hall.topic}/cmd", hall.signed(named), qos=1, properties=redirect)
        wait_for(lambda: any(t == signed_reply for t, _ in received), 10, "the answer on the signed topic")
        assert [t for t, _ in received] == [signed_reply]
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_signed_response_topic_with_a_wildcard_is_refused(hall):
    body = hall.body("status", response_topic="lgsc/v1/+/+/cmd")
    hall.publish(hall.signed(body))
    assert hall.watcher.result(body["id"])["error"]["code"] == "malformed"


# ---- P11: control characters in the log ---------------------------------------------------------


def test_control_characters_from_a_sender_never_reach_the_log_raw(hall, caplog):
    caplog.set_level(logging.INFO)
    claimed = "c-\x1b[2J\x1b[31mOK\rforged"
    envelope = {"body": json.dumps({"id": claimed}), "kid": "it-\x1b]0;x\x07", "sig": ""}
    hall.publish(json.dumps(envelope).encode())
    result = hall.watcher.result("c-\\x1b[2J\\x1b[31mOK\\rforged")
    assert result["error"]["code"] == "unknown_kid"
    lines = [LogfmtFormatter().format(record) for record in caplog.records]
    refused = [line for line in lines if "command refused" in line]
    assert refused, lines
    for line in lines:
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in line), repr(line)
    assert "\\\\x1b[2J" in refused[0]  # written as an escape a reader can see


def test_a_signed_command_whose_fields_hold_escapes_is_logged_escaped(hall, caplog):
    caplog.set_level(logging.INFO)
    body = hall.body("status", issuer="it-\x1b[8mhidden")
    hall.publish(hall.signed(body))
    assert hall.watcher.result(body["id"])["ok"] is True
    line = next(LogfmtFormatter().format(r) for r in caplog.records if body["id"] in r.getMessage())
    assert "\x1b" not in line and "it-\\x1b[8mhidden" in line


# ---- hall-admin imports only the contract ----------------------------------------------------------


def test_hall_admin_imports_nothing_of_the_daemon_but_the_protocol():
    probe = (
        "import sys, edge.admin, edge.admin.cli; "
        "print('\\n'.join(sorted(m for m in sys.modules if m == 'edge' or m.startswith('edge.'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    modules = set(loaded.stdout.split())
    contract = {"edge", "edge.protocol", "edge.records"}  # records: how its dataclasses are made
    others = {m for m in modules if m not in contract and not m.startswith("edge.admin")}
    assert "edge.protocol" in modules
    assert others == set()
