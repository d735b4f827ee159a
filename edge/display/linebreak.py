"""Chinese line breaking for the LED rows: where a long text may go onto the next row.

Pure: text and a width function in, rows out.  The text is first cut into
*atoms* that are never split between rows:

- a masked phone (``138****5678``) or any run of digits;
- a number with its unit: ``280元/天``, ``13:30``, ``3.5米``, ``A023号``, and
  Chinese numerals with theirs (``三点``, ``三点半``, ``两人``);
- an ASCII word (``WiFi``, ``Excel``);
- every other character on its own.

Then the usual Chinese typesetting rules (kinsoku) glue atoms together: a
closing mark (``，。、）」》…`` …) never starts a row, so it sticks to the atom
before it; an opening mark (``（「《“`` …) never ends a row, so it sticks to
the atom after it.  Rows are filled greedily; when the next atom does not
fit, the row is broken after the last space or punctuation mark in its
last three fifths if there is one (a natural pause: ``无效卡 / 请到服务窗口登记``
rather than ``无效卡 请到服务 / 窗口登记``), else before that atom.  An
atom wider than a whole row gets a row of its own (the caller scrolls it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

OPENING = "([{（〔［｛〈《「『【“‘"
CLOSING = ")]}）〕］｝〉》」』】”’,.;:!?，。、；：！？…—～%％·‥"
PAUSES = set("，。、；：！？,.;:!? ）】》」』")  # a break right after these reads naturally

_CN_DIGITS = "〇零一二三四五六七八九十百千万两半"
_UNITS = (
    "元/天|元/时|元/小时|元/件|元/月|元/吨|元/平方|元/平|元/米|元/人|元|万元|"
    "人次|人|个月|个|岁|号窗口|号柜|号|点半|点|时|小时|分钟|分|秒|日|月|年|天|周|次|"
    "平方米|平方|米|公里|公斤|斤|吨|件|楼|层|栋|期|名|位|户|批|%|％"
)
_ATOM = re.compile(
    r"\d{3}\*{4}\d{4}"  # a masked phone
    rf"|[A-Za-z]*\d+(?:[.:：/\-]\d+)*(?:{_UNITS}|[A-Za-z]+)?"  # 280元/天, 13:30, A023号, 2026-11-25
    rf"|[{_CN_DIGITS}]+(?:{_UNITS})"  # 三点, 三点半, 两人, 十五号
    r"|[A-Za-z][A-Za-z0-9_'\-]*"  # an ASCII word
    r"|."
)


def atoms(text: str) -> list[str]:
    """The text cut into pieces no row break may split, kinsoku rules applied."""
    glued: list[str] = []
    opening = ""  # opening marks waiting for the atom they open
    for piece in _ATOM.findall(text):
        if piece in OPENING or (opening and piece == " "):
            opening += piece  # an opening mark stays with what it opens, across a stray space
        elif glued and not opening and piece[0] in CLOSING:
            spaces = ""
            while len(glued) > 1 and glued[-1] == " ":  # "9 ”": no break at the space before the mark
                spaces += glued.pop()
            glued[-1] += spaces + piece  # a closing mark never starts a row
        else:
            glued.append(opening + piece)
            opening = ""
    if opening:  # nothing left to open: the marks end the text
        glued.append(opening)
    return glued


def break_lines(
    text: str, width: Callable[[str], int], room: int, first_room: int | None = None
) -> list[str]:
    """``text`` as rows each at most ``room`` px wide (the first ``first_room``), by the rules above.

    Spaces at a break are dropped.  Only an atom wider than a whole row makes a row wider than its room.
    """
    rows: list[str] = []
    current: list[str] = []
    limit = room if first_room is None else first_room
    for atom in atoms(text):
        if current and width("".join(current) + atom) > limit:
            keep, rest = _break_point(current, width, limit)
            if rest and width("".join(rest) + atom) > room:
                keep, rest = current, []
            rows.append("".join(keep).strip(" "))
            current, limit = _without_leading_spaces(rest), room
        if atom == " " and not current:
            continue  # no row starts with a space
        current.append(atom)
    if current:
        rows.append("".join(current).strip(" "))
    return [row for row in rows if row] or [""]


def _without_leading_spaces(pieces: list[str]) -> list[str]:
    while pieces and pieces[0] == " ":
        pieces = pieces[1:]
    return pieces


def _break_point(current: list[str], width: Callable[[str], int], limit: int) -> tuple[list[str], list[str]]:
    """Where to end the row made of ``current``: after the last pause past 40 % of it, else at its end."""
    total = min(width("".join(current)), limit)
    for i in range(len(current) - 1, 0, -1):
        if current[i - 1][-1] in PAUSES and width("".join(current[:i])) * 5 >= total * 2:
            return current[:i], current[i:]
    return current, []
