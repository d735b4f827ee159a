"""``hall-admin release build``: a signed bundle from a checkout, installable with no network.

One bundle holds the wheels of every platform asked for (by default the Pi's
``aarch64`` and the build machine's own): one file, one hash and one signature
for the whole fleet, so an ``update`` command or a rollout never has to know
which controller runs which architecture; pip picks the right wheels on each
(``pip install --no-index --find-links``).  The cost is size: each platform
adds its compiled wheels (Pillow, cryptography, cffi, cbor2: ~10 MB).

Dependencies with no wheel on the package index for a platform are not built
here: spidev and lgpio (gpiozero's pin library) come from Debian's
``python3-spidev`` / ``python3-lgpio`` through the venv's system site packages
(they are not requirements of hall-edge, so pip never looks for them).  A
platform where a *requirement* has no wheel (``armv7l``: Pillow,
cryptography and luma.led_matrix's rpi_ws281x are only on piwheels) fails the
build naming them; docs/releases.md says what to do instead.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from edge.protocol import read_private_key
from edge.records import record
from edge.release import FileEntry, manifest_bytes, signature_bytes, version_key

PYTHON_VERSION = "3.11"  # Raspberry Pi OS bookworm's
GLIBC = "2_36"  # bookworm's glibc: manylinux wheels up to manylinux_2_36 run there
DEFAULT_PLATFORMS = ("aarch64",)  # and the build machine's own, added unless --platform is given
NOT_PACKAGED = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".ruff_cache")


class BuildError(RuntimeError):
    """The bundle was not built; the message says why and what to do."""


@record
class Built:
    path: Path
    version: str
    platforms: tuple[str, ...]
    files: dict[str, FileEntry]


def host_platform() -> str:
    return platform.machine()


def pip_platform_tags(machine: str) -> list[str]:
    """The ``pip download --platform`` tags whose wheels run on bookworm on ``machine``."""
    return [f"manylinux_{GLIBC}_{machine}", f"manylinux2014_{machine}", f"linux_{machine}"]


def source_version(source: Path) -> str:
    return str(tomllib.loads((source / "pyproject.toml").read_text())["project"]["version"])


def build_bundle(
    source: Path,
    out: Path,
    key_file: str,
    kid: str,
    platforms: list[str],
    *,
    version: str | None = None,
    min_replaces: str = "0.1.0",
    find_links: str | None = None,
) -> Built:
    """Build ``out/hall-edge-VERSION.tar`` from the checkout ``source``.

    ``version`` overrides the checkout's (test fleets, the tests' 0.1 -> 0.2);
    ``find_links``: take the dependency wheels from this folder only, no index
    (offline builds, tests).
    """
    key = read_private_key(key_file)
    for given in (version, min_replaces):
        if given is not None:
            try:
                version_key(given)
            except ValueError as exc:
                raise BuildError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="hall-edge-release-") as work:
        tree = shutil.copytree(source, Path(work) / "src", ignore=NOT_PACKAGED)
        if version is not None:
            _set_version(tree, version)
        version = source_version(tree)
        wheels = Path(work) / "wheels"
        wheels.mkdir()
        own = _build_own_wheel(tree, wheels, find_links)
        for machine in platforms:
            _download(own, wheels, machine, find_links)
        files = {f"wheels/{wheel.name}": _entry(wheel) for wheel in sorted(wheels.iterdir())}
        built_at = datetime.now(UTC).replace(microsecond=0).isoformat()
        raw = manifest_bytes(
            version=version,
            min_replaces=min_replaces,
            built_at=built_at,
            python=PYTHON_VERSION,
            platforms=list(platforms),
            files=files,
        )
        signature = signature_bytes(raw, key, kid)
        out.mkdir(parents=True, exist_ok=True)
        bundle = out / f"hall-edge-{version}.tar"
        _write_tar(bundle, raw, signature, wheels)
    return Built(bundle, version, tuple(platforms), files)


def _set_version(tree: Path, version: str) -> None:
    pyproject = tree / "pyproject.toml"
    text, count = re.subn(
        r'^version = "[^"]*"', f'version = "{version}"', pyproject.read_text(), count=1, flags=re.M
    )
    if count != 1:
        raise BuildError(f"{pyproject}: no version line to set")
    pyproject.write_text(text)


def _build_own_wheel(tree: Path, wheels: Path, find_links: str | None) -> Path:
    # Built in pip's isolated build env: setuptools as pyproject.toml pins it, not this machine's.
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels)]
    if find_links is not None:
        command += ["--no-index", "--find-links", find_links]
    _run([*command, str(tree)], "building the hall-edge wheel")
    built = sorted(wheels.glob("hall_edge-*.whl"))
    if len(built) != 1:
        raise BuildError(f"building the hall-edge wheel left {len(built)} wheels")
    return built[0]


def _download(own: Path, wheels: Path, machine: str, find_links: str | None) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(wheels)]
    command += ["--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311"]
    for tag in pip_platform_tags(machine):
        command += ["--platform", tag]
    if find_links is not None:
        command += ["--no-index", "--find-links", find_links]
    _run([*command, str(own)], f"dependency wheels for {machine}")


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        missing = [line for line in lines if "No matching distribution" in line]
        detail = " | ".join(missing or lines[-3:])
        raise BuildError(f"{what} failed: {detail}")


def _entry(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 16), b""):
            digest.update(chunk)
    return FileEntry(digest.hexdigest(), path.stat().st_size)


def _write_tar(bundle: Path, raw: bytes, signature: bytes, wheels: Path) -> None:
    """Plain files only, owner root, written under a temporary name and renamed when complete."""
    partial = bundle.with_name(f".{bundle.name}.partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("manifest.json", raw), ("manifest.sig", signature)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for wheel in sorted(wheels.iterdir()):
            info = tarfile.TarInfo(f"wheels/{wheel.name}")
            info.size, info.mode = wheel.stat().st_size, 0o644
            with wheel.open("rb") as file:
                tar.addfile(info, file)
    os.replace(partial, bundle)
