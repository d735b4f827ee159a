"""The daemon as the demo's child process, supervised the way systemd supervises the service.

``DaemonProcess`` starts ``hall-edge run`` with the simulator's environment,
copies its output to ``daemon.log`` (and to the terminal with ``--logs``),
waits for its ``ready`` line, and stops it with SIGTERM (SIGKILL after 5 s).
``StartLimit`` is systemd's start rate limit, so a daemon that keeps dying
stops the demo as it would stop the service.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
START_LIMIT_BURST = 4  # as in systemd/hall-edge.service: a 5th start within 120 s is refused
START_LIMIT_S = 120.0


def die_with_parent(command: list[str]) -> list[str]:
    """``command`` that gets SIGTERM when the process that started it dies, even by SIGKILL
    (the kernel's parent-death signal, set by util-linux ``setpriv`` before it execs).

    The signal follows the *thread* that started the child: only for children started from a
    thread that lives as long as the process (the demo's main thread).  A child in its own
    session (so that Ctrl-C reaches the demo first) would otherwise outlive a killed demo."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def daemon_command(config: Path) -> list[str]:
    """The installed console script next to this Python, else ``python -m edge``."""
    script = Path(sys.executable).with_name("hall-edge")
    if script.exists():
        return [str(script), "run", "--config", str(config)]
    return [sys.executable, "-m", "edge", "run", "--config", str(config)]


class StartLimit:
    """systemd's start rate limit: at most ``burst`` starts in a window of ``interval_s`` that
    opens at the first start after the last window ended (``ratelimit_below`` in systemd)."""

    def __init__(self, burst: int = START_LIMIT_BURST, interval_s: float = START_LIMIT_S) -> None:
        self.burst, self.interval_s = burst, interval_s
        self._begin: float | None = None
        self._count = 0

    def allow(self, now: float) -> bool:
        if self._begin is None or now - self._begin > self.interval_s:
            self._begin, self._count = now, 0
        self._count += 1
        return self._count <= self.burst


class DaemonProcess:
    """``hall-edge run --config CONFIG`` with ``env`` added, its output appended to ``log_path``."""

    def __init__(
        self,
        config: Path,
        log_path: Path,
        env: dict[str, str],
        echo_logs: bool = False,
        *,
        tied_to_parent: bool = False,
    ) -> None:
        self.config = config
        self.tied_to_parent = tied_to_parent  # die_with_parent: only if started from the main thread
        self.log_path = log_path
        self.env = env
        self.echo_logs = echo_logs
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = StartLimit()
        self._log_thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> int | None:
        """The exit code of a daemon that has ended on its own, else None."""
        return self.process.poll() if self.process is not None else None

    def start(self) -> None:
        """Start it and wait for its ready line; RuntimeError (with the log's end) if it fails."""
        self.starts.allow(time.monotonic())
        self._launch()

    def restart(self) -> bool:
        """Start it again after it exited, unless systemd's start limit would refuse (False)."""
        if not self.starts.allow(time.monotonic()):
            return False
        self._launch()
        return True

    def _launch(self) -> None:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)  # the demo is not systemd
        command = daemon_command(self.config)
        process = subprocess.Popen(
            die_with_parent(command) if self.tied_to_parent else command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops the daemon in order
        )
        ready = threading.Event()
        self.process = process
        self._log_thread = threading.Thread(
            target=self._copy_log, args=(process, ready), name="daemon-log", daemon=True
        )
        self._log_thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.failure())

    def _copy_log(self, process: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert process.stdout is not None
        with self.log_path.open("ab") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                if b'msg="ready' in line:
                    ready.set()
                if self.echo_logs:
                    sys.stderr.write("daemon: " + line.decode(errors="replace"))

    def failure(self) -> str:
        """Why the daemon is not running, with the end of its log."""
        code = self.exited()
        if self._log_thread is not None:
            self._log_thread.join(2)
        tail = self.log_path.read_text(errors="replace").splitlines()[-15:] if self.log_path.exists() else []
        what = f"exited with code {code}" if code is not None else f"not ready within {READY_TIMEOUT_S:g} s"
        return f"the daemon {what}; the end of {self.log_path}:\n  " + "\n  ".join(tail)

    def stop(self) -> str | None:
        """SIGTERM, as systemd would; SIGKILL after 5 s.  What happened, for the terminal."""
        process, said = self.process, None
        if process is not None and process.poll() is None:
            begin = time.monotonic()
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(STOP_TIMEOUT_S)
                said = f"daemon stopped in {time.monotonic() - begin:.2f} s (exit {code})"
            except subprocess.TimeoutExpired:
                said = f"the daemon did not stop within {STOP_TIMEOUT_S:g} s: killed"
                process.kill()
                process.wait()
        if self._log_thread is not None:
            with contextlib.suppress(RuntimeError):
                self._log_thread.join(2)
        return said
