"""What the bench scripts share: the daemon's configuration, ``hall-edge run`` as a child process,
its readiness (log line, systemd notifications), /proc readings, waits and percentiles.

The configuration is the tests' own minimal one (``tests/support.py``: storage in ``folder/state``,
plain MQTT, every peripheral off) with each bench's tables merged over it.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "hw-sim"), str(ROOT / "tests")]

from support import config_text, make_config  # noqa: E402, F401 - for the benches (with write_config)

TICKS = os.sysconf("SC_CLK_TCK")
_pause = threading.Event()  # never set: wait() on it is an interruptible pause


def write_config(folder: Path, overrides: dict | None = None, **top: Any) -> Path:
    """``folder/hall-edge.toml`` for ``hall-edge run``: the minimal configuration, ``overrides``
    merged table by table (``{"mqtt": {"port": 1883}}``), ``top`` as top-level keys (site, device)."""
    config = folder / "hall-edge.toml"
    config.write_text(config_text(folder, overrides, **top), encoding="utf-8")
    config.chmod(0o600)
    return config


# ---- Pi-class runs: the daemon alone on a slice of one core --------------------------------------

CPU_ROOT = Path("/sys/fs/cgroup/cpu")  # cgroup v1 cpu controller, as ../shared/tools/slowpi uses
_slice: Path | None = None


def add_daemon_options(parser: argparse.ArgumentParser, in_process: bool = False) -> None:
    """``--cpu-fraction F``: the daemon (not the simulator, not the bench) on F of one core;
    ``--installed`` (benches that start ``hall-edge run``, not ``in_process`` ones): the daemon
    of a release installed as the installer makes one."""
    parser.add_argument(
        "--cpu-fraction",
        type=float,
        default=None,
        metavar="F",
        help="run the daemon alone on F of one core (0.125 ~ a Raspberry Pi 3 core; cgroup v1 quota)",
    )
    if in_process:
        return
    parser.add_argument(
        "--installed",
        action="store_true",
        help=f"run the daemon of a release of this checkout installed in {RELEASE_ROOT} (built if"
        " missing): its own venv with only the runtime dependencies, bytecode compiled once",
    )


def use_cpu_fraction(fraction: float | None) -> None:
    """Make the slice for ``daemon_command`` and ``daemon_cpu``; None or 1: full speed.

    As slowpi: the kernel's smallest quota is 1 ms, so the period grows (1/8: 1 ms of every
    8 ms).  Needs root and a writable cgroup v1 cpu hierarchy; removed at exit.
    """
    global _slice
    if fraction is None or fraction >= 1:
        _slice = None
        return
    if not 0 < fraction < 1:
        raise SystemExit("--cpu-fraction: a number in (0, 1]")
    if not os.access(CPU_ROOT, os.W_OK):
        raise SystemExit(f"--cpu-fraction needs a writable {CPU_ROOT} (root, cgroup v1 cpu)")
    group = CPU_ROOT / f"hall-bench-{os.getpid()}"
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(round(1000 / fraction)))
    (group / "cpu.cfs_quota_us").write_text("1000")
    _slice = group
    atexit.register(_remove_slice, group)


def _remove_slice(group: Path) -> None:
    for task in (group / "tasks").read_text().split():  # threads of ours still in it: back to the root
        with contextlib.suppress(OSError):  # gone meanwhile
            (CPU_ROOT / "tasks").write_text(task)
    with contextlib.suppress(OSError):  # a daemon still running in it: the group stays until it exits
        group.rmdir()


def apply_daemon_options(args: argparse.Namespace, bench: str) -> None:
    """After ``add_daemon_options``: make the slice and the release asked for; say what this run is."""
    use_cpu_fraction(args.cpu_fraction)
    if not hasattr(args, "installed"):  # the daemon's parts run in the bench's process
        print(f"{bench}: {cpu_fraction_label()}", flush=True)
        return
    if args.installed:
        use_installed_release()
    print(f"{bench}: {cpu_fraction_label()}, {daemon_label()}", flush=True)


def slowdown() -> float:
    """How many times slower the daemon runs than at full speed (8 on 1/8 of a core): a bench
    that times its moments on the daemon's pace (a kill "during start, drain and idle") scales
    them by it."""
    if _slice is None:
        return 1.0
    return int((_slice / "cpu.cfs_period_us").read_text()) / 1000


def cpu_fraction_label() -> str:
    if _slice is None:
        return "full speed"
    period = int((_slice / "cpu.cfs_period_us").read_text())
    return f"daemon on 1/{period // 1000} core"


@contextmanager
def daemon_cpu() -> Iterator[None]:
    """In-process benches: threads started inside this block (the daemon's: core, drivers, paho)
    run in the slice; the calling thread goes back to full speed after it, as do the simulators
    started before it.  Threads inherit their creator's cgroup, so start the daemon's parts here."""
    if _slice is None:
        yield
        return
    tid = str(threading.get_native_id())
    (_slice / "tasks").write_text(tid)
    try:
        yield
    finally:
        (CPU_ROOT / "tasks").write_text(tid)


# ---- which hall-edge runs ---------------------------------------------------------------------

RELEASE_ROOT = Path("/var/tmp/hall-bench-release")  # releases/VERSION/venv and current, as /opt/hall-edge
_installed: Path | None = None  # current/venv/bin/hall-edge of RELEASE_ROOT, once --installed made it
_compiled = False


def use_installed_release() -> None:
    """Install this checkout as a release in RELEASE_ROOT (edge.releases, as ``hall-edge install``
    does; kept and reused while the sources are unchanged) and run the daemon from it."""
    global _installed
    from edge.releases import base_python, install_source, prune, switch_to

    version, _built = install_source(RELEASE_ROOT, ROOT, python=base_python())
    switch_to(RELEASE_ROOT, version)
    prune(RELEASE_ROOT)
    _installed = RELEASE_ROOT / "current" / "venv" / "bin" / "hall-edge"


def daemon_label() -> str:
    if _installed is None:
        return "daemon from this checkout's venv"
    return f"daemon of the installed release {_installed.resolve().parents[2].name}"


def daemon_command(config: Path) -> list[str]:
    """``hall-edge run`` of this interpreter's environment (``python -m edge`` without the script),
    or of the installed release (``--installed``); in the CPU slice (``use_cpu_fraction``) from its
    first instruction when one is set."""
    script = _installed or Path(sys.executable).with_name("hall-edge")
    if _installed is None:
        compile_checkout()
    if script.exists():
        command = [str(script), "run", "--config", str(config)]
    else:
        command = [sys.executable, "-m", "edge", "run", "--config", str(config)]
    if _slice is None:
        return command
    # The shell moves itself into the slice, then becomes the daemon (same pid): nothing of the
    # daemon runs outside it, and its threads inherit it.
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(_slice), *command]


def compile_checkout() -> None:
    """Bytecode for the checkout, once per bench, as an installed package has it.  Without it, and
    with PYTHONDONTWRITEBYTECODE set (as on this machine), every daemon start would compile our
    sources again: ~0.1 s of CPU at full speed, ~0.8 s on 1/8 of a core, which no Pi in a hall does."""
    global _compiled
    if not _compiled:
        folders = ["edge", "drivers", "hw-sim"]
        subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], cwd=ROOT, check=True)
        _compiled = True


def wait_for_line(process: subprocess.Popen[bytes], marker: bytes, timeout: float) -> float:
    """Monotonic time at which ``marker`` appeared on stderr; the rest is drained on a thread."""
    assert process.stderr is not None
    seen = threading.Event()
    at: list[float] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if not seen.is_set() and marker in line:
                at.append(time.monotonic())
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    if not seen.wait(timeout):
        raise RuntimeError(f"no {marker!r} line within {timeout}s")
    return at[0]


def stop(process: subprocess.Popen[Any], timeout: float = 5.0) -> int:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout``; the exit code."""
    process.send_signal(signal.SIGTERM)  # nothing when it has exited already
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class Notifications:
    """The NOTIFY_SOCKET systemd would own: READY=1 time and WATCHDOG=1 count."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.ready_at: float | None = None
        self.watchdog_pings = 0
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if message.startswith(b"READY=1") and self.ready_at is None:
                self.ready_at = time.monotonic()
                self.ready.set()
            elif message.startswith(b"WATCHDOG=1"):
                self.watchdog_pings += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "(comm)": the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid: int) -> int:
    """VmRSS of the process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, nap: float = 0.002, what: str = "the bench step"
) -> None:
    """Poll ``condition`` every ``nap`` seconds; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        _pause.wait(nap)


def percentile(values: list[float], fraction: float) -> float:
    """The sample nearest to ``fraction`` (0..1) of the way through the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]
