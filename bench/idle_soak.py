"""Idle soak: RSS and CPU of ``hall-edge run`` over a period, against an idle plain paho client.

Starts a private mosquitto and, by default, the simulated hall around the
daemon: the ESC/POS printer and an RDM6300 reader on ptys (hallsim), the
pin board for keys, doors, locks and buzzer (``GPIOZERO_PIN_FACTORY=hallsim``),
the loudspeaker on a unix socket, the screen on luma's dummy device; queue,
locker, buzzer, voice (the default volume table) and the staff console (on
loopback, nobody logged in) enabled.  Then,
side by side for ``--duration`` seconds (default 600, the issue's 10 minutes):

- ``hall-edge run`` started under a NOTIFY_SOCKET this script owns, with
  ``WATCHDOG_USEC`` set as systemd would: start -> READY=1 is timed and the
  WATCHDOG=1 pings are counted;
- the plain alternative: a Python process with one paho client connected
  to the same broker, ``loop_start()``, nothing else.

Every ``--interval`` seconds both are sampled from /proc/PID/stat
(utime + stime) and /proc/PID/status (VmRSS).  Printed: RSS at start,
end and max, the daemon's RSS at seven points through the soak and its
slope over the second half (a leak is a trend, a high-water mark is not);
CPU seconds used and the average CPU share; READY=1 time.
``--minimal`` runs the daemon with every peripheral off instead.

    .venv/bin/python bench/idle_soak.py                 # 10 minutes, simulated hall
    .venv/bin/python bench/idle_soak.py --duration 60 --interval 5 --minimal
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rig
from hallsim.broker import Mosquitto, free_port
from hallsim.pins import PinBoard, daemon_env
from hallsim.printer import SimPrinter
from hallsim.rfid import SimReader
from hallsim.speaker import SimSpeaker
from rig import Notifications, config_text, cpu_seconds, daemon_command, rss_kib, stop

from edge.progress import Progress

SITE = {"site": "bench", "device": "idle-01"}
DOORS = (27, 23, 25)  # the default compartments' reed switches: shut

PLAIN_CLIENT = """\
import sys, threading
import paho.mqtt.client as mqtt
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-plain", protocol=mqtt.MQTTv5)
client.connect("127.0.0.1", int(sys.argv[1]), keepalive=60)
client.loop_start()
print("ready", file=sys.stderr, flush=True)
threading.Event().wait()
"""

WATCHDOG_USEC = 10_000_000  # pings every 5 s: enough of them to count in a short run


@dataclass
class Sample:
    at: float
    cpu_s: float
    rss_kib: int


@dataclass
class Watched:
    name: str
    process: subprocess.Popen[bytes]
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> None:
        self.samples.append(
            Sample(time.monotonic(), cpu_seconds(self.process.pid), rss_kib(self.process.pid))
        )

    def course(self, points: int = 7) -> str:
        """RSS at evenly spaced samples, and its slope over the second half: a leak shows as a trend."""
        picked = [self.samples[round(i * (len(self.samples) - 1) / (points - 1))] for i in range(points)]
        half = self.samples[len(self.samples) // 2 :]
        hours = (half[-1].at - half[0].at) / 3600
        slope = (half[-1].rss_kib - half[0].rss_kib) / 1024 / hours if hours > 0 else 0.0
        values = " ".join(f"{s.rss_kib / 1024:.1f}" for s in picked)
        return f"{self.name} RSS through the soak (MiB): {values}; second half {slope:+.2f} MiB/h"

    def summary(self) -> str:
        first, last = self.samples[0], self.samples[-1]
        span = last.at - first.at
        used = last.cpu_s - first.cpu_s
        share = 100 * used / span if span > 0 else 0.0
        peak = max(s.rss_kib for s in self.samples)
        return (
            f"{self.name:<22} RSS start {first.rss_kib / 1024:6.1f} MiB  end {last.rss_kib / 1024:6.1f}"
            f"  max {peak / 1024:6.1f}   CPU {used:6.2f} s in {span:5.0f} s = {share:5.2f} %"
        )


class SimulatedHall:
    """The devices around the daemon: printer and reader on ptys, the pin board, the speaker."""

    def __init__(self, work: Path, without: tuple[str, ...] = ()) -> None:
        self.without = without  # features left off (e.g. voice, console: the hall of earlier figures)
        self.printer = SimPrinter(work / "paper").start()
        self.reader = SimReader("rdm6300").start()
        self.speaker = SimSpeaker(work / "speaker.sock", work / "speaker").start()
        self.console_port = free_port()
        self.pins_socket = work / "pins.sock"
        self.board = PinBoard(self.pins_socket).start()
        for door in DOORS:
            self.board.set_switch(door, closed=True)
        self.presses = 0
        self.card_key = work / "card.key"
        self.card_key.write_bytes(b"bench-card-key-0123456789abcdef\n")
        self.card_key.chmod(0o600)

    def config(self, port: int, state: Path, mqtt: dict | None = None) -> str:
        """hall-edge.toml with every feature on: screen, printer, queue, buzzer, card reader,
        locker, voice and staff console; ``mqtt``: more keys of that table (TLS)."""
        tables = {
            "mqtt": {"port": port, **(mqtt or {})},
            "storage": {"dir": str(state)},
            "display": {"enabled": True, "open_from": "00:00", "open_until": "00:00"},
            "printer": {"enabled": True, "port": self.printer.port},
            "queue": {"enabled": True},
            "buzzer": {"enabled": True, "pin": 18},
            "rfid": {
                "enabled": True,
                "reader": "rdm6300",
                "port": self.reader.port,
                "card_key_file": str(self.card_key),
            },
            "locker": {"enabled": True},
            "voice": {"enabled": True, "socket": str(self.speaker.socket_path)},
            "console": {
                "enabled": True,
                "listen": ["127.0.0.1"],
                "plain_http": ["127.0.0.1"],
                "port": self.console_port,
            },
        }
        for feature in self.without:
            tables[feature]["enabled"] = False
        return config_text(state.parent, tables, **SITE)

    def env(self) -> dict[str, str]:
        return daemon_env(self.pins_socket)

    def stop(self) -> None:
        for part in (self.board, self.reader, self.printer, self.speaker):
            part.stop()


def start_daemon(
    folder: Path, port: int, notify_path: Path, hall: SimulatedHall | None, mqtt: dict | None = None
) -> subprocess.Popen[bytes]:
    config = folder / "hall-edge.toml"
    state = folder / "state"
    minimal = config_text(folder, {"mqtt": {"port": port, **(mqtt or {})}}, **SITE)
    config.write_text(hall.config(port, state, mqtt) if hall else minimal)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    env.update(hall.env() if hall else {})
    env.pop("WATCHDOG_PID", None)
    with (folder / "daemon.log").open("wb") as log:
        return subprocess.Popen(daemon_command(config), stderr=log, env=env)


def features_line(folder: Path) -> str:
    """What the daemon said it runs (its ready line), or what it said last."""
    lines = (folder / "daemon.log").read_text(errors="replace").splitlines()
    ready = [line for line in lines if 'msg="ready' in line]
    return (ready or lines or ["(no log)"])[-1]


def alarms_sent(folder: Path) -> list[str]:
    """The alarm events the daemon recorded (its ``event type=alarm.* seq=N`` journal lines)."""
    text = (folder / "daemon.log").read_text(errors="replace")
    return re.findall(r"event type=(alarm\.[a-z_.]+) seq=\d+", text)


def start_plain(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", PLAIN_CLIENT, str(port)], stderr=subprocess.PIPE)
    assert process.stderr is not None
    if b"ready" not in process.stderr.readline():
        raise RuntimeError("the plain paho client did not start")
    return process


BUTTON_A = 5  # the first queue key of the default configuration
CALL_WINDOW_1 = 16  # window 1's call key of the default configuration
VISITOR_CARD = "1A2B3C4D5E"  # not in any cards snapshot: a refused tap, the whole path all the same


def keep_busy(hall: SimulatedHall, every_s: float, stop_busy: threading.Event, calls: bool = False) -> None:
    """A busy hall: a key press (a ticket printed) and a card tap every ``every_s``; with ``calls``,
    window 1 also calls the next ticket each time (on the screen, by voice), so no queue builds up."""
    while not stop_busy.wait(every_s):
        hall.board.click(BUTTON_A)
        hall.reader.tap(VISITOR_CARD)
        if calls:
            hall.board.click(CALL_WINDOW_1)
        hall.presses += 1


def offline_lines(folder: Path) -> list[str]:
    """``component X=offline`` journal lines: what a false alarm would have said."""
    text = (folder / "daemon.log").read_text(errors="replace")
    return re.findall(r"component ([a-z_]+)=offline", text)


def soak(
    duration_s: float,
    interval_s: float,
    work: Path,
    simulated_hall: bool = True,
    busy_s: float = 0.0,
    *,
    without: tuple[str, ...] = (),
    calls: bool = False,
) -> list[str]:
    broker = Mosquitto(work / "broker", persistence=False).start()
    notify = Notifications(work / "notify.sock")
    hall = SimulatedHall(work, without) if simulated_hall else None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        began = time.monotonic()
        daemon = start_daemon(work, broker.port, work / "notify.sock", hall)
        processes.append(daemon)
        if not notify.ready.wait(60):
            raise RuntimeError("hall-edge did not send READY=1 within 60 s")
        ready_s = (notify.ready_at or began) - began
        processes.append(start_plain(broker.port))
        stop_busy = threading.Event()
        if hall is not None and busy_s > 0:
            threading.Thread(target=keep_busy, args=(hall, busy_s, stop_busy, calls), daemon=True).start()
        watched = [Watched("hall-edge run", daemon), Watched("plain paho client", processes[1])]
        start = time.monotonic()
        end = start + duration_s
        tick = threading.Event()
        progress = Progress("idle soak", math.ceil(duration_s / interval_s) + 1)
        while True:
            progress.step(f"{time.monotonic() - start:.0f} of {duration_s:g} s")
            for w in watched:
                w.sample()
            if time.monotonic() >= end or daemon.poll() is not None:
                break
            tick.wait(min(interval_s, max(0.0, end - time.monotonic())))
        progress.close()
        alive = daemon.poll() is None
        stop_busy.set()
    finally:
        codes = [stop(p) for p in processes]
        notify.close()
        if hall is not None:
            hall.stop()
        broker.stop()
    what = "simulated hall (screen, printer, reader, keys, locker)" if hall else "minimal (peripherals off)"
    samples = len(watched[0].samples)
    if hall is not None and busy_s > 0:
        called = ", window 1 calling each ticket" if calls else ""
        what += f", busy: a key press and a card tap every {busy_s:g} s ({hall.presses} each){called}"
    lines = [
        f"{rig.cpu_fraction_label()}: idle soak, {what}: {duration_s:g} s,"
        f" sampled every {interval_s:g} s, {samples} samples"
    ]
    lines += [w.summary() for w in watched]
    lines.append(watched[0].course())
    lines.append(f"hall-edge {features_line(work)}")
    lines.append(f"hall-edge start -> READY=1: {ready_s * 1000:.0f} ms")
    lines.append(
        f"hall-edge WATCHDOG=1 pings: {notify.watchdog_pings} (every {WATCHDOG_USEC / 2e6:g} s expected)"
    )
    alarms = alarms_sent(work)
    lines.append(f"hall-edge alarms sent: {len(alarms)} {' '.join(alarms)}".rstrip())
    offline = offline_lines(work)
    lines.append(f"hall-edge components offline: {len(offline)} {' '.join(offline)}".rstrip())
    lines.append(f"hall-edge alive through the soak: {alive}; exit code on SIGTERM: {codes[0]}")
    return lines


OPTIONAL_FEATURES = ("voice", "console")  # off by default in a hall's configuration


def add_without_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--without",
        type=lambda text: tuple(name for name in text.split(",") if name),
        default=(),
        metavar="FEATURES",
        help=f"leave these of the simulated hall's features off, e.g. {','.join(OPTIONAL_FEATURES)}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--minimal", action="store_true", help="every peripheral off (no simulated hall)")
    parser.add_argument(
        "--busy", type=float, default=0.0, metavar="S", help="a key press and a tap every S s"
    )
    parser.add_argument(
        "--calls", action="store_true", help="with --busy: window 1 calls each ticket (no queue builds up)"
    )
    add_without_option(parser)
    rig.add_daemon_options(parser)
    args = parser.parse_args(argv)
    rig.apply_daemon_options(args, "idle soak")
    work = Path(tempfile.mkdtemp(prefix="hall-bench-soak-"))
    try:
        lines = soak(
            args.duration,
            args.interval,
            work,
            not args.minimal,
            args.busy,
            without=args.without,
            calls=args.calls,
        )
        for line in lines:
            print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
