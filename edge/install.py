"""``hall-edge install`` / ``uninstall``: from a checkout to an enabled service in one idempotent step.

Run as root from the source tree (``sudo python3 -m edge install``).  Each step
looks at what is there and changes only what differs, so running it again
(after an update, or by mistake) is safe:

1. the device groups (gpio, spi, dialout, lp, audio) and the system user
   ``hall-edge`` in them;
2. the program as a release ``/opt/hall-edge/releases/VERSION`` with its own
   virtualenv (system site packages, so Raspberry Pi OS's lgpio/spidev are
   found), built from a signed bundle (``--bundle``, no network) or from the
   checkout, and the link ``/opt/hall-edge/current`` switched to it
   (edge/releases.py: the layout the ``update`` command uses too); the
   launcher ``/opt/hall-edge/bin/hall-edge`` and the docs in
   ``/opt/hall-edge/docs``;
3. the systemd unit (enabled, not started), the udev rules;
4. ``/etc/hall-edge/hall-edge.toml`` from the example if there is none
   (an existing configuration is never overwritten; the current example is
   always refreshed as ``hall-edge.example.toml`` next to it), and the state
   folder ``/var/lib/hall-edge``;
5. the boot settings merged into ``config.txt`` / ``cmdline.txt``, with a
   "reboot needed" message only when they changed.

``--root DIR`` installs into a folder instead (tests, building an SD-card
image): users and groups are written to ``DIR/etc/passwd`` and
``DIR/etc/group``, and nothing on the running system is touched (no
useradd, systemctl, udevadm or chown).  Every path written into the tree is
the one it has on the card (``/opt/hall-edge/...``), never this machine's.  ``uninstall`` removes the program,
unit and rules but keeps configuration and data unless ``--purge``.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge import __version__
from edge.progress import Progress
from edge.release import Manifest, ReleaseRefused, read_bundle
from edge.releases import PYTHON as RELEASE_PYTHON
from edge.releases import (
    ReleaseError,
    base_python,
    current_version,
    install_release,
    install_source,
    locked,
    prune,
    switch_to,
)

USER = "hall-edge"
DEVICE_GROUPS = ("gpio", "spi", "dialout", "lp", "audio")  # audio: the voice's aplay
PREFIX = "/opt/hall-edge"  # edge/releases.py: releases/VERSION/venv, current, previous
OLD_VENV = f"{PREFIX}/venv"  # before releases: removed once a release is current
LAUNCHER = f"{PREFIX}/bin/hall-edge"
RUNNING_PYTHON = f"{PREFIX}/current/venv/bin/python"  # what the unit runs, through the link
UNIT = "/etc/systemd/system/hall-edge.service"
UNIT_WANTS = "/etc/systemd/system/multi-user.target.wants/hall-edge.service"
UDEV_RULES = "/etc/udev/rules.d/99-hall-edge.rules"
CONFIG_DIR = "/etc/hall-edge"
CONFIG = f"{CONFIG_DIR}/hall-edge.toml"
EXAMPLE = f"{CONFIG_DIR}/hall-edge.example.toml"
STATE_DIR = "/var/lib/hall-edge"
BOOT_DIRS = ("/boot/firmware", "/boot")  # Bookworm and later, then older images
BLOCK_START = "# >>> hall-edge (managed by hall-edge install; edit outside this block)"
BLOCK_END = "# <<< hall-edge"
BOOT_SETTINGS = ("dtparam=spi=on", "enable_uart=1", "dtoverlay=disable-bt")
SERIAL_CONSOLES = ("serial0", "serial1", "ttyAMA0", "ttyAMA10", "ttyS0")
# Owner, group and mode: the service reads its configuration but may not write it (its trusted
# keys are in it); its remote changes go to the state folder it owns (edge/layers.py).
LAYOUT = {
    CONFIG_DIR: ("root", USER, 0o750),
    CONFIG: ("root", USER, 0o640),
    EXAMPLE: ("root", USER, 0o640),
    STATE_DIR: (USER, USER, 0o750),
}
SYSTEM_ID_RANGE = range(999, 100, -1)  # system accounts, allocated from the top as useradd does


class InstallError(RuntimeError):
    """The installation cannot go on; the message says what to do."""


@dataclass
class Report:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (status, step, detail)
    reboot_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, changed: bool, step: str, detail: str) -> None:
        self.rows.append(("changed" if changed else "ok", step, detail))

    def skip(self, step: str, detail: str) -> None:
        self.rows.append(("skipped", step, detail))

    def render(self, title: str) -> str:
        lines = [title]
        lines += [f"  {status:<8} {step:<8} {detail}" for status, step, detail in self.rows]
        lines += [f"  note: {note}" for note in self.notes]
        if self.reboot_reasons:
            lines += [
                "",
                "REBOOT NEEDED: boot settings changed (" + "; ".join(self.reboot_reasons) + ").",
                "  Run `sudo reboot` before `hall-edge selftest`: SPI and the UART appear only after it.",
            ]
        return "\n".join(lines)


class Target:
    """Where files go: the running system, or a folder given with --root that stands in for it."""

    def __init__(self, root: str | None) -> None:
        self.real = root is None
        self.root = Path(root).resolve() if root else Path("/")
        if not self.real and self.root == Path("/"):
            raise InstallError("--root / is the running system: leave out --root instead")

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a system command; only ever on the real system."""
        if not self.real:
            raise InstallError(f"refusing to run {argv[0]} under --root")
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise InstallError(f"{' '.join(argv)} failed ({result.returncode}): " + " | ".join(tail))
        return result

    def chown(self, path: Path, user: str, group: str) -> None:
        if self.real:
            shutil.chown(path, user, group)


# ---- files ------------------------------------------------------------------


def write_if_different(path: Path, content: bytes, mode: int | None) -> bool:
    """Write ``content`` atomically unless it is there already; True when the file changed.

    ``mode`` None leaves permissions to the file system (the FAT boot partition has none).
    """
    if path.exists() and path.read_bytes() == content:
        if mode is not None and (path.stat().st_mode & 0o7777) != mode:
            path.chmod(mode)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_bytes(content)
    if mode is not None:
        temporary.chmod(mode)
    os.replace(temporary, path)
    return True


def remove(path: Path) -> bool:
    if path.is_symlink() or path.is_file():
        path.unlink()
        return True
    if path.is_dir():
        shutil.rmtree(path)
        return True
    return False


# ---- accounts -----------------------------------------------------------------


class AccountFiles:
    """Users and groups as lines in ``ROOT/etc/passwd`` and ``ROOT/etc/group`` (the --root case)."""

    def __init__(self, target: Target) -> None:
        self.passwd = target.path("/etc/passwd")
        self.group = target.path("/etc/group")

    @staticmethod
    def _lines(path: Path) -> list[list[str]]:
        if not path.exists():
            return []
        return [line.split(":") for line in path.read_text().splitlines() if line.strip()]

    @staticmethod
    def _save(path: Path, rows: list[list[str]]) -> None:
        if not rows and not path.exists():
            return  # nothing to write into an image that has no such file
        write_if_different(path, ("\n".join(":".join(r) for r in rows) + "\n").encode(), 0o644)

    def _free_id(self) -> str:
        used = {row[2] for row in self._lines(self.passwd) + self._lines(self.group) if len(row) > 2}
        return str(next(i for i in SYSTEM_ID_RANGE if str(i) not in used))

    def ensure_group(self, name: str) -> bool:
        rows = self._lines(self.group)
        if any(row[0] == name for row in rows):
            return False
        self._save(self.group, [*rows, [name, "x", self._free_id(), ""]])
        return True

    def ensure_user(self, name: str, groups: tuple[str, ...]) -> bool:
        changed = self.ensure_group(name)
        if not any(row[0] == name for row in self._lines(self.passwd)):
            gid = next(row[2] for row in self._lines(self.group) if row[0] == name)
            entry = [name, "x", self._free_id(), gid, "hall-edge controller", STATE_DIR, "/usr/sbin/nologin"]
            self._save(self.passwd, [*self._lines(self.passwd), entry])
            changed = True
        rows = self._lines(self.group)
        for row in rows:
            members = [m for m in row[3].split(",") if m] if len(row) > 3 else []
            if row[0] in groups and name not in members:
                row[3:] = [",".join([*members, name])]
                changed = True
        self._save(self.group, rows)
        return changed

    def remove_user(self, name: str) -> bool:
        passwd = self._lines(self.passwd)
        groups = [row for row in self._lines(self.group) if row[0] != name]
        for row in groups:
            if len(row) > 3:
                row[3] = ",".join(m for m in row[3].split(",") if m and m != name)
        kept = [row for row in passwd if row[0] != name]
        self._save(self.passwd, kept)
        self._save(self.group, groups)
        return len(kept) != len(passwd)


class SystemAccounts:
    """Users and groups on the running system, through the shadow tools."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def ensure_group(self, name: str) -> bool:
        try:
            grp.getgrnam(name)
            return False
        except KeyError:
            self.target.run("groupadd", "--system", name)
            return True

    def ensure_user(self, name: str, groups: tuple[str, ...]) -> bool:
        changed = False
        try:
            pwd.getpwnam(name)
        except KeyError:
            self.target.run(
                "useradd", "--system", "--user-group", "--home-dir", STATE_DIR, "--no-create-home",
                "--shell", "/usr/sbin/nologin", "--comment", "hall-edge controller", name,
            )  # fmt: skip
            changed = True
        missing = [g for g in groups if name not in grp.getgrnam(g).gr_mem]
        if missing:
            self.target.run("usermod", "--append", "--groups", ",".join(missing), name)
            changed = True
        return changed

    def remove_user(self, name: str) -> bool:
        try:
            pwd.getpwnam(name)
        except KeyError:
            return False
        self.target.run("userdel", name)
        return True


def accounts(target: Target) -> AccountFiles | SystemAccounts:
    return SystemAccounts(target) if target.real else AccountFiles(target)


# ---- boot settings ------------------------------------------------------------


def boot_dir(target: Target) -> Path | None:
    """The Raspberry Pi boot partition (the folder holding config.txt), or None on other machines."""
    for candidate in BOOT_DIRS:
        folder = target.path(candidate)
        if (folder / "config.txt").is_file():
            return folder
    return None


def merge_config_txt(text: str) -> tuple[str, list[str]]:
    """config.txt with our block holding the settings the rest of the file lacks; (text, added)."""
    outside, inside = _split_block(text)
    active = {line.strip() for line in outside if line.strip() and not line.lstrip().startswith("#")}
    needed = [setting for setting in BOOT_SETTINGS if setting not in active]
    body = outside[:]
    while body and not body[-1].strip():
        body.pop()
    if needed:
        # [all]: the block sits at the end, after whatever [pi4]/[cm5] section the file ends in.
        body += ["", BLOCK_START, "[all]", *needed, BLOCK_END]
    new_text = "\n".join(body) + "\n"
    added = [s for s in needed if s not in inside]
    return new_text, added


def _split_block(text: str) -> tuple[list[str], list[str]]:
    outside: list[str] = []
    inside: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.strip() == BLOCK_START:
            in_block = True
        elif line.strip() == BLOCK_END:
            in_block = False
        elif in_block:
            inside.append(line.strip())
        else:
            outside.append(line)
    return outside, inside


def free_serial_console(cmdline: str) -> tuple[str, list[str]]:
    """cmdline.txt without kernel consoles on the UART; (new line, removed tokens)."""
    tokens = cmdline.split()
    serial = [t for t in tokens if t.startswith("console=") and t[8:].split(",")[0] in SERIAL_CONSOLES]
    kept = [t for t in tokens if t not in serial]
    return " ".join(kept) + "\n", serial


def apply_boot_settings(target: Target, report: Report) -> None:
    folder = boot_dir(target)
    if folder is None:
        report.skip("boot", "no Raspberry Pi boot partition (config.txt in /boot/firmware or /boot)")
        report.notes.append("boot settings not applied: on a Pi, see firmware_config/ and docs/installer.md")
        return
    config_txt = folder / "config.txt"
    text, added = merge_config_txt(config_txt.read_text())
    changed = write_if_different(config_txt, text.encode(), None)
    report.add(changed, "boot", f"{_shown(target, config_txt)}: " + ", ".join(BOOT_SETTINGS))
    if changed and added:
        report.reboot_reasons.append("config.txt: " + ", ".join(added))
    cmdline = folder / "cmdline.txt"
    if not cmdline.is_file():
        report.skip("boot", f"{_shown(target, cmdline)} not found: check the serial console by hand")
        return
    line, removed = free_serial_console(cmdline.read_text())
    if removed:
        backup = folder / "cmdline.txt.hall-edge-orig"
        if not backup.exists():
            shutil.copyfile(cmdline, backup)
        write_if_different(cmdline, line.encode(), None)
        report.reboot_reasons.append("cmdline.txt: removed " + " ".join(removed))
    report.add(bool(removed), "boot", f"{_shown(target, cmdline)}: no serial console on the reader's UART")
    if target.real:
        # Bluetooth is off (disable-bt): its UART service would only fail at each boot.
        target.run("systemctl", "disable", "hciuart.service", check=False)


def _shown(target: Target, path: Path) -> str:
    return "/" + str(path.relative_to(target.root)).lstrip("/")


# ---- the steps ----------------------------------------------------------------


@dataclass
class Options:
    root: str | None
    source: Path
    venv: bool = True
    purge: bool = False
    bundle: Path | None = None


def source_tree(given: str | None) -> Path:
    """The checkout (or unpacked release) holding pyproject.toml, systemd/ and firmware_config/."""
    folder = Path(given).resolve() if given else Path(__file__).resolve().parents[1]
    for needed in ("pyproject.toml", "systemd/hall-edge.service", "firmware_config/99-hall-edge.rules"):
        if not (folder / needed).is_file():
            raise InstallError(
                f"{folder} is not a hall-edge source tree ({needed} missing): use --source DIR"
            )
    return folder


def step_accounts(target: Target, report: Report) -> None:
    book = accounts(target)
    created = [g for g in DEVICE_GROUPS if book.ensure_group(g)]
    if created:
        report.notes.append("created groups " + ", ".join(created) + " (not a Raspberry Pi OS image?)")
    changed = book.ensure_user(USER, DEVICE_GROUPS)
    report.add(bool(created) or changed, "user", f"{USER} in groups " + ", ".join(DEVICE_GROUPS))


def step_program(target: Target, options: Options, report: Report) -> None:
    root = target.path(PREFIX)
    before = current_version(root)
    python = releases_python(target)
    if options.bundle is not None:
        manifest = _verified_bundle(target, options.bundle, report)
        install_release(root, options.bundle, manifest, python=python, logical_root=PREFIX)
        version = manifest.version
    else:
        version, _built = install_source(
            root, options.source, python=python, logical_root=PREFIX, venv=options.venv
        )
    with locked(root):
        switch_to(root, version)
        pruned = prune(root, keep=2)
    _hand_releases_to_service(target, root)
    how = "bundle" if options.bundle else "checkout" if options.venv else "checkout, --no-venv"
    report.add(before != version, "program", f"{PREFIX}/current -> releases/{version} ({how})")
    if pruned:
        report.notes.append("removed old releases " + ", ".join(pruned) + " (the last two are kept)")
    if remove(target.path(OLD_VENV)):
        report.notes.append(f"removed {OLD_VENV} (the layout before releases)")
    launcher = f'#!/bin/sh\n# the current release (hall-edge install)\nexec {RUNNING_PYTHON} -m edge "$@"\n'
    changed = write_if_different(target.path(LAUNCHER), launcher.encode(), 0o755)
    report.add(changed, "program", f"{LAUNCHER} (runs the current release)")
    changed = False
    docs = options.source / "docs"
    for doc in sorted(path for path in docs.rglob("*") if path.is_file()):  # pages link img/ and schemas/
        relative = doc.relative_to(docs).as_posix()
        changed |= write_if_different(target.path(f"{PREFIX}/docs/{relative}"), doc.read_bytes(), 0o644)
    report.add(changed, "docs", f"{PREFIX}/docs")


def _hand_releases_to_service(target: Target, root: Path) -> None:
    """The service builds, switches and prunes releases itself (the signed ``update`` command),
    so it owns the releases' root, the links and every release (docs/releases.md, "Limits":
    the trade-off of a service that may write its own code).  The configuration and its
    trusted keys stay root's."""
    if not target.real:
        return  # a card image: the account does not exist yet; `hall-edge install` on the Pi sets it
    uid, gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid
    releases = root / "releases"
    for path in [root, releases, root / "current", root / "previous", *releases.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            os.lchown(path, uid, gid)


def releases_python(target: Target) -> str:
    """The Python the release venvs are built on: the Pi's /usr/bin/python3 (under --root too:
    the tree must name the card's Python, not this machine's), else this one's base."""
    return RELEASE_PYTHON if target.real or Path(RELEASE_PYTHON).exists() else base_python()


def _verified_bundle(target: Target, bundle: Path, report: Report) -> Manifest:
    """The bundle's manifest, its signature checked against the release keys of the target's
    configuration; a first install (no key configured yet) checks the hashes only and says so."""
    from edge.config import ConfigError, load
    from edge.protocol import load_public_keys

    configured: dict[str, str] = {}
    if target.path(CONFIG).exists():
        # A broken file is named by the config step; without keys the signature is only reported.
        with contextlib.suppress(ConfigError):
            configured = dict(load(target.path(CONFIG)).releases.public_keys)
    keys, _problems = load_public_keys(configured)
    try:
        manifest = read_bundle(bundle, keys, unsigned_ok=not keys)
    except ReleaseRefused as refused:
        raise InstallError(f"bundle {bundle} refused: {refused.reason}: {refused.message}") from None
    if not manifest.signed:
        report.notes.append(
            f"bundle signed by {manifest.kid!r}, not checked: no releases.public_keys configured yet"
            " (file hashes checked); set them before the first `update`"
        )
    return manifest


def step_unit(target: Target, source: Path, report: Report) -> None:
    unit = (source / "systemd" / "hall-edge.service").read_bytes()
    changed = write_if_different(target.path(UNIT), unit, 0o644)
    if target.real:
        # Best effort: in a chroot or container without a running systemd only `enable` works.
        target.run("systemctl", "daemon-reload", check=False)
        enabled = target.run("systemctl", "is-enabled", "hall-edge.service", check=False).stdout.strip()
        if enabled != "enabled":
            target.run("systemctl", "enable", "hall-edge.service")
            changed = True
    else:
        wants = target.path(UNIT_WANTS)
        if not wants.is_symlink():
            wants.parent.mkdir(parents=True, exist_ok=True)
            wants.symlink_to(UNIT)
            changed = True
    report.add(changed, "unit", f"{UNIT} (enabled; starts at boot)")


def step_udev(target: Target, source: Path, report: Report) -> None:
    rules = (source / "firmware_config" / "99-hall-edge.rules").read_bytes()
    changed = write_if_different(target.path(UDEV_RULES), rules, 0o644)
    if changed and target.real:
        reload = target.run("udevadm", "control", "--reload", check=False)
        if reload.returncode != 0:
            report.notes.append("udev is not running here: the rules apply from the next boot")
        else:
            target.run("udevadm", "trigger", check=False)
    report.add(changed, "udev", f"{UDEV_RULES} (/dev/hall-printer, /dev/hall-rfid)")


def step_config(target: Target, report: Report) -> None:
    from edge.example import render  # the example is generated from the schema, never stale

    target.path(CONFIG_DIR).mkdir(parents=True, exist_ok=True)
    lay_out(target, CONFIG_DIR)
    write_if_different(target.path(EXAMPLE), render().encode(), 0o640)
    lay_out(target, EXAMPLE)
    config = target.path(CONFIG)
    if config.exists():
        report.add(False, "config", f"{CONFIG} kept (an existing configuration is never overwritten)")
        _check_existing(config, report)
        return
    write_if_different(config, render().encode(), 0o640)
    lay_out(target, CONFIG)
    report.add(True, "config", f"{CONFIG} new from the example: set site, device, mqtt.* before starting")
    _check_existing(config, report)


def lay_out(target: Target, path: str) -> None:
    """Give ``path`` the owner, group and mode of ``LAYOUT``."""
    owner, group, mode = LAYOUT[path]
    target.path(path).chmod(mode)
    target.chown(target.path(path), owner, group)


def _check_existing(config: Path, report: Report) -> None:
    """A broken configuration is named; a good one gets its placeholders (to set before the
    first start: only a warning here, the file is new) and its udev and boot hints."""
    from edge.config import ConfigError, load, placeholder_problems
    from edge.wiring import install_hints

    try:
        settings = load(config)
    except ConfigError as exc:
        report.notes.append(f"{CONFIG} has {len(exc.errors)} problem(s): run `hall-edge check-config`")
        return
    report.notes += [f"set before starting: {problem}" for problem in placeholder_problems(settings)]
    report.notes += [f"wiring: {hint}" for hint in install_hints(settings)]


def step_state(target: Target, report: Report) -> None:
    folder = target.path(STATE_DIR)
    changed = not folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lay_out(target, STATE_DIR)
    report.add(changed, "state", f"{STATE_DIR} (database, remote configuration; kept by uninstall)")


def install(options: Options) -> Report:
    target = Target(options.root)
    _require_root(target, "installing")
    report = Report()
    steps: list[tuple[str, Callable[[], None]]] = [
        ("user and groups", lambda: step_accounts(target, report)),
        (
            "program (a release with its virtualenv: the slow step)" if options.venv else "program (source)",
            lambda: step_program(target, options, report),
        ),
        ("systemd unit", lambda: step_unit(target, options.source, report)),
        ("udev rules", lambda: step_udev(target, options.source, report)),
        ("configuration", lambda: step_config(target, report)),
        ("state folder", lambda: step_state(target, report)),
        ("boot settings (SPI, UART, serial console)", lambda: apply_boot_settings(target, report)),
    ]
    with Progress("install", len(steps)) as progress:
        for what, run in steps:
            progress.step(what)
            run()
    return report


def uninstall(options: Options) -> Report:
    target = Target(options.root)
    _require_root(target, "uninstalling")
    report = Report()
    if target.real:
        target.run("systemctl", "disable", "--now", "hall-edge.service", check=False)
    report.add(remove(target.path(UNIT_WANTS)) | remove(target.path(UNIT)), "unit", f"{UNIT} removed")
    if target.real:
        target.run("systemctl", "daemon-reload", check=False)
    report.add(remove(target.path(UDEV_RULES)), "udev", f"{UDEV_RULES} removed")
    report.add(remove(target.path(PREFIX)), "program", f"{PREFIX} removed")
    if options.purge:
        report.add(remove(target.path(CONFIG_DIR)), "config", f"{CONFIG_DIR} removed (--purge)")
        report.add(remove(target.path(STATE_DIR)), "state", f"{STATE_DIR} removed (--purge)")
        report.add(accounts(target).remove_user(USER), "user", f"{USER} removed (--purge)")
    else:
        report.skip("config", f"{CONFIG_DIR} kept (--purge removes it)")
        report.skip("state", f"{STATE_DIR} kept: the database and unsent events (--purge removes it)")
    report.notes.append("boot settings (SPI, UART, serial console) left as they are")
    return report


def _require_root(target: Target, doing: str) -> None:
    if target.real and os.geteuid() != 0:
        raise InstallError(f"{doing} changes the system: run it as root (sudo), or use --root DIR")


# ---- command line -------------------------------------------------------------


def cmd_install(args: argparse.Namespace) -> int:
    try:
        bundle = Path(args.bundle).resolve() if args.bundle else None
        options = Options(args.root, source_tree(args.source), venv=not args.no_venv, bundle=bundle)
        if bundle is not None and args.no_venv:
            raise InstallError("--bundle and --no-venv exclude each other: a bundle always gets its venv")
        report = install(options)
    except (InstallError, ReleaseError, OSError) as exc:
        print(f"hall-edge install: {exc}", file=sys.stderr)
        return 1
    where = f" into {args.root}" if args.root else ""
    print(report.render(f"hall-edge {__version__} install{where}:"))
    print(
        f"\nNext: edit {CONFIG}; then `{LAUNCHER} check-config`,"
        f" `sudo -u {USER} {LAUNCHER} selftest`, `sudo systemctl start hall-edge`,"
        " `journalctl -u hall-edge -f` (docs/installer.md)."
    )
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    try:
        report = uninstall(Options(args.root, Path("."), purge=args.purge))
    except (InstallError, OSError) as exc:
        print(f"hall-edge uninstall: {exc}", file=sys.stderr)
        return 1
    where = f" from {args.root}" if args.root else ""
    print(report.render(f"hall-edge uninstall{where}:"))
    return 0
