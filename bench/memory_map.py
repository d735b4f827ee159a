"""Where the idle daemon's memory goes: ``hall-edge run`` with every feature on (the simulated hall
of bench/idle_soak.py), idle for ``--idle`` seconds, then its /proc/PID/smaps grouped by mapping
(Python heap and other anonymous memory, each shared library, each extension module).

    .venv/bin/python bench/memory_map.py --idle 15
    .venv/bin/python bench/memory_map.py --idle 15 --installed   # as the installer lays it out
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import tempfile
import threading
from pathlib import Path

import rig
from hallsim.broker import Mosquitto
from idle_soak import SimulatedHall, start_daemon
from rig import Notifications, rss_kib, stop


def smaps_by_mapping(pid: int) -> collections.Counter[str]:
    """Rss (KiB) per mapping name: a file's base name, or [heap], [anon], [stack]."""
    rss: collections.Counter[str] = collections.Counter()
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
            name = os.path.basename(fields[5]) if len(fields) > 5 else "[anon]"
        elif fields and fields[0] == "Rss:":
            rss[name] += int(fields[1])
    return rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--idle", type=float, default=15.0)
    parser.add_argument("--top", type=int, default=25)
    rig.add_daemon_options(parser)
    args = parser.parse_args(argv)
    rig.apply_daemon_options(args, "memory_map")
    work = Path(tempfile.mkdtemp(prefix="hall-bench-mem-"))
    broker = Mosquitto(work / "broker", persistence=False).start()
    notify = Notifications(work / "notify.sock")
    hall = SimulatedHall(work)
    daemon = start_daemon(work, broker.port, work / "notify.sock", hall)
    try:
        if not notify.ready.wait(60):
            raise SystemExit("no READY=1 within 60 s")
        threading.Event().wait(args.idle)
        total = rss_kib(daemon.pid)
        by_mapping = smaps_by_mapping(daemon.pid)
    finally:
        stop(daemon)
        notify.close()
        hall.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    where = f"{rig.cpu_fraction_label()}, {rig.daemon_label()}"
    print(f"hall-edge run, every feature on, idle {args.idle:g} s ({where}):")
    print(f"VmRSS {total / 1024:.1f} MiB")
    for name, kib in by_mapping.most_common(args.top):
        print(f"  {kib / 1024:6.2f} MiB  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
