"""Start-to-ready time and idle memory of ``hall-edge run``, against a bare Python + paho start.

For each of N runs it starts the daemon with a minimal configuration (all
peripherals off, plain MQTT to a private mosquitto) and measures, from just
before the process is spawned:

- ``ready log``: until the ``msg="ready ..."`` log line appears on stderr;
- ``READY=1``: until systemd's notification arrives on a NOTIFY_SOCKET
  datagram socket this script creates (what ``Type=notify`` waits for).

The last run is left idle for ``--idle`` seconds before its VmRSS is read
from /proc/PID/status.

``--every-feature`` starts the simulated hall of bench/idle_soak.py instead
(screen, printer, queue, buzzer, reader, locker, voice, console) and times
two starts per run: the first (no state yet: the database made, the voice's
clips prepared) and a restart on the state the first left (what a hall sees
after a power cut or an update).  ``-n`` runs, each on fresh state.  The plain reference, in the same run, is
``python -c "import paho.mqtt.client"``: the least any Python MQTT client can
cost (start to exit, and its RSS after printing a line and idling as long).

    .venv/bin/python bench/start_ready.py -n 10 --idle 10
    .venv/bin/python bench/start_ready.py -n 10 --every-feature --cpu-fraction 0.125 --installed
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import idle_soak
import rig
from hallsim.broker import Mosquitto

REFERENCE_IDLE = (
    "import sys, threading, paho.mqtt.client; print('ready', file=sys.stderr, flush=True); "
    "threading.Event().wait(float(sys.argv[1]))"
)


@dataclass
class Run:
    to_log_s: float
    to_notify_s: float | None
    rss_kib: int | None = None


def run_daemon(folder: Path, port: int, idle_s: float | None) -> Run:
    config = rig.write_config(folder, {"mqtt": {"port": port}})
    notify_path = folder / "notify.sock"
    notify = rig.Notifications(notify_path)
    try:
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        begin = time.monotonic()
        process = subprocess.Popen(rig.daemon_command(config), stderr=subprocess.PIPE, env=env)
        try:
            logged = rig.wait_for_line(process, b'msg="ready', 30)
            if not notify.ready.wait(30) or notify.ready_at is None:
                raise RuntimeError("no READY=1 within 30s")
            run = Run(logged - begin, notify.ready_at - begin)
            if idle_s is not None:
                threading.Event().wait(idle_s)
                run.rss_kib = rig.rss_kib(process.pid)
        finally:
            code = rig.stop(process)
    finally:
        notify.close()
    if code != 0:
        raise RuntimeError(f"hall-edge exited {code} on SIGTERM")
    return run


def start_hall(folder: Path, port: int, hall: idle_soak.SimulatedHall) -> float:
    """One start of the every-feature daemon on ``folder``'s state: seconds to READY=1."""
    notify = rig.Notifications(folder / "notify.sock")
    try:
        begin = time.monotonic()
        process = idle_soak.start_daemon(folder, port, folder / "notify.sock", hall)
        try:
            if not notify.ready.wait(60) or notify.ready_at is None:
                raise RuntimeError(f"no READY=1 within 60 s: {idle_soak.features_line(folder)}")
            return notify.ready_at - begin
        finally:
            if rig.stop(process) != 0:
                raise RuntimeError(f"hall-edge exited unclean on SIGTERM: {idle_soak.features_line(folder)}")
    finally:
        notify.close()
        (folder / "notify.sock").unlink(missing_ok=True)


def every_feature(work: Path, port: int, n: int) -> None:
    first, again = [], []
    for i in range(n):
        folder = work / f"hall-{i}"
        folder.mkdir()
        hall = idle_soak.SimulatedHall(folder)
        try:
            first.append(start_hall(folder, port, hall))
            again.append(start_hall(folder, port, hall))
        finally:
            hall.stop()
    print(f"every feature, first start -> READY=1   : {spread(first)}")
    print(f"every feature, restart -> READY=1       : {spread(again)}")


def run_reference(idle_s: float | None) -> Run:
    begin = time.monotonic()
    if idle_s is None:
        subprocess.run([sys.executable, "-c", "import paho.mqtt.client"], check=True)
        return Run(time.monotonic() - begin, None)
    process = subprocess.Popen([sys.executable, "-c", REFERENCE_IDLE, str(idle_s)], stderr=subprocess.PIPE)
    try:
        ready = rig.wait_for_line(process, b"ready", 30)
        threading.Event().wait(idle_s / 2)
        rss = rig.rss_kib(process.pid)
    finally:
        process.kill()
        process.wait()
    return Run(ready - begin, None, rss)


def spread(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"median {statistics.median(ms):7.1f} ms  min {min(ms):7.1f}  max {max(ms):7.1f}  (n={len(ms)})"


def report(runs: list[Run], references: list[Run], reference_idle: Run, idle_s: float) -> None:
    notify = [r.to_notify_s or 0.0 for r in runs]
    bare = [r.to_log_s for r in references]
    daemon_rss = runs[-1].rss_kib or 0
    reference_rss = reference_idle.rss_kib or 0
    print(f"hall-edge start -> ready log line       : {spread([r.to_log_s for r in runs])}")
    print(f"hall-edge start -> READY=1 notify       : {spread(notify)}")
    print(f"reference import paho.mqtt.client, exit : {spread(bare)}")
    print(f"{f'hall-edge idle RSS after {idle_s:g} s':40}: {daemon_rss / 1024:6.1f} MiB")
    print(f"reference idle RSS (python + paho)      : {reference_rss / 1024:6.1f} MiB")
    extra_ms = (statistics.median(notify) - statistics.median(bare)) * 1000
    extra_mib = (daemon_rss - reference_rss) / 1024
    print(f"hall-edge over the reference: {extra_ms:+.0f} ms to READY=1, {extra_mib:+.1f} MiB RSS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("-n", type=int, default=10, help="daemon starts (default 10)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before reading RSS")
    parser.add_argument(
        "--every-feature", action="store_true", help="every feature on: first start and restart"
    )
    rig.add_daemon_options(parser)
    args = parser.parse_args(argv)
    rig.apply_daemon_options(args, "start -> ready")

    work = Path(tempfile.mkdtemp(prefix="hall-bench-start-"))
    broker = Mosquitto(work / "broker", persistence=False).start()
    try:
        if args.every_feature:
            every_feature(work, broker.port, args.n)
            return 0
        runs = []
        for i in range(args.n):
            folder = work / f"run-{i}"
            folder.mkdir()
            runs.append(run_daemon(folder, broker.port, args.idle if i == args.n - 1 else None))
        references = [run_reference(None) for _ in range(args.n)]
        reference_idle = run_reference(args.idle)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    report(runs, references, reference_idle, args.idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
