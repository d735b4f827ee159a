"""Signed commands end to end: test broker -> link -> commands feature -> result and audit events."""

from __future__ import annotations

import base64
import json
import logging
import tomllib
import uuid
from datetime import datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from command_rig import KID, CommandHall
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hallsim.broker import free_port
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import wait_for

from edge.protocol import RATE_LIMITED, REFUSAL_REASONS, public_key_b64
from edge.ratelimit import RateLimit


@pytest.fixture
def hall(tmp_path, make_hall, broker):
    hall = make_hall(None, rig=CommandHall, port=broker.port)
    hall.start()
    yield hall
    hall.close()


def run(hall: CommandHall, name: str, args: dict | None = None) -> dict:
    body = hall.body(name, args)
    hall.publish(hall.signed(body))
    return hall.watcher.result(body["id"])


def _times(issued: timedelta, lifetime: timedelta) -> dict:
    now = datetime.now().astimezone().replace(microsecond=0)
    return {"issued_at": (now + issued).isoformat(), "expires_at": (now + issued + lifetime).isoformat()}


def refusal_cases(hall: CommandHall) -> list[tuple[str, bytes]]:
    """(reason, payload) for every refusal; where a name is needed it is 'restart' (visible if run)."""
    minute = timedelta(minutes=1)
    tampered = json.loads(hall.signed(hall.body("restart")))
    tampered["body"] = tampered["body"].replace("it-test", "it-evil")
    return [
        ("bad_signature", json.dumps(tampered).encode()),
        ("unknown_kid", hall.signed(hall.body("restart"), kid="it-gone")),
        ("wrong_device", hall.signed(hall.body("restart", device=f"{hall.site}/hall-99"))),
        ("expired", hall.signed(hall.body("restart", **_times(-10 * minute, 5 * minute)))),
        ("not_yet_valid", hall.signed(hall.body("restart", **_times(5 * minute, 5 * minute)))),
        ("lifetime_too_long", hall.signed(hall.body("restart", **_times(timedelta(0), 16 * minute)))),
        ("unknown_command", hall.signed(hall.body("no.such.command"))),
        ("bad_arguments", hall.signed(hall.body("logs.tail", {"n": "all of them"}))),
        ("bad_arguments", hall.signed(hall.body("restart", args=[1, 2]))),
        ("too_large", hall.signed(hall.body("restart", {"pad": "x" * 70_000}))),
        ("not_json", b"\x00 this is not json"),
        ("not_json", hall.signed("restart now please")),
        ("malformed", json.dumps({"body": {"id": "x"}, "kid": KID, "sig": ""}).encode()),
        ("malformed", hall.signed(hall.body("restart", issuer=None))),
    ]


def test_every_refusal_is_refused_audited_answered_and_not_executed(hall):
    cases = refusal_cases(hall)
    replay = hall.signed(hall.body("status"))
    cases += [("ok", replay), ("replayed", replay)]
    for reason, payload in cases:
        before = len(hall.watcher.bodies("/cmd/result"))
        hall.publish(payload)
        result = wait_for(
            lambda b=before: hall.watcher.bodies("/cmd/result")[b:],
            10,
            f"an answer to the {reason} case",
        )[0]
        if reason == "ok":
            assert result["ok"] is True
            continue
        assert result["ok"] is False and result["error"]["code"] == reason, (reason, result)
        assert result["error"]["message"]
    expected = [r for r, _ in cases if r != "ok"]
    refused = wait_for(
        lambda: (
            len(hall.watcher.events("audit.command_refused")) == len(expected)
            and hall.watcher.events("audit.command_refused")
        ),
        10,
        "every refusal audited",
    )
    assert [e["data"]["reason"] for e in refused] == expected
    assert set(expected) == set(REFUSAL_REASONS)
    executed = hall.watcher.events("audit.command")
    assert [e["data"]["name"] for e in executed] == ["status"]  # only the first of the replayed pair
    assert executed[0]["data"]["issuer"] == "it-test" and executed[0]["data"]["ok"] is True
    assert not hall.core.stopped.is_set()  # no refused 'restart' ran


def test_refusals_name_the_id_when_it_is_known(hall):
    body = hall.body("restart")
    hall.publish(hall.signed(body, kid="it-gone"))
    event = wait_for(lambda: hall.watcher.events("audit.command_refused"), 10, "refusal")[0]
    assert event["data"] == {"reason": "unknown_kid", "id": body["id"]}
    # an unauthenticated id is whatever the sender wrote: personal data in it is masked
    hall.publish(hall.signed(hall.body("no.such", id="c-13812345678"), kid="it-gone"))
    events = wait_for(lambda: hall.watcher.events("audit.command_refused")[1:], 10, "second refusal")
    assert events[0]["data"] == {"reason": "unknown_kid", "id": "c-138****5678"}
    known = hall.body("no.such")
    hall.publish(hall.signed(known))
    events = wait_for(lambda: hall.watcher.events("audit.command_refused")[2:], 10, "third refusal")
    assert events[0]["data"] == {"reason": "unknown_command", "id": known["id"], "name": "no.such"}


def test_refusal_limit_counts_past_the_limit_and_summarises_once():
    now = [100.0]
    limit = RateLimit(3, 60.0, now=lambda: now[0])
    assert [limit.admit("not_json") for _ in range(3)] == [True, True, True]
    assert [limit.admit(r) for r in ("not_json", "bad_signature", "not_json")] == [False] * 3
    assert limit.window_left_s() == 60.0
    now[0] += 60.0
    assert limit.admit("expired")  # a new window records again
    assert limit.summary() == {
        "reason": RATE_LIMITED,
        "suppressed": 3,
        "reasons": {"bad_signature": 1, "not_json": 2},
        "limit": 3,
        "window_s": 60.0,
    }
    assert limit.summary() is None


def test_a_flood_of_refusals_is_answered_but_recorded_at_a_bounded_rate(hall):
    commands = next(f for f in hall.daemon.features if f.name == "commands")
    commands.refusals.limit = RateLimit(3, 1.0)  # the daemon's limit, on a shorter window
    for n in range(10):
        hall.publish(b"junk %d" % n)
    wait_for(lambda: len(hall.watcher.bodies("/cmd/result")) == 10, 10, "every junk message answered")
    assert {r["error"]["code"] for r in hall.watcher.bodies("/cmd/result")} == {"not_json"}
    refused = wait_for(
        lambda: (
            len(hall.watcher.events("audit.command_refused")) == 4
            and hall.watcher.events("audit.command_refused")
        ),
        10,
        "three refusals and one summary",
    )
    assert [e["data"]["reason"] for e in refused] == ["not_json"] * 3 + [RATE_LIMITED]
    assert refused[-1]["data"] == {
        "reason": RATE_LIMITED,
        "suppressed": 7,
        "reasons": {"not_json": 7},
        "limit": 3,
        "window_s": 1.0,
    }
    # the next window records again
    hall.publish(b"junk again")
    wait_for(lambda: len(hall.watcher.events("audit.command_refused")) == 5, 10, "a fresh refusal")


def test_refusals_counted_at_shutdown_are_recorded_before_the_daemon_stops(hall):
    commands = next(f for f in hall.daemon.features if f.name == "commands")
    commands.refusals.limit = RateLimit(1, 3600.0)
    for n in range(3):
        hall.publish(b"junk %d" % n)
    wait_for(lambda: len(hall.watcher.bodies("/cmd/result")) == 3, 10, "every junk message answered")
    hall.stop()
    hall.start()  # the summary recorded at the stop goes out once the link is back
    summary = wait_for(
        lambda: [
            e for e in hall.watcher.events("audit.command_refused") if e["data"]["reason"] == RATE_LIMITED
        ],
        10,
        "the summary",
    )
    assert [e["data"] for e in summary] == [
        {"reason": RATE_LIMITED, "suppressed": 2, "reasons": {"not_json": 2}, "limit": 1, "window_s": 3600.0}
    ]


def test_status_reports_the_controller(hall):
    hall.core.register_status("queue", lambda: {"waiting": 3})
    result = run(hall, "status")
    assert result["schema"] == "lgsc.result/1" and result["ok"] is True
    status = result["result"]
    assert status["device"] == hall.target
    assert status["online"] is True
    assert status["clock"] == "synced"
    assert status["queue"] == {"waiting": 3}
    assert isinstance(status["outbox_depth"], int)
    assert status["uptime_s"] >= 0
    assert "link" in status and status["version"]
    datetime.fromisoformat(status["started_at"])
    # hall-admin prints it in this order: who and how it is first, then the long feature sections
    assert list(status)[:3] == ["device", "version", "started_at"]
    assert list(status).index("online") < list(status).index("queue")


def test_mqtt5_response_topic_gets_the_result_with_its_correlation_data(hall, broker):
    answers = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="v5-" + uuid.uuid4().hex[:8], protocol=mqtt.MQTTv5
    )
    client.on_message = lambda _c, _u, m: answers.append((m.payload, m.properties.CorrelationData))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        reply_to = f"it-desk/{uuid.uuid4().hex[:8]}/reply"
        client.subscribe(reply_to, qos=1)
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = reply_to
        properties.CorrelationData = b"corr-42"
        body = hall.body("status", response_topic=reply_to)  # named inside the signature
        wait_for(client.is_connected, 5, "v5 client")
        client.publish(f"{hall.topic}/cmd", hall.signed(body), qos=1, properties=properties)
        payload, correlation = wait_for(lambda: answers, 10, "answer on the response topic")[0]
        assert correlation == b"corr-42"
        assert json.loads(payload)["id"] == body["id"]
        hall.watcher.result(body["id"])  # and on cmd/result too

        # A forged command is answered on cmd/result only: never reflected to a topic it names.
        forged = json.loads(hall.signed(hall.body("status")))
        forged["sig"] = base64.b64encode(bytes(64)).decode()
        client.publish(f"{hall.topic}/cmd", json.dumps(forged).encode(), qos=1, properties=properties)
        assert hall.watcher.result(json.loads(forged["body"])["id"])["error"]["code"] == "bad_signature"
        last = hall.body("status", response_topic=reply_to)
        client.publish(f"{hall.topic}/cmd", hall.signed(last), qos=1, properties=properties)
        wait_for(lambda: len(answers) == 2, 10, "the next genuine answer")
        assert [json.loads(p)["id"] for p, _ in answers] == [body["id"], last["id"]]
    finally:
        client.loop_stop()
        client.disconnect()


def test_config_get_redacts_secrets(tmp_path, make_hall, broker):
    hall = make_hall(
        None, {"rfid": {"card_key_file": "/etc/hall-edge/card.key"}}, rig=CommandHall, port=broker.port
    )
    hall.start()
    try:
        config = run(hall, "config.get")["result"]["config"]
        assert config["rfid"]["card_key_file"] == "<redacted>"
        assert config["display"]["brightness"] == 160
        one = run(hall, "config.get", {"key": "display.brightness"})["result"]
        assert one == {"key": "display.brightness", "value": 160, "source": "default"}
        missing = run(hall, "config.get", {"key": "display.nothing"})
        assert missing["error"]["code"] == "bad_arguments"
    finally:
        hall.close()


def test_config_set_refuses_an_invalid_value_with_the_validation_message(hall):
    before = hall.config_path.read_text()
    result = run(hall, "config.set", {"key": "display.brightness", "value": 999})
    assert result["ok"] is False and result["error"]["code"] == "bad_arguments"
    assert "display.brightness: 999 is not a level between 0 and 255" in result["error"]["message"]
    assert run(hall, "config.set", {"key": "storage.dir", "value": "/tmp/elsewhere"})["error"]["code"] == (
        "bad_arguments"
    )
    assert hall.config_path.read_text() == before
    assert not hall.core.stopped.is_set()


def remote_file(hall: CommandHall):
    return hall.folder / "state" / "hall-edge.remote.toml"


def test_config_set_applies_by_restart_and_confirms_once_online(hall):
    installers = "# hall 1, set up by Wang on 2026-11-20\n" + hall.config_path.read_text()
    hall.config_path.write_text(installers)
    result = run(hall, "config.set", {"changes": {"display": {"brightness": 90}, "queue.recall_max": 3}})
    assert result["ok"] is True
    assert result["result"]["changed"] == ["display.brightness", "queue.recall_max"]
    assert result["result"]["restarting"] is True
    hall.wait_exit()
    assert hall.config_path.read_text() == installers  # the installer's file and its comments stay
    written = tomllib.loads(remote_file(hall).read_text())
    assert written == {"display": {"brightness": 90}, "queue": {"recall_max": 3}}
    assert remote_file(hall).with_suffix(".toml.previous").read_text() == ""
    hall.start()
    changed = wait_for(lambda: hall.watcher.events("audit.config_changed"), 10, "config_changed")
    assert changed[0]["data"]["rolled_back"] is False
    assert changed[0]["data"]["keys"] == ["display.brightness", "queue.recall_max"]
    assert changed[0]["data"]["id"] == result["id"]
    one = run(hall, "config.get", {"key": "display.brightness"})["result"]
    assert one == {"key": "display.brightness", "value": 90, "source": str(remote_file(hall))}
    sources = run(hall, "config.get")["result"]["sources"]
    assert sources["queue.recall_max"] == str(remote_file(hall))
    assert sources["mqtt.port"] == str(hall.config_path)


def test_config_set_that_breaks_the_link_is_rolled_back_and_reported(hall):
    dead_port = free_port()
    result = run(hall, "config.set", {"key": "mqtt.port", "value": dead_port})
    assert result["ok"] is True
    hall.wait_exit()
    assert tomllib.loads(remote_file(hall).read_text())["mqtt"]["port"] == dead_port
    hall.start(online=False)  # systemd starts it on the new file: no broker there
    hall.wait_exit(timeout=15)  # the probation deadline (3 s) passes: previous file back, exit
    assert remote_file(hall).read_text() == ""
    hall.start()
    rolled = wait_for(lambda: hall.watcher.events("audit.config_changed"), 10, "config_changed")
    assert rolled[0]["data"]["rolled_back"] is True
    assert "did not come online" in rolled[0]["data"]["reason"]
    answers = wait_for(
        lambda: [
            b for b in hall.watcher.bodies("/cmd/result") if b.get("id") == result["id"] and not b["ok"]
        ],
        10,
        "the ok:false result",
    )
    assert answers[0]["error"]["code"] == "rolled_back"
    assert run(hall, "status")["ok"] is True  # and a new change may be made again
    assert len(hall.watcher.events("audit.config_changed")) == 1


def test_the_probation_is_the_running_configurations_not_the_new_files(hall):
    """P12: a broken change that also asks for an hour of probation is still rolled back in 3 s."""
    dead_port = free_port()
    result = run(hall, "config.set", {"changes": {"mqtt.port": dead_port, "commands.apply_deadline_s": 3600}})
    assert result["result"]["deadline_s"] == 3.0
    hall.wait_exit()
    hall.start(online=False)
    hall.wait_exit(timeout=15)
    assert remote_file(hall).read_text() == ""
    hall.start()
    rolled = wait_for(lambda: hall.watcher.events("audit.config_changed"), 10, "config_changed")
    assert "did not come online within 3 s" in rolled[0]["data"]["reason"]


def test_config_set_does_not_send_a_secret_to_a_new_place(tmp_path, make_hall, broker):
    """P3: secret file paths are set on site only; with a broker password the broker stays put."""
    password, card_key = tmp_path / "mqtt.password", tmp_path / "card.key"
    for secret in (password, card_key):
        secret.write_text("hunter2")
        secret.chmod(0o600)
    hall = make_hall(None, {"mqtt": {"password_file": str(password)}}, rig=CommandHall, port=broker.port)
    hall.start()
    try:
        for args in (
            {"key": "mqtt.password_file", "value": str(card_key)},
            {"key": "rfid.card_key_file", "value": str(password)},
            {"key": "mqtt.host", "value": "evil.example.com"},
            {"key": "mqtt.tls", "value": True},
            {"key": "mqtt.ca_file", "value": str(password)},
        ):
            answer = run(hall, "config.set", args)
            assert answer["error"]["code"] == "bad_arguments", args
            assert "on site" in answer["error"]["message"]
        assert not remote_file(hall).exists()
        assert not hall.core.stopped.is_set()
    finally:
        hall.close()


def test_config_set_cannot_change_the_trusted_keys(hall):
    """P1: replacing the keys with one nobody holds used to lock the hall out for good."""
    nobody_holds = public_key_b64(Ed25519PrivateKey.generate())
    for args in (
        {"key": "commands.public_keys", "value": {"it-lost": nobody_holds}},
        {"key": f"commands.public_keys.{KID}", "value": None},
        {"changes": {"commands": {"public_keys": {"it-extra": nobody_holds}}}},
    ):
        answer = run(hall, "config.set", args)
        assert answer["error"]["code"] == "bad_arguments", args
        assert "keys.add and keys.remove" in answer["error"]["message"]
    assert run(hall, "status")["ok"] is True


def test_key_rotation_adds_confirms_by_first_signature_and_only_then_removes(hall):
    new_key = Ed25519PrivateKey.generate()
    added = run(hall, "keys.add", {"kid": "it-next", "public_key": public_key_b64(new_key)})
    assert added["result"]["keys"] == {KID: "confirmed", "it-next": "pending"}
    # The old key cannot remove itself: a key that has signed must stay.
    own = run(hall, "keys.remove", {"kid": KID})
    assert own["error"]["code"] == "bad_arguments" and "cannot remove itself" in own["error"]["message"]
    # The new key's first command confirms it, then removes the old key.
    removal = hall.body("keys.remove", {"kid": KID})
    hall.publish(hall.signed(removal, key=new_key, kid="it-next"))
    answer = hall.watcher.result(removal["id"])
    assert answer["ok"] is True and answer["result"]["keys"] == {"it-next": "confirmed"}
    confirmed = wait_for(lambda: hall.watcher.events("audit.key_confirmed"), 10, "key_confirmed")
    assert confirmed[0]["data"] == {"kid": "it-next", "id": removal["id"]}
    old = hall.body("status")
    hall.publish(hall.signed(old))
    assert hall.watcher.result(old["id"])["error"]["code"] == "unknown_kid"
    # The last key cannot go either, and the rotation survives a restart (remote file).
    last = hall.body("keys.remove", {"kid": "it-next"})
    hall.publish(hall.signed(last, key=new_key, kid="it-next"))
    assert hall.watcher.result(last["id"])["error"]["code"] == "bad_arguments"
    assert hall.config_path.read_text().count(KID) == 1  # the installer's file is untouched
    hall.stop()
    hall.start()
    again = hall.body("status")
    hall.publish(hall.signed(again, key=new_key, kid="it-next"))
    assert hall.watcher.result(again["id"])["ok"] is True
    shown = run_with(hall, new_key, "config.get", {"key": "commands.public_keys"})
    assert list(shown["result"]["value"]) == ["it-next"]
    assert shown["result"]["source"] == str(remote_file(hall))


def test_a_pending_key_that_nobody_holds_leaves_the_old_key_working(hall):
    nobody_holds = public_key_b64(Ed25519PrivateKey.generate())
    assert run(hall, "keys.add", {"kid": "it-lost", "public_key": nobody_holds})["ok"] is True
    assert run(hall, "keys.remove", {"kid": KID})["error"]["code"] == "bad_arguments"
    assert run(hall, "keys.remove", {"kid": "it-lost"})["ok"] is True  # abandon the rotation
    assert run(hall, "keys.list")["result"]["keys"] == {KID: "confirmed"}


def run_with(hall: CommandHall, key, name: str, args: dict | None = None) -> dict:
    body = hall.body(name, args)
    hall.publish(hall.signed(body, key=key, kid="it-next"))
    return hall.watcher.result(body["id"])


def test_logs_tail_returns_recent_lines_masked(hall):
    from edge import logs

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.setup("info")
    try:
        logging.getLogger("edge.test").info("caller 13812345678 asked about card=04A1B2C3D4")
        lines = run(hall, "logs.tail", {"n": 50})["result"]["lines"]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = "\n".join(lines)
    assert "138****5678" in text and "13812345678" not in text
    assert "04A1B2C3D4" not in text
    assert len(lines) <= 50


def test_sync_republishes_the_birth(hall):
    births = len(hall.watcher.bodies("/state"))
    result = run(hall, "sync")
    assert result["ok"] is True and result["result"]["synced"] is True
    wait_for(lambda: len(hall.watcher.bodies("/state")) > births, 10, "birth again")


def test_restart_exits_cleanly_after_answering(hall):
    result = run(hall, "restart")
    assert result["ok"] is True and result["result"]["restarting"] is True
    hall.wait_exit()
    offline = wait_for(
        lambda: [s for s in hall.watcher.bodies("/state") if s.get("online") is False], 10, "offline"
    )
    assert offline
    hall.start()
    assert run(hall, "status")["ok"] is True


def test_restart_that_systemd_would_refuse_is_answered_too_soon(hall):
    """The fixture's start is the 1st of systemd's 4 allowed in 120 s; two remote restarts make 3.
    Then config.set (a restart plus perhaps its rollback) and a 4th restart would lock the hall out
    until someone on site ran `systemctl reset-failed`: both are answered too_soon, nothing runs."""
    for _ in range(2):
        assert run(hall, "restart")["ok"] is True
        hall.wait_exit()
        hall.start()
    refused = run(hall, "config.set", {"key": "display.brightness", "value": 99})
    assert refused["ok"] is False and refused["error"]["code"] == "too_soon"
    assert "reset-failed" in refused["error"]["message"]
    assert run(hall, "restart")["ok"] is True  # the 4th start is still allowed
    hall.wait_exit()
    hall.start()
    again = run(hall, "restart")
    assert again["ok"] is False and again["error"]["code"] == "too_soon"
    assert not hall.core.stopped.is_set()
    assert run(hall, "status")["ok"] is True


def test_command_sent_while_offline_runs_on_return_unless_expired(hall):
    # QoS 1 with a persistent session: the broker keeps the command for the device.
    hall.stop()
    fresh = hall.body("status")
    hall.publish(hall.signed(fresh))
    hall.start()
    assert hall.watcher.result(fresh["id"])["ok"] is True


def test_display_snapshot_and_a_display_argument_refusal(tmp_path, make_hall, broker):
    hall = make_hall(
        None, {"display": {"enabled": True, "device": "dummy"}}, rig=CommandHall, port=broker.port
    )
    hall.start()
    try:
        result = run(hall, "display.snapshot")["result"]
        assert base64.b64decode(result["png_base64"]).startswith(b"\x89PNG")
        # the display checks its arguments first ('bad_args'): refused, not executed
        refused = run(hall, "display.message", {"seconds": 60})
        assert refused["error"]["code"] == "bad_arguments" and "text" in refused["error"]["message"]
        event = wait_for(lambda: hall.watcher.events("audit.command_refused"), 10, "refusal")[0]
        assert event["data"] == {"reason": "bad_arguments", "id": refused["id"], "name": "display.message"}
    finally:
        hall.close()


def test_unknown_arguments_and_commands_are_refused_by_name_and_not_run(hall):
    """A misspelt --arg used to be ignored silently: `status x=1` ran as `status`."""
    refused = run(hall, "status", {"x": 1})
    assert refused["error"] == {
        "code": "bad_arguments",
        "message": "unknown argument 'x': status takes no arguments",
    }
    refused = run(hall, "logs.tail", {"nn": 5})
    assert refused["error"]["message"] == (
        "unknown argument 'nn' (did you mean 'n'?): logs.tail takes n, lines"
    )
    refused = run(hall, "restart", {"now": True})
    assert refused["error"]["code"] == "bad_arguments"
    refused = run(hall, "stauts")
    assert refused["error"] == {
        "code": "unknown_command",
        "message": "no command 'stauts' here (did you mean 'status'?)",
    }
    events = wait_for(lambda: hall.watcher.events("audit.command_refused")[3:], 10, "four refusals")
    assert [e["data"]["reason"] for e in hall.watcher.events("audit.command_refused")] == [
        "bad_arguments",
        "bad_arguments",
        "bad_arguments",
        "unknown_command",
    ]
    assert events and hall.watcher.events("audit.command") == []  # none ran
    assert not hall.core.stopped.is_set()


def test_every_command_declares_the_arguments_its_handler_reads(make_hall, broker):
    """The declared names are the ones each handler reads (args.get / args[...]): a handler that
    reads an undeclared argument would never receive it."""
    import ast
    import inspect

    hall = make_hall(
        None, {"display": {"enabled": True, "device": "dummy"}}, rig=CommandHall, port=broker.port
    )
    hall.start()
    try:
        for name in hall.core.command_names():
            command = hall.core.command(name)
            source = inspect.getsource(command.handler)
            read = {
                node.args[0].value
                for node in ast.walk(ast.parse(inspect.cleandoc("\n" + source)))
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "args"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            }
            assert read <= set(command.args), (name, read, command.args)
    finally:
        hall.close()
