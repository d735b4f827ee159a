"""The one wiring list: every GPIO pin, serial port and SPI device the configuration uses.

``wiring(config)`` is the only place that knows which settings name a pin or
a port and which of them are live (the peripheral is enabled, the pin is
connected, the lock mode uses it).  Everything that needs the list reads it:
the keys (``edge.tickets.keys``), the configuration check (a pin or port
used twice), ``hall-edge selftest`` (which pins to probe, and how) and the
installer's hints (udev names and boot settings).  A new pin in the schema
gets one line here and is then checked, probed and hinted everywhere.
"""

from __future__ import annotations

from typing import Literal

from edge.records import record
from edge.settings import Settings

Kind = Literal["gpio", "serial", "spi"]
# How a GPIO is wired, which says how it may be probed: a key or a door switch is an
# input to GND read with the pull-up (pressed / shut = low); an output drives a relay
# or a buzzer (active high) and must never be pulled or driven by a check.
Use = Literal["key", "door", "output", "port"]

KEY: Use = "key"
DOOR: Use = "door"
OUTPUT: Use = "output"
PORT: Use = "port"

# The stable names firmware_config/99-hall-edge.rules gives (hall-locks: by the adapter's serial number).
UDEV_RULES = "/etc/udev/rules.d/99-hall-edge.rules"
UDEV_NAMES = ("/dev/hall-printer", "/dev/hall-rfid", "/dev/hall-locks")
# Serial devices on the Pi's own UART (GPIO 14/15): they need enable_uart and Bluetooth off.
PI_UARTS = ("/dev/hall-rfid", "/dev/ttyAMA0", "/dev/serial0", "/dev/ttyAMA10")


@record
class Wire:
    role: str  # what is wired there, as a person says it: "key A", "door 2", "printer"
    kind: Kind
    where: int | str  # BCM pin number (gpio) or device path (serial, spi)
    setting: str  # the configuration key that names it: "queue.categories[0].pin"
    use: Use  # key / door / output for a pin; port for a serial or SPI device
    key: str = ""  # the queue's name for a key ("A", "priority", "window1.call"); "" otherwise


def wiring(config: Settings) -> list[Wire]:
    """Every pin and port the enabled peripherals use, each once per setting, in config order."""
    wires = _queue(config) + _buzzer(config) + _locker(config) + _ports(config)
    return [w for w in wires if w.where not in (-1, "")]


def _queue(config: Settings) -> list[Wire]:
    q = config.queue
    if not q.enabled:
        return []
    wires = [
        Wire(f"key {c.code}", "gpio", c.pin, f"queue.categories[{i}].pin", KEY, c.code)
        for i, c in enumerate(q.categories)
    ]
    wires.append(Wire("priority key", "gpio", q.priority_pin, "queue.priority_pin", KEY, "priority"))
    for i, w in enumerate(q.windows):
        for action, pin in w.key_pins().items():  # the window caller and its rating keypad
            setting, key = f"queue.windows[{i}].{action}_pin", f"window{w.number}.{action}"
            wires.append(Wire(f"{action} {w.number}", "gpio", pin, setting, KEY, key))
    return wires


def _buzzer(config: Settings) -> list[Wire]:
    if not config.buzzer.enabled:
        return []
    return [Wire("buzzer", "gpio", config.buzzer.pin, "buzzer.pin", OUTPUT)]


def _locker(config: Settings) -> list[Wire]:
    cfg = config.locker
    if not cfg.enabled:
        return []
    wires = []
    for i, c in enumerate(cfg.compartments):
        at = f"locker.compartments[{i}]"
        if cfg.locks == "gpio":  # with RS-485 boards the board drives the lock and senses the door
            wires.append(Wire(f"lock {c.number}", "gpio", c.lock_pin, f"{at}.lock_pin", OUTPUT))
            wires.append(Wire(f"door {c.number}", "gpio", c.door_pin, f"{at}.door_pin", DOOR))
        wires.append(Wire(f"select {c.number}", "gpio", c.select_pin, f"{at}.select_pin", KEY))
    return wires


def _ports(config: Settings) -> list[Wire]:
    wires = []
    if config.printer.enabled:
        wires.append(Wire("printer", "serial", config.printer.port, "printer.port", PORT))
    if config.rfid.enabled:
        wires.append(Wire("card reader", "serial", config.rfid.port, "rfid.port", PORT))
    if config.locker.enabled and config.locker.locks == "rs485":
        wires.append(Wire("lock boards", "serial", config.locker.rs485_port, "locker.rs485_port", PORT))
    display = config.display
    if display.enabled and display.device == "max7219":
        path = f"/dev/spidev{display.spi_port}.{display.spi_device}"
        wires.append(Wire("screen", "spi", path, "display.spi_port", PORT))
    return wires


def gpio_pins(config: Settings) -> dict[int, Wire]:
    """BCM pin -> its wire (the first one, when a broken configuration names a pin twice)."""
    pins: dict[int, Wire] = {}
    for wire in wiring(config):
        if wire.kind == "gpio" and isinstance(wire.where, int):
            pins.setdefault(wire.where, wire)
    return pins


def key_pins(config: Settings) -> dict[str, int]:
    """The queue's key name -> BCM pin, for every connected key."""
    return {w.key: w.where for w in wiring(config) if w.key and isinstance(w.where, int)}


def conflicts(config: Settings) -> list[str]:
    """A pin or a port that two settings claim, one message each, naming both roles."""
    owner: dict[tuple[Kind, int | str], Wire] = {}
    errors = []
    for wire in wiring(config):
        first = owner.setdefault((wire.kind, wire.where), wire)
        if first is wire:
            continue
        what = f"GPIO {wire.where}" if wire.kind == "gpio" else str(wire.where)
        errors.append(
            f"{wire.setting}: {what} is not free (already {first.setting}); "
            f"wired as both {first.role} and {wire.role}"
        )
    return errors


def install_hints(config: Settings) -> list[str]:
    """What the installer should say about udev names and boot settings for this wiring."""
    hints = [hint for wire in wiring(config) for hint in _hints(wire)]
    pins = gpio_pins(config)
    if pins:
        hints.append("GPIO in use (BCM): " + ", ".join(f"{pin} {w.role}" for pin, w in sorted(pins.items())))
    return hints


def _hints(wire: Wire) -> list[str]:
    path = str(wire.where)
    if wire.kind == "spi":
        return [f"{wire.role} on {path}: config.txt needs dtparam=spi=on"]
    if wire.kind != "serial":
        return []
    hints = []
    if path in UDEV_NAMES:
        hints.append(f"{wire.role} on {path}: a name from {UDEV_RULES} (check it matches the device)")
    else:
        hints.append(f"{wire.role} on {path}: not a udev name; a kernel name may change ({UDEV_RULES})")
    if path in PI_UARTS:
        hints.append(f"{wire.role} on the Pi's UART: config.txt needs enable_uart=1 and dtoverlay=disable-bt")
    return hints
