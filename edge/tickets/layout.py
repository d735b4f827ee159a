"""The printed ticket, laid out the way Chinese service halls print them.

Top to bottom: hall name, service name, the number large and bold, the
priority mark, 您前面还有N人在等待 with the estimated wait, the waiting and
no-show notes, date and time, the service hotline and the complaint line,
a QR code (for rating the service), then the cut.  All text goes out in the
printer's Chinese text mode (GB18030), never as an image: a ticket is a few
hundred bytes, well under a second at 9600 baud.
"""

from __future__ import annotations

from datetime import datetime

from drivers import escpos
from edge.records import record

# Number size by paper width: 4 characters of 12 dots times the width multiplier must fit.
NUMBER_SIZE = {58: 4, 80: 5}


@record
class TicketText:
    """Everything printed on one ticket."""

    hall_name: str
    service: str
    ticket: str
    priority: bool
    waiting_ahead: int
    wait_estimate_s: float
    wait_text: str
    void_text: str
    issued_at: datetime
    hotline: str
    complaint: str
    qr_url: str


def wait_phrase(seconds: float) -> str:
    """预计等候约N分钟, rounded up to whole minutes; nothing when nobody is ahead."""
    if seconds <= 0:
        return ""
    minutes = max(1, -(-int(seconds) // 60))
    return f"预计等候约{minutes}分钟"


def ticket_bytes(text: TicketText, paper_mm: int = 58, cut: str = "partial") -> bytes:
    receipt = escpos.Receipt().align(escpos.CENTER)
    receipt.line(text.hall_name, height=2, bold_on=True)
    receipt.line(text.service)
    magnify = NUMBER_SIZE.get(paper_mm, 4)
    receipt.line(text.ticket, width=magnify, height=magnify, bold_on=True)
    if text.priority:
        receipt.line("【优先】", width=2, bold_on=True)
    receipt.line(f"您前面还有{text.waiting_ahead}人在等待")
    phrase = wait_phrase(text.wait_estimate_s)
    if phrase:
        receipt.line(phrase)
    for note in (text.wait_text, text.void_text):
        for part in note.split():
            receipt.line(part)
    receipt.line(text.issued_at.strftime("%Y-%m-%d %H:%M:%S"))
    receipt.line(f"服务热线 {text.hotline}  投诉电话 {text.complaint}")
    if text.qr_url:
        receipt.qr(text.qr_url, module=5 if paper_mm == 58 else 6)
        receipt.line("扫码评价服务")
    return receipt.cut(cut).bytes()


def test_page_bytes(
    hall_name: str, now: datetime, qr_url: str, paper_mm: int = 58, cut: str = "partial"
) -> bytes:
    """What ``printer.test`` prints: enough to check the font, sizes, QR and cutter."""
    receipt = escpos.Receipt().align(escpos.CENTER)
    receipt.line(hall_name, height=2, bold_on=True)
    receipt.line("打印机测试", width=2, height=2, bold_on=True)
    receipt.line("中文 GB18030 ￥0.00 ABC abc 0123456789")
    receipt.line(now.strftime("%Y-%m-%d %H:%M:%S"))
    if qr_url:
        receipt.qr(qr_url, module=5 if paper_mm == 58 else 6)
    return receipt.cut(cut).bytes()
