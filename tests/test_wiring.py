"""The one wiring list (edge.wiring): every pin and port once, with its role, read by all its users."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import config_text, make_config

from edge.selftest import PASS, check_gpio
from edge.settings import Settings, to_dict
from edge.wiring import install_hints, key_pins, wiring

COMPARTMENTS = [
    {"number": 1, "tool_id": "T1", "lock_pin": 17, "door_pin": 27, "select_pin": 4, "board": 1, "lock": 1},
    {"number": 2, "tool_id": "T2", "lock_pin": 22, "door_pin": 23, "select_pin": 18, "board": 1, "lock": 2},
]


def card_key(tmp_path: Path) -> str:
    key = tmp_path / "card.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    return str(key)


def whole_hall(tmp_path: Path, locks: str = "gpio", **locker: object) -> dict:
    return {
        "queue": {"enabled": True},
        "buzzer": {"enabled": True, "pin": 12},
        "printer": {"enabled": True, "port": "/dev/hall-printer"},
        "rfid": {"enabled": True, "card_key_file": card_key(tmp_path)},
        "locker": {"enabled": True, "locks": locks, "compartments": COMPARTMENTS, **locker},
        "display": {"enabled": True, "device": "max7219"},
    }


def pin_settings(config: Settings) -> list[int]:
    """Every connected value of every `pin` / `*_pin` key, found by walking the parsed configuration."""
    found = []
    for section in to_dict(config).values():
        if not isinstance(section, dict):
            continue
        rows = [section] + [row for value in section.values() if isinstance(value, list) for row in value]
        found += [v for row in rows if isinstance(row, dict) for k, v in row.items() if _is_pin(k, v)]
    return found


def _is_pin(key: str, value: object) -> bool:
    return (key == "pin" or key.endswith("_pin")) and value != -1


def test_every_configured_pin_appears_exactly_once_with_a_role(tmp_path):
    config = make_config(tmp_path, whole_hall(tmp_path))
    wires = wiring(config)
    pins = [w.where for w in wires if w.kind == "gpio"]
    assert sorted(pins) == sorted(pin_settings(config))  # a new *_pin key in the schema is not forgotten
    assert len(pins) == len(set(pins))
    roles = [w.role for w in wires]
    assert all(roles) and len(roles) == len(set(roles)), roles
    ports = {w.role: w.where for w in wires if w.kind != "gpio"}
    assert ports == {
        "printer": "/dev/hall-printer",
        "card reader": "/dev/hall-rfid",
        "screen": "/dev/spidev0.0",
    }


def test_with_rs485_boards_the_list_has_the_port_and_select_buttons_but_no_lock_or_door_pins(tmp_path):
    wires = wiring(make_config(tmp_path, whole_hall(tmp_path, locks="rs485")))
    locker = {w.role: w.where for w in wires if w.setting.startswith("locker.")}
    assert locker == {"select 1": 4, "select 2": 18, "lock boards": "/dev/hall-locks"}


def test_the_keys_read_their_pins_from_the_wiring_list(tmp_path):
    config = make_config(tmp_path, {"queue": {"enabled": True, "priority_pin": 7}})
    assert key_pins(config) == {
        "A": 5, "B": 6, "C": 13, "D": 19, "E": 26, "priority": 7,
        "window1.call": 16, "window1.recall": 20, "window1.skip": 21,
    }  # fmt: skip


def test_a_select_button_on_a_key_pin_is_refused_by_check_config_naming_both_roles(tmp_path):
    compartments = [{**COMPARTMENTS[0], "select_pin": 5}]  # 5 is key A's pin
    path = tmp_path / "hall.toml"
    path.write_text(config_text(tmp_path, whole_hall(tmp_path, locks="rs485", compartments=compartments)))
    result = subprocess.run(
        [sys.executable, "-m", "edge", "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert (
        "locker.compartments[0].select_pin: GPIO 5 is not free (already queue.categories[0].pin); "
        "wired as both key A and select 1"
    ) in result.stderr


def test_two_devices_on_one_serial_port_are_refused(tmp_path):
    from edge.config import ConfigError, parse

    hall = whole_hall(tmp_path)
    hall["rfid"]["port"] = "/dev/hall-printer"
    try:
        parse(config_text(tmp_path, hall))
    except ConfigError as exc:
        errors = exc.errors
    else:
        errors = []
    expected = (
        "rfid.port: /dev/hall-printer is not free (already printer.port); "
        "wired as both printer and card reader"
    )
    assert expected in errors


def test_selftest_probes_the_select_buttons_of_rs485_lockers(tmp_path, pins):
    config = make_config(tmp_path, whole_hall(tmp_path, locks="rs485") | {"queue": {"enabled": False}})
    row = check_gpio(config)
    assert row.result == PASS, row
    assert row.detail == "3 pins usable: 4, 12, 18"  # the buzzer and both select buttons; no lock pins
    assert pins.pin(4).pull == "up"  # read like a key: with its pull-up


def test_installer_hints_name_udev_names_and_boot_settings(tmp_path):
    hall = whole_hall(tmp_path)
    hall["printer"]["port"] = "/dev/ttyUSB0"
    hints = install_hints(make_config(tmp_path, hall))
    assert any(h.startswith("printer on /dev/ttyUSB0: not a udev name") for h in hints), hints
    assert "card reader on the Pi's UART: config.txt needs enable_uart=1 and dtoverlay=disable-bt" in hints
    assert "screen on /dev/spidev0.0: config.txt needs dtparam=spi=on" in hints
    assert hints[-1].startswith("GPIO in use (BCM): 4 select 1, 5 key A, 6 key B")
