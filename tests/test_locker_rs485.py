"""The locker with an RS-485 lock board instead of GPIO locks (simulated board on a pty)."""

from __future__ import annotations

import pytest
from hallsim.lockboard import SimLockBoard
from hallsim.rfid import SimReader
from locker_hall import KEY, UIDS, card_key, hand_cards
from support import wait_for

from drivers.port import GRACE_S
from drivers.rfid import card_hash
from edge.locker.compartments import CardTapped
from edge.messages import ScreenLine


def board_config(folder, board: SimLockBoard, reader_port: str, **locker: object) -> dict:
    return {
        "rfid": {"enabled": True, "port": reader_port, "card_key_file": str(card_key(folder))},
        "locker": {"enabled": True, "locks": "rs485", "rs485_port": board.port, **locker},
    }


@pytest.fixture(params=[1, 0], ids=["set-bit-is-open", "set-bit-is-closed"])
def board_hall(request, tmp_path, make_hall):
    open_bit = request.param
    board = SimLockBoard(boards=(0, 1), open_bit=open_bit).start()
    reader = SimReader("rdm6300", link=tmp_path / "rfid").start()
    compartments = [
        {"number": 1, "tool_id": "T-hammer-01", "tool_type": "hammer", "board": 0, "lock": 1},
        {"number": 2, "tool_id": "T-shovel-01", "tool_type": "shovel", "board": 1, "lock": 16},
    ]
    locker = {"rs485_poll_s": 0.02, "rs485_open_bit": open_bit, "compartments": compartments}
    hall = make_hall(["locker"], board_config(tmp_path, board, reader.port, **locker))
    hand_cards(hall)
    yield board, hall
    hall.close()
    reader.stop()
    board.stop()


def test_checkout_through_the_board(board_hall):
    board, hall = board_hall
    core = hall.core
    core.post(CardTapped(card_hash(KEY, UIDS["W1"])))
    wait_for(
        lambda: [(b, n) for b, n, _ in board.unlocks] == [(0, 1)], what="unlock frame for board 0 lock 1"
    )
    board.set_door(0, 1, True)
    wait_for(lambda: 1 in core.status()["locker"]["doors_open"], what="door seen open via status")
    board.set_door(0, 1, False)
    hall.wait_event("rental.checkout")
    core.post(CardTapped(card_hash(KEY, UIDS["W2"])))
    wait_for(lambda: (1, 16) in [(b, n) for b, n, _ in board.unlocks], what="board 1 lock 16")


def test_silent_board_sets_the_locker_offline(board_hall):
    board, hall = board_hall
    core = hall.core
    wait_for(lambda: core.components.get("locker") == "ok", what="ok")
    board.muted = True
    wait_for(lambda: core.components.get("locker") == "offline", what="offline")
    board.muted = False
    wait_for(lambda: core.components.get("locker") == "ok", what="back")


def test_board_silent_since_start_refuses_taps_with_a_line(tmp_path, make_hall):
    board = SimLockBoard(boards=(0,)).start()
    board.muted = True
    compartments = [{"number": 1, "tool_id": "T-hammer-01", "tool_type": "hammer"}]
    overrides = board_config(tmp_path, board, str(tmp_path / "no-reader"), compartments=compartments)
    hall = make_hall(["locker"], overrides, watch=(ScreenLine,))
    try:
        hall.core.post(CardTapped(card_hash(KEY, UIDS["W1"])))
        wait_for(
            lambda: "工具柜暂不可用 请联系工作人员" in [m.text for m in hall.watch(ScreenLine)],
            what="the tap refused",
        )
        assert board.unlocks == []
        # offline once the boards' start-up grace is over (drivers/port.py: the rule of every port)
        wait_for(lambda: hall.core.components.get("locker") == "offline", GRACE_S + 5, what="offline")
    finally:
        hall.close()
        board.stop()
