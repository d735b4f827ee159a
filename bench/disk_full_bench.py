"""How many tickets a full disk still records: the reserve's worth, on a real tmpfs (needs root).

    sudo .venv/bin/python bench/disk_full_bench.py [--reserve-mb 16] [--disk-mb 48]

Mounts a tmpfs, opens the storage there with the reserve, fills every free
byte with a filler file, then issues tickets (each one the ticket row and its
``ticket.issued`` event in one durable transaction, as a press does) until the
disk refuses one.  Prints the count and how long the reserve lasted; with
``--reserve-mb 0`` it shows the behaviour without a reserve (the first press fails).
Nothing is published: the events stay in the outbox, as when the link is down.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import fill_disk, make_config

from edge.clock import Clock
from edge.core import Core
from edge.diskspace import MIB, SpaceReserve
from edge.storage import Storage
from edge.tickets.queue import TicketQueue


def run(reserve_mb: int, disk_mb: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mount = Path(tmp) / "disk"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={disk_mb}m", "tmpfs", str(mount)], check=True)
        try:
            measure(Path(tmp), mount, reserve_mb)
        finally:
            subprocess.run(["umount", str(mount)], check=True)


def measure(tmp: Path, mount: Path, reserve_mb: int) -> None:
    folder = mount / "state"
    folder.mkdir()
    config = make_config(tmp)
    storage = Storage(folder, SpaceReserve(folder, reserve_mb * MIB))
    core = Core(config, storage, Clock("Asia/Shanghai", "synced"))
    queue = TicketQueue(storage, core.emit)
    fill_disk(mount)
    began = time.monotonic()
    now = datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    issued = 0
    categories = [chr(ord("A") + i) for i in range(26)]
    while True:
        try:
            queue.issue(categories[issued % 26], False, now)
        except sqlite3.OperationalError as exc:
            print(f"reserve {reserve_mb} MiB: the disk refused ticket {issued + 1}: {exc}")
            break
        issued += 1
    took = time.monotonic() - began
    print(
        f"reserve {reserve_mb} MiB: {issued} tickets (with events) recorded after the disk filled,",
        f"{took:.1f} s",
    )
    storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reserve-mb", type=int, default=16)
    parser.add_argument("--disk-mb", type=int, default=48)
    args = parser.parse_args()
    run(args.reserve_mb, args.disk_mb)


if __name__ == "__main__":
    main()
