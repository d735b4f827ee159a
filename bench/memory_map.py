"""Where the idle daemon's memory goes: ``hall-edge run`` with every feature on (the simulated hall
of bench/idle_soak.py), idle for ``--idle`` seconds, then its /proc/PID/smaps grouped by mapping
(Python heap and other anonymous memory, each shared library, each extension module).

    .venv/bin/python bench/memory_map.py --idle 15
    .venv/bin/python bench/memory_map.py --idle 15 --installed   # as the installer lays it out
    .venv/bin/python bench/memory_map.py --idle 15 --installed --tls folder   # and over TLS, as a hall
    .venv/bin/python bench/memory_map.py --idle 15 --installed --without voice,console

``--tls folder|bundle``: the broker on a TLS listener whose CA is added to this machine's CAs,
given to the daemon as a folder by hash (as the default mqtt.ca_file = /etc/ssl/certs) or as
one bundle file (as /etc/ssl/certs/ca-certificates.crt).
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
from idle_soak import SimulatedHall, add_without_option, start_daemon
from pki import hashed_folder, tls_files
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


SYSTEM_CAS = Path("/etc/ssl/certs")


def tls_setup(work: Path, mode: str | None) -> tuple[tuple[str, str, str] | None, dict]:
    """(the broker's TLS files, the daemon's mqtt keys) for ``--tls``; (None, {}) without it."""
    if mode is None:
        return None, {}
    ca, cert, key = tls_files(work / "pki")
    if mode == "bundle":
        bundle = work / "ca-certificates.crt"
        bundle.write_bytes((SYSTEM_CAS / "ca-certificates.crt").read_bytes() + Path(ca).read_bytes())
        ca_file = str(bundle)
    else:
        system = sorted(p for p in SYSTEM_CAS.glob("*.pem") if p.is_file())
        ca_file = hashed_folder(work / "certs", *system, ca)
    return (ca, cert, key), {"tls": True, "ca_file": ca_file}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--idle", type=float, default=15.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--tls", choices=("folder", "bundle"), default=None)
    add_without_option(parser)
    rig.add_daemon_options(parser)
    args = parser.parse_args(argv)
    rig.apply_daemon_options(args, "memory_map")
    work = Path(tempfile.mkdtemp(prefix="hall-bench-mem-"))
    tls, mqtt = tls_setup(work, args.tls)
    broker = Mosquitto(work / "broker", persistence=False, tls=tls).start()
    notify = Notifications(work / "notify.sock")
    hall = SimulatedHall(work, args.without)
    port = broker.tls_port if tls else broker.port
    daemon = start_daemon(work, port or broker.port, work / "notify.sock", hall, mqtt)
    try:
        if not notify.ready.wait(60):
            raise SystemExit("no READY=1 within 60 s")
        threading.Event().wait(args.idle)
        total = rss_kib(daemon.pid)
        by_mapping = smaps_by_mapping(daemon.pid)
        log_text = (work / "daemon.log").read_text(errors="replace")
        link = "online" if "link online" in log_text else "NOT online"
    finally:
        stop(daemon)
        notify.close()
        hall.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    where = f"{rig.cpu_fraction_label()}, {rig.daemon_label()}"
    features = f"every feature on but {', '.join(args.without)}" if args.without else "every feature on"
    print(f"hall-edge run, {features}, idle {args.idle:g} s ({where}):")
    if args.tls:
        print(f"over TLS, mqtt.ca_file: {mqtt['ca_file']} (this machine's CAs and the broker's)")
    print(f"link to the broker: {link}")
    print(f"VmRSS {total / 1024:.1f} MiB")
    for name, kib in by_mapping.most_common(args.top):
        print(f"  {kib / 1024:6.2f} MiB  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
