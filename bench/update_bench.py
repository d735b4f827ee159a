"""Update and rollback times on this machine, end to end.

Each trial is a controller on 0.1.0 in a temp release root, run as a process by
the systemd stand-in of the tests (tests/update_rig.py: the unit's
ExecStartPre/ExecStart lines, Restart=always), a private mosquitto, and the
bundles on a local HTTPS server (a test certificate).  The releases are tiny
wheels of test versions over this checkout, built into real venvs by
``edge.releases.install_release`` (venv + pip + compileall: most of the time).

- ``update``: 0.1.0 -> 0.2.0, from publishing the signed command to the
  ``update.confirmed`` event at the platform; split into download + verify +
  build (command -> ``current`` switched), and restart + health gate
  (switched -> confirmed).
- ``rollback``: 0.1.0 -> 0.3.0, whose link cannot start; from the failed
  health check (``current`` switched back, polled every 2 ms) to 0.1.0's
  retained state ``online`` again at the platform.

Also: disk used by the two releases kept, and the daemon's VmRSS after the update.

    .venv/bin/python bench/update_bench.py -n 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hallsim.broker import Mosquitto
from support import wait_for
from test_update import Controller, Kit
from update_rig import outcome, wait_state

from edge.releases import current_version


def watch_current(root: Path, wanted: str, stop: threading.Event) -> Callable[[], float | None]:
    """A thread polling ``root/current``; returns a getter of when it first named ``wanted``."""
    seen: list[float] = []

    def poll() -> None:
        while not stop.is_set() and not seen:
            if current_version(root) == wanted:
                seen.append(time.monotonic())
                return
            stop.wait(0.002)

    threading.Thread(target=poll, daemon=True).start()
    return lambda: seen[0] if seen else None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def update_trial(folder: Path, kit: Kit, port: int) -> dict[str, float]:
    ctl = Controller(folder, kit, port).start()
    stop = threading.Event()
    try:
        switched = watch_current(ctl.root, "0.2.0", stop)
        started = time.monotonic()
        command_id = ctl.send("update", kit.bundles["0.2.0"].args(kit.server))
        final = outcome(ctl.watcher, command_id, 120)
        done = time.monotonic()
        assert final["type"] == "update.confirmed", final
        at = wait_for(switched, 5, "switch seen")
        wait_state(ctl.watcher, ctl.topic, "0.2.0")
        process = ctl.service.process
        return {
            "total": done - started,
            "to_switch": at - started,
            "switch_to_confirmed": done - at,
            "disk_mib": du_mib(ctl.root / "releases"),
            "rss_mib": rss_mib(process.pid) if process is not None else float("nan"),
        }
    finally:
        stop.set()
        ctl.close()


def rollback_trial(folder: Path, kit: Kit, port: int) -> dict[str, float]:
    ctl = Controller(folder, kit, port)
    kit.place(ctl.root, "0.3.0")  # built in place: the rollback, not the build, is measured
    ctl.start()
    stop = threading.Event()
    try:
        switched = watch_current(ctl.root, "0.3.0", stop)
        command_id = ctl.send("update", kit.bundles["0.3.0"].args(kit.server))
        wait_for(switched, 60, "switched to 0.3.0")
        back = watch_current(ctl.root, "0.1.0", stop)
        failed_at = wait_for(back, 60, "switched back to 0.1.0")
        state_count = sum(1 for topic, _ in ctl.watcher.messages if topic.endswith("/state"))

        def online_again() -> float | None:
            states = [b for t, b in ctl.watcher.messages if t.endswith("/state")][state_count:]
            hit = any(s.get("online") and s.get("version") == "0.1.0" for s in states)
            return time.monotonic() if hit else None

        online_at = wait_for(online_again, 60, "0.1.0 online again")
        final = outcome(ctl.watcher, command_id, 60)
        assert final["data"]["reason"] == "unhealthy", final
        return {"rollback": online_at - failed_at}
    finally:
        stop.set()
        ctl.close()


def table(name: str, values: list[float], unit: str) -> str:
    if not values:
        return f"{name:<48} -"
    mean = statistics.mean(values)
    return (
        f"{name:<48} {mean:8.2f} {unit:<4} min {min(values):7.2f}  max {max(values):7.2f}  (n={len(values)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=3, help="trials of each (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="update-bench-") as temp:
        folder = Path(temp)
        (folder / "kit").mkdir()
        kit = Kit(folder / "kit")
        kit.built("0.1.0")
        kit.built("0.3.0")
        updates, rollbacks = [], []
        with Mosquitto(folder / "broker") as broker:
            try:
                for trial in range(args.n):
                    updates.append(update_trial(folder / f"u{trial}", kit, broker.port))
                    rollbacks.append(rollback_trial(folder / f"r{trial}", kit, broker.port))
            finally:
                kit.server.close()
    load = os.getloadavg()[0]
    print(f"hall-edge update bench: {args.n} trial(s) each, {os.cpu_count()} CPUs, load {load:.1f}")
    print(table("update: command -> confirmed", [u["total"] for u in updates], "s"))
    print(table("  command -> current switched (dl+verify+build)", [u["to_switch"] for u in updates], "s"))
    print(
        table(
            "  switched -> confirmed (restart+health gate)", [u["switch_to_confirmed"] for u in updates], "s"
        )
    )
    print(table("rollback: failed health check -> 0.1.0 online", [r["rollback"] for r in rollbacks], "s"))
    print(table("disk: releases/ with two releases (test venvs)", [u["disk_mib"] for u in updates], "MiB"))
    print(table("daemon VmRSS after the update", [u["rss_mib"] for u in updates], "MiB"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
