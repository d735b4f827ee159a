"""A release's bytecode, compiled as compileall would but without functions' and classes' docstrings.

A daemon holds every docstring of every module it imports for as long as it runs, and nothing in
it reads them.  In the idle hall that is ~0.5 MiB (ours, gpiozero, paho, PIL, luma: 1/80 of
the daemon) (bench/memory_map.py).  ``python -OO`` drops docstrings too, but it also drops
asserts, and it looks for ``.opt-2.pyc`` files that Debian does not ship for its standard
library and that an unprivileged daemon cannot write, so each start would compile the
standard library again.  Instead, the release's own venv is compiled from syntax trees with
those docstrings taken out.  The ``.pyc`` files stay where and what Python expects, so the
daemon runs them as it would compileall's:
- line numbers are unchanged, so tracebacks name the same lines;
- a module's docstring stays (the commands' ``--help`` text);
- a class made by ``dataclasses`` keeps its docstring (without one, ``dataclass`` writes one
  from ``inspect.signature`` at each start).
An edited source file no longer matches its ``.pyc``, and Python compiles it whole, as ever.

Run by the installer with the release's own interpreter, as a script (``python -I
bytecode.py``), so it works whatever version of hall-edge the release holds: stdlib only.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import importlib.util
import marshal
import os
import struct
import sys
from pathlib import Path


def _drop_docstring(node: ast.AST) -> None:
    if isinstance(node, ast.ClassDef) and any(map(_names_dataclass, node.decorator_list)):
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
            node.body = node.body[1:] or [ast.copy_location(ast.Pass(), first)]


def _names_dataclass(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name == "dataclass"


def without_docstrings(source: bytes, filename: str) -> ast.Module:
    """The module's syntax tree, its functions' and classes' docstrings taken out."""
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        _drop_docstring(node)
    return tree


def compile_file(path: Path, runs_at: Path) -> None:
    """Write ``path``'s ``.pyc`` (timestamp-checked, as py_compile's default), naming ``runs_at``."""
    source = path.read_bytes()
    code = compile(without_docstrings(source, str(runs_at)), str(runs_at), "exec", dont_inherit=True)
    stat = path.stat()
    header = importlib.util.MAGIC_NUMBER + struct.pack(
        "<III", 0, int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF
    )
    target = Path(importlib.util.cache_from_source(str(path)))
    target.parent.mkdir(exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}")
    partial.write_bytes(header + marshal.dumps(code))
    os.replace(partial, target)


def compile_tree(tree: Path, built_in: Path, runs_at: Path, jobs: int | None = None) -> list[str]:
    """Compile every ``.py`` under ``tree``; each names its path with ``built_in`` replaced by
    ``runs_at`` (compileall's ``-s``/``-p``), on ``jobs`` processes (default: one per CPU; one
    if processes cannot be made, as in a build chroot without /dev/shm).  The files that
    failed, each with its error."""
    work = {path: runs_at / path.relative_to(built_in) for path in sorted(tree.rglob("*.py"))}
    jobs = jobs or len(os.sched_getaffinity(0))
    if jobs > 1:
        try:
            return _compile_on_processes(work, jobs)
        except (OSError, NotImplementedError):  # no semaphores for a pool here
            pass
    return sorted(problem for path, runs in work.items() if (problem := _compiled(path, runs)))


def _compiled(path: Path, runs_at: Path) -> str:
    """What went wrong compiling ``path``; empty when it compiled."""
    try:
        compile_file(path, runs_at)
    except Exception as exc:  # noqa: BLE001 - a build step: a file that fails is named, the step fails
        return f"{path}: {exc!r}"
    return ""


def _compile_on_processes(work: dict[Path, Path], jobs: int) -> list[str]:
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        return sorted(
            problem for problem in pool.map(_compiled, work, work.values(), chunksize=16) if problem
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--built-in", type=Path, required=True, help="the folder the tree was built in")
    parser.add_argument("--runs-at", type=Path, required=True, help="where that folder will run")
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: one per CPU)")
    args = parser.parse_args(argv)
    failed = compile_tree(args.tree.resolve(), args.built_in.resolve(), args.runs_at, args.jobs)
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
