"""A full disk does not stop the hall (issue 18, P7), on a small real file system the test mounts.

The storage folder is on a tmpfs of a few MiB; a filler file takes every free
byte, as a runaway log would.  Tickets, their printing, signed commands and
their answers go on in the space the reserve held; the daemon starts on a full
disk (also after kill -9) and says so; it makes the reserve again by itself
once space returns.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from command_rig import CommandHall
from gpiozero import Device
from hallsim.printer import SimPrinter
from support import config_text, fill_disk, wait_for
from test_daemon import LineReader

from edge.diskspace import MIB, RESERVE_NAME

RESERVE_MB = 8
DISK_MB = 32


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB mounted for this test and unmounted after it (needs root, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        reason = result.stderr.strip() or f"exit {result.returncode}"
        pytest.skip(
            f"cannot mount a small tmpfs here ({reason}); the full-disk tests need root (CI runs as root)"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def fill(folder: Path) -> Path:
    filler = fill_disk(folder)
    assert os.statvfs(folder).f_bavail == 0
    return filler


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[SimPrinter]:
    sim = SimPrinter(tmp_path / "paper", link=tmp_path / "printer").start()
    yield sim
    sim.stop()


def hall_on(make_hall: Callable[..., Any], disk: Path, port: int, printer: SimPrinter) -> CommandHall:
    return make_hall(
        None,
        {
            "storage": {"dir": str(disk / "state"), "reserve_mb": RESERVE_MB, "disk_low_mb": 12},
            "health": {"check_interval_s": 1.0},
            "queue": {"enabled": True, "bounce_ms": 0},
            "printer": {"enabled": True, "port": str(printer.link), "status_timeout_s": 1.0},
        },
        rig=CommandHall,
        port=port,
    )


def press_a() -> None:
    pin = Device.pin_factory.pin(5)  # key A of the default wiring
    pin.drive_low()
    pin.drive_high()


def events(hall: CommandHall, type_: str) -> list[dict]:
    """The data of the events of that type that reached the broker (the outbox empties once they do)."""
    kind = type_.split(".", maxsplit=1)[0]
    return [b["data"] for b in hall.watcher.bodies(f"/events/{kind}") if b.get("type") == type_]


def test_a_full_disk_keeps_tickets_printing_and_commands_answered_then_recovers(
    small_disk, broker, printer, make_hall
):
    hall = hall_on(make_hall, small_disk, broker.port, printer)
    reserve = small_disk / "state" / RESERVE_NAME
    try:
        hall.start()
        assert reserve.stat().st_size == RESERVE_MB * MIB
        wait_for(lambda: hall.core.components.get("printer") == "ok", 10, "the printer's first status")
        filler = fill(small_disk)

        for n in range(1, 21):
            press_a()
            wait_for(lambda n=n: len(printer.tickets) == n, 10, f"ticket {n} printed")
        # every press recorded and printed, none lost, on a disk that had 0 bytes free
        wait_for(lambda: len(events(hall, "ticket.issued")) == 20, 5, "20 tickets recorded")
        assert not reserve.exists()
        raised = wait_for(lambda: events(hall, "alarm.disk_full"), 10, "alarm.disk_full")
        assert raised[0]["state"] == "raised" and raised[0]["reserve_mb"] == RESERVE_MB
        wait_for(lambda: events(hall, "alarm.disk_low"), 10, "alarm.disk_low")

        body = hall.body("status")
        hall.publish(hall.signed(body))
        result = hall.watcher.result(body["id"])
        assert result["ok"] is True
        health = result["result"]["health"]
        assert health["disk_reserve"] == "released" and "disk_full" in health["alarms"]

        filler.unlink()
        freed_at = time.monotonic()
        cleared = wait_for(
            lambda: [e for e in events(hall, "alarm.disk_full") if e["state"] == "cleared"], 10, "cleared"
        )
        print(f"recovered {time.monotonic() - freed_at:.2f} s after the space returned")  # for the report
        assert cleared and reserve.stat().st_size == RESERVE_MB * MIB
    finally:
        hall.stop()  # let go of the database before the file system is unmounted


def test_after_kill_9_on_a_full_disk_the_daemon_starts_degraded_and_says_so(tmp_path, small_disk):
    config = tmp_path / "hall-edge.toml"
    overrides = {"storage": {"dir": str(small_disk / "state"), "reserve_mb": RESERVE_MB}}
    config.write_text(config_text(tmp_path, overrides))  # mqtt.port 1: nobody, never a system broker

    def run() -> tuple[subprocess.Popen[str], LineReader]:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(config)], stderr=subprocess.PIPE, text=True
        )
        reader = LineReader(process)
        wait_for(lambda: reader.has('msg="ready') or process.poll() is not None, 30, "the daemon ready")
        return process, reader

    first, _ = run()
    first.send_signal(signal.SIGKILL)
    first.wait()
    filler = fill(small_disk)

    second, reader = run()
    try:
        assert second.poll() is None, "\n".join(reader.lines)  # it runs: no 'not a writable folder' exit
        assert reader.has("is on a full disk: starting degraded"), reader.lines
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0
    filler.unlink()
    db = sqlite3.connect(small_disk / "state" / "hall-edge.db")
    try:
        rows = db.execute("SELECT payload FROM outbox WHERE type = 'alarm.disk_full'").fetchall()
    finally:
        db.close()  # the file system is unmounted next
    data = json.loads(rows[0][0])["data"]
    assert data["state"] == "raised" and data["started_full"] is True


def test_on_a_full_disk_a_tap_unlocks_and_a_forced_door_is_alarmed(tmp_path, small_disk, make_hall):
    from locker_hall import LockerHall, locker_config

    storage = {"storage": {"dir": str(small_disk / "state"), "reserve_mb": RESERVE_MB}}
    hall = make_hall(["locker"], {**locker_config(tmp_path), **storage}, rig=LockerHall)
    try:
        fill(small_disk)
        hall.tap("W1")
        wait_for(lambda: hall.unlocks(1) == 1, 5, "compartment 1 unlocked")
        hall.door(1, True)
        hall.door(1, False)
        (checkout,) = hall.wait_event("rental.checkout")
        assert checkout["compartment"] == 1
        hall.door(2, True)  # nobody tapped for compartment 2: forced
        (alarm,) = hall.wait_event("alarm.forced_open")
        assert alarm["state"] == "raised" and alarm["compartment"] == 2
        assert not (small_disk / "state" / RESERVE_NAME).exists()  # the reserve carried them
    finally:
        hall.stop()  # let go of the database before the file system is unmounted
