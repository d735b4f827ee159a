"""Idle memory: what the daemon with every feature loads at start (bench/memory_map.py measures it)."""

from __future__ import annotations

import os
import subprocess
import sys

FEATURES = (
    "edge.daemon edge.wiring edge.link edge.health edge.commands.feature edge.key_rotation "
    "edge.snapshots edge.tickets.feature edge.display.feature edge.locker edge.buzzer edge.cli"
)


def fresh_python(code: str, **env: str) -> str:
    """What ``code`` prints, run in an interpreter of its own (nothing this test run loaded)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_start_with_every_feature_loads_neither_cryptography_nor_tomlkit():
    """cryptography (Rust extension + libcrypto, ~9 MiB resident) waits for the first signed message,
    tomlkit (~1 MiB) for the first configuration change; public keys are still checked at start."""
    code = (
        "import importlib, sys\n"
        f"for name in {FEATURES.split()!r}: importlib.import_module(name)\n"
        "from edge.protocol import load_public_keys\n"
        "keys, problems = load_public_keys({'ok': 'A' * 43 + '=', 'short': 'AAAA'})\n"
        "assert list(keys) == ['ok'] and len(problems) == 1, problems\n"
        "print(sorted(m for m in sys.modules if m.startswith(('cryptography', 'tomlkit'))))\n"
    )
    loaded = fresh_python(code)
    assert loaded.strip() == "[]", loaded


def test_a_started_daemon_carries_no_update_or_typo_tooling_until_it_is_used(tmp_path):
    """The idle controller's memory (bench/memory_map.py): the release tooling (tarfile),
    difflib and sysconfig's build table load only when an update, a misspelt name or zoneinfo's
    search path would need them.  (urllib.request is not asked about: paho loads it with the
    link, on a thread of its own that may or may not have got there when this looks.)"""
    from support import config_text

    config = tmp_path / "hall-edge.toml"
    config.write_text(config_text(tmp_path))
    code = (
        "import sys\n"
        "from edge.config import load\n"
        "from edge.daemon import Daemon\n"
        f"daemon = Daemon(load({str(config)!r}))\n"
        "daemon.start()\n"
        "unwanted = ('tarfile', 'difflib', 'edge.release', 'edge.releases')\n"
        "loaded = [m for m in sys.modules if m in unwanted or m.startswith('_sysconfigdata')]\n"
        "daemon.stop()\n"
        "print(sorted(loaded))\n"
    )
    loaded = fresh_python(code)
    assert loaded.strip() == "[]", loaded


def test_the_console_loads_jinja2_for_the_first_page_asked_for_not_at_start(tmp_path):
    """A hall whose console nobody has opened yet does not carry Jinja2 (~2.5 MiB), and the start
    does not wait for it (nor for the scrypt of the unknown-name check); the first page still works."""
    from hallsim.broker import free_port
    from support import config_text

    port = free_port()
    config = tmp_path / "hall-edge.toml"
    console = {"enabled": True, "listen": ["127.0.0.1"], "plain_http": ["127.0.0.1"], "port": port}
    config.write_text(config_text(tmp_path, {"console": console}))
    code = (
        "import sys, urllib.request\n"
        "from edge.config import load\n"
        "from edge.daemon import Daemon\n"
        f"daemon = Daemon(load({str(config)!r}))\n"
        "daemon.start()\n"
        "before = 'jinja2' in sys.modules\n"
        f"page = urllib.request.urlopen('http://127.0.0.1:{port}/login', timeout=30)\n"
        "print(before, page.status, 'jinja2' in sys.modules, '登录' in page.read().decode())\n"
        "daemon.stop()\n"
    )
    seen = fresh_python(code)
    assert seen.split() == ["False", "200", "True", "True"], seen


def test_a_halls_gpio_devices_load_without_the_rest_of_gpiozero_which_still_loads_when_asked():
    """drivers/gpio.py: keys, doors, locks and the buzzer without gpiozero's LED boards, SPI
    converters, internal sensors and fonts (0.6 MiB idle); ``from gpiozero import X`` still works."""
    code = (
        "import os, sys\n"
        "from drivers.gpio import DigitalInputDevice, OutputDevice, whole_package_loaded\n"
        "key = DigitalInputDevice(17, pull_up=True)\n"
        "lock = OutputDevice(18)\n"
        "lock.on()\n"
        "others = {'gpiozero.' + m for m in ('boards', 'spi_devices', 'internal_devices', 'fonts')}\n"
        "print(sorted(others & set(sys.modules)), whole_package_loaded(), lock.value, key.value)\n"
        "from gpiozero import LEDBoard, DigitalInputDevice as FromWhole\n"
        "print(whole_package_loaded(), FromWhole is DigitalInputDevice, 'gpiozero.boards' in sys.modules)\n"
    )
    seen = fresh_python(code, GPIOZERO_PIN_FACTORY="mock")
    assert seen.splitlines() == ["[] False 1 0", "True True True"]
