"""Releases side by side, and the two links that say which one runs.

The layout under ``root`` (``/opt/hall-edge``; tests and ``install --root``
pass another folder)::

    releases/0.1.0/            one folder per version, never changed once in place
        venv/                  its own virtualenv (system site packages: Debian's
                               python3-lgpio and python3-spidev are found there)
        manifest.json          the signed manifest (a checkout install writes its own)
    releases/.0.2.0.partial-PID   a release being built (removed if found later)
    current  -> releases/0.2.0    what the unit starts (relative links: the tree
    previous -> releases/0.1.0    works wherever it is copied, e.g. onto a card)
    bin/hall-edge              a launcher: ``current/venv/bin/python -m edge "$@"``

The unit runs ``/opt/hall-edge/current/venv/bin/python -m edge run``: through
the link, never a path of the machine that built the release.

Every step leaves a bootable layout after a kill -9 or a power cut at any
point: a release is built in a ``.partial`` folder, flushed to disk and renamed
into place only when its venv runs; a link is switched by writing a new link
under a temporary name and renaming it over the old one (rename is atomic),
then the folder is fsynced.  ``previous`` is set before ``current``, so a crash
between the two leaves both naming a release that works.

Paths written into a release are those it will have when it runs (``logical``,
e.g. ``/opt/hall-edge/releases/0.2.0``), not the folder it was built in: the
venv's scripts, its pyvenv.cfg and the compiled ``.pyc`` files are rewritten
after the build (``relocate``).  ``HALL_EDGE_RELEASE_STOP_AT=STEP`` kills the
process with SIGKILL at that step (tests/test_releases.py proves the layout
survives each one).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from edge.release import Manifest, compare_versions, copy_member, version_key

ROOT = "/opt/hall-edge"
RELEASES = "releases"
CURRENT = "current"
PREVIOUS = "previous"
PYTHON = "/usr/bin/python3"  # the Pi's (Raspberry Pi OS bookworm: 3.11); the venvs are built with it
PACKAGE = "hall-edge"
STOP_AT = "HALL_EDGE_RELEASE_STOP_AT"  # tests: SIGKILL at the named step
STEPS = ("unpacked", "venv", "installed", "relocated", "checked", "renamed", "previous-linked", "switched")
_PARTIAL = re.compile(r"\.(.+)\.partial-\d+")


class ReleaseError(RuntimeError):
    """A release could not be built or switched to; the layout is as it was before."""


def _step(name: str) -> None:
    """A named point in a release's life; the kill -9 tests stop the process here."""
    if os.environ.get(STOP_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ---- reading the layout -------------------------------------------------------------------


def release_dir(root: Path, version: str) -> Path:
    version_key(version)  # ValueError for anything that is not a version (no "../x" here)
    return Path(root) / RELEASES / version


def _link_version(root: Path, name: str) -> str | None:
    link = Path(root) / name
    try:
        target = os.readlink(link)
    except OSError:  # no link (a fresh root) or not a link
        return None
    version = Path(target).name
    return version if (Path(root) / RELEASES / version).is_dir() else None


def current_version(root: Path) -> str | None:
    """The version ``current`` names (what the unit starts), or None."""
    return _link_version(root, CURRENT)


def previous_version(root: Path) -> str | None:
    """The version ``previous`` names (what a rollback goes back to), or None."""
    return _link_version(root, PREVIOUS)


def installed_versions(root: Path) -> list[str]:
    """Every complete release folder, oldest first."""
    folder = Path(root) / RELEASES
    if not folder.is_dir():
        return []
    names = []
    for entry in folder.iterdir():
        try:
            version_key(entry.name)
        except ValueError:
            continue  # a .partial folder, or anything else that is not ours
        names.append(entry.name)
    return sorted(names, key=version_key)


# ---- changing the layout ------------------------------------------------------------------


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """One installer or updater at a time changes the layout (a lock file under ``root``)."""
    Path(root).mkdir(parents=True, exist_ok=True)
    with (Path(root) / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new link in ``folder`` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_link(root: Path, name: str, version: str) -> None:
    """Point ``root/name`` at ``releases/version`` atomically (a new link renamed over the old)."""
    temporary = Path(root) / f".{name}.new"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(f"{RELEASES}/{version}")
    os.replace(temporary, Path(root) / name)
    fsync_dir(Path(root))


def switch_to(root: Path, version: str) -> None:
    """Make ``version`` current; the release that was current becomes ``previous``.

    Switching back (a rollback) is the same call with the previous version.
    """
    if not release_dir(root, version).is_dir():
        raise ReleaseError(f"release {version} is not installed in {Path(root) / RELEASES}")
    old = current_version(root)
    if old == version:
        return
    if old is not None:
        _set_link(root, PREVIOUS, old)  # first: a crash now leaves current as it was
    _step("previous-linked")
    _set_link(root, CURRENT, version)
    _step("switched")


def prune(root: Path, keep: int = 2) -> list[str]:
    """Remove all but the ``keep`` newest releases, never current or previous; the removed.

    Also removes ``.partial`` folders a killed build left (call it with the lock held).
    """
    folder = Path(root) / RELEASES
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if _PARTIAL.fullmatch(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
    protected = {current_version(root), previous_version(root)}
    versions = installed_versions(root)
    newest = set(versions[-keep:]) if keep > 0 else set()
    for version in versions:
        if version not in protected and version not in newest:
            _remove_release(folder / version)
            removed.append(version)
    if removed:
        fsync_dir(folder)
    return removed


def _remove_release(folder: Path) -> None:
    """Rename first, then delete: a half-deleted release is never taken for a whole one."""
    doomed = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    os.replace(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


# ---- building a release -------------------------------------------------------------------


def install_release(
    root: Path,
    bundle_path: Path,
    manifest: Manifest,
    *,
    python: str = PYTHON,
    logical_root: str | None = None,
) -> Path:
    """Build ``releases/VERSION`` from a verified bundle (``release.read_bundle``); its folder.

    Nothing is switched: ``switch_to`` does that.  A release already in place is
    returned as it is (its folder only ever appears complete).  ``python``: the
    interpreter the venv is built on, as it is named on the machine that runs
    it.  ``logical_root``: where ``root`` will be when the release runs (default
    ``root`` itself; ``install --root DIR`` passes ``/opt/hall-edge``).
    """
    final = release_dir(root, manifest.version)
    if final.is_dir():
        return final
    with locked(root), _partial(root, manifest.version) as partial:
        wheels = partial / "wheels"
        wheels.mkdir()
        for name in manifest.wheels:
            copy_member(bundle_path, manifest, name, wheels)
        (partial / "manifest.json").write_bytes(manifest.raw)
        _step("unpacked")
        _make_venv(partial, python)
        _step("venv")
        pip = [str(partial / "venv/bin/python"), "-m", "pip", "install", "--no-index", "--find-links"]
        _run(
            [*pip, str(wheels), "--ignore-installed", "--no-compile", f"{PACKAGE}=={manifest.version}"],
            isolated=True,
        )
        shutil.rmtree(wheels)  # installed: the bundle has them, the Pi's card needs the space
        _step("installed")
        return _finish(root, partial, manifest.version, logical_root)


def install_source(
    root: Path,
    source: Path,
    *,
    python: str = PYTHON,
    logical_root: str | None = None,
    venv: bool = True,
) -> tuple[str, bool]:
    """Build a release from a checkout; (its version, whether it was built now).

    Its version is the checkout's with the hash of its packaged files as a local
    label (``0.1.0+src.1a2b3c4d5e6f``): installing an unchanged checkout again
    changes nothing, a changed one becomes a new release beside the old one.
    With ``venv``: a virtualenv with the package and its dependencies from the
    package index (the network).  Without (``install --no-venv``: an image or a
    test): the package's source copied to ``src/`` and a venv made by hand on
    the system's Python and its packages (Debian's python3-*), no pip run.
    """
    plain = source_version(source)
    version = f"{plain}+src.{source_hash(source)}"
    if release_dir(root, version).is_dir():
        return version, False
    with locked(root), _partial(root, version) as partial:
        if venv:
            _make_venv(partial, python)
            tree = shutil.copytree(source, partial / "build", ignore=NOT_PACKAGED)
            # The operator's pip configuration (a mirror, a proxy) counts here: deps come from the index.
            pip = [str(partial / "venv/bin/python"), "-m", "pip", "install", "--no-compile"]
            _run([*pip, str(tree)], isolated=False)
            shutil.rmtree(tree)
        else:
            _hand_made_venv(partial, source, plain)
        _finish(root, partial, version, logical_root, expect=plain)
    return version, True


def source_version(source: Path) -> str:
    """The version in a checkout's pyproject.toml."""
    return str(tomllib.loads((source / "pyproject.toml").read_text())["project"]["version"])


def source_hash(source: Path) -> str:
    """12 hex digits of the sha256 over the packaged files' names and bytes."""
    digest = hashlib.sha256()
    files = [source / "pyproject.toml"]
    for package in SOURCE_PACKAGES:
        files += (p for p in (source / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in sorted(files):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


NOT_PACKAGED = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".ruff_cache")
SOURCE_PACKAGES = ("edge", "drivers", "hw-sim/hallsim")


def logical(root: Path, logical_root: str | None) -> Path:
    return Path(logical_root) if logical_root is not None else Path(root).resolve()


@contextlib.contextmanager
def _partial(root: Path, version: str) -> Iterator[Path]:
    """A fresh ``.VERSION.partial-PID`` folder, removed unless it was renamed into place."""
    folder = Path(root) / RELEASES
    folder.mkdir(parents=True, exist_ok=True)
    prune(root, keep=1 << 30)  # only the .partial folders of builds that were killed
    partial = folder / f".{version}.partial-{os.getpid()}"
    partial.mkdir()
    try:
        yield partial
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def _finish(
    root: Path, partial: Path, version: str, logical_root: str | None, expect: str | None = None
) -> Path:
    """Relocate, prove the venv runs (it says ``expect``), flush, rename into place; its folder."""
    final = release_dir(root, version)
    relocate(partial, logical(root, logical_root) / RELEASES / version)
    _step("relocated")
    if Path(os.path.realpath(partial / "venv/bin/python")).exists():  # a venv for another machine: no
        found = _run([str(partial / "venv/bin/python"), "-m", "edge", "version"]).strip()
        if found != (expect or version):
            raise ReleaseError(f"the new release says it is {found!r}, not {expect or version}")
    _step("checked")
    os.sync()  # every file of the release on disk before the rename makes it count
    os.replace(partial, final)
    fsync_dir(final.parent)
    _step("renamed")
    return final


def _make_venv(partial: Path, python: str) -> None:
    _run([python, "-m", "venv", "--system-site-packages", str(partial / "venv")])


def _hand_made_venv(partial: Path, source: Path, version: str) -> None:
    """A venv without running Python: pyvenv.cfg, links to the system Python, a .pth to src/.

    The .pth names src/ relative to site-packages (Python joins it to the folder), and the
    minimal dist-info gives ``hall-edge version`` its version: no absolute path anywhere.
    """
    for package in SOURCE_PACKAGES:
        shutil.copytree(source / package, partial / "src" / Path(package).name, ignore=NOT_PACKAGED)
    venv = partial / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "python3", "python3.11"):
        (venv / "bin" / name).symlink_to(PYTHON)
    site = venv / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "hall-edge-src.pth").write_text("../../../../src\n")
    info = site / f"hall_edge-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: hall-edge\nVersion: {version}\n")
    (venv / "pyvenv.cfg").write_text(
        f"home = {Path(PYTHON).parent}\ninclude-system-site-packages = true\nversion = 3.11\n"
    )


def relocate(partial: Path, runs_at: Path) -> None:
    """Write ``runs_at`` wherever the build wrote the folder it was built in (``partial``).

    Text files (scripts' ``#!`` lines, activate scripts, pyvenv.cfg, .pth files)
    are rewritten; compiled ``.pyc`` files are thrown away and compiled again
    with ``runs_at`` as their source path (tracebacks name the real file), without the
    docstrings of functions and classes (edge/bytecode.py).
    """
    built = str(partial.resolve()).encode()
    wanted = str(runs_at).encode()
    for path in sorted(partial.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix == ".pyc":
            path.unlink()
            continue
        data = path.read_bytes()
        if built in data:
            mode = path.stat().st_mode
            path.write_bytes(data.replace(built, wanted))
            path.chmod(mode & 0o7777)
    cfg = partial / "venv" / "pyvenv.cfg"
    if cfg.is_file():  # "command = ... -m venv /build/path": only a note, and the build's path
        lines = [line for line in cfg.read_text().splitlines() if not line.startswith("command =")]
        cfg.write_text("\n".join(lines) + "\n")
    python = partial / "venv" / "bin" / "python"
    if python.exists() and (partial / "venv" / "lib").is_dir():
        # as a script of this installer (stdlib only): the release may hold any version of ours
        compile_args = ["-I", str(Path(__file__).with_name("bytecode.py"))]
        compile_args += ["--built-in", str(partial.resolve()), "--runs-at", str(runs_at)]
        _run([str(python), *compile_args, str(partial / "venv" / "lib")])


def _run(argv: list[str], isolated: bool = True) -> str:
    """Run a build tool; ``isolated``: pip's configuration off, so only the bundle's files count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if isolated:
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # .pyc files only from relocate(), with the paths they run at
    # cwd "/": `python -m edge` must find the release's package, never a checkout it was run from.
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, cwd="/")
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise ReleaseError(f"{' '.join(argv[:5])} ... failed ({result.returncode}): {tail}")
    return result.stdout


def newer_than_current(root: Path, version: str) -> bool:
    """Whether ``version`` is newer than the current release (True when there is none)."""
    current = current_version(root)
    return current is None or compare_versions(version, current) > 0


def base_python() -> str:
    """The interpreter to build venvs with: the Pi's path when it exists, else this one's base."""
    if Path(PYTHON).exists():
        return PYTHON
    return getattr(sys, "_base_executable", sys.executable)
