"""The docs quote the screen as it is: every quoted call or screen line equals what the renderer
draws on the default 128x32 panel, rows separated by ` / ` (issue 13: the docs wrote the call as
`请 A023 到 2 号窗口` while the screen shows `请 A023 号 / 到 2 号窗口`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from display_support import rotation_for

from edge.locker.feature import DENIAL_LINES
from edge.tickets.feature import PRINTER_TROUBLE

ROOT = Path(__file__).parent.parent
PAGES = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])
LAYOUTS = rotation_for().layouts

# A call as anyone might write it: with or without 号 and the row break; not the spoken call, which
# ends in 办理 (docs/voice.md: 请 A001 号 到 1 号窗口 办理).
CALL = re.compile(r"请 ?([A-Z]\d{3}) ?(?:号 ?)?(?:/ ?)?到 ?(\d+) ?号窗口(?! ?办理)")
# What the features put on the screen (numbers as in the docs' examples).
LINES = [
    *(text for reason, text in DENIAL_LINES.items() if reason != "timeout"),  # shown as 3号柜 柜门未打开…
    *(f"A023 号 {trouble} 请到窗口" for trouble in PRINTER_TROUBLE.values()),
    "借出成功 请按时归还",
    "归还成功 谢谢",
    "3号柜被强行打开",
    "3号柜门未关 请关门",
    "3号柜已开 请取工具",
    "1号柜已开 请放回工具",
    "绿色通道 请按业务键取号",
    "取号失败 请到窗口",
    "3号柜 柜门未打开 已重新上锁",
]


def rows(page) -> str:
    return " / ".join(line.text for line in page.lines)


def _loose(text: str) -> re.Pattern[str]:
    """The line as a doc may quote it: a row break ` / ` or a space (or nothing) between any two
    characters, but not inside a longer quote (no CJK character or / before or after it)."""
    chars = [re.escape(ch) for ch in text.replace(" ", "")]
    before = r"(?<![\u4e00-\u9fff/])(?<![\u4e00-\u9fff] )"
    return re.compile(before + r"(?: ?/ ?| )?".join(chars) + r"(?![\u4e00-\u9fff]| /)")


def quotes() -> list[tuple[str, str, str]]:
    """(page, quoted, what the screen shows) for every call and known screen line the docs quote."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in CALL.finditer(text):
            found.append((page.name, match.group(0), rows(LAYOUTS.call(match[1], int(match[2])))))
        for line in LINES:
            shown = rows(LAYOUTS.screen_line(line))
            found.extend((page.name, m.group(0), shown) for m in _loose(line).finditer(text))
    return found


def test_the_docs_quote_calls_and_lines_at_all():
    pages = {page for page, _, _ in quotes()}
    assert {"queue.md", "installer.md", "display.md", "locker.md"} <= pages


@pytest.mark.parametrize(("page", "quoted", "shown"), quotes())
def test_a_quoted_screen_line_is_what_the_screen_shows(page, quoted, shown):
    assert quoted == shown, f"docs/{page} quotes {quoted!r}; the 128x32 screen shows {shown!r}"
