"""``hall-edge selftest``: is every configured peripheral there and answering?

For the installer in the hall, after wiring and before leaving: one table,
one row per check, each failure with what to do about it, and a non-zero
exit if anything failed.  Run it as the service user with the service
stopped (it opens the same ports and pins the daemon would hold):

    sudo systemctl stop hall-edge
    sudo -u hall-edge /opt/hall-edge/bin/hall-edge selftest --print
    sudo systemctl start hall-edge

Checks (only for what the configuration enables): printer answers DLE EOT
status; card reader present / answers; SPI device for the screen; GPIO pins
readable; broker reachable with the configured TLS and credentials; clock
synchronised; storage folder writable with enough free space; CPU
temperature.  ``--print`` also prints a test ticket and shows a test
pattern on the screen.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.clock import Clock
from edge.config import ConfigError, load
from edge.health.feature import disk_free_mb, read_cpu_temp_c
from edge.progress import Progress
from edge.records import record
from edge.settings import Settings
from edge.wiring import DOOR, KEY, OUTPUT, gpio_pins

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    import serial

log = logging.getLogger(__name__)

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
BROKER_TIMEOUT_S = 10.0


@record
class Check:
    name: str
    result: str  # PASS, WARN, FAIL or SKIP
    detail: str
    todo: str = ""  # what the installer should do about it


CheckFn = Callable[[Settings], Check]


# ---- the service itself ----------------------------------------------------------


def check_service(_config: Settings) -> Check:
    """A running daemon shares the ports and pins: its readings would mislead the others."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return Check("service", SKIP, "no systemctl here")
    state = subprocess.run(
        [systemctl, "is-active", "hall-edge.service"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.strip()
    if state in ("active", "activating", "reloading"):
        return Check(
            "service", WARN, f"hall-edge.service is {state}: it holds the same ports and pins",
            "sudo systemctl stop hall-edge, run the self-test again, then start it",
        )  # fmt: skip
    return Check("service", PASS, f"hall-edge.service not running ({state or 'no systemd'})")


# ---- printer ----------------------------------------------------------------


def check_printer(config: Settings) -> Check:
    cfg = config.printer
    if not cfg.enabled:
        return Check("printer", SKIP, "printer.enabled = false")
    from drivers.printer import open_transport, read_status

    try:
        transport = open_transport(cfg.transport, cfg.port, cfg.baudrate)
    except OSError as exc:
        return Check("printer", FAIL, str(exc), _printer_todo(cfg.port))
    if not cfg.status_queries:
        transport.close()
        detail = f"{cfg.port}: opens; status not asked (printer.status_queries = false)"
        return Check("printer", WARN, detail, "print a test ticket: selftest --print")
    try:
        status, noise = read_status(transport, cfg.status_timeout_s)
    except OSError as exc:
        return Check("printer", FAIL, f"{cfg.port}: {exc}", _printer_todo(cfg.port))
    finally:
        transport.close()
    if status is None:
        return Check(
            "printer",
            FAIL,
            f"{cfg.port}: no answer to DLE EOT within {cfg.status_timeout_s} s",
            f"power the printer on; check printer.baudrate ({cfg.baudrate}) against its self-test page",
        )
    word = status.word
    detail = f"{cfg.port}: answers, status {word}" + (f" ({noise} noise bytes)" if noise else "")
    if word == "ok":
        return Check("printer", PASS, detail)
    if word == "paper_low":
        return Check("printer", WARN, detail, "put a new paper roll in soon")
    todo = {"paper_out": "load a paper roll", "cover_open": "close the printer cover"}
    return Check("printer", FAIL, detail, todo.get(word, "see the printer's error light and manual"))


def _printer_todo(port: str) -> str:
    return (
        f"plug the printer in and switch it on; `ls -l {port}`; check the udev rule (docs/troubleshooting.md)"
    )


# ---- card reader ------------------------------------------------------------


def check_reader(config: Settings) -> Check:
    cfg = config.rfid
    if not cfg.enabled:
        return Check("reader", SKIP, "rfid.enabled = false")
    import serial

    from drivers.rfid import DEFAULT_BAUD

    baud = cfg.baudrate or DEFAULT_BAUD[cfg.reader]
    try:
        port = serial.Serial(cfg.port, baud, timeout=0)
    except (serial.SerialException, OSError) as exc:
        return Check(
            "reader",
            FAIL,
            f"{cfg.port}: {exc}",
            "check the reader's wiring and power; `ls -l /dev/hall-rfid`; UART on (docs/installer.md)",
        )
    try:
        if cfg.reader == "rdm6300":
            # An RDM6300 only speaks when a card is in its field: an open port is all we can see.
            return Check("reader", PASS, f"{cfg.port}: RDM6300 port open at {baud} baud (tap a card to try)")
        return _pn532_answers(port, cfg.port)
    finally:
        port.close()


def _pn532_answers(port: serial.Serial, path: str) -> Check:
    from drivers.rfid import PN532_WAKEUP, SAM_CONFIGURATION, Pn532Frame, Pn532Parser

    parser = Pn532Parser()
    port.write(PN532_WAKEUP + SAM_CONFIGURATION)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        port.timeout = 0.05
        for item in parser.feed(port.read(64)):
            if isinstance(item, Pn532Frame) and item.data[:1] == b"\x15":
                return Check("reader", PASS, f"{path}: PN532 answers (SAMConfiguration)")
    return Check(
        "reader",
        FAIL,
        f"{path}: PN532 did not answer within 1 s",
        "set the PN532 board's switches to HSU (UART); swap TX/RX; check rfid.baudrate",
    )


# ---- RS-485 lock boards --------------------------------------------------------


def check_lock_boards(config: Settings) -> Check:
    cfg = config.locker
    if not cfg.enabled or cfg.locks != "rs485":
        return Check("lock boards", SKIP, "no RS-485 lock boards configured")
    import serial

    from drivers.lockboard import StatusParser, status_frame

    boards = sorted({c.board for c in cfg.compartments})
    todo = "check the USB-RS-485 adapter, A/B wiring, the boards' power and DIP-switch addresses"
    try:
        port = serial.Serial(cfg.rs485_port, cfg.rs485_baudrate, timeout=0.05)
    except (serial.SerialException, OSError) as exc:
        return Check("lock boards", FAIL, f"{cfg.rs485_port}: {exc}", todo)
    try:
        silent = [board for board in boards if not _board_answers(port, board, StatusParser(), status_frame)]
    finally:
        port.close()
    if silent:
        return Check("lock boards", FAIL, f"{cfg.rs485_port}: board(s) {silent} did not answer status", todo)
    return Check("lock boards", PASS, f"{cfg.rs485_port}: board(s) {boards} answer status")


def _board_answers(port: serial.Serial, board: int, parser: Any, frame: Callable[[int], bytes]) -> bool:
    port.reset_input_buffer()
    port.write(frame(board))
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        if any(reply.board == board for reply in parser.feed(port.read(64))):
            return True
    return False


# ---- screen (SPI) ---------------------------------------------------------------


def check_screen(config: Settings) -> Check:
    cfg = config.display
    if not cfg.enabled:
        return Check("screen", SKIP, "display.enabled = false")
    if cfg.device != "max7219":
        return Check("screen", SKIP, f"display.device = {cfg.device}: no SPI to check")
    path = f"/dev/spidev{cfg.spi_port}.{cfg.spi_device}"
    if not os.path.exists(path):
        return Check("screen", FAIL, f"{path} missing", "dtparam=spi=on in config.txt, then reboot")
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        return Check(
            "screen", FAIL, f"{path}: {exc.strerror}", "add the user to the spi group; run as hall-edge"
        )
    os.close(fd)
    return Check("screen", PASS, f"{path} present and writable")


# ---- GPIO ---------------------------------------------------------------------


def configured_pins(config: Settings) -> dict[int, tuple[str, str]]:
    """BCM pin -> (what is wired to it, key/door/output), for everything the configuration enables."""
    return {pin: (wire.role, wire.use) for pin, wire in gpio_pins(config).items()}


def check_gpio(config: Settings) -> Check:
    pins = configured_pins(config)
    if not pins:
        return Check("gpio", SKIP, "no GPIO pins configured")
    from gpiozero import GPIOZeroError
    from gpiozero.exc import BadPinFactory, PinFactoryFallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PinFactoryFallback)  # the final error says enough
        try:
            busy, odd = _probe_pins(pins)
        except BadPinFactory as exc:
            return Check("gpio", FAIL, f"no GPIO here: {exc}", "run on the Pi; install python3-lgpio")
        except GPIOZeroError as exc:
            return Check("gpio", FAIL, f"GPIO unusable: {exc}", "run as hall-edge (group gpio)")
    if busy:
        return Check("gpio", FAIL, "; ".join(busy), "stop the service first; check for pins used twice")
    detail = f"{len(pins)} pins usable: " + ", ".join(str(p) for p in sorted(pins))
    if odd:
        todo = "a key held or stuck, or its wire shorted to GND? a door open, or its reed switch unwired?"
        return Check("gpio", WARN, detail + "; " + ", ".join(odd), todo)
    return Check("gpio", PASS, detail)


def _probe_pins(pins: dict[int, tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(pins that cannot be claimed, inputs in an unexpected state)."""
    from gpiozero import GPIOPinInUse, InputDevice, PinInvalidPin

    busy, odd = [], []
    for pin, (role, kind) in sorted(pins.items()):
        # Keys and door switches (to GND) are read with their pull-up; outputs (locks, buzzer)
        # are only claimed, never pulled or driven: a pull-up could be enough to fire a relay.
        pull, active = (None, True) if kind == OUTPUT else (True, None)
        try:
            with InputDevice(pin, pull_up=pull, active_state=active) as device:
                low = device.is_active if kind != OUTPUT else None
        except (GPIOPinInUse, PinInvalidPin, OSError) as exc:
            busy.append(f"{pin} ({role}): {exc}")
            continue
        if kind == KEY and low:
            odd.append(f"{pin} ({role}) pressed")
        elif kind == DOOR and not low:
            odd.append(f"{pin} ({role}) open")  # a shut door closes its reed switch: low
    return busy, odd


# ---- broker -------------------------------------------------------------------


def check_broker(config: Settings, timeout_s: float = BROKER_TIMEOUT_S) -> Check:
    """A real connection (clean session, a client id of its own: never kicks the daemon off)."""
    import paho.mqtt.client as mqtt

    cfg = config.mqtt
    where = f"{'mqtts' if cfg.tls else 'mqtt'}://{cfg.host}:{cfg.port}"
    protocol = mqtt.MQTTv5 if cfg.protocol == "mqttv5" else mqtt.MQTTv311
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"{config.site}-{config.device}-selftest",
        protocol=protocol,
    )
    answers: list[tuple[Any, float]] = []  # (reason code, when) of the CONNACK
    done = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, reason: Any, _p: object = None) -> None:
        answers.append((reason, time.monotonic()))
        done.set()

    client.on_connect = on_connect
    try:
        _configure_credentials(client, config)
        began = time.monotonic()
        client.connect(cfg.host, cfg.port, keepalive=30)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return Check("broker", FAIL, f"{where}: {exc}", _broker_todo(config))
    client.loop_start()
    try:
        done.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    if not answers:
        return Check("broker", FAIL, f"{where}: no CONNACK within {timeout_s:.0f} s", _broker_todo(config))
    reason, at = answers[0]
    if reason.is_failure:
        return Check("broker", FAIL, f"{where}: refused: {reason}", _broker_todo(config))
    tls = " (TLS)" if cfg.tls else ""
    return Check("broker", PASS, f"{where}: connected in {(at - began) * 1000:.0f} ms{tls}")


def _configure_credentials(client: mqtt.Client, config: Settings) -> None:
    cfg = config.mqtt
    if cfg.tls:
        from edge.link.connection import tls_context  # the daemon's own TLS settings

        client.tls_set_context(tls_context(cfg))
    if cfg.username:
        password = Path(cfg.password_file).read_text(encoding="utf-8").strip()
        client.username_pw_set(cfg.username, password)


def _broker_todo(config: Settings) -> str:
    cfg = config.mqtt
    hint = f"check network and mqtt.host/port; `nc -vz {cfg.host} {cfg.port}`"
    if cfg.tls:
        hint += "; TLS: mqtt.ca_file must sign the broker's certificate, and the clock must be right"
    return hint


# ---- clock, storage, temperature ---------------------------------------------------


def check_clock(config: Settings) -> Check:
    verdict = Clock(config.time.zone, config.time.clock).status()
    if verdict == "synced":
        return Check("clock", PASS, f"synchronised (time.clock = {config.time.clock})")
    return Check(
        "clock",
        FAIL,
        "not synchronised: events are marked clock=unsynced, TLS may fail",
        "network with NTP: `timedatectl`; `systemctl status systemd-timesyncd`",
    )


def check_storage(config: Settings) -> Check:
    folder = Path(config.storage.dir)
    existing = folder if folder.exists() else _nearest_existing(folder)
    free = disk_free_mb(str(existing))
    limit = config.storage.disk_low_mb
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        return Check("storage", FAIL, f"{folder} not writable by this user", "run as hall-edge, or chown it")
    detail = f"{folder}: {free if free is not None else '?'} MiB free (alarm below {limit})"
    if not folder.exists():
        detail += "; folder not there yet (systemd creates it at the first start)"
    if free is None or free < limit:
        return Check("storage", FAIL, detail, "free space on the SD card; journalctl --vacuum-size=100M")
    return Check("storage", PASS, detail)


def _nearest_existing(folder: Path) -> Path:
    for parent in folder.parents:
        if parent.exists():
            return parent
    return Path("/")


def check_cpu_temp(config: Settings) -> Check:
    temp = read_cpu_temp_c()
    if temp is None:
        return Check("cpu temp", SKIP, "no thermal sensor on this machine")
    limit = config.health.overheat_c
    if temp >= limit:
        return Check("cpu temp", FAIL, f"{temp} °C (limit {limit})", "ventilate the case; add a heat sink")
    return Check("cpu temp", PASS, f"{temp} °C (limit {limit})")


# ---- the voice's speaker --------------------------------------------------------


def check_speaker(config: Settings) -> Check:
    """Opens the speaker with a few milliseconds of silence: the card is there and usable, or why not."""
    from drivers.speaker import AlsaSpeaker, SocketSpeaker, SpeakerError
    from edge.voice.clips import RATE

    cfg = config.voice
    if not cfg.enabled:
        return Check("speaker", SKIP, "voice.enabled = false")
    speaker = SocketSpeaker(cfg.socket, RATE) if cfg.socket else AlsaSpeaker(cfg.alsa_device, RATE)
    where = f"simulator socket {cfg.socket}" if cfg.socket else f"ALSA device {cfg.alsa_device!r}"
    try:
        speaker.check()
    except SpeakerError as exc:
        return Check(
            "speaker", FAIL, f"{where}: {exc.message}",
            "plug in the speaker; `aplay -L` lists the devices (voice.alsa_device); "
            "`sudo apt install alsa-utils` if aplay is missing",
        )  # fmt: skip
    if shutil.which("espeak-ng") is None and not cfg.clips_dir:
        return Check(
            "speaker", WARN, f"{where} opens, but espeak-ng is missing: no default voice",
            "sudo apt install espeak-ng (or record the clips: docs/voice.md)",
        )  # fmt: skip
    return Check("speaker", PASS, f"{where} opens")


CHECKS: list[CheckFn] = [
    check_service,
    check_printer,
    check_reader,
    check_lock_boards,
    check_screen,
    check_gpio,
    check_broker,
    check_clock,
    check_storage,
    check_cpu_temp,
    check_speaker,
]


def run_checks(config: Settings, checks: list[CheckFn] = CHECKS) -> list[Check]:
    """Every check; one that breaks is a failure row, never an end of the self-test.

    Progress on stderr: on a slow Pi a check that waits (the broker, a serial port) shows which.
    """
    rows = []
    with Progress("selftest", len(checks)) as progress:
        for check in checks:
            name = _check_name(check)
            progress.step(name)
            try:
                rows.append(check(config))
            except Exception as exc:
                log.exception("selftest check %s broke", name)  # the traceback, for a bug report
                rows.append(Check(name, FAIL, f"{type(exc).__name__}: {exc}", "see docs/troubleshooting.md"))
    return rows


def _check_name(check: CheckFn) -> str:
    return check.__name__.removeprefix("check_").replace("_", " ")


# ---- --print: test ticket and screen pattern ------------------------------------


def print_test_ticket(config: Settings) -> Check:
    cfg = config.printer
    if not cfg.enabled:
        return Check("test ticket", SKIP, "printer.enabled = false")
    from drivers.escpos import Receipt
    from drivers.printer import open_transport

    stamp = time.strftime("%Y-%m-%d %H:%M")
    receipt = (
        Receipt()
        .align(1)
        .line(config.hall_name, width=2, height=2, bold_on=True)
        .line("打印自检 PRINTER TEST", bold_on=True)
        .line(f"{config.site}/{config.device}  hall-edge {__version__}")
        .line(stamp)
        .line("0123456789 ABCDEFGHIJ 求职招聘政策维权培训")
    )
    if cfg.qr_url:
        receipt.qr(cfg.qr_url)
    data = receipt.cut(cfg.cut).bytes()
    try:
        transport = open_transport(cfg.transport, cfg.port, cfg.baudrate)
        try:
            transport.write(data)
        finally:
            transport.close()
    except OSError as exc:
        return Check("test ticket", FAIL, f"{cfg.port}: {exc}", _printer_todo(cfg.port))
    return Check("test ticket", PASS, f"{len(data)} bytes sent", "check: Chinese text legible, QR scans, cut")


def show_test_pattern(config: Settings, hold_s: float = 3.0) -> Check:
    cfg = config.display
    if not cfg.enabled:
        return Check("test pattern", SKIP, "display.enabled = false")
    from PIL import Image, ImageDraw

    from drivers.display import LedPanel, PanelError

    image = Image.new(cfg.mode, (cfg.width, cfg.height))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, cfg.width - 1, cfg.height - 1), outline="white")
    for x in range(0, cfg.width, 8):  # one lit column per 8x8 block: a dead module shows a gap
        draw.line((x, 0, x, cfg.height - 1), fill="white")
    draw.line((0, 0, cfg.width - 1, cfg.height - 1), fill="white")
    panel = LedPanel(cfg)
    try:
        panel.open()
        panel.contrast(cfg.brightness)
        panel.show(image)
        time.sleep(hold_s)  # long enough for a person to look at every module
    except PanelError as exc:
        return Check(
            "test pattern", FAIL, str(exc), "check the screen's SPI wiring and power (docs/installer.md)"
        )
    finally:
        panel.close()
    return Check(
        "test pattern", PASS, f"{cfg.width}x{cfg.height} shown", "check: border, a line per block, diagonal"
    )


# ---- output -------------------------------------------------------------------


def render_table(rows: list[Check]) -> str:
    """check | result | detail, with what to do on an indented line under each row that needs it."""
    width = max(len(r.name) for r in [*rows, Check("check", "", "")])
    lines = [f"{'check':<{width}}  result  detail"]
    for row in rows:
        lines.append(f"{row.name:<{width}}  {row.result:<6}  {row.detail}")
        if row.todo:
            lines.append(f"{'':<{width}}  {'':<6}  -> {row.todo}")
    return "\n".join(lines)


def cmd_selftest(args: argparse.Namespace) -> int:
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        print("selftest: fix the configuration first (hall-edge check-config)", file=sys.stderr)
        return 1
    socket.setdefaulttimeout(BROKER_TIMEOUT_S)  # no check may hang the installer
    rows = run_checks(config)
    if args.print:
        rows += run_checks(config, [print_test_ticket, show_test_pattern])
    print(f"hall-edge {__version__} selftest of {config.site}/{config.device} ({args.config})")
    print(render_table(rows))
    failed = [r.name for r in rows if r.result == FAIL]
    print(f"\n{len(failed)} failed: {', '.join(failed)}" if failed else "\nall checks passed")
    return 1 if failed else 0
