"""Long work shows progress: a redrawn bar on a terminal, plain counted lines anywhere else."""

from __future__ import annotations

import io
import os

from support import make_config
from test_install import pi_root  # noqa: F401 - the fixture: a folder that looks like a Pi

from edge.cli import main
from edge.progress import Progress
from edge.selftest import CHECKS, run_checks


def test_off_a_terminal_each_step_is_one_plain_counted_line():
    out = io.StringIO()
    with Progress("install", 3, out) as progress:
        for what in ("user", "program", "unit"):
            progress.step(what)
    assert out.getvalue() == "install 1/3: user\ninstall 2/3: program\ninstall 3/3: unit\n"


def test_on_a_terminal_one_line_is_redrawn_with_a_bar_and_cleared_at_the_end():
    leader, follower = os.openpty()
    with open(follower, "w", encoding="utf-8") as terminal, Progress("selftest", 4, terminal) as progress:
        progress.step("printer")
        progress.step("broker")
    shown = _read_all(leader)
    assert "\n" not in shown.replace("\r\n", "")  # never a new line per step
    assert "\r\x1b[Kselftest [" in shown and "] 1/4 printer" in shown and "] 2/4 broker" in shown
    assert shown.endswith("\r\x1b[K")  # the report that follows starts on a clean line


def _read_all(leader: int) -> str:
    """What the terminal got; the other end is closed, so the read ends with EIO, not a wait."""
    chunks = []
    try:
        while chunk := os.read(leader, 4096):
            chunks.append(chunk)
    except OSError:
        pass
    os.close(leader)
    return b"".join(chunks).decode()


def test_selftest_names_each_check_as_it_starts_by_its_row_in_the_table(tmp_path, capsys):
    rows = run_checks(make_config(tmp_path, {"mqtt": {"port": 1}}), CHECKS)
    err = capsys.readouterr().err.splitlines()
    total = len(CHECKS)
    assert err[:3] == [
        f"selftest 1/{total}: service",
        f"selftest 2/{total}: printer",
        f"selftest 3/{total}: reader",
    ]
    assert [line.partition(": ")[2] for line in err] == [row.name for row in rows]


def test_install_counts_its_steps_on_stderr_and_keeps_stdout_the_report(pi_root, capsys):  # noqa: F811
    assert main(["install", "--root", str(pi_root), "--no-venv"]) == 0
    captured = capsys.readouterr()
    steps = captured.err.splitlines()
    assert steps[0] == "install 1/7: user and groups"
    assert steps[-1] == "install 7/7: boot settings (SPI, UART, serial console)"
    assert len(steps) == 7 and "install 1/7" not in captured.out
