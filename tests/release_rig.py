"""Release bundles for tests: small synthetic ones (no network, built in milliseconds) and the
real one that ``hall-admin release build`` makes from this checkout (host wheels only).

The synthetic bundle holds one wheel ``hall_edge-VERSION-py3-none-any.whl`` whose ``edge``
package only answers ``python -m edge version`` (and sleeps on ``run``): enough for the layout,
whose proof of a bootable release is that ``current/venv/bin/python -m edge version`` answers.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.protocol import PublicKey, public_key_b64
from edge.release import FileEntry, manifest_bytes, signature_bytes

REPO = Path(__file__).resolve().parents[1]
ADMIN = "import sys; from edge.admin import main; sys.exit(main(sys.argv[1:]))"
MAIN = """\
import signal, sys
from importlib.metadata import version
if sys.argv[1:2] == ["version"]:
    print(version("hall-edge"))
elif sys.argv[1:2] == ["run"]:
    signal.pause()  # a release that runs until it is stopped
"""


def synthetic_wheel(version: str) -> tuple[str, bytes]:
    """(file name, bytes) of a minimal pure wheel of hall-edge ``version``."""
    info = f"hall_edge-{version}.dist-info"
    files = {
        "edge/__init__.py": b'def documented():\n    """Only in the source: the release runs without."""\n',
        "edge/__main__.py": MAIN.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: hall-edge\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return f"hall_edge-{version}-py3-none-any.whl", buffer.getvalue()


class ReleaseKey:
    def __init__(self, kid: str = "rel-test") -> None:
        self.kid = kid
        self.private = Ed25519PrivateKey.generate()
        self.public_b64 = public_key_b64(self.private)

    def trusted(self) -> dict[str, PublicKey]:
        return {self.kid: PublicKey(base64.b64decode(self.public_b64))}


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def manifest_for(version: str, files: dict[str, bytes], **changes: object) -> bytes:
    entries = {name: FileEntry(hashlib.sha256(data).hexdigest(), len(data)) for name, data in files.items()}
    fields: dict = {
        "version": version,
        "min_replaces": "0.1.0",
        "built_at": "2026-12-01T00:00:00+00:00",
        "python": "3.11",
        "platforms": ["x86_64"],
        "files": entries,
    }
    fields.update(changes)
    return manifest_bytes(**fields)


def signed_bundle(folder: Path, version: str, key: ReleaseKey, extra: dict[str, bytes] | None = None) -> Path:
    """``folder/hall-edge-VERSION.tar`` with the synthetic wheel (and ``extra`` listed files)."""
    name, data = synthetic_wheel(version)
    files = {f"wheels/{name}": data, **(extra or {})}
    raw = manifest_for(version, files)
    members = [("manifest.json", raw), ("manifest.sig", signature_bytes(raw, key.private, key.kid))]
    members += list(files.items())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"hall-edge-{version}.tar"
    path.write_bytes(tar_bytes(members))
    return path


def bundle_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isreg()]


def build_real_bundle(out: Path, key_file: Path, kid: str, version: str | None = None) -> Path:
    """``hall-admin release build`` of this checkout for this machine only (needs the package index
    for the dependency wheels, once: pip caches them)."""
    command = [sys.executable, "-c", ADMIN, "release", "build", "--out", str(out)]
    command += ["--key", str(key_file), "--kid", kid, "--platform", _machine(), "--source", str(REPO)]
    if version:
        command += ["--version", version]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or result.stdout.strip())
    return next(out.glob("hall-edge-*.tar"))


def _machine() -> str:
    import platform

    return platform.machine()
