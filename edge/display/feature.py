"""The display feature: snapshots, calls and commands in; frames to the LED panel out.

Everything runs on the core thread.  A frame is rendered and sent only when
it changes: a static page costs one frame, a scrolling line one frame per
pixel step, and between changes a single ``call_later`` timer sleeps until
the next one (page end, scroll step, job expiry).  A panel that cannot be
written marks the ``display`` component offline, records ``alarm.display``
and is re-opened with backoff; the rotation keeps going meanwhile, so the
screen comes back showing the right page.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from datetime import datetime, timedelta
from datetime import time as day_time
from typing import Any

from PIL import Image

from drivers.display import LedPanel, PanelError
from edge.core import CommandError, Core, Timer
from edge.display.content import read_jobs, read_notices
from edge.display.pages import Layouts
from edge.display.render import KeptGlyphs, Renderer
from edge.display.rotation import Rotation
from edge.display.text import clean
from edge.logs import mask_personal
from edge.messages import (
    LinkStatus,
    ScreenCall,
    ScreenCallEnded,
    ScreenLine,
    ScreenLineEnded,
    SnapshotUpdated,
)
from edge.protocol import snapshot_topic
from edge.settings import Settings

log = logging.getLogger(__name__)

UNIFONT = "/usr/share/fonts/opentype/unifont/unifont.otf"
HOUSEKEEPING_S = 10.0  # brightness schedule, opening hours, stale marker
RETRY_FIRST_S = 1.0
RETRY_CAP_S = 30.0
MAX_MESSAGE_S = 7 * 24 * 3600
REPORTED_MAX = 10_000


def load_glyphs(path: str, size: int) -> KeptGlyphs:
    """The configured font, else Unifont 16 (a bitmap font has only its own pixel size)."""
    try:
        return KeptGlyphs(path, size)
    except OSError as exc:
        log.warning("display font %s at %d px cannot be used (%s); using Unifont 16", path, size, exc)
        return KeptGlyphs(UNIFONT, 16)


def in_window(moment: datetime, start: str, end: str) -> bool:
    """Is the hall-local time of day in [start, end)? It may cross midnight; start == end: all day."""
    now = moment.time().replace(second=0, microsecond=0)
    begin, finish = _hhmm(start), _hhmm(end)
    if begin == finish:
        return True
    if begin < finish:
        return begin <= now < finish
    return now >= begin or now < finish


def _hhmm(text: str) -> day_time:
    hours, minutes = text.split(":")
    return day_time(int(hours), int(minutes))


class DisplayFeature:
    name = "display"

    def __init__(self, settings: Settings, serial_interface: Any = None, device: Any = None) -> None:
        """``serial_interface`` / ``device`` replace the configured SPI bus / luma device (tests, benches)."""
        self.settings = settings
        cfg = self.cfg = settings.display
        glyphs = load_glyphs(cfg.font, cfg.font_size)
        small = load_glyphs(cfg.small_font, cfg.small_font_size) if cfg.small_font else glyphs
        if small.size > glyphs.size:
            small = glyphs
        self.renderer = Renderer(cfg.width, cfg.height, cfg.mode, glyphs, small)
        hot = settings.hotlines
        self.layouts = Layouts(
            self.renderer,
            hall_name=settings.hall_name,
            service=hot.service,
            complaint=hot.complaint,
        )
        self.rotation = Rotation(
            self.renderer,
            self.layouts,
            cfg.page_seconds,
            cfg.scroll_px_per_s,
            cfg.hotline_every_pages,
            part_seconds=cfg.part_seconds,
        )
        self.panel = LedPanel(cfg, serial_interface, device)
        self.core: Core  # set by start()
        self.frame: Image.Image = self.renderer.blank()  # what belongs on the screen
        self.shown: Image.Image | None = None  # what the panel last accepted
        self._shown_bytes: bytes | None = None
        self.frames_sent = 0
        self.on = True
        self.online = False
        self.jobs_at: datetime | None = None
        self.level: int | None = None  # contrast last sent
        self.level_override: int | None = None
        self.day_level = cfg.brightness
        self.healthy = False
        self._timer: Timer | None = None
        self._retry_timer: Timer | None = None
        self._retry_s = RETRY_FIRST_S
        self._periodic: list[Timer] = []
        self._reported: set[tuple[str, str]] = set()

    # ---- lifecycle ------------------------------------------------------------

    def start(self, core: Core) -> None:
        self.core = core
        core.subscribe(SnapshotUpdated, self._on_snapshot)
        core.subscribe(LinkStatus, self._on_link)
        core.subscribe(ScreenCall, self._on_call)
        core.subscribe(ScreenLine, self._on_line)
        core.subscribe(ScreenCallEnded, self._on_call_ended)
        core.subscribe(ScreenLineEnded, self._on_line_ended)
        core.register_command("display.message", self._cmd_message, args=("text", "seconds"))
        core.register_command("display.clear", self._cmd_clear, args=())
        core.register_command("display.snapshot", self._cmd_snapshot, args=())
        core.register_command("display.brightness", self._cmd_brightness, args=("level", "auto"))
        core.register_status("display", self.status)
        self.online = bool(core.link and core.link.online)
        self._connect()
        self._housekeeping()
        self._periodic.append(core.every(HOUSEKEEPING_S, self._housekeeping))
        if self.cfg.reinit_minutes and self.cfg.device == "max7219":
            self._periodic.append(core.every(self.cfg.reinit_minutes * 60.0, self._reinit))
        self.refresh()

    def stop(self) -> None:
        for timer in (self._timer, self._retry_timer, *self._periodic):
            if timer is not None:
                timer.cancel()
        self.panel.close()

    # ---- frames ---------------------------------------------------------------

    def refresh(self) -> None:
        """Put the right frame on the panel now and sleep until it can next change."""
        core = self.core
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now, wall = time.monotonic(), core.clock.now()
        try:
            self.frame = self.rotation.frame(now, wall)
            wake = self.rotation.next_change(now, wall)
        except Exception:  # a page that cannot be drawn must not freeze the screen
            log.exception("display: a page could not be drawn; moving on")
            self._timer = core.call_later(RETRY_FIRST_S, self.refresh)
            return
        if not self.on:
            return  # closed hours: nothing is sent; the rotation resumes when the hall opens
        self._send(self.frame)
        self._timer = core.call_later(wake, self.refresh)

    def _send(self, image: Image.Image) -> None:
        if not self.healthy:
            return  # the retry timer shows self.frame when the panel is back
        if image is self.shown:
            return
        data = image.tobytes()
        if data == self._shown_bytes:
            return
        try:
            self.panel.show(image)
        except PanelError as exc:
            self._went_offline(exc)
            return
        self.shown, self._shown_bytes = image, data
        self.frames_sent += 1

    # ---- panel health ---------------------------------------------------------

    def _connect(self) -> None:
        try:
            if not self.panel.is_open:
                self.panel.open()
            self.level = self._wanted_level()
            self.panel.contrast(self.level)
            self.panel.power(self.on)
        except PanelError as exc:
            self._went_offline(exc)
            return
        self.reinitialised_at = self.core.clock.now()
        self.healthy = True
        self.shown = self._shown_bytes = None
        self.core.set_component("display", "ok")

    def _went_offline(self, exc: PanelError) -> None:
        core = self.core
        self.healthy = False
        self.shown = self._shown_bytes = None
        if core.components.get("display") != "offline":
            log.error("display offline: %s", exc)
            core.emit("alarm.display", {"state": "offline", "reason": str(exc)[:200]})
            core.set_component("display", "offline")
        if self._retry_timer is None:
            self._retry_timer = core.call_later(self._retry_s, self._retry)
            self._retry_s = min(self._retry_s * 2, RETRY_CAP_S)

    def _retry(self) -> None:
        self._retry_timer = None
        self._connect()
        if self.healthy:
            self._retry_s = RETRY_FIRST_S
            self.core.emit("alarm.display", {"state": "ok"})
            self.refresh()

    def _reinit(self) -> None:
        """Long MAX7219 chains pick up noise and show garbage: re-send the init sequence, in place
        (the frame on the panel is written again, never a blank one: no flicker)."""
        if not self.healthy:
            return  # the retry re-opens the panel, which sends the sequence anyway
        level = self.level if self.level is not None else self._wanted_level()
        try:
            self.panel.reinit(level, self.on, self.shown if self.on else None)
        except PanelError as exc:
            self._went_offline(exc)
            return
        self.reinitialised_at = self.core.clock.now()

    # ---- schedule -------------------------------------------------------------

    def _wanted_level(self) -> int:
        if self.level_override is not None:
            return self.level_override
        wall = self.core.clock.now()
        night_from, night_until = self.cfg.night_from, self.cfg.night_until
        night = night_from != night_until and in_window(wall, night_from, night_until)  # equal: no night
        return self.cfg.night_brightness if night else self.day_level

    def _housekeeping(self) -> None:
        wall = self.core.clock.now()
        self._apply_power(in_window(wall, self.cfg.open_from, self.cfg.open_until))
        self._apply_level()
        self._update_marker(wall)

    def _apply_power(self, on: bool) -> None:
        if on == self.on:
            return
        self.on = on
        log.info("display %s (opening hours)", "on" if on else "off")
        if self.healthy:
            try:
                self.panel.power(on)
            except PanelError as exc:
                self._went_offline(exc)
        if on:
            self.refresh()
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _apply_level(self) -> None:
        level = self._wanted_level()
        if level == self.level or not self.healthy:
            return
        self.level = level
        self._reinit()  # a brightness change is when a noisy chain is most often seen garbled

    def _update_marker(self, wall: datetime) -> None:
        stale_after = timedelta(minutes=self.cfg.stale_after_minutes)
        stale = not self.online and self.jobs_at is not None and wall - self.jobs_at > stale_after
        marker = ""
        if stale and self.jobs_at is not None:
            marker = f"更新于{self.jobs_at.astimezone(wall.tzinfo):%H:%M}"
        if marker != self.rotation.marker:
            self.rotation.set_marker(marker)
            self.refresh()

    # ---- messages -------------------------------------------------------------

    def _on_snapshot(self, msg: SnapshotUpdated) -> None:
        core = self.core
        zone = core.clock.zone
        if msg.kind == "jobs":
            cards, rejected = read_jobs(msg.snapshot, zone)
            self._report(rejected)
            at = msg.received_at
            self.jobs_at = at if at.tzinfo else at.replace(tzinfo=zone)  # a naive time is hall time
            self.rotation.set_jobs(cards, msg.new_ids, time.monotonic())
        elif msg.kind == "notices":
            self.rotation.set_notices(read_notices(msg.snapshot, zone), time.monotonic())
        else:
            return
        self._update_marker(core.clock.now())
        self.refresh()

    def _report(self, rejected: list[Any]) -> None:
        """One error.invalid_payload per job and reason: the link reports what its schema refuses."""
        topic = snapshot_topic(self.settings.site, "jobs")
        for entry in rejected:
            key = (entry.id, entry.reason)
            if key in self._reported:
                continue
            if len(self._reported) >= REPORTED_MAX:
                self._reported.clear()
            self._reported.add(key)
            job = mask_personal(entry.id)
            log.warning("job %s not shown: %s", job, entry.reason)
            self.core.emit(
                "error.invalid_payload",
                {"topic": topic, "reason": f"job {job}: {entry.reason}", "entry": job},
            )

    def _on_link(self, msg: LinkStatus) -> None:
        self.online = msg.online
        self._update_marker(self.core.clock.now())

    def _on_call(self, msg: ScreenCall) -> None:
        self.rotation.call(msg.ticket, msg.window, msg.seconds, time.monotonic())
        self.refresh()

    def _on_line(self, msg: ScreenLine) -> None:
        now = time.monotonic()
        self.rotation.line(
            msg.text, msg.seconds, now, source=msg.source, cause=msg.cause, posted=msg.posted_at
        )
        self.refresh()

    def _on_call_ended(self, msg: ScreenCallEnded) -> None:
        self.rotation.call_ended(msg.window, time.monotonic())
        self.refresh()

    def _on_line_ended(self, msg: ScreenLineEnded) -> None:
        self.rotation.line_ended(msg.source, msg.cause, time.monotonic())
        self.refresh()

    # ---- commands -------------------------------------------------------------

    def _cmd_message(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        text, seconds = args.get("text"), args.get("seconds", 600)
        if not isinstance(text, str) or not clean(text, 10):
            raise CommandError("bad_arguments", "text must be a string with something printable in it")
        if not _number_between(seconds, 1, MAX_MESSAGE_S):
            raise CommandError("bad_arguments", f"seconds must be a number from 1 to {MAX_MESSAGE_S}")
        now = time.monotonic()
        until = self.rotation.message(text, float(seconds), now)
        self.refresh()
        ends = self.core.clock.now() + timedelta(seconds=until - now)
        return {"until": ends.isoformat(timespec="seconds"), "page": self._page_text()}

    def _cmd_clear(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        cleared = self.rotation.clear(time.monotonic())
        self.refresh()
        return {"cleared": cleared}

    def _cmd_snapshot(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        image = self.shown if self.shown is not None else self.frame
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return {
            "png_base64": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "width": image.width,
            "height": image.height,
            "on_screen": self.shown is not None and self.on,
        }

    def _cmd_brightness(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        """{"level": 0-255} fixes the level; {"level": "auto"} or {"auto": true} returns to the schedule
        (with a number too, that number becomes the day level of the schedule)."""
        level, auto = args.get("level"), args.get("auto", False)
        if level == "auto":
            level, auto = None, True
        if level is not None and (not isinstance(level, int) or not _number_between(level, 0, 255)):
            raise CommandError("bad_arguments", "level must be an integer 0-255 or 'auto'")
        if not isinstance(auto, bool) or (level is None and not auto):
            raise CommandError("bad_arguments", "give level (0-255 or 'auto') and/or auto: true")
        if auto:
            self.level_override = None
            if level is not None:
                self.day_level = level
        else:
            self.level_override = level
        self._apply_level()
        return {"level": self._wanted_level(), "auto": self.level_override is None}

    # ---- status ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        page = self.rotation.page
        wall = self.core.clock.now()
        return {
            "state": "ok" if self.healthy else "offline",
            "on": self.on,
            "page": page.kind if page else None,
            "text": self._page_text(),
            "jobs": sum(1 for card in self.rotation.jobs if card.showable(wall)),  # as on the wall now
            "notices": sum(1 for notice in self.rotation.notices if notice.current(wall)),
            "stale": bool(self.rotation.marker),
            "brightness": self.level,
            "brightness_auto": self.level_override is None,
            "frames_sent": self.frames_sent,
            "reinitialised_at": self.reinitialised_at.isoformat(timespec="seconds")
            if self.reinitialised_at
            else None,
            "size": [self.cfg.width, self.cfg.height],
        }

    def _page_text(self) -> str:
        page = self.rotation.page
        return " / ".join(line.text.replace("\t", " ") for line in page.lines) if page else ""


def _number_between(value: Any, low: float, high: float) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and low <= value <= high
