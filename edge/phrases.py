"""The voice's fixed vocabulary and the sentences the hall says with it.

Every word is one audio clip (``docs/voice.md``: file names and format); a
sentence is a tuple of words, joined at play time.  Any feature builds its
``edge.messages.Announce`` here, so that only words with a clip are ever
asked for.  Pure functions, no I/O.
"""

from __future__ import annotations

# word -> clip file stem (ASCII, so that a bureau can record and copy the files anywhere)
DIGITS = ("零", "一", "二", "三", "四", "五", "六", "七", "八", "九")
LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
PHRASE_CLIPS: dict[str, str] = {
    "十": "shi",
    "请": "qing",
    "号": "hao",
    "到": "dao",
    "窗口": "chuangkou",
    "办理": "banli",
    "暂停服务": "zanting_fuwu",
    "恢复服务": "huifu_fuwu",
    "请对本次服务进行评价": "qing_pingjia",
}
VOCABULARY: dict[str, str] = {
    **{letter: letter for letter in LETTERS},
    **{digit: f"digit{value}" for value, digit in enumerate(DIGITS)},
    **PHRASE_CLIPS,
}
"""Every word a sentence may hold, with the stem of its clip file (``qing`` -> ``qing.wav``)."""

RATE_PROMPT: tuple[str, ...] = ("请对本次服务进行评价",)


def spell(ticket: str) -> tuple[str, ...]:
    """A ticket read one sign at a time, as halls do: A001 -> A 零 零 一."""
    return tuple(DIGITS[int(sign)] if sign.isdigit() else sign.upper() for sign in ticket)


def number_words(number: int) -> tuple[str, ...]:
    """A window number read as a number: 1 -> 一, 10 -> 十, 12 -> 十 二, 23 -> 二 十 三.

    From 100 on (no hall has that many windows) the digits are read one by one.
    """
    if 0 <= number < 10:
        return (DIGITS[number],)
    if 10 <= number < 100:
        tens, ones = divmod(number, 10)
        head = ("十",) if tens == 1 else (DIGITS[tens], "十")
        return head + ((DIGITS[ones],) if ones else ())
    return spell(str(number))


def window_words(window: int) -> tuple[str, ...]:
    """一 号 窗口."""
    return (*number_words(window), "号", "窗口")


def call_words(ticket: str, window: int) -> tuple[str, ...]:
    """请 A 零 零 一 号 到 一 号 窗口 办理."""
    return ("请", *spell(ticket), "号", "到", *window_words(window), "办理")


def pause_words(window: int) -> tuple[str, ...]:
    """三 号 窗口 暂停服务."""
    return (*window_words(window), "暂停服务")


def resume_words(window: int) -> tuple[str, ...]:
    """三 号 窗口 恢复服务."""
    return (*window_words(window), "恢复服务")


def unknown_words(words: tuple[str, ...]) -> list[str]:
    """The words of a sentence that have no clip (a programming error or a bad ticket label)."""
    return [word for word in words if word not in VOCABULARY]
