"""ESC/POS bytes, exactly as the manual gives them, and the status byte parser."""

from __future__ import annotations

import pytest
from hallsim.printer import SimPrinter
from hypothesis import given
from hypothesis import strategies as st
from support import fuzz

from drivers import escpos


def test_single_commands_are_the_manuals_bytes():
    assert bytes.fromhex("1b40") == escpos.INIT
    assert bytes.fromhex("1c26") == escpos.CHINESE_ON
    assert bytes.fromhex("1c2e") == escpos.CHINESE_OFF
    assert escpos.size(2, 2) == bytes.fromhex("1d2111")
    assert escpos.size(1, 1) == bytes.fromhex("1d2100")
    assert escpos.size(4, 3) == bytes.fromhex("1d2132")
    assert escpos.align(escpos.CENTER) == bytes.fromhex("1b6101")
    assert escpos.bold(True) == bytes.fromhex("1b4501")
    assert escpos.bold(False) == bytes.fromhex("1b4500")
    assert escpos.feed(3) == bytes.fromhex("1b6403")
    assert escpos.cut("full") == bytes.fromhex("1d5600")
    assert escpos.cut("partial") == bytes.fromhex("1d5601")
    assert escpos.cut("none") == b""
    assert escpos.status_request(1) == bytes.fromhex("100401")
    assert escpos.status_request(4) == bytes.fromhex("100404")


def test_qr_code_is_model_2_with_store_length_plus_three():
    data = "https://x.cn/r"
    expected = (
        bytes.fromhex("1d286b0400314132 00")
        + bytes.fromhex("1d286b03003143 06")
        + bytes.fromhex("1d286b03003145 31")
        + bytes.fromhex("1d286b")
        + (len(data) + 3).to_bytes(2, "little")
        + bytes.fromhex("315030")
        + data.encode()
        + bytes.fromhex("1d286b0300315130")
    )
    assert escpos.qr(data, module=6, error="M") == expected


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (escpos.size, (0, 1)),
        (escpos.size, (1, 9)),
        (escpos.align, (3,)),
        (escpos.feed, (256,)),
        (escpos.cut, ("half",)),
    ],
)
def test_out_of_range_arguments_are_refused(call, args):
    with pytest.raises(ValueError):
        call(*args)


def test_qr_refuses_bad_module_and_level():
    with pytest.raises(ValueError):
        escpos.qr("x", module=17)
    with pytest.raises(ValueError):
        escpos.qr("x", error="X")


def test_text_is_gb18030_with_lookalikes_for_four_byte_characters():
    assert escpos.encode_text("号") == "号".encode("gb18030") == b"\xba\xc5"
    assert escpos.encode_text("¥5") == "￥5".encode("gb18030")
    assert len("¥".encode("gb18030")) == 4  # why the look-alike is needed
    assert escpos.encode_text("😀a") == b"?a"  # no 2-byte form: a question mark, never 4 bytes
    assert escpos.encode_text("a\tb") == b"a?b"


def test_receipt_line_bytes_exactly():
    receipt = escpos.Receipt().align(escpos.CENTER).line("A023", width=4, height=4, bold_on=True)
    assert receipt.bytes() == (
        bytes.fromhex("1b40 1c26 1b6101 1d2133 1b4501") + b"A023\n" + bytes.fromhex("1b4500 1d2100 1c2e")
    )


def test_plain_line_has_no_style_bytes():
    assert escpos.Receipt().line("请到窗口").bytes() == (
        bytes.fromhex("1b40 1c26") + "请到窗口".encode("gb18030") + b"\n" + bytes.fromhex("1c2e")
    )


@pytest.mark.parametrize("value", [0x12, 0x1A, 0x32, 0x7E, 0x16, 0x1E, 0x72])
def test_status_bytes_have_the_fixed_bits(value):
    assert escpos.is_status_byte(value)


@pytest.mark.parametrize("value", [0x00, 0xFF, 0x41, 0x13, 0x92, 0x10, 0x02, 0x0A])
def test_noise_is_not_a_status_byte(value):
    assert not escpos.is_status_byte(value)


@pytest.mark.parametrize(
    ("printer", "cause", "paper", "word"),
    [
        (0x12, 0x12, 0x12, "ok"),
        (0x12, 0x12, 0x1E, "paper_low"),
        (0x1A, 0x32, 0x7E, "paper_out"),  # the manual's example: a printer out of paper
        (0x12, 0x12, 0x72, "paper_out"),
        (0x1A, 0x16, 0x12, "cover_open"),
        (0x1A, 0x52, 0x12, "offline"),  # error bit
        (0x1A, 0x12, 0x12, "offline"),
    ],
)
def test_status_word(printer, cause, paper, word):
    assert escpos.PrinterStatus(printer, cause, paper).word == word


def test_first_status_byte_skips_noise():
    assert escpos.first_status_byte(b"\xff\x00A\x1a\x12") == (0x1A, 3)
    assert escpos.first_status_byte(b"\xff\x00") == (None, 2)


chinese = st.text(
    alphabet=st.sampled_from(
        "公益性零工市场求职招聘登记政策咨询维权服务技能培训您前面还有人在等待号窗口￥¥ABC0123 -:"
    ),
    min_size=1,
    max_size=30,
)


@fuzz(40)
@given(lines=st.lists(chinese, min_size=1, max_size=4), split=st.integers(1, 7))
def test_the_simulated_printer_reads_back_every_line(tmp_path_factory, lines, split):
    """The simulator parses from the manual, independently: any text survives, split anywhere."""
    receipt = escpos.Receipt()
    for line in lines:
        receipt.line(line, width=2, bold_on=True)
    data = receipt.cut("full").bytes()
    printer = SimPrinter(tmp_path_factory.mktemp("paper"))
    for start in range(0, len(data), split):
        printer.feed(data[start : start + split])
    (ticket,) = printer.tickets
    assert ticket.text.splitlines() == [line.replace("¥", "￥") for line in lines]
    assert ticket.chinese_mode
    assert ticket.cut == "full"


def _layout(**changes):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from edge.tickets.layout import TicketText

    fields = {
        "hall_name": "公益性零工市场",
        "service": "维权服务",
        "ticket": "D007",
        "priority": False,
        "waiting_ahead": 0,
        "wait_estimate_s": 0,
        "wait_text": "请在休息区等候",
        "void_text": "过号无效",
        "issued_at": datetime(2026, 11, 25, 9, 1, 2, tzinfo=ZoneInfo("Asia/Shanghai")),
        "hotline": "12333",
        "complaint": "12345",
        "qr_url": "",
    }
    return TicketText(**{**fields, **changes})


def test_ticket_layout_80mm_priority_no_qr_no_cut(tmp_path):
    from edge.tickets.layout import ticket_bytes

    data = ticket_bytes(_layout(priority=True, waiting_ahead=2, wait_estimate_s=61), paper_mm=80, cut="none")
    assert b"\x1d(k" not in data  # no QR without a URL
    assert b"\x1dV" not in data  # cut = none
    assert escpos.size(5, 5) + escpos.bold(True) + b"D007\n" in data
    printer = SimPrinter(tmp_path, paper_dots=576)
    printer.feed(data + escpos.cut("full"))
    lines = printer.tickets[0].text.splitlines()
    assert lines[:5] == ["公益性零工市场", "维权服务", "D007", "【优先】", "您前面还有2人在等待"]
    assert lines[5] == "预计等候约2分钟"  # 61 s rounds up
    assert "2026-11-25 09:01:02" in lines


def test_wait_phrase():
    from edge.tickets.layout import wait_phrase

    assert wait_phrase(0) == ""
    assert wait_phrase(1) == "预计等候约1分钟"
    assert wait_phrase(600) == "预计等候约10分钟"


noise_bytes = st.binary(max_size=20).map(lambda b: bytes(x for x in b if not escpos.is_status_byte(x)))


@fuzz(200)
@given(
    noise=noise_bytes, status=st.integers(0, 255).map(lambda v: (v & 0x6C) | 0x12), tail=st.binary(max_size=5)
)
def test_a_status_byte_is_found_behind_any_noise(noise, status, tail):
    assert escpos.first_status_byte(noise + bytes([status]) + tail) == (status, len(noise))
