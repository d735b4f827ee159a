"""Every command in the contract's list reaches the feature that does it, through signed MQTT.

The hall runs with its screen (luma dummy device), queue keys and locks on
gpiozero's MockFactory pins, and the RFID reader on a real pty; the
commands travel over the test broker like the platform's would.
"""

from __future__ import annotations

import os

import pytest
from command_rig import CommandHall
from support import wait_for

from edge.daemon import feature_factories

CONTRACT = [
    ("status", {}),
    ("config.get", {"key": "queue.recall_max"}),
    ("config.set", {"key": "display.brightness", "value": 160}),  # no change: no restart
    ("display.message", {"text": "今日下午停电 暂停营业", "seconds": 60}),
    ("display.clear", {}),
    ("display.snapshot", {}),
    ("display.brightness", {"level": 100}),
    ("printer.test", {}),
    ("queue.call", {"window": 1}),
    ("queue.recall", {"window": 1}),
    ("queue.skip", {"window": 1}),
    ("queue.reset", {}),
    ("locker.open", {"compartment": 1, "reason": "remote test"}),
    ("locker.inspect", {"compartment": 1, "result": "ok"}),
    ("logs.tail", {"n": 5}),
    ("sync", {}),
    ("restart", {}),
]

# Answers that show the feature did its job and said why it could not do more.
ACCEPTED_ERRORS = {
    "printer.test": {"printer_disabled"},
    "queue.recall": {"nothing_called", "no_ticket", "recall_max"},
    "queue.skip": {"nothing_called", "no_ticket"},
    "locker.inspect": {"bad_state"},
}


@pytest.fixture
def full_hall(tmp_path, make_hall, broker, pins):
    leader, follower = os.openpty()  # the RFID reader's serial line
    card_key = tmp_path / "card.key"
    card_key.write_bytes(b"site-card-key-for-tests")
    card_key.chmod(0o600)
    extra = {
        "display": {"enabled": True, "device": "dummy"},
        "queue": {"enabled": True},
        "rfid": {"enabled": True, "port": os.ttyname(follower), "card_key_file": str(card_key)},
        "locker": {"enabled": True, "locks": "gpio"},
    }
    hall = make_hall(None, extra, rig=CommandHall, port=broker.port)
    hall.start()
    yield hall
    hall.close()
    os.close(leader)
    os.close(follower)


def _locker_wired() -> bool:
    return any(getattr(f, "__module__", "").startswith("edge.locker") for f in feature_factories())


@pytest.mark.parametrize("name", [name for name, _ in CONTRACT])
def test_contract_command_is_served(full_hall, name):
    if name.startswith("locker.") and not _locker_wired():
        pytest.xfail("the locker feature is not in edge/daemon.py feature_factories() yet")
    body = full_hall.body(name, dict(CONTRACT)[name])
    full_hall.publish(full_hall.signed(body))
    result = full_hall.watcher.result(body["id"])
    if not result["ok"]:
        assert result["error"]["code"] in ACCEPTED_ERRORS.get(name, set()), result
    audit = {"id": body["id"], "name": name, "issuer": "it-test", "ok": result["ok"]}
    wait_for(
        lambda: audit in [e["data"] for e in full_hall.watcher.events("audit.command")], 10, "audit.command"
    )
    if name == "restart":
        full_hall.wait_exit()
