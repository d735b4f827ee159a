"""Updates end to end: releases of test versions, signed bundles, an HTTPS server, systemd's part.

- ``tiny_wheel``: a real wheel named hall-edge VERSION whose only code is a
  ``.pth`` file pointing at this checkout (and this environment's packages):
  a release built from it by ``edge.releases.install_release`` runs this
  source and says it is VERSION.  ``extra`` files make a bad release (a
  broken paho, a Python that exits at once) or one that migrates the database.
- ``make_bundle``: the bundle, signed with the test release key.
- ``BundleServer``: HTTPS on 127.0.0.1 (a test certificate), with Range, and
  a connection it cuts once after N bytes (resume).
- ``Service``: what systemd does for hall-edge.service: each start runs the
  unit's ``ExecStartPre`` lines and then ``ExecStart``, read from
  systemd/hall-edge.service with /opt/hall-edge and the config path replaced;
  Restart=always.  Its processes are killed (process group) at ``stop``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import io
import ipaddress
import json
import os
import shlex
import signal
import site
import ssl
import subprocess
import tarfile
import threading
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from support import wait_for

from edge.release import FileEntry, manifest_bytes, signature_bytes

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "hall-edge.service"
RELEASE_KID = "rel-test"
RELEASE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))  # a fixed test key, never a real one


def release_public_key(key: Ed25519PrivateKey = RELEASE_KEY) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


# ---- releases and bundles ------------------------------------------------------------------


def tiny_wheel(folder: Path, version: str, extra: dict[str, str] | None = None) -> Path:
    """hall_edge-VERSION-py3-none-any.whl: a .pth to this checkout, the metadata, ``extra`` files."""
    dist = f"hall_edge-{version}.dist-info"
    paths = [str(REPO), str(REPO / "hw-sim"), *site.getsitepackages()]
    files = {
        "hall_edge_source.pth": "\n".join(paths) + "\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: hall-edge\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\nhall-edge = edge.cli:main\n",
        **(extra or {}),
    }
    record = []
    for name, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    path = folder / f"hall_edge-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


@dataclass(frozen=True)
class Bundle:
    path: Path
    version: str
    sha256: str
    size: int

    def args(self, server: BundleServer, **more: Any) -> dict[str, Any]:
        """The update command's arguments for this bundle on ``server``."""
        return {
            "url": server.url(self.path.name),
            "sha256": self.sha256,
            "size": self.size,
            "version": self.version,
            **more,
        }


def make_bundle(
    folder: Path,
    version: str,
    *,
    extra: dict[str, str] | None = None,
    min_replaces: str = "0.0.1",
    key: Ed25519PrivateKey = RELEASE_KEY,
    kid: str = RELEASE_KID,
    name: str | None = None,
) -> Bundle:
    """hall-edge-VERSION.tar: manifest.json, manifest.sig and the tiny wheel, as the builder writes it."""
    work = folder / f"build-{version}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    wheel = tiny_wheel(work, version, extra)
    data = wheel.read_bytes()
    files = {f"wheels/{wheel.name}": FileEntry(hashlib.sha256(data).hexdigest(), len(data))}
    built_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    raw = manifest_bytes(
        version=version,
        min_replaces=min_replaces,
        built_at=built_at,
        python="3.11",
        platforms=["aarch64", "armv7l", "x86_64"],
        files=files,
    )
    members = {
        "manifest.json": raw,
        "manifest.sig": signature_bytes(raw, key, kid),
        f"wheels/{wheel.name}": data,
    }
    path = folder / (name or f"hall-edge-{version}.tar")
    with tarfile.open(path, "w") as tar:
        for member, content in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return described(path, version)


def described(path: Path, version: str) -> Bundle:
    data = path.read_bytes()
    return Bundle(path, version, hashlib.sha256(data).hexdigest(), len(data))


# A release whose link cannot start: its paho is broken (a dependency built wrong).
BROKEN_LINK = {"paho/__init__.py": "raise ImportError('this build of paho is broken')\n"}
# A release that adds a column to the outbox before its health check fails: the release before it
# must then run on the database this one migrated (``edge.storage.Additive``).
MIGRATES = {
    "zz_migrates.pth": "import sys; sys.argv[1:2] == ['run'] and __import__('hall_edge_migrates')\n",
    "hall_edge_migrates.py": (
        "from edge import outbox\n"
        "from edge.storage import Additive\n"
        "outbox.MIGRATIONS.append(Additive('ALTER TABLE outbox ADD COLUMN route TEXT'))\n"
    ),
}
# A release that dies before any code of its own runs, at each start of the daemon.
CRASHES = {"hall_edge_crash.pth": "import sys; sys.argv[1:2] == ['run'] and __import__('os')._exit(70)\n"}


# ---- the HTTPS server ------------------------------------------------------------------------


def server_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (also the CA the controller trusts): (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bundles.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class BundleServer:
    """Serves ``folder`` over HTTPS with Range; ``cut_once[name] = N`` drops one transfer after N bytes."""

    def __init__(self, folder: Path, cert: Path, key: Path) -> None:
        self.folder = folder
        self.cert = cert
        self.cut_once: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                path = server.folder / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                wanted = self.headers.get("Range")
                if wanted and wanted.startswith("bytes="):
                    start = int(wanted[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = server.cut_once.pop(path.name, None)
                self.wfile.write(data[start:cut] if cut is not None else data[start:])
                if cut is not None:
                    self.close_connection = True

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- systemd's part ----------------------------------------------------------------------------


def unit_lines(root: Path, config: Path) -> tuple[list[tuple[bool, list[str]]], list[str]]:
    """The unit's ExecStartPre lines ((may fail, argv)) and ExecStart, with paths for ``root``."""
    pres: list[tuple[bool, list[str]]] = []
    start: list[str] = []
    for line in UNIT.read_text().splitlines():
        key, _, value = line.partition("=")
        if key not in ("ExecStartPre", "ExecStart"):
            continue
        value = value.replace("/opt/hall-edge", str(root)).replace(
            "/etc/hall-edge/hall-edge.toml", str(config)
        )
        may_fail = value.startswith("-")
        argv = shlex.split(value.lstrip("-"))
        if key == "ExecStartPre":
            pres.append((may_fail, argv))
        else:
            start = argv
    return pres, start


class Service:
    """hall-edge.service under a stand-in for systemd: ExecStartPre, ExecStart, Restart=always."""

    def __init__(self, root: Path, config: Path, log: Path) -> None:
        self.root, self.config, self.log = root, config, log
        self.pres, self.start_argv = unit_lines(root, config)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0  # how many times ExecStart ran
        self.exits: list[int] = []
        self.env_once: dict[str, str] = {}  # for the next daemon start only (e.g. a kill -9 step)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="service", daemon=True)

    def start(self) -> Service:
        self._thread.start()
        return self

    def _spawn(self, argv: list[str], once: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        # Not this checkout as the working folder (systemd's is /run/hall-edge): its
        # hall_edge.egg-info would be found first and name this checkout's version.
        with open(self.log, "ab") as out:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
            env.update(once or {})
            return subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=self.root
            )

    def _loop(self) -> None:
        while not self._stopping.is_set():
            failed = False
            for may_fail, argv in self.pres:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self.process = self._spawn(argv)
                    except OSError:  # no such program: systemd's status 203/EXEC
                        self.process = None
                code = self.process.wait() if self.process is not None else 203
                if code != 0 and not may_fail:
                    failed = True
                    self.exits.append(code)
                    break
            if failed:
                self._stopping.wait(0.2)  # RestartSec, short
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                self.process = self._spawn(self.start_argv, self.env_once)
                self.env_once = {}
                self.starts += 1
            self.exits.append(self.process.wait())
            self._stopping.wait(0.2)

    def kill9(self) -> None:
        """kill -9 the daemon (or the step running now) as a power cut would end it."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            process = self.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._thread.join(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_state(watcher: Any, topic: str, version: str, timeout: float = 30.0) -> dict[str, Any]:
    """The retained state naming ``version`` online (the release that runs now)."""

    def found() -> dict[str, Any] | None:
        states = [b for t, b in watcher.messages if t == f"{topic}/state"]
        last = states[-1] if states else {}
        return last if last.get("online") and last.get("version") == version else None

    return wait_for(found, timeout, f"{version} online")


def update_events(watcher: Any, command_id: str) -> list[dict[str, Any]]:
    return [b for b in watcher.bodies("/events/update") if (b.get("data") or {}).get("id") == command_id]


def outcome(watcher: Any, command_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The update's final event (confirmed, failed or refused)."""

    def final() -> dict[str, Any] | None:
        for event in update_events(watcher, command_id):
            if event["type"] in ("update.confirmed", "update.failed", "update.refused"):
                return event
        return None

    return wait_for(final, timeout, f"outcome of {command_id}")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
