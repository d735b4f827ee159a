"""Idle memory: what the daemon with every feature loads at start (bench/memory_map.py measures it)."""

from __future__ import annotations

import subprocess
import sys

FEATURES = (
    "edge.daemon edge.wiring edge.link edge.health edge.commands.feature edge.key_rotation "
    "edge.snapshots edge.tickets.feature edge.display.feature edge.locker edge.buzzer edge.cli"
)


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
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
