"""The LED panel through luma: a device built from configuration, plus the simulator's mirror.

``open_device`` builds a luma ``max7219`` over SPI (``luma.core.interface.serial.spi``)
or luma's ``dummy`` device.  ``LedPanel`` shows frames on it and, when a
mirror socket is configured, sends each shown frame as one unix datagram
(format below) to the simulator.  Any failure to reach the panel (SPI
missing, a write that fails) is raised as ``PanelError``; the caller
decides what that means for the hall.

Frame datagram (all integers big-endian)::

    offset size  field
    0      4     magic b"HLED"
    4      1     version (1)
    5      1     mode: 1 = monochrome ("1"), 3 = RGB
    6      2     width in pixels
    8      2     height in pixels
    10     4     frame sequence number (wraps at 2**32)
    14     ...   pixels, row by row from the top left:
                 mode 1: each row packed 8 pixels a byte, most significant bit
                 first, padded to a whole byte (Pillow's "1" raw layout);
                 mode 3: 3 bytes (R, G, B) per pixel.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from typing import Any, Protocol

from PIL import Image

log = logging.getLogger(__name__)

MAGIC = b"HLED"
VERSION = 1
HEADER = struct.Struct(">4sBBHHI")
MODE_CODES = {"1": 1, "RGB": 3}
SPI_SPEEDS_HZ = (500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000)  # luma's accepted rates <= 10 MHz
MAX_DATAGRAM = 200_000


class PanelSettings(Protocol):
    """What the panel reads of the ``display`` configuration table (the daemon's settings fit it)."""

    @property
    def device(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def rotate(self) -> int: ...
    @property
    def spi_port(self) -> int: ...
    @property
    def spi_device(self) -> int: ...
    @property
    def spi_speed_hz(self) -> int: ...
    @property
    def cascaded(self) -> int: ...
    @property
    def block_orientation(self) -> int: ...
    @property
    def blocks_arranged_in_reverse_order(self) -> bool: ...
    @property
    def brightness(self) -> int: ...
    @property
    def frame_mirror(self) -> str: ...


class PanelError(OSError):
    """The panel cannot be reached or written (no SPI device, a failed write)."""


def open_device(cfg: PanelSettings, serial_interface: Any = None) -> Any:
    """A luma device from the ``display`` configuration table.

    ``serial_interface`` replaces the SPI bus (tests record the bytes a
    max7219 would receive); by default the configured ``/dev/spidevP.D``.
    """
    try:
        if cfg.device == "dummy":
            from luma.core.device import dummy

            return dummy(width=cfg.width, height=cfg.height, rotate=cfg.rotate, mode=cfg.mode)
        return _max7219(cfg, serial_interface)
    except PanelError:
        raise
    except (OSError, ImportError, RuntimeError) as exc:
        raise PanelError(f"display {cfg.device} cannot be opened: {exc}") from exc
    except Exception as exc:
        if _is_luma_error(exc):
            raise PanelError(f"display {cfg.device} cannot be opened: {exc}") from exc
        raise


def _max7219(cfg: PanelSettings, serial_interface: Any) -> Any:
    from luma.core.interface.serial import noop, spi

    from drivers.max7219 import Max7219

    if cfg.blocks_arranged_in_reverse_order and cfg.height != 8 and not cfg.cascaded:
        # luma reverses the blocks of one 8-px row only; on more rows it fails at every frame.
        raise PanelError("blocks_arranged_in_reverse_order needs a single row of blocks (height 8)")
    if serial_interface is None:
        serial_interface = spi(
            port=cfg.spi_port, device=cfg.spi_device, bus_speed_hz=cfg.spi_speed_hz, gpio=noop()
        )
    cascaded = cfg.cascaded or None  # luma: a cascade count means one row of 8-px blocks
    return Max7219(
        serial_interface,
        width=cfg.width,
        height=cfg.height,
        cascaded=cascaded,
        rotate=cfg.rotate,
        block_orientation=cfg.block_orientation,
        blocks_arranged_in_reverse_order=cfg.blocks_arranged_in_reverse_order,
        contrast=cfg.brightness,
    )


def _is_luma_error(exc: Exception) -> bool:
    import luma.core.error

    return isinstance(exc, luma.core.error.Error)


def encode_frame(image: Image.Image, seq: int) -> bytes:
    """One frame as the mirror datagram described in this module's docstring."""
    mode = image.mode if image.mode in MODE_CODES else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    header = HEADER.pack(MAGIC, VERSION, MODE_CODES[mode], image.width, image.height, seq & 0xFFFFFFFF)
    return header + image.tobytes()


class FrameMirror:
    """Sends every shown frame to a unix datagram socket; never blocks, never fails the panel."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sent = 0
        self.dropped = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._warned = False

    def send(self, image: Image.Image, seq: int) -> None:
        datagram = encode_frame(image, seq)
        if len(datagram) > MAX_DATAGRAM:
            self._drop("frame too large for one datagram")
            return
        try:
            self._sock.sendto(datagram, self.path)
            self.sent += 1
        except OSError as exc:
            # Nobody listening yet, or the listener is behind: the simulator misses a frame.
            reason = errno.errorcode.get(exc.errno or 0, str(exc))
            self._drop(reason)

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        if not self._warned:
            log.warning("frame mirror %s: frame dropped (%s)", self.path, reason)
            self._warned = True

    def close(self) -> None:
        self._sock.close()


class LedPanel:
    """The configured luma device plus the optional mirror: show, brightness, on/off."""

    def __init__(self, cfg: PanelSettings, serial_interface: Any = None, device: Any = None) -> None:
        self.cfg = cfg
        self._serial_interface = serial_interface
        self.device = device
        self._given = device is not None
        self.mirror = FrameMirror(cfg.frame_mirror) if cfg.frame_mirror else None
        self.frames = 0

    @property
    def is_open(self) -> bool:
        return self.device is not None

    def open(self) -> None:
        """(Re)build the device: sends the MAX7219 init sequence again."""
        if not self._given:
            self._discard()  # a re-init must not leak the old SPI handle
            self.device = open_device(self.cfg, self._serial_interface)

    def show(self, image: Image.Image) -> None:
        device = self._need_device()
        frame = image if image.mode == device.mode else image.convert(device.mode)
        self._guarded(device.display, frame)
        self.frames += 1
        if self.mirror is not None:
            self.mirror.send(image, self.frames)

    def contrast(self, level: int) -> None:
        self._guarded(self._need_device().contrast, max(0, min(255, int(level))))

    def reinit(self, level: int, on: bool, frame: Image.Image | None) -> None:
        """Re-send the MAX7219 init sequence in place, then brightness, power and ``frame`` again.

        A long chain that picked up noise shows garbage (or a wrong scan limit, or test mode) until
        its registers are written again.  Unlike ``open`` (luma's constructor clears the panel and
        shows the blank), nothing here blanks the panel: the digit registers are rewritten with the
        frame already on it, so a healthy panel does not flicker.
        """
        device = self._need_device()

        def send() -> None:
            registers: Any = getattr(device, "_const", None)  # luma's register numbers (max7219 only)
            if registers is not None and hasattr(registers, "SCANLIMIT") and hasattr(device, "cascaded"):
                chips = device.cascaded
                device.data([registers.SCANLIMIT, 7] * chips)
                device.data([registers.DECODEMODE, 0] * chips)
                device.data([registers.DISPLAYTEST, 0] * chips)
            device.contrast(max(0, min(255, int(level))))
            if frame is not None:
                device.display(frame if frame.mode == device.mode else frame.convert(device.mode))
            (device.show if on else device.hide)()

        self._guarded(send)

    def power(self, on: bool) -> None:
        device = self._need_device()
        self._guarded(device.show if on else device.hide)

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.close()
        device, self.device = self.device, None
        if device is not None and not self._given:
            try:
                device.cleanup()
            except (OSError, RuntimeError) as exc:
                log.warning("display cleanup failed: %s", exc)

    def _need_device(self) -> Any:
        if self.device is None:
            raise PanelError("display is not open")
        return self.device

    def _guarded(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except (OSError, AssertionError, IndexError, ValueError) as exc:
            # OSError: the SPI bus; the others: luma refusing this frame (mode, size, layout).
            if not self._given:
                self._discard()
            raise PanelError(f"display write failed: {exc!r}") from exc

    def _discard(self) -> None:
        """Drop a device whose bus failed, closing its SPI handle (the next open makes a new one)."""
        device, self.device = self.device, None
        if device is None:
            return
        device.persist = True  # luma: cleanup() then skips hide/clear, which would write to the bus
        try:
            device.cleanup()
        except (OSError, RuntimeError) as exc:
            log.debug("closing a failed display bus: %s", exc)
