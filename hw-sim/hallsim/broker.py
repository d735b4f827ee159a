"""A private mosquitto broker on a free loopback port (tests, demo, benchmarks)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hallsim.supervise import die_with_parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    """Runs ``mosquitto -c <generated conf>``; ``restart`` keeps the port (broker outage trials).

    ``tls`` = (ca, cert, key) paths adds a TLS listener on ``tls_port``; ``password_file``
    turns off anonymous access on it.  ``own_session`` keeps it out of the terminal's
    process group, so Ctrl-C reaches only whoever owns it.
    """

    def __init__(
        self,
        folder: str | Path | None = None,
        port: int | None = None,
        tls: tuple[str, str, str] | None = None,
        password_file: str | None = None,
        persistence: bool = True,
        *,
        own_session: bool = False,
        tied_to_parent: bool = False,
    ) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="hall-broker-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.password_file = password_file
        self.persistence = persistence
        # The demo's broker must not get the terminal's Ctrl-C: the daemon stops first, then it.
        self.own_session = own_session
        # ... and must not outlive the demo killed with SIGKILL (supervise.die_with_parent).
        self.tied_to_parent = tied_to_parent
        self.process: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _conf(self) -> Path:
        lines = [
            "user root",  # started as root (CI) mosquitto would drop to a user that cannot write here
            "per_listener_settings true",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 100000",
            "max_inflight_messages 0",
            "persistent_client_expiration 2d",
            f"log_dest file {self.folder / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.folder}/",
                "autosave_interval 1",
            ]
        if self.tls:
            ca, cert, key = self.tls
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {ca}",
                f"certfile {cert}",
                f"keyfile {key}",
                "require_certificate false",
            ]
            if self.password_file:
                lines += ["allow_anonymous false", f"password_file {self.password_file}"]
            else:
                lines += ["allow_anonymous true"]
        conf = self.folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> Mosquitto:
        conf = self._conf()
        command = [self.binary, "-c", str(conf)]
        self.process = subprocess.Popen(
            die_with_parent(command) if self.tied_to_parent else command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=self.own_session,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = self.folder / "mosquitto.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"mosquitto exited at start: {err} {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
