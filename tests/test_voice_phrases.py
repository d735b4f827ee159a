"""The sentences the hall says: tickets read sign by sign, windows as numbers, only known words."""

from __future__ import annotations

from edge.phrases import RATE_PROMPT, VOCABULARY, call_words, number_words, pause_words, unknown_words


def test_a_call_reads_the_ticket_sign_by_sign_and_the_window_as_a_number() -> None:
    assert call_words("A001", 1) == ("请", "A", "零", "零", "一", "号", "到", "一", "号", "窗口", "办理")
    assert call_words("b120", 12)[1:5] == ("B", "一", "二", "零")
    assert call_words("b120", 12)[7:9] == ("十", "二")


def test_window_numbers_are_said_as_halls_say_them() -> None:
    assert number_words(10) == ("十",)
    assert number_words(20) == ("二", "十")
    assert number_words(23) == ("二", "十", "三")
    assert number_words(105) == ("一", "零", "五")


def test_every_sentence_has_a_clip_for_each_word() -> None:
    for words in (call_words("Z999", 99), pause_words(3), RATE_PROMPT):
        assert unknown_words(words) == []
    assert unknown_words(("请", "A", "?")) == ["?"]
    assert len({clip.file for clip in VOCABULARY.values()}) == len(VOCABULARY)  # one file per word
