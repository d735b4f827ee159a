"""Shared pieces of the display tests: the reference layouts and a recording SPI bus."""

from __future__ import annotations

import errno
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image
from support import JOB

from edge.display.content import read_jobs, read_notices
from edge.display.pages import Layouts
from edge.display.render import KeptGlyphs, Renderer
from edge.display.rotation import Rotation

ZONE = ZoneInfo("Asia/Shanghai")
UNIFONT = "/usr/share/fonts/opentype/unifont/unifont.otf"
WQY12 = "/usr/share/fonts/X11/misc/wenquanyi_9pt.pcf"
REFERENCE = Path(__file__).parent / "reference"
DOCS_IMG = Path(__file__).parent.parent / "docs" / "img"
WALL = datetime(2026, 11, 22, 9, 0, tzinfo=ZONE)

BRICKLAYER = {k: v for k, v in JOB.items() if k not in {"posted_at", "starts_at"}}  # the contract's job
SHOP = {
    "id": "J20261122-0011",
    "title": "营业员",
    "headcount": 2,
    "wage": {"amount": 25, "unit": "hour"},
    "location": "县城百货",
    "contact": "13900001111",
    "verified": True,
}
NOTICE = {"id": "N12", "text": "本周四下午三点 家政技能免费培训"}


def jobs(*entries: dict) -> dict:
    return {"schema": "lgsc.jobs/1", "generated_at": "2026-11-22T08:30:00+08:00", "jobs": list(entries)}


def rotation_for(
    width: int = 128, height: int = 32, font: str = UNIFONT, size: int = 16, mode: str = "1"
) -> Rotation:
    glyphs = KeptGlyphs(font, size)
    renderer = Renderer(width, height, mode, glyphs, KeptGlyphs(WQY12, 12))  # as the daemon has it
    layouts = Layouts(renderer, hall_name="公益性零工市场", service="12333", complaint="12345")
    return Rotation(renderer, layouts, page_seconds=6.0, scroll_px_per_s=32.0, hotline_every_pages=5)


def load(rotation: Rotation, job_entries: list[dict], new: set[str] = frozenset(), notices=()) -> None:
    cards, _ = read_jobs(jobs(*job_entries), ZONE)
    rotation.set_jobs(cards, frozenset(new), 0.0)
    rotation.set_notices(read_notices({"notices": list(notices)}, ZONE), 0.0)


def check_reference(name: str, frame: Image.Image, tmp_path: Path) -> None:
    """Compare with tests/reference/<name>.png; UPDATE_REFERENCE=1 rewrites it (and docs/img)."""
    path = REFERENCE / f"{name}.png"
    if os.environ.get("UPDATE_REFERENCE") == "1":
        from hallsim.screen import led_dots

        frame.save(path)
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        led_dots(frame).save(DOCS_IMG / f"screen-{name}.png")
        return
    assert path.exists(), f"no reference {path}: run with UPDATE_REFERENCE=1 once and look at it"
    expected = Image.open(path)
    expected.load()
    if expected.mode != frame.mode or expected.size != frame.size or expected.tobytes() != frame.tobytes():
        actual = tmp_path / f"{name}.actual.png"
        frame.save(actual)
        raise AssertionError(f"frame {name} differs from {path}; this run drew {actual}")


def write_docs_gif(rotation: Rotation, name: str, seconds: float, fps: float = 16.0) -> None:
    """With UPDATE_REFERENCE=1: the first ``seconds`` of the screen as an LED-dot GIF in docs/img."""
    if os.environ.get("UPDATE_REFERENCE") != "1":
        return
    from hallsim.screen import write_gif

    frames: list[tuple[float, Image.Image]] = []
    for step in range(int(seconds * fps)):
        t = step / fps
        frame = rotation.frame(t, WALL)
        if not frames or frames[-1][1].tobytes() != frame.tobytes():
            frames.append((t, frame.copy()))
    write_gif(DOCS_IMG / f"screen-{name}.gif", frames, end=seconds, pitch=4)


class RecordingSPI:
    """A luma serial interface at the SPI boundary: records every write, can be made to fail."""

    def __init__(self) -> None:
        self.writes: list[list[int]] = []
        self.fail = False

    def command(self, *cmd: int) -> None:
        self._write(list(cmd))

    def data(self, data: list[int]) -> None:
        self._write(list(data))

    def _write(self, data: list[int]) -> None:
        if self.fail:
            raise OSError(errno.EIO, "SPI write failed")
        self.writes.append(data)

    def cleanup(self) -> None:
        pass

    def register_values(self, register: int) -> list[int]:
        """Values written to one MAX7219 register (first chip of each write), in order."""
        return [w[1] for w in self.writes if len(w) >= 2 and w[0] == register]
