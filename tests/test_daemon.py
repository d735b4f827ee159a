"""The daemon as a whole: start, READY=1, clean stop on SIGTERM, features that fail."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import config_text, make_config, run_bench, wait_for

from edge import __version__
from edge.core import Core
from edge.daemon import Daemon
from edge.storage import Storage


@contextlib.contextmanager
def running_daemon(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """``hall-edge run`` with the minimal configuration; killed on the way out if it still runs."""
    config = tmp_path / "hall-edge.toml"
    config.write_text(config_text(tmp_path))  # mqtt.port 1: nobody, never a system broker
    process = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class LineReader:
    """Collects a process's stderr lines on a thread, so a test can wait for one."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.lines.append(line.rstrip("\n"))

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def test_sigterm_stops_a_running_daemon_cleanly_within_2_s(tmp_path):
    with running_daemon(tmp_path) as process:
        reader = LineReader(process)
        wait_for(lambda: reader.has('msg="ready'), 20, "the ready line")
        process.send_signal(signal.SIGTERM)
        begin = time.monotonic()
        code = process.wait(5)
        took = time.monotonic() - begin
    wait_for(lambda: reader.has("stopped"), 5, "the stopped line")
    assert code == 0
    assert took < 2.0
    assert not any("Traceback" in line for line in reader.lines)


def test_sigint_also_stops_it(tmp_path):
    with running_daemon(tmp_path) as process:
        reader = LineReader(process)
        wait_for(lambda: reader.has('msg="ready'), 20, "the ready line")
        process.send_signal(signal.SIGINT)
        assert process.wait(5) == 0


def test_ready_and_stopping_are_told_to_systemd(tmp_path):
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(20)
        with running_daemon(tmp_path, {"NOTIFY_SOCKET": address}) as process:
            first = notify.recv(4096).decode()
            process.send_signal(signal.SIGTERM)
            second = notify.recv(4096).decode()
            assert process.wait(5) == 0
    assert first.startswith("READY=1")
    assert second == "STOPPING=1"


def test_version_prints_the_version():
    result = subprocess.run(
        [sys.executable, "-m", "edge", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


def test_no_command_prints_help_and_exits_2():
    result = subprocess.run(
        [sys.executable, "-m", "edge"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "check-config" in result.stdout


# ---- in process: the signal path and the event in hand ---------------------------


@dataclass(frozen=True)
class Work:
    ticket: str


class SlowFeature:
    """A feature whose handler is in the middle of recording when SIGTERM arrives."""

    name = "slow"

    def __init__(self) -> None:
        self.in_hand = threading.Event()
        self.core: Core | None = None

    def start(self, core: Core) -> None:
        self.core = core
        core.subscribe(Work, self.on_work)

    def on_work(self, work: Work) -> None:
        self.in_hand.set()
        done = threading.Event()
        done.wait(0.4)  # a slow SD card write
        assert self.core is not None
        self.core.emit("ticket.issued", {"ticket": work.ticket})

    def stop(self) -> None:
        pass


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_sigterm_finishes_the_event_in_hand_before_storage_closes(tmp_path, restore_signals):
    feature = SlowFeature()
    config = make_config(tmp_path)
    daemon = Daemon(config, factories=[lambda _config: feature])
    daemon.start()

    def send_sigterm_mid_event() -> None:
        feature.in_hand.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=send_sigterm_mid_event)
    killer.start()
    daemon.core.post(Work("A001"))
    begin = time.monotonic()
    daemon.run_until_signalled()
    daemon.stop()
    killer.join()
    assert time.monotonic() - begin < 2.0

    storage = Storage(config.storage.dir)
    types = [row[0] for row in storage.execute("SELECT type FROM outbox ORDER BY seq")]
    storage.close()
    assert types == ["ticket.issued"]


class StuckFeature:
    """A handler still writing when the stop's time is up (a card that stalls for seconds)."""

    name = "stuck"

    def __init__(self) -> None:
        self.in_hand = threading.Event()
        self.release = threading.Event()
        self.recorded = threading.Event()

    def start(self, core: Core) -> None:
        self.core = core
        core.subscribe(Work, self.on_work)

    def on_work(self, work: Work) -> None:
        self.in_hand.set()
        self.release.wait(10)
        self.core.emit("ticket.issued", {"ticket": work.ticket})
        self.recorded.set()

    def stop(self) -> None:
        pass


def test_a_stop_that_gives_up_on_a_busy_handler_leaves_the_database_open_under_it(tmp_path, caplog):
    feature = StuckFeature()
    config = make_config(tmp_path)
    daemon = Daemon(config, factories=[lambda _config: feature])
    daemon.start()
    daemon.core.post(Work("A001"))
    assert feature.in_hand.wait(5)
    daemon.stop()  # core.stop gives up after 2 x 2 s
    assert "database is left open" in caplog.text
    feature.release.set()
    assert feature.recorded.wait(5)  # its write still lands: no closed database under it

    daemon.storage.close()
    storage = Storage(config.storage.dir)
    types = [row[0] for row in storage.execute("SELECT type FROM outbox ORDER BY seq")]
    storage.close()
    assert "ticket.issued" in types


class BrokenFeature:
    name = "broken"

    def __init__(self) -> None:
        self.stopped = False

    def start(self, core: Core) -> None:
        raise OSError("no such device /dev/hall-printer")

    def stop(self) -> None:
        self.stopped = True


class GoodFeature:
    name = "good"

    def __init__(self) -> None:
        self.started = self.stopped = False

    def start(self, core: Core) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


def test_a_feature_that_fails_to_start_is_left_out_and_the_rest_runs(tmp_path):
    broken, good = BrokenFeature(), GoodFeature()
    daemon = Daemon(make_config(tmp_path), factories=[lambda _c: broken, lambda _c: None, lambda _c: good])
    daemon.start()
    try:
        assert daemon.features == [good]
        assert good.started
        assert broken.stopped  # whatever it had opened is closed again
        assert daemon.core.components == {"broken": "failed"}
        events = [e.body() for e in daemon.core.outbox.pending()]
        assert [(e["type"], e["data"]) for e in events] == [
            ("error.feature_failed", {"feature": "broken", "reason": "OSError"})
        ]
    finally:
        daemon.stop()
    assert good.stopped


def test_the_daemon_reports_its_version_in_status(tmp_path):
    daemon = Daemon(make_config(tmp_path))
    daemon.start()
    try:
        assert daemon.core.status()["version"] == __version__
        assert daemon.ready_at is not None
    finally:
        daemon.stop()
    wait_for(daemon.core.stopped.is_set, 2, "core stopped")


def test_start_ready_benchmark_smoke():
    """bench/start_ready.py with one start and a short idle: it runs and prints its figures."""
    out = run_bench("start_ready.py", "-n", "1", "--idle", "0.2", timeout=60)
    for figure in ("ready log line", "READY=1 notify", "reference import paho", "idle RSS", "MiB"):
        assert figure in out


def test_start_ready_every_feature_smoke():
    """--every-feature: the simulated hall started, then restarted on the state it left."""
    out = run_bench("start_ready.py", "-n", "1", "--every-feature", timeout=120)
    for figure in ("every feature, first start -> READY=1", "every feature, restart -> READY=1", "(n=1)"):
        assert figure in out


def test_sdnotify_speaks_to_an_abstract_socket_and_is_quiet_without_one(monkeypatch):
    from edge import sdnotify

    name = f"hall-edge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("STATUS=testing")
        assert listener.recv(100) == b"STATUS=testing"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify.sock")
    assert sdnotify.notify("READY=1") is False  # systemd gone: never an exception


def test_watchdog_interval_is_half_the_timeout_and_only_for_us(monkeypatch):
    from edge import sdnotify

    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval_s() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert sdnotify.watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert sdnotify.watchdog_interval_s() is None
