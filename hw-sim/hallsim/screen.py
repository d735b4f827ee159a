"""The simulated LED screen: receives the frames the daemon's display shows.

The daemon (``display.frame_mirror = "<socket>"``) sends every frame it puts
on the panel as one unix datagram; ``SimScreen`` binds that socket, keeps the
last frame and a short history, and saves them as PNG (the exact pixels, or
enlarged to look like LED dots) or as an animated GIF.  Written from the
format in docs/display.md, independently of the daemon's code.

Datagram: ``b"HLED"``, version (1 byte, 1), mode (1 byte: 1 = monochrome,
3 = RGB), width and height (2 bytes each), frame number (4 bytes), all
big-endian, then the pixels row by row (monochrome: 8 pixels a byte, MSB
first, each row padded to a byte; RGB: 3 bytes a pixel).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">4sBBHHI")
_MODES = {1: "1", 3: "RGB"}
LED_ON = (255, 64, 24)  # the red-orange of common MAX7219 modules
LED_OFF = (48, 14, 10)


class BadFrame(ValueError):
    """A datagram that is not a frame in the documented format."""


def decode(datagram: bytes) -> tuple[int, Image.Image]:
    """(frame number, image) from one datagram."""
    if len(datagram) < _HEADER.size:
        raise BadFrame("shorter than the header")
    magic, version, mode_code, width, height, number = _HEADER.unpack_from(datagram)
    if magic != b"HLED" or version != 1 or mode_code not in _MODES:
        raise BadFrame(f"unknown header {magic!r} v{version} mode {mode_code}")
    mode = _MODES[mode_code]
    row_bytes = (width + 7) // 8 if mode == "1" else width * 3
    pixels = datagram[_HEADER.size :]
    if len(pixels) != row_bytes * height:
        raise BadFrame(f"{len(pixels)} pixel bytes for {width}x{height} mode {mode}")
    return number, Image.frombytes(mode, (width, height), pixels)


def led_dots(frame: Image.Image, pitch: int = 8) -> Image.Image:
    """The frame enlarged as round LED dots on a dark panel (for people, not for tests)."""
    width, height = frame.size
    dot = Image.new("L", (pitch, pitch), 0)
    margin = max(1, pitch // 8)
    ImageDraw.Draw(dot).ellipse((margin, margin, pitch - 1 - margin, pitch - 1 - margin), fill=255)
    row = Image.new("L", (width * pitch, pitch), 0)
    for x in range(width):
        row.paste(dot, (x * pitch, 0))
    dots = Image.new("L", (width * pitch, height * pitch), 0)
    for y in range(height):
        dots.paste(row, (0, y * pitch))
    lit = frame.convert("L").point(lambda v: 255 if v else 0).resize(dots.size, Image.Resampling.NEAREST)
    out = Image.new("RGB", dots.size, (0, 0, 0))
    out.paste(LED_OFF, mask=dots)
    if frame.mode == "RGB":
        colour = frame.resize(dots.size, Image.Resampling.NEAREST)
        out.paste(colour, mask=ImageChops.multiply(dots, lit))
    else:
        out.paste(LED_ON, mask=ImageChops.multiply(dots, lit))
    return out


class SimScreen:
    """Binds ``socket_path`` and collects frames; ``on_frame(image, t)`` is called on its thread."""

    def __init__(
        self,
        socket_path: str | Path,
        history: int = 600,
        on_frame: Callable[[Image.Image, float], None] | None = None,
    ) -> None:
        self.socket_path = str(socket_path)
        self.on_frame = on_frame
        self.last_frame: Image.Image | None = None
        self.last_number = 0
        self.frames_received = 0
        self.bad_datagrams = 0
        self.recent: deque[tuple[float, Image.Image]] = deque(maxlen=history)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> SimScreen:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(self.socket_path)
        sock.settimeout(0.2)
        self._sock = sock
        self._running.set()
        self._thread = threading.Thread(target=self._receive, name="sim-screen", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def unplug(self) -> None:
        """The screen's cable is pulled: frames sent now are lost."""
        self.stop()

    def plug(self) -> None:
        self.start()

    @property
    def plugged(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> SimScreen:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _receive(self) -> None:
        sock = self._sock
        while self._running.is_set() and sock is not None:
            try:
                datagram = sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                break
            received = time.monotonic()
            try:
                number, image = decode(datagram)
            except BadFrame as exc:
                self.bad_datagrams += 1
                log.warning("sim screen: bad datagram: %s", exc)
                continue
            with self._lock:
                self.last_frame, self.last_number = image, number
                self.frames_received += 1
                self.recent.append((received, image))
            if self.on_frame is not None:
                self.on_frame(image, received)

    def save_png(self, path: str | Path, enlarged: bool = False) -> Path:
        """The frame on the screen: exact pixels, or enlarged LED dots for people."""
        frame = self.last_frame
        if frame is None:
            raise RuntimeError("no frame received yet")
        image = led_dots(frame) if enlarged else frame
        image.save(path, format="PNG")
        return Path(path)

    def save_gif(self, path: str | Path, seconds: float = 10.0, enlarged: bool = True) -> Path:
        """The frames of the last ``seconds`` as an animated GIF, each held as long as it was shown."""
        with self._lock:
            frames = list(self.recent)
        if not frames:
            raise RuntimeError("no frame received yet")
        now = time.monotonic()
        frames = [(t, image) for t, image in frames if t >= now - seconds] or frames[-1:]
        return write_gif(path, frames, end=now, enlarged=enlarged)


def write_gif(
    path: str | Path,
    frames: list[tuple[float, Image.Image]],
    end: float,
    enlarged: bool = True,
    pitch: int = 8,
) -> Path:
    """Frames with their arrival times as a looping GIF (each held until the next)."""
    ends = [t for t, _ in frames[1:]] + [end]
    durations = [max(20, round((b - a) * 1000)) for (a, _), b in zip(frames, ends, strict=True)]
    images = [led_dots(image, pitch) if enlarged else image.convert("RGB") for _, image in frames]
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0, disposal=1
    )
    return Path(path)
