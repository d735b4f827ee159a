"""The display feature in a running core: frames on luma devices, the mirror, commands, failures."""

from __future__ import annotations

import base64
import io
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from display_support import BRICKLAYER as EXPIRED_BRICKLAYER
from display_support import SHOP, ZONE, RecordingSPI, jobs
from hall_rig import Hall
from hallsim.screen import SimScreen, decode
from luma.core.device import dummy
from luma.led_matrix.const import max7219 as max7219_registers
from PIL import Image
from support import wait_for

from drivers.display import FrameMirror, PanelError, encode_frame, open_device
from edge.config import parse
from edge.core import CommandError
from edge.display.feature import DisplayFeature
from edge.messages import LinkStatus, ScreenCall, ScreenLine, SnapshotUpdated
from edge.settings import DisplaySettings

BRICKLAYER = {**EXPIRED_BRICKLAYER, "expires_at": "2099-01-01T00:00:00+08:00"}  # the tests run on real time
ALL_DAY = {"open_from": "00:00", "open_until": "00:00", "night_from": "00:00", "night_until": "00:00"}
STATIC = {**BRICKLAYER, "urgent": False, "location": "北关", "contact": ""}


class DisplayHall(Hall):
    """A hall with the display feature; helpers run things on the core thread."""

    @property
    def display(self) -> DisplayFeature:
        return self.feature("display")

    def jobs(self, *entries: dict, new: set[str] = frozenset(), received_at: datetime | None = None) -> None:
        at = received_at or datetime.now(ZONE)
        self.core.post(SnapshotUpdated("jobs", jobs(*entries), at, new_ids=frozenset(new)))

    def page(self) -> Any:
        return self.on_core(lambda: self.display.rotation.page)

    def outbox(self, type_: str) -> list[dict]:
        """The data of the ``type_`` events recorded so far (once the core has handled what was posted)."""
        return self.on_core(lambda: [e.body()["data"] for e in self.core.outbox.pending() if e.type == type_])


@pytest.fixture
def hall(make_hall):
    """``hall(display settings, **DisplayFeature arguments)``: a hall with the screen on a dummy device."""

    def make(display: dict | None = None, **feature_kwargs: Any) -> DisplayHall:
        overrides = {"display": {"enabled": True, **ALL_DAY, "device": "dummy", **(display or {})}}
        return make_hall(
            [lambda settings: DisplayFeature(settings, **feature_kwargs)], overrides, rig=DisplayHall
        )

    return make


def test_new_job_reaches_device_and_mirror_at_once_marked_new(hall, tmp_path):
    with SimScreen(tmp_path / "screen.sock") as screen:
        h = hall({"frame_mirror": str(tmp_path / "screen.sock"), "page_seconds": 60})
        wait_for(lambda: h.page() is not None and h.page().kind == "empty", 5, "the empty page")
        h.jobs(SHOP)
        wait_for(lambda: h.page().key == SHOP["id"], 5, "the first job")
        h.jobs(SHOP, BRICKLAYER, new={BRICKLAYER["id"]})
        wait_for(lambda: h.page().key == BRICKLAYER["id"], 2, "the new job at once")
        assert h.page().lines[0].badges == ("新",)
        device_frame = h.on_core(lambda: h.display.panel.device.image)
        wait_for(
            lambda: screen.last_frame is not None and screen.last_frame.tobytes() == device_frame.tobytes(),
            5,
            "the mirrored frame",
        )
        snap = h.command("display.snapshot")
        png = Image.open(io.BytesIO(base64.b64decode(snap["png_base64"])))
        assert (snap["width"], snap["height"]) == (128, 32) and snap["on_screen"]
        assert png.tobytes() == device_frame.tobytes()


def test_static_page_is_sent_once_and_scrolling_sends_one_frame_per_step(hall):
    h = hall({"page_seconds": 60})
    h.jobs(STATIC)
    wait_for(lambda: h.page() is not None and h.page().key == STATIC["id"], 5, "the job")
    sent = h.on_core(lambda: h.display.frames_sent)
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() > t0 + 0.4, 2, "time passing")
    h.core.post(LinkStatus(True))  # an input that changes nothing on the screen
    assert h.on_core(lambda: h.display.frames_sent) == sent
    long_title = {**STATIC, "id": "J-long", "title": "Electrician-Helper"}  # one word wider than a row
    h.jobs(long_title, new={"J-long"})
    wait_for(lambda: h.on_core(lambda: h.display.frames_sent) >= sent + 10, 3, "scroll frames")


def test_removed_job_is_gone_and_call_line_message_clear(hall):
    h = hall({"page_seconds": 60})
    h.jobs(STATIC, SHOP)
    wait_for(lambda: h.page() is not None and h.page().key == STATIC["id"], 5, "the first job")
    h.jobs(SHOP)
    wait_for(lambda: h.page().key == SHOP["id"], 2, "the removed job gone")
    h.core.post(ScreenCall("A023", 2, 0.3))
    wait_for(lambda: h.page().kind == "call", 2, "the call")
    wait_for(lambda: h.page().kind == "job", 3, "back to jobs after the call")
    h.core.post(ScreenLine("A023 号 打印机缺纸 请到窗口", 30))
    wait_for(lambda: h.page().kind == "line", 2, "the line")
    result = h.command("display.message", {"text": "今日下午停电 暂停营业", "seconds": 60})
    assert "until" in result and h.page().kind == "message"
    h.core.post(ScreenCall("A024", 1, 5))
    wait_for(lambda: h.on_core(lambda: len(h.display.rotation._calls)) == 1, 2, "the call queued")
    assert h.page().kind == "message"  # the operator's message overrides the call
    assert h.command("display.clear") == {"cleared": True}
    wait_for(lambda: h.page().kind == "call", 2, "the queued call after clear")
    with pytest.raises(CommandError):
        h.command("display.message", {"text": "\x00\u200b ", "seconds": 5})
    with pytest.raises(CommandError):
        h.command("display.message", {"text": "x", "seconds": -1})


def test_expired_job_leaves_by_the_controllers_clock(hall):
    h = hall({"page_seconds": 60})
    soon = {**STATIC, "id": "J-soon", "expires_at": (datetime.now(ZONE) + timedelta(seconds=0.6)).isoformat()}
    h.jobs(soon, SHOP)
    wait_for(lambda: h.page() is not None and h.page().key == "J-soon", 5, "the job")
    wait_for(lambda: h.page().key == SHOP["id"], 3, "the expired job gone")
    # status counts what can be shown: IT asking "why is J-soon not on the wall?" sees 1, not 2
    assert h.on_core(h.core.status)["display"]["jobs"] == 1


def test_stale_marker_when_offline_with_old_data(hall):
    h = hall({"stale_after_minutes": 30, "page_seconds": 60})
    old = datetime.now(ZONE) - timedelta(hours=2)
    h.jobs(STATIC, received_at=old)
    wait_for(lambda: h.page() is not None and h.page().marker, 5, "the stale marker")
    assert h.page().marker == f"更新于{old:%H:%M}"
    h.core.post(LinkStatus(True))
    wait_for(lambda: h.page().marker == "", 2, "marker gone when online")
    assert h.on_core(h.core.status)["display"]["stale"] is False


def test_bad_jobs_are_skipped_with_one_event_each(hall):
    h = hall()
    bad = {**SHOP, "id": "J-bad", "wage": {"amount": -300, "unit": "day"}}
    h.jobs(bad, STATIC)
    h.jobs(bad, STATIC)
    wait_for(lambda: h.page() is not None and h.page().key == STATIC["id"], 5, "the good job")
    events = h.outbox("error.invalid_payload")
    assert len(events) == 1 and "J-bad" in events[0]["reason"]
    assert events[0]["entry"] == "J-bad"  # named like the link's invalid entries (docs/mqtt.md)


def test_a_phone_number_anywhere_in_a_job_is_masked_on_the_screen_and_in_status(hall):
    """Only contact was masked: a posting could put the number in its title or place instead."""
    h = hall({"page_seconds": 60, "height": 64})  # every field in one still part
    h.jobs({**STATIC, "title": "急招13812345678", "location": "联系139-0000-1111 或 0351-7654321"})
    wait_for(lambda: h.page() is not None and h.page().key == STATIC["id"], 5, "the job")
    text = h.on_core(h.core.status)["display"]["text"]
    assert "138****5678" in text and "139****1111" in text and "0351****4321" in text
    digits = "".join(ch if ch.isdigit() else " " for ch in text).split()
    assert not any(len(run) >= 7 for run in digits), text


def test_max7219_over_spi_brightness_schedule_power_and_reinit(hall):
    spi = RecordingSPI()
    now = datetime.now(ZONE)
    closed_from, closed_until = (now + timedelta(hours=1)), (now + timedelta(hours=2))
    h = hall(
        {
            "device": "max7219",
            "width": 32,
            "height": 16,
            "brightness": 160,
            "open_from": f"{closed_from:%H:%M}",
            "open_until": f"{closed_until:%H:%M}",
        },
        serial_interface=spi,
    )
    intensity, shutdown = max7219_registers.INTENSITY, max7219_registers.SHUTDOWN
    wait_for(lambda: 0 in spi.register_values(shutdown), 5, "screen off outside opening hours")
    assert spi.register_values(intensity)[-1] == 160 >> 4
    assert h.command("display.brightness", {"level": 40}) == {"level": 40, "auto": False}
    assert spi.register_values(intensity)[-1] == 40 >> 4
    assert h.command("display.brightness", {"level": "auto"})["auto"] is True
    assert spi.register_values(intensity)[-1] == 160 >> 4
    with pytest.raises(CommandError):
        h.command("display.brightness", {"level": 999})
    assert h.on_core(h.core.status)["display"]["on"] is False
    scanlimit = max7219_registers.SCANLIMIT
    inits = len(spi.register_values(scanlimit))
    h.on_core(h.display._reinit)  # what the reinit_minutes timer does
    assert len(spi.register_values(scanlimit)) == inits + 1
    assert spi.register_values(shutdown)[-1] == 0  # still off: re-init keeps the opening hours


def test_reinit_rewrites_the_chain_in_place_without_a_blank_and_after_brightness(hall):
    """Issue 13: a noisy MAX7219 chain is re-initialised on a schedule and after every brightness
    change; the panel is never blanked, shut down or put in test mode meanwhile (no flicker), and
    display.status says when it last happened."""
    spi = RecordingSPI()
    h = hall({"device": "max7219", "width": 32, "height": 16, "page_seconds": 60}, serial_interface=spi)
    h.jobs(STATIC)
    wait_for(lambda: h.on_core(lambda: h.display.shown) is not None, 5, "a frame on the panel")
    registers = max7219_registers
    digits = range(registers.DIGIT_0, registers.DIGIT_0 + 8)
    on_panel = [w for w in spi.writes if w[0] in digits][-8:]
    assert any(any(w[1::2]) for w in on_panel)  # something lit
    for change in (
        h.display._reinit,
        lambda: h.core.command("display.brightness")({"level": 40}, {}),
    ):
        before, inits = len(spi.writes), len(spi.register_values(registers.SCANLIMIT))
        h.on_core(change)
        written = spi.writes[before:]
        assert len(spi.register_values(registers.SCANLIMIT)) == inits + 1  # the init sequence again
        assert [w for w in written if w[0] in digits] == on_panel  # the same frame, not a blank one
        assert all(w[1] != 0 for w in written if w[0] == registers.SHUTDOWN)
        assert all(w[1] == 0 for w in written if w[0] == registers.DISPLAYTEST)
    assert spi.register_values(registers.INTENSITY)[-1] == 40 >> 4
    status = h.on_core(h.core.status)["display"]
    assert status["reinitialised_at"] is not None
    assert datetime.fromisoformat(status["reinitialised_at"]) <= datetime.now(ZONE)


def test_failed_spi_write_marks_offline_then_recovers(hall):
    spi = RecordingSPI()
    h = hall({"device": "max7219", "width": 32, "height": 16, "page_seconds": 60}, serial_interface=spi)
    wait_for(lambda: h.on_core(lambda: h.core.components.get("display")) == "ok", 5, "display ok")
    spi.fail = True
    h.jobs(STATIC)
    wait_for(lambda: h.on_core(lambda: h.core.components.get("display")) == "offline", 5, "display offline")
    assert h.outbox("alarm.display")[0]["state"] == "offline"
    wait_for(lambda: h.page().key == STATIC["id"], 2, "the rotation keeps going")
    spi.fail = False
    wait_for(lambda: h.on_core(lambda: h.core.components.get("display")) == "ok", 5, "display back")
    assert [e["state"] for e in h.outbox("alarm.display")] == ["offline", "ok"]
    assert h.on_core(lambda: h.display.shown) is not None


def test_missing_spi_device_starts_offline_without_crashing(hall):
    h = hall({"device": "max7219", "spi_port": 6, "spi_device": 3})
    wait_for(lambda: h.on_core(lambda: h.core.components.get("display")) == "offline", 5, "display offline")
    snap = h.command("display.snapshot")
    assert snap["on_screen"] is False and snap["png_base64"]


def test_open_device_and_frame_datagram_round_trip():
    cfg = make_config_display(width=64, height=16)
    device = open_device(cfg)
    assert isinstance(device, dummy) and device.size == (64, 16)
    frame = Image.new("1", (13, 5))
    frame.putpixel((12, 4), 1)
    number, image = decode(encode_frame(frame, 7))
    assert number == 7 and image.tobytes() == frame.tobytes()
    rgb = Image.new("RGB", (3, 2), (1, 2, 3))
    assert decode(encode_frame(rgb, 8))[1].tobytes() == rgb.tobytes()
    with pytest.raises(PanelError):
        open_device(replace(cfg, device="max7219", spi_port=6, spi_device=3))


def make_config_display(**overrides: Any) -> DisplaySettings:
    return replace(parse("").display, **{"device": "dummy", **overrides})


def test_sim_screen_saves_png_and_led_gif(tmp_path):
    with SimScreen(tmp_path / "s.sock") as screen:
        sender = FrameMirror(str(tmp_path / "s.sock"))
        for i in range(3):
            frame = Image.new("1", (16, 8))
            frame.putpixel((i, i), 1)
            sender.send(frame, i)
        wait_for(lambda: screen.frames_received == 3, 5, "three frames")
        sender.close()
        exact = screen.save_png(tmp_path / "exact.png")
        big = screen.save_png(tmp_path / "big.png", enlarged=True)
        gif = screen.save_gif(tmp_path / "recent.gif")
    assert Image.open(exact).size == (16, 8)
    assert Image.open(big).size == (128, 64)
    assert Image.open(gif).n_frames == 3


def test_max7219_gets_configured_geometry_and_every_lit_pixel():
    """The SPI bytes a real chain would get: digit registers 1-8 of each chip carry the frame's pixels."""
    spi = RecordingSPI()
    cfg = make_config_display(device="max7219", width=32, height=16, block_orientation=-90)
    device = open_device(cfg, serial_interface=spi)
    assert (device.width, device.height, device.cascaded) == (32, 16, 8)
    assert device._correction_angle == -90
    one_row = open_device(replace(cfg, width=64, height=8, blocks_arranged_in_reverse_order=True), spi)
    assert one_row.blocks_arranged_in_reverse_order and one_row.cascaded == 8
    with pytest.raises(PanelError, match="single row"):
        open_device(replace(cfg, blocks_arranged_in_reverse_order=True), spi)
    frame = Image.new("1", (32, 16))
    for xy in [(0, 0), (31, 15), (9, 3), (17, 12), (5, 14)]:
        frame.putpixel(xy, 1)
    spi.writes.clear()
    device.display(frame)
    digits = [w for w in spi.writes if 1 <= w[0] <= 8]
    assert len(digits) == 8  # one write per digit register, all chips at once
    lit = sum(bin(value).count("1") for write in digits for value in write[1::2])
    assert lit == 5
