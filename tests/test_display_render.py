"""The renderer and rotation in pure code: reference frames, layouts, scrolling, bad input."""

from __future__ import annotations

from datetime import timedelta

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
from support import fuzz

from edge.display.content import read_jobs, read_notices
from edge.display.render import Glyphs
from edge.display.text import clean, mask_contact, wage_text

PLAIN = {**BRICKLAYER, "urgent": False}

# ---- reference frames (tests/reference/*.png) ----------------------------------


def test_job_page_matches_reference(tmp_path):
    rotation = rotation_for()
    load(rotation, [PLAIN])
    check_reference("job", rotation.frame(0.0, WALL), tmp_path)
    assert rotation.page.lines[0].text == "瓦工\t300元/天"
    assert rotation.page.lines[1].text == "招3人\t南山公园东侧工地\t电话138****5678"
    assert [s.y for s in rotation.current.art.scrollers] == [16]  # the head row fits; details scroll


def test_urgent_new_job_page_is_marked_and_matches_reference(tmp_path):
    rotation = rotation_for()
    load(rotation, [SHOP, BRICKLAYER], new={BRICKLAYER["id"]})
    check_reference("urgent_new_job", rotation.frame(0.0, WALL), tmp_path)
    assert rotation.page.lines[0].badges == ("新",)
    assert rotation.current.art.scrollers[0].y == 16  # badge, trade and pay fit the top row


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
    kinds, now = [], 0.0
    for _ in range(12):
        rotation.frame(now, WALL)
        kinds.append((rotation.page.kind, rotation.page.key))
        now = rotation.current.until
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
    rotation.frame(10.0, WALL)
    assert rotation.page.key == "B001"
    rotation.frame(18.0, WALL)
    assert rotation.page.kind == "job"


def test_long_text_scrolls_smoothly_then_holds():
    rotation = rotation_for()
    long_place = {**PLAIN, "location": "南山公园东侧工地北门往西二百米 临时板房"}
    load(rotation, [long_place])
    first = rotation.frame(0.0, WALL).tobytes()
    art = rotation.current.art
    assert len(art.scrollers) == 1 and art.scrollers[0].distance > 0
    assert rotation.frame(0.5, WALL).tobytes() == first  # holds still at the start
    step = rotation.next_change(1.0, WALL)
    assert 0 < step <= 1 / 32 + 1e-6
    offsets = [art._offset(art.scrollers[0], 1.0 + i / 32) for i in range(5)]
    assert offsets == [0, 1, 2, 3, 4]  # one pixel a step: smooth
    assert rotation.frame(1.5, WALL).tobytes() != first
    assert rotation.current.until >= art.cycle_s  # the page lasts one whole pass


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
    load(rotation, [{**PLAIN, "location": "北关", "contact": ""}])
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
    kinds, now = [], 1.0
    for _ in range(24):
        rotation.frame(now, WALL)
        kinds.append(rotation.page.kind if rotation.current.source != "new" else "new")
        now = rotation.current.until
    assert kinds[0] == "new"  # at once
    assert "hotline" in kinds[:7]
    assert kinds.count("new") == 20  # the rest join the rotation unmarked
