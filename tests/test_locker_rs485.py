"""The locker with an RS-485 lock board instead of GPIO locks (simulated board on a pty)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from hallsim.lockboard import SimLockBoard
from hallsim.rfid import SimReader
from locker_hall import KEY, UIDS, cards_snapshot
from support import make_config, wait_for

from drivers.port import GRACE_S
from drivers.rfid import card_hash
from edge.clock import Clock
from edge.core import Core
from edge.locker import create
from edge.locker.compartments import CardTapped
from edge.messages import ScreenLine, SnapshotUpdated
from edge.outbox import Event
from edge.storage import Storage


@pytest.fixture(params=[1, 0], ids=["set-bit-is-open", "set-bit-is-closed"])
def board_hall(request, tmp_path):
    open_bit = request.param
    key_file = tmp_path / "card.key"
    key_file.write_bytes(KEY)
    os.chmod(key_file, 0o600)
    board = SimLockBoard(boards=(0, 1), open_bit=open_bit).start()
    reader = SimReader("rdm6300", link=tmp_path / "rfid").start()
    config = make_config(
        tmp_path,
        {
            "rfid": {"enabled": True, "port": reader.port, "card_key_file": str(key_file)},
            "locker": {
                "enabled": True,
                "locks": "rs485",
                "rs485_port": board.port,
                "rs485_poll_s": 0.02,
                "rs485_open_bit": open_bit,
                "compartments": [
                    {"number": 1, "tool_id": "T-hammer-01", "tool_type": "hammer", "board": 0, "lock": 1},
                    {"number": 2, "tool_id": "T-shovel-01", "tool_type": "shovel", "board": 1, "lock": 16},
                ],
            },
        },
    )
    Device.pin_factory = MockFactory()
    storage = Storage(config.storage.dir)
    core = Core(config, storage, Clock("Asia/Shanghai", "synced"))
    events: list[Event] = []
    core.outbox.listeners.append(events.append)
    locker = create(config)
    locker.start(core)
    core.start()
    core.post(SnapshotUpdated("cards", cards_snapshot(), datetime.now(UTC), live=False))
    wait_for(lambda: locker.recovered, what="both boards reported")
    yield board, core, events
    core.stop()
    locker.stop()
    storage.close()
    reader.stop()
    board.stop()
    Device.pin_factory.reset()


def test_checkout_through_the_board(board_hall):
    board, core, events = board_hall
    core.post(CardTapped(card_hash(KEY, UIDS["W1"])))
    wait_for(
        lambda: [(b, n) for b, n, _ in board.unlocks] == [(0, 1)], what="unlock frame for board 0 lock 1"
    )
    board.set_door(0, 1, True)
    wait_for(lambda: 1 in core.status()["locker"]["doors_open"], what="door seen open via status")
    board.set_door(0, 1, False)
    wait_for(lambda: any(e.type == "rental.checkout" for e in events), what="checkout")
    core.post(CardTapped(card_hash(KEY, UIDS["W2"])))
    wait_for(lambda: (1, 16) in [(b, n) for b, n, _ in board.unlocks], what="board 1 lock 16")


def test_silent_board_sets_the_locker_offline(board_hall):
    board, core, _events = board_hall
    wait_for(lambda: core.components.get("locker") == "ok", what="ok")
    board.muted = True
    wait_for(lambda: core.components.get("locker") == "offline", what="offline")
    board.muted = False
    wait_for(lambda: core.components.get("locker") == "ok", what="back")


def test_board_silent_since_start_refuses_taps_with_a_line(tmp_path):
    key_file = tmp_path / "card.key"
    key_file.write_bytes(KEY)
    os.chmod(key_file, 0o600)
    board = SimLockBoard(boards=(0,)).start()
    board.muted = True
    config = make_config(
        tmp_path,
        {
            "rfid": {"enabled": True, "port": str(tmp_path / "no-reader"), "card_key_file": str(key_file)},
            "locker": {
                "enabled": True,
                "locks": "rs485",
                "rs485_port": board.port,
                "compartments": [{"number": 1, "tool_id": "T-hammer-01", "tool_type": "hammer"}],
            },
        },
    )
    Device.pin_factory = MockFactory()
    storage = Storage(config.storage.dir)
    core = Core(config, storage, Clock("Asia/Shanghai", "synced"))
    lines: list[str] = []
    core.subscribe(ScreenLine, lambda m: lines.append(m.text))
    locker = create(config)
    locker.start(core)
    core.start()
    try:
        core.post(CardTapped(card_hash(KEY, UIDS["W1"])))
        wait_for(lambda: "工具柜暂不可用 请联系工作人员" in lines, what="the tap refused")
        assert board.unlocks == []
        # offline once the boards' start-up grace is over (drivers/port.py: the rule of every port)
        wait_for(lambda: core.components.get("locker") == "offline", GRACE_S + 5, what="offline")
    finally:
        core.stop()
        locker.stop()
        storage.close()
        board.stop()
        Device.pin_factory.reset()
