"""Queue tickets: press-to-print latency, and bytes per ticket against the plain alternatives.

1. Latency: a service button pressed (gpiozero MockFactory, ``pin.drive_low()``)
   to the first byte of its ticket read on the simulated printer's pty master,
   through the real core, SQLite (WAL, synchronous=FULL: the ticket is on disk
   before it prints) and the printer port thread.  Presses are spaced past the
   50 ms debounce, one at a time.  Target: p99 <= 20 ms.
2. Bytes per ticket, and the time each takes on the wire at 9600 baud 8N1
   (960 bytes/s), for the same ticket as
   - ours: Chinese text mode (FS &), GB18030, native QR (GS ( k);
   - python-escpos text: the same lines through ``escpos.printer.Dummy`` (raw
     GB18030 without FS &, native QR), what most apps send;
   - python-escpos image: our ticket as printed (rendered by the simulated
     printer with Pillow) sent with ``Dummy.image()``: the usual fallback for
     printers without a CJK font.

    .venv/bin/python bench/ticket_bench.py --presses 500
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import rig
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from hallsim.printer import SimPrinter
from rig import make_config, percentile

from edge.clock import Clock
from edge.core import Core
from edge.storage import Storage
from edge.tickets.feature import TicketsFeature
from edge.tickets.layout import TicketText, ticket_bytes

BAUD_BYTES_PER_S = 9600 / 10  # 8N1: 10 bits on the wire per byte
BUTTON_PIN = 5
_pause = threading.Event()  # never set: wait() is an interruptible pause


def measure_latency(presses: int, folder: Path) -> list[float]:
    Device.pin_factory = MockFactory()
    printer = SimPrinter(folder / "paper").start()
    config = make_config(
        folder,
        {
            "queue": {"enabled": True, "bounce_ms": 50},
            "printer": {"enabled": True, "port": printer.port, "status_poll_s": 2.0},
        },
    )
    with rig.daemon_cpu():  # the daemon's threads on --cpu-fraction, the simulated printer not
        storage = Storage(config.storage.dir)
        core = Core(config, storage, Clock(config.time.zone, "synced"))
        tickets = TicketsFeature(config)
        tickets.start(core)
        core.start()
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 5
        while core.components.get("printer") != "ok":
            if time.monotonic() > deadline:
                raise SystemExit("the simulated printer did not answer")
            _pause.wait(0.01)
        pin = Device.pin_factory.pin(BUTTON_PIN)
        for n in range(presses):
            pressed = time.monotonic()
            pin.drive_low()
            pin.drive_high()
            while len(printer.tickets) <= n:
                if time.monotonic() - pressed > 5:
                    raise SystemExit(f"press {n}: no ticket after 5 s")
                _pause.wait(0.0005)
            latencies.append(printer.tickets[n].started_at - pressed)
            _pause.wait(max(0.0, pressed + 0.06 - time.monotonic()))  # past the 50 ms debounce
    finally:
        core.stop()
        tickets.stop()
        storage.close()
        printer.stop()
        Device.pin_factory.reset()
    return latencies


def sample_ticket() -> TicketText:
    return TicketText(
        hall_name="沁水县公益性零工市场",
        service="求职登记",
        ticket="A023",
        priority=False,
        waiting_ahead=12,
        wait_estimate_s=1260,
        wait_text="请在休息区等候 注意呼叫及大屏显示信息",
        void_text="过号无效 请重新取号",
        issued_at=datetime(2026, 11, 25, 9, 1, 2, tzinfo=ZoneInfo("Asia/Shanghai")),
        hotline="12333",
        complaint="12345",
        qr_url="https://example.gov.cn/lgsc/rate",
    )


def python_escpos_text(t: TicketText) -> bytes:
    """The same ticket through python-escpos' text API (what it sends: raw GB18030, no FS &)."""
    from escpos.printer import Dummy

    p = Dummy()
    p.set(align="center", bold=True, double_height=True)
    p.text(t.hall_name + "\n")
    p.set(align="center")
    p.text(t.service + "\n")
    p.set(align="center", bold=True, custom_size=True, width=4, height=4)
    p.text(t.ticket + "\n")
    p.set(align="center", normal_textsize=True)
    p.text(f"您前面还有{t.waiting_ahead}人在等待\n预计等候约21分钟\n")
    for part in (t.wait_text + " " + t.void_text).split():
        p.text(part + "\n")
    p.text(t.issued_at.strftime("%Y-%m-%d %H:%M:%S") + "\n")
    p.text(f"服务热线 {t.hotline}  投诉电话 {t.complaint}\n")
    p.qr(t.qr_url, native=True, size=5)
    p.text("扫码评价服务\n")
    p.cut(mode="PART")
    return p.output


def python_escpos_image(png: Path) -> bytes:
    from escpos.printer import Dummy

    p = Dummy()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a note about the profile's paper width
        p.image(str(png))
    p.cut(mode="PART")
    return p.output


def compare_bytes(folder: Path) -> list[tuple[str, int, str]]:
    """(variant, bytes, how the simulated printer, powered up in ASCII mode, prints it)."""
    text = sample_ticket()
    ours = ticket_bytes(text, 58, "partial")
    printer = SimPrinter(folder / "render")
    printer.feed(ours)
    printed = printer.tickets[-1]
    if printed.qr_decoded != [text.qr_url]:
        raise SystemExit(f"the QR code did not read back: {printed.qr_decoded}")
    plain = python_escpos_text(text)
    printer.feed(plain)
    plain_printed = printer.tickets[-1]
    return [
        ("ours (FS & + GB18030 + native QR)", len(ours), _verdict(printed.text, text.hall_name)),
        ("python-escpos text (raw GB18030)", len(plain), _verdict(plain_printed.text, text.hall_name)),
        ("python-escpos image (raster)", len(python_escpos_image(printed.png)), "correct (as an image)"),
    ]


def _verdict(printed: str, hall_name: str) -> str:
    return "correct Chinese" if hall_name in printed else f"garbled: {printed.splitlines()[0][:14]!r}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=500)
    parser.add_argument("--latency-only", action="store_true", help="skip the bytes comparison")
    rig.add_daemon_options(parser, in_process=True)
    args = parser.parse_args(argv)
    rig.use_cpu_fraction(args.cpu_fraction)
    print(f"ticket bench: {rig.cpu_fraction_label()}")
    with tempfile.TemporaryDirectory(prefix="ticket-bench-") as tmp:
        folder = Path(tmp)
        latencies = measure_latency(args.presses, folder)
        ms = [x * 1000 for x in latencies]
        print(f"press -> first ticket byte on the printer pty, {len(ms)} presses:")
        print(
            f"  median {statistics.median(ms):.2f} ms  p90 {percentile(ms, 0.90):.2f} ms  "
            f"p99 {percentile(ms, 0.99):.2f} ms  max {max(ms):.2f} ms  (target p99 <= 20 ms: "
            f"{'met' if percentile(ms, 0.99) <= 20 else 'NOT met'})"
        )
        if args.latency_only:
            return 0
        print(
            "bytes per ticket (58 mm, the same ticket), print time at 9600 baud 8N1, "
            "and how a printer that powers up in ASCII mode prints it:"
        )
        for name, size, verdict in compare_bytes(folder):
            print(f"  {name:<36} {size:>7} bytes  {size / BAUD_BYTES_PER_S:6.2f} s  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
