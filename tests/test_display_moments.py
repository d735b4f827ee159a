"""Screen messages bound to their moment (issue 13): replaced by their source's next line, withdrawn
when the moment passes, never shown late; calls of several windows take turns and leave on skip."""

from __future__ import annotations

import pytest
from display_support import BRICKLAYER, WALL, load, rotation_for

from edge.display.rotation import TURN_S

PLAIN = {**BRICKLAYER, "urgent": False}


def shown_text(rotation, now: float) -> str:
    rotation.frame(now, WALL)
    return " / ".join(line.text for line in rotation.page.lines)


def test_a_newer_line_from_the_same_place_replaces_the_older_at_once():
    """Four card taps 3.7 s apart: each tap's answer is on screen at once, never the one before."""
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.frame(0.0, WALL)
    answers = [
        "无效卡 请到服务窗口登记",
        "卡已暂停使用 请到服务窗口",
        "已达借用上限 请先归还工具",
        "2号柜已开 请取工具",
    ]
    for i, text in enumerate(answers):
        now = i * 3.7
        rotation.line(text, 6.0, now, source="locker")
        assert shown_text(rotation, now).replace(" / ", "").replace(" ", "") == text.replace(" ", "")
        assert shown_text(rotation, now + 0.7).replace(" / ", "").replace(" ", "") == text.replace(" ", "")


def test_a_line_leaves_when_its_moment_passes():
    """The door is shut: `1号柜已开 请放回工具` is off the screen in the same frame."""
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.line("1号柜已开 请放回工具", 30.0, 1.0, source="locker", cause="door:1")
    assert rotation.frame(1.0, WALL) is not None and rotation.page.kind == "line"
    rotation.line_ended("locker", "door:2", 2.0)  # another door: not this line's moment
    assert shown_text(rotation, 2.0).startswith("1号柜已开")
    rotation.line_ended("locker", "door:1", 3.0)
    rotation.frame(3.0, WALL)
    assert rotation.page.kind == "job"


def test_a_line_whose_moment_passed_is_never_shown_late():
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.frame(10.0, WALL)
    rotation.line("无效卡 请到服务窗口登记", 6.0, 10.0, source="locker", posted=3.0)  # 7 s in a queue
    rotation.frame(10.0, WALL)
    assert rotation.page.kind == "job"
    # One that arrives 1 s late keeps only the rest of its time.
    rotation.line("借出成功 请按时归还", 6.0, 10.0, source="locker", posted=9.0)
    rotation.frame(10.0, WALL)
    assert rotation.page.kind == "line" and rotation.current.until == pytest.approx(15.0)


def test_a_call_and_a_line_both_at_once_take_turns_and_the_line_keeps_its_deadline():
    """A worker at the locker is answered at once even while a number is called; the call gets its
    time back, and the answer never outlives its moment."""
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.line("无效卡 请到服务窗口登记", 6.0, 0.0, source="locker")
    assert rotation.frame(0.0, WALL) is not None and rotation.page.kind == "line"
    rotation.call("A001", 1, 8.0, 1.0)
    shown = {}
    now = 1.0
    while now < 20.0:
        rotation.frame(now, WALL)
        shown[now] = rotation.page.kind
        now = round(now + 0.1, 1)
    assert shown[1.0] == "call"  # at once
    assert all(kind != "line" for t, kind in shown.items() if t >= 6.0)  # never after its 6 s
    assert sum(0.1 for kind in shown.values() if kind == "call") == pytest.approx(8.0, abs=0.15)
    assert shown[19.9] == "job"


def test_lines_of_different_places_newest_first_then_the_older_in_its_time():
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.line("A023 号 打印机缺纸 请到窗口", 10.0, 0.0, source="printer", cause="ticket:A023")
    rotation.line("无效卡 请到服务窗口登记", 3.0, 1.0, source="locker")
    assert shown_text(rotation, 1.0).startswith("无效卡")
    assert shown_text(rotation, 4.0).startswith("A023")  # still within its 10 s
    rotation.line_ended("printer", "ticket:A023", 5.0)  # A023 was called
    rotation.frame(5.0, WALL)
    assert rotation.page.kind == "job"


def test_skip_takes_the_number_off_in_the_same_frame():
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.call("A023", 2, 8.0, 0.0)
    rotation.frame(0.0, WALL)
    assert rotation.page.key == "A023"
    rotation.call_ended(2, 0.5)
    rotation.frame(0.5, WALL)
    assert rotation.page.kind == "job"


def test_a_call_stays_until_its_time_on_screen_is_used_even_when_interrupted():
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.call("A023", 2, 8.0, 0.0)
    rotation.frame(0.0, WALL)
    rotation.message("暂停营业", 5.0, 2.0)  # the operator interrupts after 2 s
    assert shown_text(rotation, 2.0) == "暂停营业"
    rotation.frame(7.0, WALL)
    assert rotation.page.key == "A023"
    assert rotation.current.until == pytest.approx(13.0)  # the 6 s it was still owed


def test_two_windows_calling_within_a_second_both_seen_and_none_hidden_long():
    rotation = rotation_for()
    load(rotation, [PLAIN])
    rotation.frame(0.0, WALL)
    rotation.call("A023", 1, 8.0, 0.0)
    rotation.call("B007", 2, 8.0, 0.6)
    seen: dict[str, float] = {}
    hidden: dict[str, float] = {"A023": 0.0, "B007": 0.0}
    last_seen = {"A023": 0.0, "B007": 0.6}
    now, step = 0.0, 0.05
    while now < 20.0:
        rotation.frame(now, WALL)
        page = rotation.page
        if page.kind == "call":
            seen[page.key] = seen.get(page.key, 0.0) + step
            last_seen[page.key] = now
        for ticket, longest in hidden.items():
            if seen.get(ticket, 0.0) < 8.0 - step / 2:  # still owed time on screen: it is waiting
                hidden[ticket] = max(longest, now - last_seen[ticket])
        now = round(now + step, 2)
    assert seen["A023"] == pytest.approx(8.0, abs=0.2) and seen["B007"] == pytest.approx(8.0, abs=0.2)
    # hidden while the other window's call is up: never longer than one turn
    assert max(hidden.values()) <= TURN_S + 0.1
    assert rotation.page.kind == "job"


def test_the_rest_of_a_job_follows_an_interruption():
    rotation = rotation_for()
    load(rotation, [{**PLAIN, "starts_at": "2026-11-23T07:00:00+08:00"}])
    assert shown_text(rotation, 0.0).startswith("瓦工")
    rotation.line("无效卡 请到服务窗口登记", 2.0, 1.0, source="locker")
    rotation.frame(1.0, WALL)
    assert rotation.page.kind == "line"
    assert shown_text(rotation, 3.0).startswith("南山公园东侧工地")  # the job's next part, not a restart
