"""Does the LED screen keep up with people?  A burst of mixed events against the simulated hall.

The simulated hall is ``hallsim.demo.Demo``: broker, fake platform, printer, card reader, pin board
(buttons, door switches, locks), the screen that receives every frame the daemon shows, and
``hall-edge run`` as a child process.  The bench acts at the hardware boundary (a card held at the
reader, a button pressed, a door switch opened) and watches the frames the screen receives.

For every event that should change the screen it reports the time from the event to the first
frame showing its message (or, for a skip or a withdrawn line, to the first frame without it).
A frame is *stale* when it shows a message after its moment has passed (replaced by its source's
newer line, withdrawn, skipped, expired) and the screen had already shown that it passed, or when
a message stays on the screen more than a second after its moment without any new frame.

    .venv/bin/python bench/screen_burst.py                     # full speed
    .venv/bin/python bench/screen_burst.py --slow 0.125        # the daemon alone on 1/8 of a core
    .venv/bin/python bench/screen_burst.py --layouts           # only: time to see a whole job

``--slow`` moves the daemon's threads into a cgroup with a CPU quota (``bench/slowcpu.py``, the
method of ../shared/tools/slowpi); the simulator and this bench keep full speed.  Goals (issue
13): p99 <= 150 ms at full speed, <= 300 ms slowed, zero stale frames; a whole job seen within
12 s on 128x32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from rig import cpu_seconds, percentile, wait_until
from slowcpu import Throttle

from edge.config import load
from edge.display.content import read_jobs
from edge.display.feature import load_glyphs
from edge.display.pages import Layouts
from edge.display.render import Page, Renderer
from edge.display.rotation import Rotation

ROWS_PX = 16  # the top text row identifies a message: its second row may scroll
HOLD_S = 0.12  # a button press, longer than the keys' debounce
STUCK_S = 1.0
ZONE = "Asia/Shanghai"


@dataclass
class Message:
    """One message instance the screen should show from ``start`` until ``end`` (monotonic)."""

    name: str
    top: bytes  # the top row of its first frame
    start: float = 0.0
    end: float = float("inf")
    latency: float | None = None


@dataclass
class Recorder:
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, image: Image.Image, received: float) -> None:
        top = image.crop((0, 0, image.width, ROWS_PX)).tobytes()
        with self.lock:
            self.frames.append((received, top))

    def since(self, moment: float) -> list[tuple[float, bytes]]:
        with self.lock:
            return [f for f in self.frames if f[0] >= moment]


class Hall:
    """The simulated hall with the daemon running, and what its screen should say."""

    def __init__(self, folder: Path) -> None:
        from hallsim.demo import Demo

        self.demo = Demo(folder / "hall")
        self.recorder = Recorder()
        self.demo.start()
        assert self.demo.devices.screen is not None and self.demo.board is not None
        self.demo.devices.screen.on_frame = self.recorder
        settings = load(self.demo.paths.config)
        cfg = settings.display
        glyphs = load_glyphs(cfg.font, cfg.font_size)
        small = load_glyphs(cfg.small_font, cfg.small_font_size) if cfg.small_font else glyphs
        self.renderer = Renderer(cfg.width, cfg.height, cfg.mode, glyphs, small)
        hot = settings.hotlines
        self.layouts = Layouts(
            self.renderer, hall_name=settings.hall_name, service=hot.service, complaint=hot.complaint
        )

    def top_row(self, page: Page) -> bytes:
        image = self.renderer.art(page).frame(0.0)
        return image.crop((0, 0, image.width, ROWS_PX)).tobytes()

    def line(self, text: str) -> bytes:
        return self.top_row(self.layouts.screen_line(text))

    def call(self, ticket: str, window: int = 1) -> bytes:
        return self.top_row(self.layouts.call(ticket, window))

    # -- acting at the hardware boundary -------------------------------------------------------

    def tap(self, card: str) -> float:
        from hallsim.hallconfig import CARDS

        reader = self.demo.devices.reader
        assert reader is not None
        at = time.monotonic()
        reader.tap(CARDS[card]["uid"])
        return at

    def press(self, pin: int) -> float:
        board = self.demo.board
        assert board is not None
        at = time.monotonic()
        board.press(pin)
        threading.Timer(HOLD_S, board.release, (pin,)).start()
        return at

    def key(self, name: str) -> float:
        from hallsim.hallconfig import CATEGORIES, PRIORITY_PIN, WINDOWS

        pins = {code: pin for code, _name, pin in CATEGORIES}
        pins["priority"] = PRIORITY_PIN
        for window in WINDOWS:
            for action in ("call", "recall", "skip"):
                pins[f"{action}{window['number']}"] = window[f"{action}_pin"]
        return self.press(pins[name])

    def door(self, number: int, is_open: bool) -> float:
        board = self.demo.board
        assert board is not None
        pin = next(c["door_pin"] for c in self.demo.compartments if c["number"] == number)
        at = time.monotonic()
        board.set_switch(pin, closed=not is_open)
        return at

    def ready(self) -> None:
        """The locker answers cards on the screen: a probe card is tapped (again every 3 s) until its
        refusal is on a frame.  Until then the daemon may still be settling the locker's doors or
        waiting for the cards snapshot, and a burst event would measure the start, not the screen."""
        wait_until(lambda: len(self.recorder.frames) > 0, 30, 0.05, "the first frame")
        probe = self.line("卡已停用 请到服务窗口")

        def answered(since: float) -> bool:
            return any(top == probe for _, top in self.recorder.since(since))

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            at = self.tap("banned")
            try:
                wait_until(lambda: answered(at), 3, 0.01, "the probe card's refusal")  # noqa: B023 - used at once
                time.sleep(0.5)
                return
            except TimeoutError:
                continue
        raise TimeoutError("the locker never answered a card on the screen")

    def stop(self) -> None:
        self.demo.stop()


def burst(hall: Hall, spacing: float, events: int) -> tuple[list[Message], list[float], int]:
    """The mixed events, ``spacing`` s apart; returns the message instances and withdrawal latencies."""
    line, call = hall.line, hall.call
    messages: list[Message] = []
    withdrawn: list[tuple[Message, float]] = []
    live: dict[str, Message] = {}  # by source: locker, keys, window1

    def show(source: str, name: str, top: bytes, at: float) -> None:
        if source in live:
            live[source].end = min(live[source].end, at)  # a newer message from the same place
        live[source] = Message(name, top, at)
        messages.append(live[source])

    def end(source: str, at: float) -> None:
        gone = live.pop(source, None)
        if gone is not None:
            gone.end = min(gone.end, at)
            withdrawn.append((gone, at))

    def expire(source: str, seconds: float, at: float) -> None:
        if source in live:
            live[source].end = min(live[source].end, at + seconds)

    steps = [
        lambda: show("locker", "无效卡", line("无效卡 请到服务窗口登记"), hall.tap("stranger")),
        lambda: hall.key("A"),  # A001 printed: nothing on the screen
        lambda: show("locker", "卡已暂停", line("卡已暂停使用 请到服务窗口"), hall.tap("suspended")),
        lambda: show("window1", "请 A001", call("A001"), hall.key("call1")),
        lambda: show("locker", "1号柜已开", line("1号柜已开 请取工具"), hall.tap("worker")),
        lambda: hall.door(1, True),
        lambda: show("keys", "绿色通道", line("绿色通道 请按业务键取号"), hall.key("priority")),
        lambda: end("keys", hall.key("A")),  # A002 (priority): the prompt has had its answer
        lambda: _door_shut(1),
        lambda: end("window1", hall.key("skip1")),  # A001 did not come
        lambda: show("locker", "卡已停用", line("卡已停用 请到服务窗口"), hall.tap("banned")),
        lambda: show("window1", "请 A002", call("A002"), hall.key("call1")),
        lambda: show("locker", "2号柜已开", line("2号柜已开 请取工具"), hall.tap("driller")),
        lambda: hall.key("B"),  # B001
        lambda: show("window1", "请 B001", call("B001"), hall.key("call1")),
        lambda: hall.door(2, True),
        lambda: show("locker", "无效卡", line("无效卡 请到服务窗口登记"), hall.tap("stranger")),
        lambda: _door_shut(2),
        lambda: end("window1", hall.key("skip1")),
        lambda: show("locker", "1号柜已开", line("1号柜已开 请放回工具"), hall.tap("worker")),
    ]

    def _door_shut(number: int) -> None:
        at = hall.door(number, False)
        opened = live.get("locker")
        if opened is not None and opened.name == f"{number}号柜已开":
            end("locker", at)
        show("locker", "借出成功", line("借出成功 请按时归还"), at)
        expire("locker", 6.0, at)

    start = time.monotonic()
    for i, step in enumerate(steps[:events]):
        due = start + i * spacing
        while time.monotonic() < due:
            time.sleep(0.001)
        step()
    time.sleep(max(3.0, spacing * 2))
    frames = hall.recorder.since(start - 1.0)
    for message in messages:  # its own frame, within its moment (a later twin is another message)
        message.latency = _first(frames, message.start, lambda top, m=message: top == m.top, message.end)
    withdrawals = []
    for message, at in withdrawn:
        if _showing_at(frames, at) == message.top:  # else it was already off the screen (another's turn)
            gone = _first(frames, at, lambda top, m=message: top != m.top)
            withdrawals.append(gone if gone is not None else float("inf"))
    return messages, withdrawals, len(withdrawn)


def _first(
    frames: list[tuple[float, bytes]],
    after: float,
    wanted: Callable[[bytes], bool],
    before: float = float("inf"),
) -> float | None:
    for received, top in frames:
        if after <= received < before + STUCK_S and wanted(top):
            return received - after
    return None


def _showing_at(frames: list[tuple[float, bytes]], moment: float) -> bytes | None:
    shown = None
    for received, top in frames:
        if received > moment:
            break
        shown = top
    return shown


def stale_frames(messages: list[Message], frames: list[tuple[float, bytes]], until: float) -> list[str]:
    """Frames that showed a message after the screen had shown that its moment passed, and
    messages left standing more than STUCK_S after their moment (ending before ``until``)."""
    stale = []
    for message in messages:
        if message.end + STUCK_S > until:
            continue  # its moment had not passed (long enough) when the bench stopped looking
        twins = [m for m in messages if m is not message and m.top == message.top]
        later = [(t, top) for t, top in frames if t >= message.end]
        left = next((t for t, top in later if top != message.top), None)
        if left is None or left - message.end > STUCK_S:
            if _showing_at(frames, message.end + STUCK_S) == message.top and not _live(
                twins, message.end + STUCK_S
            ):
                stale.append(f"{message.name} still on screen {STUCK_S:g} s after its moment")
            continue
        for t, top in later:
            if t > left and top == message.top and not _live(twins, t):
                stale.append(f"{message.name} shown again {t - message.end:.2f} s after its moment")
    return stale


def _live(messages: list[Message], moment: float) -> bool:
    return any(m.start <= moment < m.end for m in messages)


def summary(values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    if not ms:
        return "n=0"
    return (
        f"n={len(ms)} p50={percentile(ms, 0.5):.1f} ms p99={percentile(ms, 0.99):.1f} ms max={max(ms):.1f} ms"
    )


def run_burst(spacing: float, events: int, slow: float | None, verbose: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="screen-burst-") as folder:
        hall = Hall(Path(folder))
        try:
            hall.ready()
            pid = hall.demo.daemon.pid
            assert pid is not None
            throttle = Throttle(pid, slow) if slow else None
            moved = 0
            if throttle is not None:
                throttle.__enter__()
                moved = len(throttle.in_group())
                time.sleep(1.0)  # the daemon settles into its quota
            cpu_before = cpu_seconds(pid)
            try:
                messages, withdrawals, withdrawn = burst(hall, spacing, events)
            finally:
                if throttle is not None:
                    throttle.__exit__(None, None, None)
            frames = hall.recorder.since(0.0)
            observed_until = time.monotonic()
            cpu = cpu_seconds(pid) - cpu_before
        finally:
            hall.stop()
    where = f"daemon on {slow:g} of a core (cgroup quota, {moved} threads)" if slow else "full speed"
    shown = [m.latency for m in messages if m.latency is not None]
    missing = [m.name for m in messages if m.latency is None]
    print(f"burst: {min(events, 20)} events in {spacing * (min(events, 20) - 1):.1f} s, {where}")
    print(f"event -> its message on the frame: {summary(shown)}")
    print(
        f"event -> withdrawn message off the frame: {summary(withdrawals)}"
        f" (of {withdrawn} withdrawals; the others were not on the screen at that moment)"
    )
    print(f"event -> screen (both): {summary(shown + withdrawals)}")
    stale = stale_frames(messages, frames, observed_until)
    print(f"messages never shown: {len(missing)}{' ' + ', '.join(missing) if missing else ''}")
    print(f"stale frames: {len(stale)}{' (' + '; '.join(stale) + ')' if stale else ''}")
    print(f"frames received during the run: {len(frames)}; daemon CPU during the burst: {cpu:.2f} s")
    if verbose:
        start = min(m.start for m in messages)
        for m in messages:
            latency = "never" if m.latency is None else f"{m.latency * 1000:.1f} ms"
            print(f"  t={m.start - start:5.2f} s {m.name}: {latency}")


# ---- how long to see all of a job -------------------------------------------------------------------

LAYOUTS = [
    ("128x32", 128, 32, "/usr/share/fonts/opentype/unifont/unifont.otf", 16),
    ("256x32", 256, 32, "/usr/share/fonts/opentype/unifont/unifont.otf", 16),
    ("128x64", 128, 64, "/usr/share/fonts/opentype/unifont/unifont.otf", 16),
    ("96x24 WenQuanYi 12", 96, 24, "/usr/share/fonts/X11/misc/wenquanyi_9pt.pcf", 12),
    ("64x16", 64, 16, "/usr/share/fonts/opentype/unifont/unifont.otf", 16),
]
CONTRACT_JOB = {
    "id": "J20261122-0007",
    "title": "瓦工",
    "headcount": 3,
    "wage": {"amount": 300, "unit": "day"},
    "location": "南山公园东侧工地",
    "employer": "恒达建筑",
    "contact": "13812345678",
    "starts_at": "2026-11-23T07:00:00+08:00",
    "verified": True,
}


def job_pass_seconds(width: int, height: int, font: str, size: int) -> tuple[int, float]:
    """(parts, seconds) from the first part of the contract's job to the end of its last part."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from edge.display.render import Glyphs

    glyphs = Glyphs(font, size)
    renderer = Renderer(width, height, "1", glyphs, Glyphs("/usr/share/fonts/X11/misc/wenquanyi_9pt.pcf", 12))
    layouts = Layouts(renderer, hall_name="公益性零工市场", service="12333", complaint="12345")
    rotation = Rotation(renderer, layouts, page_seconds=6.0, scroll_px_per_s=32.0, hotline_every_pages=5)
    zone = ZoneInfo(ZONE)
    cards, _ = read_jobs({"jobs": [CONTRACT_JOB]}, zone)
    rotation.set_jobs(cards, frozenset(), 0.0)
    wall = datetime(2026, 11, 22, 9, 0, tzinfo=zone)
    now, parts = 0.0, 0
    rotation.frame(now, wall)
    first = rotation.current
    while True:
        parts += 1
        now = rotation.current.until
        rotation.frame(now, wall)
        if (
            rotation.page is None
            or rotation.page.key != CONTRACT_JOB["id"]
            or rotation.current.art.page == first.art.page
        ):
            return parts, now


def run_layouts() -> None:
    print("time to see every part of one job (the contract's example job, default page/part seconds):")
    for name, width, height, font, size in LAYOUTS:
        parts, seconds = job_pass_seconds(width, height, font, size)
        kind = "one scrolling line" if height // size == 1 else f"{parts} still part{'s' * (parts > 1)}"
        print(f"  {name}: {seconds:.1f} s ({kind})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between events (default 0.5)")
    parser.add_argument("--events", type=int, default=20, help="how many of the 20 events (default all)")
    parser.add_argument("--slow", type=float, default=None, help="the daemon's share of a core, e.g. 0.125")
    parser.add_argument("--layouts", action="store_true", help="only the time to see a whole job")
    parser.add_argument("-v", "--verbose", action="store_true", help="each message's latency")
    args = parser.parse_args()
    run_layouts()
    if not args.layouts:
        run_burst(args.spacing, args.events, args.slow, args.verbose)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
