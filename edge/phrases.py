"""The voice's fixed vocabulary and the sentences the hall says with it.

Every word is one audio clip (``docs/voice.md``: file names and format); a
sentence is a tuple of words, joined at play time.  Any feature builds its
``edge.messages.Announce`` here, so that only words with a clip are ever
asked for.  Pure functions, no I/O.
"""

from __future__ import annotations

from typing import NamedTuple

DIGITS = ("零", "一", "二", "三", "四", "五", "六", "七", "八", "九")
DIGITS_PINYIN = ("ling2", "yi1", "er4", "san1", "si4", "wu3", "liu4", "qi1", "ba1", "jiu3")
LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Clip(NamedTuple):
    """A word's audio file (``file``.wav) and how it is said (tone-numbered pinyin, for espeak-ng)."""

    file: str
    pinyin: str


PHRASE_CLIPS: dict[str, Clip] = {
    "十": Clip("shi", "shi2"),
    "请": Clip("qing", "qing3"),
    "号": Clip("hao", "hao4"),
    "到": Clip("dao", "dao4"),
    "窗口": Clip("chuangkou", "chuang1 kou3"),
    "办理": Clip("banli", "ban4 li3"),
    "暂停服务": Clip("zanting_fuwu", "zan4 ting2 fu2 wu4"),
    "恢复服务": Clip("huifu_fuwu", "hui1 fu4 fu2 wu4"),
    "请对本次服务进行评价": Clip("qing_pingjia", "qing3 dui4 ben3 ci4 fu2 wu4 jin4 xing2 ping2 jia4"),
}
# ASCII file names, so that a bureau can record the clips and copy them with any tool.
VOCABULARY: dict[str, Clip] = {
    **{letter: Clip(letter, letter) for letter in LETTERS},
    **{digit: Clip(f"digit{value}", DIGITS_PINYIN[value]) for value, digit in enumerate(DIGITS)},
    **PHRASE_CLIPS,
}
"""Every word a sentence may hold, with its clip (``请`` -> ``qing.wav``, said ``qing3``)."""

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
