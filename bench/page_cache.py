"""SQLite's page cache after the daemon opens a grown database, against SQLite's default.

A hall's database grows for months (events, tickets, rentals).  At every start
the storage checks its integrity (``PRAGMA quick_check``), which reads every
page; what the page cache keeps of them stays in the daemon for its whole run.
This builds a database of ``--mib`` MiB through ``edge.storage.Storage`` (rows
of 300 bytes in a table of their own), then, each in a fresh process:

- ``hall-edge storage``: opens it as the daemon does (``Storage``);
- ``SQLite default``: ``sqlite3.connect`` and the same ``PRAGMA quick_check``.

and prints SQLite's own count of the memory it holds
(``sqlite3_memory_used``, from the library the process loaded) and the
process's RSS growth.

    .venv/bin/python bench/page_cache.py --mib 20
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rig import rss_kib  # first: it puts the checkout on sys.path

from edge.storage import DB_NAME, Storage

ROW = "x" * 300


def grow(folder: Path, mib: float) -> None:
    storage = Storage(folder)
    try:
        with storage.transaction() as conn:
            conn.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            rows = int(mib * 2**20 / (len(ROW) + 40))
            conn.executemany("INSERT INTO filler (body) VALUES (?)", ((ROW,) for _ in range(rows)))
    finally:
        storage.close()


@functools.cache
def loaded_sqlite() -> ctypes.CDLL:
    """The SQLite library this process loaded (the one the sqlite3 module uses)."""
    import sqlite3  # noqa: F401 - maps the library

    maps = Path("/proc/self/maps").read_text().split()
    lib = ctypes.CDLL(next(path for path in maps if "libsqlite3" in path))
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return lib


def sqlite_memory_used() -> int:
    return int(loaded_sqlite().sqlite3_memory_used())


def open_and_measure(folder: Path, how: str) -> str:
    import sqlite3

    loaded_sqlite()  # mapped before the first figure
    before_rss, before = rss_kib(os.getpid()), sqlite_memory_used()
    if how == "ours":
        Storage(folder)
    else:
        conn = sqlite3.connect(folder / DB_NAME, isolation_level=None)
        conn.execute("PRAGMA quick_check").fetchone()
    return f"{(sqlite_memory_used() - before) / 2**20:.2f} {(rss_kib(os.getpid()) - before_rss) / 1024:.2f}"


def measure(folder: Path, how: str) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", how, str(folder)], capture_output=True, text=True, check=True
    )
    held, rss = done.stdout.split()
    return float(held), float(rss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--mib", type=float, default=20.0, help="size of the grown database (default 20)")
    parser.add_argument("--measure", nargs=2, metavar=("HOW", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(open_and_measure(Path(args.measure[1]), args.measure[0]))
        return 0
    with tempfile.TemporaryDirectory(prefix="hall-bench-pages-") as work:
        folder = Path(work)
        grow(folder, args.mib)
        size = (folder / DB_NAME).stat().st_size / 2**20
        print(f"database {size:.1f} MiB, opened and checked in a fresh process:")
        for label, how in (("hall-edge storage", "ours"), ("SQLite default", "default")):
            held, rss = measure(folder, how)
            print(f"{label:18}: SQLite holds {held:5.2f} MiB, RSS +{rss:5.2f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
