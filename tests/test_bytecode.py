"""A release's bytecode (edge/bytecode.py): the daemon runs it without docstrings it never reads,
with the same behaviour, line numbers and file names, and Python's own checks still hold."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BYTECODE = Path(__file__).resolve().parents[1] / "edge" / "bytecode.py"

MODULE = '''\
"""The module's docstring: a command's --help text."""
from dataclasses import dataclass


def documented(x):
    """Only in the source."""
    return x * 2


def only_a_docstring():
    """Its whole body."""


class Plain:
    """Only in the source too."""

    def method(self):
        """And here."""
        return "method"


@dataclass
class Kept:
    """Dataclasses would write one from inspect.signature at each start."""

    a: int


def fails():
    """Line numbers do not move."""
    raise ValueError("here")  # line 31
'''


def build(tmp_path: Path, *options: str) -> Path:
    """The installer's step: a tree built in one folder, compiled to run from another."""
    built = tmp_path / "built"
    (built / "lib" / "pkg").mkdir(parents=True)
    (built / "lib" / "pkg" / "__init__.py").write_text("")
    (built / "lib" / "pkg" / "mod.py").write_text(MODULE)
    compiled = compile_as_the_installer_does(built, *options)
    assert compiled.returncode == 0, compiled.stderr
    return built / "lib"


def compile_as_the_installer_does(built: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-I", str(BYTECODE), "--built-in", str(built), "--runs-at", "/opt/x"]
    return subprocess.run(
        [*command, *options, str(built / "lib")], capture_output=True, text=True, timeout=120, check=False
    )


def run(lib: Path, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(lib), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("jobs", [[], ["--jobs", "1"]], ids=["a process per CPU", "one process"])
def test_the_compiled_module_runs_without_docstrings_of_functions_and_classes(tmp_path, jobs):
    lib = build(tmp_path, *jobs)
    out = run(
        lib,
        """
        from pkg import mod
        print(mod.documented(21), mod.only_a_docstring(), mod.Plain().method(), mod.Kept(1).a)
        print(mod.documented.__doc__, mod.Plain.__doc__, mod.Plain.method.__doc__)
        print(mod.__doc__)
        print(mod.Kept.__doc__)
        """,
    )
    assert out.splitlines() == [
        "42 None method 1",
        "None None None",
        "The module's docstring: a command's --help text.",
        "Dataclasses would write one from inspect.signature at each start.",
    ]


def test_a_traceback_shows_the_source_line_that_raised(tmp_path):
    lib = build(tmp_path)
    out = run(
        lib,
        """
        import traceback
        from pkg import mod
        try:
            mod.fails()
        except ValueError as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            print(frame.lineno, frame.line)
        """,
    )
    assert out.strip() == '31 raise ValueError("here")  # line 31'


def test_an_edited_source_is_compiled_again_by_python_whole(tmp_path):
    lib = build(tmp_path)
    source = lib / "pkg" / "mod.py"
    source.write_text(MODULE.replace("Only in the source.", "Edited on the Pi, by hand."))
    out = run(lib, "from pkg import mod; print(mod.documented.__doc__)")
    assert out.strip() == "Edited on the Pi, by hand."


@pytest.mark.parametrize("jobs", [[], ["--jobs", "1"]], ids=["a process per CPU", "one process"])
def test_a_file_that_does_not_compile_fails_the_step_and_is_named(tmp_path, jobs):
    built = tmp_path / "built"
    (built / "lib").mkdir(parents=True)
    (built / "lib" / "broken.py").write_text("def f(:\n")
    (built / "lib" / "fine.py").write_text("x = 1\n")
    done = compile_as_the_installer_does(built, *jobs)
    assert done.returncode == 1
    assert "broken.py" in done.stderr and "fine.py" not in done.stderr
