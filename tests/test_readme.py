"""The README's promises: exactly two commands, and CI runs exactly the test one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands_in_readme() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^    (bash scripts/\S+)$", text, flags=re.MULTILINE)


def test_the_readme_gives_exactly_the_two_commands():
    assert commands_in_readme() == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_ci_runs_exactly_the_readme_test_command():
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[-1] == "bash scripts/test.sh"


def test_both_commands_set_up_first():
    for script in ("demo.sh", "test.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert "bash scripts/setup.sh" in text


def test_the_scripts_are_valid_bash():
    for script in ("setup.sh", "demo.sh", "test.sh"):
        result = subprocess.run(
            ["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr


def test_setup_installs_the_system_packages_the_hall_needs():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    for package in ("mosquitto", "fonts-unifont", "python3-venv", "ca-certificates"):
        assert package in text
    assert 'SUDO="sudo"' in text  # sudo only when not root
