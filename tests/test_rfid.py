"""RFID drivers: framers byte by byte (noise, split frames), then the reader thread on a real pty."""

from __future__ import annotations

import hashlib
import hmac
import random
import threading

import pytest
from hallsim.rfid import SimReader
from support import wait_for

from drivers.port import open_serial
from drivers.rfid import (
    IN_LIST_PASSIVE_TARGET,
    PN532_ACK,
    SAM_CONFIGURATION,
    CardReader,
    HeldCard,
    Pn532Ack,
    Pn532Frame,
    Pn532Parser,
    Rdm6300Framer,
    card_hash,
    pn532_frame,
    rdm6300_frame,
    target_uid,
)

KEY = b"site-card-key-for-tests"
EXAMPLE = bytes.fromhex("02 36 37 30 30 33 42 35 31 43 36 43 42 03")  # hardware.md: card 67003B51C6


# ---- card identity ----------------------------------------------------------------


def test_card_hash_is_hmac_of_the_uppercase_uid_truncated_to_16_bytes():
    expected = hmac.new(KEY, b"67003B51C6", hashlib.sha256).hexdigest()[:32]
    assert card_hash(KEY, "67003b51c6") == expected
    assert len(expected) == 32 and expected == expected.lower()


# ---- RDM6300 --------------------------------------------------------------------------


def test_rdm6300_frame_matches_the_manual_example():
    assert rdm6300_frame("67003B51C6") == EXAMPLE


def test_rdm6300_fed_one_byte_at_a_time():
    framer = Rdm6300Framer()
    out = [uid for byte in EXAMPLE for uid in framer.feed(bytes([byte]))]
    assert out == ["67003B51C6"]
    assert framer.frames == 1


@pytest.mark.parametrize("seed", range(20))
def test_rdm6300_split_anywhere_with_noise_between_frames(seed):
    rng = random.Random(seed)
    cards = [f"{rng.getrandbits(40):010X}" for _ in range(5)]
    stream = b""
    for uid in cards:
        stream += bytes(rng.choice([0x00, 0xFF, 0x41, 0x03, 0x7E]) for _ in range(rng.randint(0, 6)))
        stream += rdm6300_frame(uid)
    framer, out, i = Rdm6300Framer(), [], 0
    while i < len(stream):
        step = rng.randint(1, 9)
        out += framer.feed(stream[i : i + step])
        i += step
    assert out == cards


def test_rdm6300_bad_checksum_is_dropped_and_counted():
    bad = bytearray(EXAMPLE)
    bad[12] = ord("0")  # checksum CB -> C0
    framer = Rdm6300Framer()
    assert framer.feed(bytes(bad) + EXAMPLE) == ["67003B51C6"]
    assert framer.bad_checksum == 1


def test_rdm6300_resyncs_on_stx_inside_a_broken_frame():
    framer = Rdm6300Framer()
    assert framer.feed(EXAMPLE[:7] + EXAMPLE) == ["67003B51C6"]
    assert framer.broken == 1


def test_rdm6300_non_hex_inside_a_frame_and_missing_etx_are_dropped():
    framer = Rdm6300Framer()
    garbled = EXAMPLE[:5] + b"Z" + EXAMPLE[6:]
    no_etx = EXAMPLE[:13] + b"\x04"
    assert framer.feed(garbled + no_etx + EXAMPLE) == ["67003B51C6"]
    assert framer.broken == 2


# ---- PN532 ---------------------------------------------------------------------------


def test_pn532_host_frames_are_the_manual_bytes():
    assert bytes.fromhex("00 00 FF 05 FB D4 14 01 14 01 02 00") == SAM_CONFIGURATION
    assert bytes.fromhex("00 00 FF 04 FC D4 4A 01 00 E1 00") == IN_LIST_PASSIVE_TARGET


def chip(data: bytes) -> bytes:
    length = len(data) + 1
    body = b"\xd5" + data
    return bytes([0, 0, 0xFF, length, (-length) & 0xFF]) + body + bytes([(-sum(body)) & 0xFF, 0])


CARD_ANSWER = chip(bytes.fromhex("4B 01 01 00 04 08 04 DE AD BE EF"))


def test_pn532_ack_and_answer_byte_by_byte():
    parser = Pn532Parser()
    items = [item for byte in PN532_ACK + CARD_ANSWER for item in parser.feed(bytes([byte]))]
    assert items[0] == Pn532Ack()
    assert isinstance(items[1], Pn532Frame)
    assert target_uid(items[1]) == "DEADBEEF"


def test_pn532_seven_byte_uid_and_no_card():
    parser = Pn532Parser()
    seven = chip(bytes.fromhex("4B 01 01 00 44 00 07 04 11 22 33 44 55 66"))
    none = chip(bytes.fromhex("4B 00"))
    frames = parser.feed(seven + none)
    assert [target_uid(f) for f in frames] == ["04112233445566", None]


@pytest.mark.parametrize("seed", range(20))
def test_pn532_noise_and_splits(seed):
    rng = random.Random(seed)
    stream = b""
    for _ in range(4):
        stream += bytes(rng.choice([0x55, 0xFF, 0x12, 0x00]) for _ in range(rng.randint(0, 5)))
        stream += PN532_ACK + CARD_ANSWER
    parser, frames, i = Pn532Parser(), [], 0
    while i < len(stream):
        step = rng.randint(1, 7)
        frames += [f for f in parser.feed(stream[i : i + step]) if isinstance(f, Pn532Frame)]
        i += step
    assert [target_uid(f) for f in frames] == ["DEADBEEF"] * 4


def test_pn532_bad_lcs_and_bad_dcs_are_dropped_and_counted():
    bad_dcs = bytearray(CARD_ANSWER)
    bad_dcs[-2] ^= 0x01
    bad_lcs = bytearray(CARD_ANSWER)
    bad_lcs[4] ^= 0x01
    parser = Pn532Parser()
    frames = [
        f for f in parser.feed(bytes(bad_dcs) + bytes(bad_lcs) + CARD_ANSWER) if isinstance(f, Pn532Frame)
    ]
    assert [target_uid(f) for f in frames] == ["DEADBEEF"]
    assert parser.bad_checksum == 2


def test_pn532_frame_builder_checksums():
    frame = pn532_frame(0x02)
    assert frame == bytes.fromhex("00 00 FF 02 FE D4 02 2A 00")


# ---- debounce --------------------------------------------------------------------------


def test_held_card_is_one_tap_and_another_card_is_a_new_tap():
    held = HeldCard(1.0)
    assert held.is_new_tap("AA", 0.0)
    assert not held.is_new_tap("AA", 0.08)
    assert not held.is_new_tap("AA", 0.9)  # the window restarts at each read
    assert not held.is_new_tap("AA", 1.8)
    assert held.is_new_tap("BB", 1.85)
    assert held.is_new_tap("AA", 1.9)
    assert held.is_new_tap("AA", 3.0)


# ---- reader thread on a pty --------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.taps: list[str] = []
        self.health: list[bool] = []
        self.lock = threading.Lock()

    def tap(self, h: str) -> None:
        with self.lock:
            self.taps.append(h)

    def healthy(self, ok: bool) -> None:
        self.health.append(ok)


@pytest.fixture(params=["rdm6300", "pn532"])
def reader(request, tmp_path):
    kind = request.param
    sim = SimReader(kind, link=tmp_path / "hall-rfid").start()
    rec = Recorder()
    driver = CardReader(kind, sim.port, KEY, rec.tap, rec.healthy, same_card_s=0.5, poll_s=0.03, retry_s=0.05)
    driver.start()
    yield kind, sim, driver, rec
    driver.stop()
    sim.stop()


def card_for(kind: str) -> str:
    return "67003B51C6" if kind == "rdm6300" else "04A1B2C3D4E5F6"


def test_held_card_is_one_tap_end_to_end(reader):
    kind, sim, _driver, rec = reader
    wait_for(lambda: rec.health == [True], what="reader up")
    sim.tap(card_for(kind), hold_s=0.4)
    wait_for(lambda: rec.taps, what="tap")
    assert rec.taps == [card_hash(KEY, card_for(kind))]
    # The card keeps repeating for a while; still one tap.
    wait_for(lambda: (sim.polls > 12) if kind == "pn532" else True, what="polls while held")
    assert len(rec.taps) == 1


def test_unplug_reports_offline_and_replug_comes_back(reader):
    kind, sim, _driver, rec = reader
    wait_for(lambda: rec.health == [True], what="reader up")
    sim.unplug()
    wait_for(lambda: rec.health == [True, False], what="offline")
    sim.plug()
    wait_for(lambda: rec.health == [True, False, True], what="back")
    sim.tap(card_for(kind))
    wait_for(lambda: len(rec.taps) == 1, what="tap after replug")


def test_pn532_that_stops_answering_goes_offline(tmp_path):
    sim = SimReader("pn532", link=tmp_path / "rfid").start()
    rec = Recorder()
    driver = CardReader("pn532", sim.port, KEY, rec.tap, rec.healthy, poll_s=0.02, retry_s=0.05)
    driver.start()
    try:
        wait_for(lambda: rec.health == [True], what="up")
        sim.mute(True)
        wait_for(lambda: rec.health == [True, False], what="offline when muted")
        sim.mute(False)
        wait_for(lambda: rec.health == [True, False, True], what="back when answering")
    finally:
        driver.stop()
        sim.stop()


def test_missing_port_is_offline_from_the_start(tmp_path):
    rec = Recorder()
    driver = CardReader("rdm6300", str(tmp_path / "absent"), KEY, rec.tap, rec.healthy, retry_s=0.05)
    driver.start()
    try:
        wait_for(lambda: rec.health == [False], what="offline")
    finally:
        driver.stop()


def test_noise_on_the_line_does_not_make_a_tap(tmp_path):
    sim = SimReader("rdm6300", link=tmp_path / "rfid").start()
    rec = Recorder()
    driver = CardReader("rdm6300", sim.port, KEY, rec.tap, rec.healthy, retry_s=0.05)
    driver.start()
    try:
        wait_for(lambda: rec.health == [True], what="up")
        bad = bytearray(EXAMPLE)
        bad[3] = ord("9")
        sim.write_raw(b"\xff\x00garbage" + bytes(bad) + EXAMPLE[:6])
        sim.write_raw(EXAMPLE)
        wait_for(lambda: rec.taps, what="the good frame")
        assert rec.taps == [card_hash(KEY, "67003B51C6")]
        assert driver.rdm.bad_checksum == 1
    finally:
        driver.stop()
        sim.stop()


def test_a_reader_port_held_by_another_process_is_offline_until_it_is_released(tmp_path):
    """The port worker opens its port exclusively: a second program on the reader's UART would
    take its bytes, so the driver stays offline (and says why) until the port is free."""
    sim = SimReader("pn532", link=tmp_path / "rfid").start()
    other = open_serial(sim.port, 115200, timeout=0)
    rec = Recorder()
    driver = CardReader("pn532", sim.port, KEY, rec.tap, rec.healthy, poll_s=0.02, retry_s=0.05)
    driver.start()
    try:
        wait_for(lambda: rec.health == [False], what="offline while the port is held")
        assert sim.polls == 0
        other.close()
        wait_for(lambda: rec.health == [False, True], what="up once the port is free")
        sim.tap(card_for("pn532"))
        wait_for(lambda: len(rec.taps) == 1, what="a tap")
    finally:
        driver.stop()
        sim.stop()
