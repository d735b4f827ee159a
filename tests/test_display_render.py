"""The renderer and rotation in pure code: reference frames, layouts, scrolling, bad input."""

from __future__ import annotations

import gc
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from display_support import (
    BRICKLAYER,
    NOTICE,
    SHOP,
    UNIFONT,
    WALL,
    WQY12,
    ZONE,
    check_reference,
    jobs,
    load,
    rotation_for,
    write_docs_gif,
)
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from support import fuzz

from edge.display.content import read_jobs, read_notices
from edge.display.render import Glyphs, KeptGlyphs
from edge.display.text import clean, mask_contact, wage_text

PLAIN = {**BRICKLAYER, "urgent": False}

# ---- reference frames (tests/reference/*.png) ----------------------------------


def test_job_page_matches_reference(tmp_path):
    """128x32: every part of a job still, each long enough to read, all of it within 9 s."""
    rotation = rotation_for()
    load(rotation, [{**PLAIN, "starts_at": "2026-11-23T07:00:00+08:00"}])
    check_reference("job", rotation.frame(0.0, WALL), tmp_path)
    parts = []
    for now in (0.0, 3.0, 6.0):
        rotation.frame(now, WALL)
        parts.append([line.text for line in rotation.page.lines])
        assert rotation.current.art.scrollers == []  # every part stands still
        assert rotation.current.until == pytest.approx(now + 3.0)  # part_seconds each
    assert parts == [
        ["瓦工\t300元/天", "招3人\t恒达建筑"],
        ["南山公园东侧工地", "电话138****5678"],  # the place and the phone on screen together
        ["开工11/23 07:00"],
    ]
    rotation.frame(9.0, WALL)
    assert rotation.page.lines[0].text == parts[0][0]  # the only job again, from its first part


def test_urgent_new_job_page_is_marked_and_matches_reference(tmp_path):
    rotation = rotation_for()
    load(rotation, [SHOP, BRICKLAYER], new={BRICKLAYER["id"]})
    check_reference("urgent_new_job", rotation.frame(0.0, WALL), tmp_path)
    assert rotation.page.lines[0].badges == ("新",)
    assert rotation.current.art.scrollers == []  # badge, trade and pay fit the top row


def test_notice_page_matches_reference(tmp_path):
    rotation = rotation_for()
    load(rotation, [], notices=[NOTICE])
    check_reference("notice", rotation.frame(0.0, WALL), tmp_path)
    assert rotation.page.kind == "notice"


def test_called_ticket_matches_reference(tmp_path):
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.frame(0.0, WALL)
    rotation.call("A023", 2, 8.0, 1.0)
    check_reference("called_ticket", rotation.frame(1.0, WALL), tmp_path)
    assert [line.text for line in rotation.page.lines] == ["请 A023 号", "到 2 号窗口"]


def test_operator_message_matches_reference(tmp_path):
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.message("今日下午停电 暂停营业", 3600, 0.0)
    check_reference("operator_message", rotation.frame(0.0, WALL), tmp_path)


def test_empty_screen_is_friendly_with_hotline_and_matches_reference(tmp_path):
    rotation = rotation_for()
    frame = rotation.frame(0.0, WALL)
    check_reference("empty", frame, tmp_path)
    assert rotation.page.kind == "empty"
    assert "12333" in rotation.page.lines[1].text
    assert frame.getbbox() is not None  # never blank


def test_stale_marker_matches_reference(tmp_path):
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.set_marker("更新于08:30")
    check_reference("stale", rotation.frame(0.0, WALL), tmp_path)


def test_small_panels_one_line_and_wenquanyi_12px(tmp_path):
    one_line = rotation_for(64, 16)
    load(one_line, [PLAIN])
    check_reference("job_64x16", one_line.frame(0.0, WALL), tmp_path)
    assert len(one_line.page.lines) == 1
    small = rotation_for(96, 24, WQY12, 12)
    load(small, [PLAIN])
    check_reference("job_96x24_wqy12", small.frame(0.0, WALL), tmp_path)
    assert small.renderer.rows == 2


def test_colour_panel_renders_rgb_frames():
    rotation = rotation_for(mode="RGB")
    load(rotation, [PLAIN])
    frame = rotation.frame(0.0, WALL)
    assert frame.mode == "RGB"
    assert (255, 160, 0) in {colour for _, colour in frame.getcolors(4096)}


# ---- rotation ----------------------------------------------------------------


def test_rotation_urgent_first_notices_interleave_hotline_regularly():
    rotation = rotation_for()
    urgent_last = [SHOP, {**BRICKLAYER, "id": "J-urgent"}]
    load(rotation, urgent_last, notices=[NOTICE])
    kinds = pages_in_turn(rotation, 12)
    assert kinds[0] == ("job", "J-urgent")
    assert ("notice", "N12") in kinds[:5]
    assert sum(kind == "hotline" for kind, _ in kinds) >= 2
    hotline_at = [i for i, (kind, _) in enumerate(kinds) if kind == "hotline"]
    assert hotline_at[0] == 5


def test_new_job_interrupts_then_joins_rotation():
    rotation = rotation_for()
    load(rotation, [SHOP])
    rotation.frame(0.0, WALL)
    cards, _ = read_jobs(jobs(SHOP, PLAIN), ZONE)
    rotation.set_jobs(cards, frozenset({PLAIN["id"]}), 1.0)
    rotation.frame(1.0, WALL)
    assert rotation.page.key == PLAIN["id"] and rotation.page.lines[0].badges == ("新",)
    seen = set()
    now = rotation.current.until
    for _ in range(4):
        rotation.frame(now, WALL)
        seen.add((rotation.page.key, rotation.page.lines[0].badges))
        now = rotation.current.until
    assert (PLAIN["id"], ()) in seen  # in the rotation, no longer marked


def test_removed_and_expired_jobs_are_gone_at_the_next_frame():
    rotation = rotation_for()
    soon = {**SHOP, "id": "J-soon", "contact": "", "expires_at": (WALL + timedelta(seconds=2)).isoformat()}
    load(rotation, [soon, PLAIN])
    rotation.frame(0.0, WALL)
    assert rotation.page.key == "J-soon"
    assert rotation.next_change(0.0, WALL) == pytest.approx(2.0)
    rotation.frame(2.0, WALL + timedelta(seconds=2))
    assert rotation.page.key == PLAIN["id"]
    cards, _ = read_jobs(jobs(SHOP), ZONE)
    rotation.set_jobs(cards, frozenset(), 3.0)
    rotation.frame(3.0, WALL)
    assert rotation.page.key == SHOP["id"]


def test_message_overrides_call_and_ends_on_time():
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.message("暂停营业", 10, 0.0)
    rotation.call("A001", 1, 5, 1.0)
    rotation.frame(1.0, WALL)
    assert rotation.page.kind == "message"
    rotation.frame(10.0, WALL)
    assert rotation.page.kind == "call"
    rotation.frame(15.0, WALL)
    assert rotation.page.kind == "job"


def test_a_windows_newer_call_replaces_its_older_ones_on_the_screen():
    """Staff pressing call three times in a row: the screen shows the ticket the window serves now,
    not 24 s of numbers it has moved past; other windows' calls still queue as before."""
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.frame(0.0, WALL)
    rotation.call("A001", 1, 8, 1.0)
    rotation.call("B001", 2, 8, 1.0)
    rotation.frame(1.0, WALL)
    assert rotation.page.key == "A001"
    rotation.call("A002", 1, 8, 2.0)
    rotation.call("A003", 1, 8, 2.0)
    rotation.frame(2.0, WALL)
    assert rotation.page.key == "A003"  # window 1 moved on: A001 gives way at once, A002 never shows
    shown = timeline(rotation, 2.0, 20.0)
    assert "A001" not in shown.values() and "A002" not in shown.values()
    assert shown[5.0] == "B001"  # A003 (the newest) went first, for one turn of 3 s: then window 2
    assert set(shown.values()) - {"A003", "B001"} == {"job"}
    assert list(shown.values())[-1] == "job"  # each had its 8 s on screen, then the rotation


def timeline(rotation, start: float, end: float, step: float = 0.25) -> dict[float, str]:
    """What the screen shows at each moment from ``start`` to ``end`` (a call's ticket, else the kind)."""
    shown = {}
    now = start
    while now < end:
        rotation.frame(now, WALL)
        page = rotation.page
        shown[now] = page.key if page.kind == "call" else page.kind
        now += step
    return shown


def pages_in_turn(rotation, count: int, now: float = 0.0) -> list[tuple[str, str]]:
    """(kind, key) of the next ``count`` pages, a job shown in several parts counted once."""
    kinds: list[tuple[str, str]] = []
    previous = None
    while len(kinds) < count:
        rotation.frame(now, WALL)
        if rotation.current is not previous and not _continues(rotation, kinds):
            kinds.append((rotation.page.kind, rotation.page.key))
        previous = rotation.current
        now = rotation.current.until
    return kinds


def _continues(rotation, kinds: list[tuple[str, str]]) -> bool:
    page = rotation.page
    return page.kind == "job" and bool(kinds) and kinds[-1] == ("job", page.key) and not page.lines[0].badges


def test_long_text_scrolls_smoothly_then_holds():
    rotation = rotation_for()
    long_place = {**PLAIN, "location": "Nanshan-Park-East-Gate-Building-7"}  # no break point in it
    load(rotation, [long_place])
    rotation.frame(0.0, WALL)
    start = rotation.current.until  # the second part: the place, scrolling as one line
    first = rotation.frame(start, WALL).tobytes()
    art = rotation.current.art
    assert len(art.scrollers) == 1 and art.scrollers[0].distance > 0
    assert rotation.frame(start + 0.5, WALL).tobytes() == first  # holds still at the start
    step = rotation.next_change(start + 1.0, WALL)
    assert 0 < step <= 1 / 32 + 1e-6
    offsets = [art._offset(art.scrollers[0], 1.0 + i / 32) for i in range(5)]
    assert offsets == [0, 1, 2, 3, 4]  # one pixel a step: smooth
    assert rotation.frame(start + 1.5, WALL).tobytes() != first
    assert rotation.current.until - start >= art.cycle_s  # the part lasts one whole pass: all of it seen


def test_new_job_scrolling_as_docs_gif():
    """docs/img/screen-new_job.gif (written with UPDATE_REFERENCE=1): a new job arrives and scrolls."""

    def new_job_arrives_at_one_second():
        rotation = rotation_for()
        load(rotation, [PLAIN, SHOP])
        rotation.frame(0.0, WALL)
        cards, _ = read_jobs(jobs(PLAIN, SHOP, {**BRICKLAYER, "id": "J-new"}), ZONE)
        rotation.set_jobs(cards, frozenset({"J-new"}), 1.0)
        return rotation

    write_docs_gif(new_job_arrives_at_one_second(), "new_job", 11.0)
    rotation = new_job_arrives_at_one_second()
    rotation.frame(1.0, WALL)
    assert rotation.page.key == "J-new"


def test_static_page_never_asks_for_another_frame_before_it_ends():
    rotation = rotation_for()
    load(rotation, [{**PLAIN, "location": "北关", "contact": "", "employer": ""}])
    rotation.frame(0.0, WALL)
    assert rotation.next_change(0.0, WALL) == pytest.approx(6.0)
    assert rotation.frame(3.0, WALL) is rotation.frame(0.0, WALL)  # the same image: nothing to send


# ---- text and bad input ------------------------------------------------------


def test_text_cleaning_masking_and_wages():
    assert clean("瓦工\x00\x1b[31m\u200b \n 日结", 20) == "瓦工[31m 日结"
    assert clean("一二三四五六七八九十", 5) == "一二三四…"
    assert mask_contact("138-1234-5678") == "138****5678"
    assert mask_contact("12") == "****"
    assert wage_text({"amount": 25.5, "unit": "hour"}) == "25.5元/时"
    assert wage_text({"amount": 4500, "unit": "month"}) == "4500元/月"
    assert wage_text({"amount": 2, "unit": "piece"}) == "2元/件"


def test_bad_jobs_are_skipped_with_reasons_and_glyphs_replaced():
    entries = [
        {**SHOP, "id": "neg", "wage": {"amount": -5, "unit": "day"}},
        {**SHOP, "id": "nan", "wage": {"amount": "三百", "unit": "day"}},
        {**SHOP, "id": "unit", "wage": {"amount": 5, "unit": "week"}},
        {**SHOP, "id": "hc", "headcount": "多"},
        {**SHOP, "id": "unverified", "verified": False},
        {**SHOP, "id": "zero", "headcount": 0},
        "not a job",
        {**SHOP, "id": "emoji", "title": "搬运工😀🚚" + "x" * 100},
    ]
    cards, rejected = read_jobs(jobs(*entries), ZONE)
    assert [c.id for c in cards] == ["emoji"]
    assert {r.id for r in rejected} == {"neg", "nan", "unit", "hc", "?"}
    assert len(cards[0].title) == 16 and cards[0].title.endswith("…")
    glyphs = Glyphs(UNIFONT, 16)
    assert glyphs.showable("搬运工😀") == "搬运工□"


@fuzz(60)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.one_of(st.text(max_size=80), st.integers(), st.none()),
                "title": st.one_of(st.text(max_size=300), st.none(), st.integers()),
                "headcount": st.one_of(st.integers(-5, 10**9), st.text(max_size=3), st.none()),
                "wage": st.one_of(
                    st.fixed_dictionaries(
                        {
                            "amount": st.one_of(st.floats(allow_nan=True), st.integers(), st.text()),
                            "unit": st.sampled_from(["day", "hour", "piece", "month", "week", ""]),
                        }
                    ),
                    st.text(max_size=5),
                ),
                "location": st.text(max_size=500),
                "contact": st.one_of(st.text(max_size=30), st.integers()),
                "urgent": st.booleans(),
                "verified": st.just(True),
                "expires_at": st.one_of(
                    st.none(), st.text(max_size=30), st.just("2030-01-01T00:00:00+08:00")
                ),
            }
        ),
        max_size=4,
    )
)
def test_any_job_snapshot_renders_without_crashing(entries):
    rotation = rotation_for(64, 16)
    cards, _ = read_jobs(jobs(*entries), ZONE)
    rotation.set_jobs(cards, frozenset(c.id for c in cards), 0.0)
    now = 0.0
    for _ in range(len(cards) + 2):
        frame = rotation.frame(now, WALL)
        assert frame.size == (64, 16)
        now = rotation.current.until
    for card in cards:
        assert "****" in card.contact or not any(ch.isdigit() for ch in card.contact)


@fuzz(40)
@given(text=st.text(max_size=2000), ticket=st.text(max_size=40), window=st.integers(-5, 10**6))
def test_any_free_text_renders_without_crashing(text, ticket, window):
    rotation = rotation_for()
    rotation.set_notices(read_notices({"notices": [{"id": "n", "text": text}]}, ZONE), 0.0)
    rotation.line(text, 3, 0.0)
    rotation.call(ticket, window, 3, 0.0)
    rotation.message(text or "x", 3, 0.0)
    now = 0.0
    for _ in range(5):
        assert rotation.frame(now, WALL).size == (128, 32)
        assert rotation.next_change(now, WALL) > 0
        now = rotation.current.until


def test_many_new_jobs_still_let_the_hotline_through():
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.frame(0.0, WALL)
    many = [{**SHOP, "id": f"J-{i}"} for i in range(30)]
    cards, _ = read_jobs(jobs(PLAIN, *many), ZONE)
    rotation.set_jobs(cards, frozenset(c["id"] for c in many), 1.0)
    kinds, now, previous = [], 1.0, ""
    while len(kinds) < 24:
        rotation.frame(now, WALL)
        if rotation.page.key != previous or rotation.page.kind != "job":  # a job's later parts: same job
            kinds.append(rotation.page.kind if rotation.current.source != "new" else "new")
        previous, now = rotation.page.key, rotation.current.until
    assert kinds[0] == "new"  # at once
    assert "hotline" in kinds[:7]
    assert kinds.count("new") == 20  # the rest join the rotation unmarked


# ---- bad input from the platform, shown safely (issue 13) ----------------------------------------


def _all_parts(rotation, start: float = 0.0) -> list[list[str]]:
    """The text of every part of the job now on screen, in order."""
    rotation.frame(start, WALL)
    key, parts, now = rotation.page.key, [], start
    while rotation.page.key == key and len(parts) < 10:
        part = [line.text for line in rotation.page.lines]
        if parts and part == parts[0]:
            break  # the job again, from the start
        parts.append(part)
        assert rotation.next_change(now, WALL) > 0  # never a frozen screen
        now = rotation.current.until
        rotation.frame(now, WALL)
    return parts


def test_characters_unifont_lacks_are_drawn_as_a_box():
    rotation = rotation_for()
    load(rotation, [{**PLAIN, "title": "𠀀工😀", "location": "𪚥村"}])  # outside Unifont's plane 0
    parts = _all_parts(rotation)
    shown = "".join(text for part in parts for text in part)
    assert shown.startswith("□工□") and "□村" in shown
    assert rotation.frame(0.0, WALL).getbbox() is not None


def test_control_characters_never_reach_the_screen():
    rotation = rotation_for()
    load(rotation, [{**PLAIN, "title": "瓦\x1b[2J工\u202e\x00", "location": "南山\r\n公园\u200b"}])
    shown = "".join(text for part in _all_parts(rotation) for text in part)
    assert "瓦[2J工" in shown and "南山 公园" in shown
    assert not any(ord(ch) < 32 and ch != "\t" for ch in shown)
    rotation.line("无效卡\x07\x1b 请到服务窗口登记", 5.0, 100.0, source="locker")
    rotation.frame(100.0, WALL)
    assert "\x07" not in "".join(line.text for line in rotation.page.lines)


def test_a_very_long_title_is_cut_with_an_ellipsis_and_every_part_still_shown():
    rotation = rotation_for()
    load(rotation, [{**PLAIN, "title": "高空作业安全员兼职夜班巡检员及仓库管理员助理" * 3}])
    parts = _all_parts(rotation)
    first_rows = [row for part in parts for row in part]
    title = "".join(first_rows[:2]).split("\t")[0]
    assert title.endswith("…") and len(title.replace(" ", "")) <= 17
    shown = " ".join(first_rows)
    assert "300元/天" in shown and "电话138****5678" in shown  # nothing pushed off the screen
    assert len(parts) <= 4


def test_an_empty_title_is_not_shown_and_the_screen_goes_on():
    rotation = rotation_for()
    cards, rejected = read_jobs(jobs({**PLAIN, "title": " \u200b\x00 "}, SHOP), ZONE)
    assert [r.reason for r in rejected] == ["job has no title"]
    rotation.set_jobs(cards, frozenset(), 0.0)
    rotation.frame(0.0, WALL)
    assert rotation.page.key == SHOP["id"]
    rotation.line("\x00\u200b", 5.0, 1.0, source="locker")  # nothing printable: no blank page
    rotation.frame(1.0, WALL)
    assert rotation.page.kind == "job"


def test_a_very_long_screen_line_is_cut_and_its_last_row_shown_whole():
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.line("A023 号 打印机缺纸 请到窗口 " * 20, 10.0, 0.0, source="printer")
    rotation.frame(0.0, WALL)
    lines = [line.text for line in rotation.page.lines]
    assert len(lines) == 2 and lines[-1].endswith("…")
    art = rotation.current.art
    assert art.scrollers and rotation.current.until == pytest.approx(10.0)


# ---- the fonts, kept as cells -----------------------------------------------------------------

LABEL_TEXTS = st.text(alphabet="新急公告更新于 0123456789:□?\tAB停用", max_size=14)
JOB_TEXTS = st.text(
    alphabet="招聘木工瓦工日结元天城关镇急 0123456789/:-.,()（）ABCxyz\t€\u0378\U0001f600", max_size=30
)


def drawn_both_ways(font: str, size: int, text: str, mode: str) -> list[bytes]:
    """The text drawn by FreeType (Glyphs) and from kept cells (KeptGlyphs), each as frame bytes."""
    direct, kept = Glyphs(font, size), KeptGlyphs(font, size)
    assert kept.width(text) == direct.width(text)
    assert kept.showable(text) == direct.showable(text)
    frames = []
    for glyphs in (direct, kept):
        frame = Image.new(mode, (480, 24))
        ink = {"1": 1, "L": 255, "RGB": (255, 160, 0)}[mode]
        glyphs.draw(ImageDraw.Draw(frame), 3, 2, glyphs.showable(text), ink)
        frames.append(frame.tobytes())
    return frames


@fuzz(150)
@given(text=LABEL_TEXTS, mode=st.sampled_from(["1", "L", "RGB"]))
def test_a_label_pasted_from_kept_cells_is_pixel_for_pixel_the_font_drawing_it(text, mode):
    direct, kept = drawn_both_ways(WQY12, 12, text, mode)
    assert kept == direct


@fuzz(150)
@given(text=JOB_TEXTS, mode=st.sampled_from(["1", "L", "RGB"]))
def test_a_job_text_pasted_from_kept_cells_is_pixel_for_pixel_unifont_drawing_it(text, mode):
    direct, kept = drawn_both_ways(UNIFONT, 16, text, mode)
    assert kept == direct


@pytest.mark.parametrize("font", [WQY12, UNIFONT])
def test_the_font_file_is_not_held_open_once_its_characters_are_kept(tmp_path, font):
    font_file = tmp_path / ("screen-font" + Path(font).suffix)
    shutil.copy(font, font_file)
    kept = KeptGlyphs(str(font_file), 12 if font == WQY12 else 16)
    frame = Image.new("1", (200, 20))
    kept.draw(ImageDraw.Draw(frame), 0, 0, "更新于 08:30", 1)
    kept.draw(ImageDraw.Draw(frame), 0, 0, "新", 1)
    gc.collect()
    assert font_file.name not in Path("/proc/self/maps").read_text()  # nor FreeType's copy of it
    assert frame.getbbox() is not None  # and the text was drawn


def test_months_of_new_characters_keep_a_bounded_number_of_cells_and_still_draw_each(monkeypatch):
    monkeypatch.setattr(KeptGlyphs, "MAX_KEPT", 64)
    kept, direct = KeptGlyphs(UNIFONT, 16), Glyphs(UNIFONT, 16)
    for start in range(0x4E00, 0x4E00 + 400, 20):  # 400 characters, 20 to a job
        kept.width("".join(map(chr, range(start, start + 20))))
    assert len(kept._cells) <= 64
    first = "一丁丂七"  # learnt first, so dropped long ago: learnt again, drawn the same
    frames = []
    for glyphs in (direct, kept):
        frame = Image.new("1", (80, 20))
        glyphs.draw(ImageDraw.Draw(frame), 0, 0, first, 1)
        frames.append(frame.tobytes())
    assert frames[0] == frames[1]
