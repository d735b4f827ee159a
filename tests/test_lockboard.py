"""RS-485 lock board driver: exact frames, status parsing with noise, and the port thread on a pty."""

from __future__ import annotations

import random

import pytest
from hallsim.lockboard import SimLockBoard
from support import wait_for

from drivers.lockboard import (
    BoardStatus,
    LockBoards,
    StatusParser,
    address,
    status_frame,
    unlock_frame,
)


def test_frames_are_stx_addr_cmd_etx_sum():
    assert unlock_frame(0, 1) == bytes([0x02, 0x00, 0x31, 0x03, 0x36])
    assert unlock_frame(1, 16) == bytes([0x02, 0x1F, 0x31, 0x03, (0x02 + 0x1F + 0x31 + 0x03) & 0xFF])
    assert status_frame(2) == bytes([0x02, 0x20, 0x30, 0x03, 0x55])
    with pytest.raises(ValueError):
        address(16, 1)


def reply(board: int, l1: int, l2: int, i1: int, i2: int) -> bytes:
    body = bytes([0x02, board << 4, 0x35, l1, l2, i1, i2, 0x03])
    return body + bytes([sum(body) & 0xFF])


def test_status_bits_map_lock_n_to_bit_n_minus_1():
    (status,) = StatusParser().feed(reply(1, 0b0000_0101, 0b1000_0000, 0xFF, 0x00))
    assert status.board == 1
    assert [i + 1 for i, bit in enumerate(status.locks) if bit] == [1, 3, 16]
    assert all(status.ir[:8]) and not any(status.ir[8:])


@pytest.mark.parametrize("seed", range(10))
def test_status_parser_with_noise_splits_and_bad_sums(seed):
    rng = random.Random(seed)
    good = reply(0, 0x01, 0x00, 0x00, 0x00)
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    stream = bytes([0x02, 0x99]) + bytes(bad) + b"\x00\x35" + good + good
    parser, out, i = StatusParser(), [], 0
    while i < len(stream):
        step = rng.randint(1, 6)
        out += parser.feed(stream[i : i + step])
        i += step
    assert out == [BoardStatus(0, (True,) + (False,) * 15, (False,) * 16)] * 2
    assert parser.bad >= 1


def test_unlock_goes_out_and_status_comes_back_and_dead_board_is_offline():
    with SimLockBoard(boards=(0,)) as sim:
        statuses, health = [], []
        boards = LockBoards(sim.port, [0], statuses.append, health.append, poll_s=0.02, retry_s=0.05)
        boards.start()
        try:
            wait_for(lambda: health == [True], what="board answering")
            boards.unlock(0, 3)
            wait_for(lambda: [(b, n) for b, n, _ in sim.unlocks] == [(0, 3)], what="unlock frame")
            sim.set_door(0, 3, True)
            wait_for(lambda: statuses and statuses[-1].locks[2], what="door 3 open in the status")
            sim.muted = True
            wait_for(lambda: health == [True, False], what="offline")
            sim.muted = False
            wait_for(lambda: health == [True, False, True], what="back")
        finally:
            boards.stop()
