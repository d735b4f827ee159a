"""The installer into a folder (--root): idempotent, never overwrites a config, uninstall keeps data.

And the systemd unit itself: `systemd-analyze verify` clean, exposure <= 3.0,
and a start limit that stops a broken configuration from looping.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import make_config, wait_for

from edge import __version__
from edge.cli import main
from edge.daemon import Daemon
from edge.example import render
from edge.install import BLOCK_START, BOOT_SETTINGS, free_serial_console, merge_config_txt
from edge.layers import remote_path

REPO = Path(__file__).resolve().parents[1]
UNIT_SOURCE = REPO / "systemd" / "hall-edge.service"
CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=0fe4bb1a-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
)
CONFIG_TXT = """\
# For more options and information see http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
arm_64bit=1

[cm4]
otg_mode=1

[all]
"""
ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture
def pi_root(tmp_path) -> Path:
    """A folder that looks like a fresh Raspberry Pi OS (Bookworm) image."""
    root = tmp_path / "pi"
    boot = root / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(CONFIG_TXT)
    (boot / "cmdline.txt").write_text(CMDLINE)
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n")
    (etc / "group").write_text(
        "root:x:0:\ndialout:x:20:pi\nlp:x:7:\ngpio:x:997:pi\nspi:x:999:pi\npi:x:1000:\n"
    )
    return root


def install(root: Path, capsys) -> str:
    code = main(["install", "--root", str(root), "--no-venv"])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def snapshot(root: Path) -> dict[str, object]:
    """Every file's bytes (or link target) and mode under root."""
    result: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            result[key] = ("link", str(path.readlink()))
        elif path.is_file():
            result[key] = (path.read_bytes(), path.stat().st_mode)
        else:
            result[key] = ("dir", path.stat().st_mode)
    return result


REAL_PATHS = ("/etc/hall-edge", "/etc/systemd/system/hall-edge.service", "/opt/hall-edge",
              "/etc/udev/rules.d/99-hall-edge.rules", "/var/lib/hall-edge")  # fmt: skip


def real_system() -> tuple[object, ...]:
    """What --root must never touch: our paths and the account files of the machine running the test."""
    stats = tuple(os.path.lexists(p) for p in REAL_PATHS)
    return (*stats, Path("/etc/passwd").read_bytes(), Path("/etc/group").read_bytes())


def test_install_twice_changes_nothing_the_second_time_and_asks_for_one_reboot(pi_root, capsys):
    before = real_system()
    first = install(pi_root, capsys)
    assert "REBOOT NEEDED" in first
    assert "console=serial0,115200" in first
    after_first = snapshot(pi_root)

    second = install(pi_root, capsys)
    assert "REBOOT NEEDED" not in second
    rows = [line.split()[0] for line in second.splitlines() if line.startswith("  ") and "note:" not in line]
    assert rows and set(rows) == {"ok"}, second
    assert snapshot(pi_root) == after_first
    assert main(["uninstall", "--root", str(pi_root), "--purge"]) == 0
    assert real_system() == before


def test_install_lays_out_user_unit_rules_config_state_and_boot(pi_root, capsys):
    install(pi_root, capsys)
    passwd = (pi_root / "etc/passwd").read_text()
    assert re.search(r"^hall-edge:x:\d+:\d+:.*:/var/lib/hall-edge:/usr/sbin/nologin$", passwd, re.M)
    groups = {line.split(":")[0]: line.split(":")[3] for line in (pi_root / "etc/group").read_text().split()}
    for name in ("gpio", "spi", "dialout", "lp", "audio"):
        assert "hall-edge" in groups[name].split(",")
    assert groups["gpio"] == "pi,hall-edge"  # existing members kept
    assert (pi_root / "etc/systemd/system/hall-edge.service").read_bytes() == UNIT_SOURCE.read_bytes()
    wants = pi_root / "etc/systemd/system/multi-user.target.wants/hall-edge.service"
    assert str(wants.readlink()) == "/etc/systemd/system/hall-edge.service"
    assert (pi_root / "etc/udev/rules.d/99-hall-edge.rules").is_file()
    config = pi_root / "etc/hall-edge/hall-edge.toml"
    assert config.read_text() == render()
    assert config.stat().st_mode & 0o007 == 0  # nothing for others
    assert (pi_root / "var/lib/hall-edge").is_dir()
    boot = pi_root / "boot/firmware"
    text = (boot / "config.txt").read_text()
    assert text.startswith(CONFIG_TXT.rstrip("\n"))
    assert text.rstrip().splitlines()[-5:-1] == ["[all]", *BOOT_SETTINGS]
    assert (boot / "cmdline.txt").read_text() == CMDLINE.replace("console=serial0,115200 ", "")
    assert (boot / "cmdline.txt.hall-edge-orig").read_text() == CMDLINE


def test_the_installed_docs_have_the_pictures_and_schemas_their_pages_link(pi_root, capsys):
    install(pi_root, capsys)
    docs = pi_root / "opt/hall-edge/docs"
    for page in docs.glob("*.md"):
        for target in re.findall(r"\]\(((?:img|schemas)/[^)#]+)\)", page.read_text()):
            assert (docs / target).is_file(), f"{page.name} links {target}, not installed"
    assert (docs / "schemas" / "event.json").is_file()
    assert (docs / "img" / "screen-job.png").is_file()


def test_an_existing_config_is_never_overwritten(pi_root, capsys):
    config = pi_root / "etc/hall-edge/hall-edge.toml"
    config.parent.mkdir(parents=True)
    config.write_text('site = "dongzhi"\ndevice = "hall-07"\n')
    out = install(pi_root, capsys)
    assert config.read_text() == 'site = "dongzhi"\ndevice = "hall-07"\n'
    assert "never overwritten" in out
    assert (pi_root / "etc/hall-edge/hall-edge.example.toml").read_text() == render()


def test_a_broken_existing_config_is_reported_not_replaced(pi_root, capsys):
    config = pi_root / "etc/hall-edge/hall-edge.toml"
    config.parent.mkdir(parents=True)
    config.write_text("site = 'no spaces allowed'\n[mqtt]\nport = 0\n")
    out = install(pi_root, capsys)
    assert "2 problem(s)" in out
    assert config.read_text() == "site = 'no spaces allowed'\n[mqtt]\nport = 0\n"


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="the card's Python is /usr/bin/python3")
def test_the_installed_release_runs_and_its_fresh_config_fails_only_on_the_placeholders(pi_root, capsys):
    install(pi_root, capsys)
    python = pi_root / "opt/hall-edge/current/venv/bin/python"
    assert os.readlink(python) == "/usr/bin/python3"  # the card's Python, not this machine's
    launcher = (pi_root / "opt/hall-edge/bin/hall-edge").read_text()
    assert 'exec /opt/hall-edge/current/venv/bin/python -m edge "$@"' in launcher

    def run(*argv: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "-m", "edge", *argv], check=False, capture_output=True, text=True, timeout=30, cwd="/"
        )

    assert run("version").stdout.strip() == __version__.split("+")[0]
    config = pi_root / "etc/hall-edge/hall-edge.toml"
    check = run("check-config", config)
    assert check.returncode == 1
    assert "3 problem(s)" in check.stderr
    assert "'qinshui/hall-01' is the example's placeholder" in check.stderr
    assert "mqtt.host: 'localhost' is the example's placeholder" in check.stderr
    assert "commands.public_keys: none is set" in check.stderr
    warned = run("check-config", "--placeholders", "warn", config)
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr.count("warning:") == 3


def test_a_machine_without_a_boot_partition_installs_without_boot_settings(tmp_path, capsys):
    out = install(tmp_path / "plain", capsys)
    assert "REBOOT NEEDED" not in out
    assert "no Raspberry Pi boot partition" in out
    assert "created groups gpio, spi, dialout, lp, audio" in out
    assert (tmp_path / "plain/etc/hall-edge/hall-edge.toml").is_file()


def test_boot_settings_made_by_hand_need_no_block_and_no_reboot(pi_root, capsys):
    boot = pi_root / "boot/firmware"
    (boot / "config.txt").write_text(CONFIG_TXT + "dtparam=spi=on\nenable_uart=1\ndtoverlay=disable-bt\n")
    (boot / "cmdline.txt").write_text("console=tty1 root=PARTUUID=0fe4bb1a-02 rootwait\n")
    out = install(pi_root, capsys)
    assert "REBOOT NEEDED" not in out
    assert BLOCK_START not in (boot / "config.txt").read_text()
    assert not (boot / "cmdline.txt.hall-edge-orig").exists()


def test_config_txt_merge_adds_only_what_is_missing_and_keeps_the_rest():
    text, added = merge_config_txt("#dtparam=spi=on\nenable_uart=1\n[pi5]\nfoo=1\n")
    assert added == ["dtparam=spi=on", "dtoverlay=disable-bt"]
    assert text.startswith("#dtparam=spi=on\nenable_uart=1\n[pi5]\nfoo=1\n")
    assert text.endswith(f"{BLOCK_START}\n[all]\ndtparam=spi=on\ndtoverlay=disable-bt\n# <<< hall-edge\n")
    again, added_again = merge_config_txt(text)
    assert (again, added_again) == (text, [])


def test_only_serial_consoles_leave_cmdline():
    line, removed = free_serial_console("console=ttyAMA0,115200 console=tty1 console=ttyS0,9600 quiet\n")
    assert line == "console=tty1 quiet\n"
    assert removed == ["console=ttyAMA0,115200", "console=ttyS0,9600"]


def test_uninstall_keeps_config_and_data_and_purge_removes_them(pi_root, capsys):
    install(pi_root, capsys)
    database = pi_root / "var/lib/hall-edge/hall-edge.db"
    database.write_bytes(b"events not yet sent")
    assert main(["uninstall", "--root", str(pi_root)]) == 0
    capsys.readouterr()
    assert not (pi_root / "etc/systemd/system/hall-edge.service").exists()
    assert not (pi_root / "etc/systemd/system/multi-user.target.wants/hall-edge.service").is_symlink()
    assert not (pi_root / "etc/udev/rules.d/99-hall-edge.rules").exists()
    assert not (pi_root / "opt/hall-edge").exists()
    assert database.read_bytes() == b"events not yet sent"
    assert (pi_root / "etc/hall-edge/hall-edge.toml").is_file()
    assert "hall-edge:" in (pi_root / "etc/passwd").read_text()

    assert main(["uninstall", "--root", str(pi_root)]) == 0  # twice is fine
    assert main(["uninstall", "--root", str(pi_root), "--purge"]) == 0
    assert not database.exists()
    assert not (pi_root / "etc/hall-edge").exists()
    assert "hall-edge" not in (pi_root / "etc/passwd").read_text()
    assert "hall-edge" not in (pi_root / "etc/group").read_text()
    assert "gpio:x:997:pi" in (pi_root / "etc/group").read_text()


def test_a_folder_that_is_not_a_source_tree_is_refused(tmp_path, capsys):
    assert main(["install", "--root", str(tmp_path / "r"), "--no-venv", "--source", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is not a hall-edge source tree (pyproject.toml missing): use --source DIR" in err
    assert not (tmp_path / "r").exists()


def test_uninstall_leaves_the_boot_settings(pi_root, capsys):
    install(pi_root, capsys)
    boot = snapshot(pi_root / "boot")
    assert main(["uninstall", "--root", str(pi_root), "--purge"]) == 0
    assert "boot settings (SPI, UART, serial console) left as they are" in capsys.readouterr().out
    assert snapshot(pi_root / "boot") == boot


def test_root_slash_is_refused(capsys):
    assert main(["install", "--root", "/", "--no-venv"]) == 1
    assert "leave out --root" in capsys.readouterr().err


def test_firmware_fragment_and_installer_agree_on_the_boot_settings():
    fragment = (REPO / "firmware_config/config.txt.fragment").read_text()
    active = [line for line in fragment.splitlines() if line and not line.startswith(("#", "["))]
    assert tuple(active) == BOOT_SETTINGS


def test_udev_rules_name_both_devices_with_group_access():
    rules = (REPO / "firmware_config/99-hall-edge.rules").read_text()
    lines = [line for line in rules.splitlines() if line.strip() and not line.startswith("#")]
    assert any('SYMLINK+="hall-printer"' in line for line in lines)
    assert any('SYMLINK+="hall-rfid"' in line for line in lines)
    for line in lines:
        assert "GROUP=" in line and 'MODE="0660"' in line, line
        for pair in line.split(", "):
            assert re.fullmatch(r'[A-Z_]+(\{[a-zA-Z_]+\})?(==|!=|\+=|=)"[^"]*"', pair), pair


# ---- the unit -----------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT_SOURCE.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.fixture
def verifiable_unit(pi_root, capsys) -> Path:
    """The installed unit, its ExecStart pointing at the launcher inside the folder (verify checks it)."""
    install(pi_root, capsys)
    python = pi_root / "opt/hall-edge/current/venv/bin/python"
    text = UNIT_SOURCE.read_text().replace("/opt/hall-edge/current/venv/bin/python", str(python))
    unit = pi_root / "hall-edge.service"
    unit.write_text(text)
    return unit


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed on this machine")
def test_unit_passes_systemd_analyze_verify(verifiable_unit):
    result = subprocess.run(
        [ANALYZE, "verify", str(verifiable_unit)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed on this machine")
def test_unit_exposure_is_at_most_3(verifiable_unit):
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(verifiable_unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for hall-edge\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout[-500:] + result.stderr
    assert float(found.group(1)) <= 3.0


def test_unit_is_notify_with_watchdog_and_hardening():
    unit = unit_settings()
    assert unit["Type"] == ["notify"]
    assert float(unit["WatchdogSec"][0]) > 0
    assert unit["Restart"] == ["always"]
    assert unit["User"] == ["hall-edge"]
    assert unit["SupplementaryGroups"] == ["gpio spi dialout lp audio"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert unit["SystemCallFilter"][0] == "@system-service"
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges"):
        assert unit[key][0] in ("strict", "yes"), key
    # Nothing under /etc is writable (the trusted keys are there): the database and the remote
    # configuration file (config.set, keys.add) are in the state folder.
    # ... but the releases' root is: the updater builds a release and switches current there.
    assert unit["ReadWritePaths"] == ["/opt/hall-edge"]
    assert unit["StateDirectory"] == ["hall-edge"]
    assert remote_path({}) == Path("/var/lib") / unit["StateDirectory"][0] / "hall-edge.remote.toml"
    # lgpio's notification FIFO goes to the working directory: it must be writable.
    assert unit["WorkingDirectory"] == ["/run/hall-edge"] == [f"/run/{unit['RuntimeDirectory'][0]}"]


def test_the_commands_guard_knows_the_units_start_limit():
    from edge.commands.generic import START_LIMIT_BURST, START_LIMIT_INTERVAL_S

    unit = unit_settings()
    assert int(unit["StartLimitBurst"][0]) == START_LIMIT_BURST
    assert float(unit["StartLimitIntervalSec"][0]) == START_LIMIT_INTERVAL_S


def test_a_broken_config_stops_in_exec_start_pre_and_the_start_limit_ends_the_retries(tmp_path):
    unit = unit_settings()
    assert unit["ExecStartPre"][-1].endswith("check-config --config /etc/hall-edge/hall-edge.toml")
    burst = int(unit["StartLimitBurst"][0])
    restart_s = float(unit["RestartSec"][0])
    interval_s = float(unit["StartLimitIntervalSec"][0])
    # Every try of a broken config fails within a second, so `burst` tries fit into the
    # interval and systemd gives up (start-limit-hit) instead of looping forever.
    assert burst * (restart_s + 1) < interval_s
    assert restart_s >= 2  # not a hot loop even before the limit
    broken = tmp_path / "hall-edge.toml"
    broken.write_text("[mqtt]\nport = 99999\n")
    check = subprocess.run(
        [sys.executable, "-m", "edge", "check-config", "--config", str(broken)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert check.returncode == 1
    assert "mqtt.port" in check.stderr


# ---- the installer's guide --------------------------------------------------------

BCM_TO_PHYSICAL = {
    2: 3, 3: 5, 4: 7, 14: 8, 15: 10, 17: 11, 18: 12, 27: 13, 22: 15, 23: 16, 24: 18, 10: 19,
    9: 21, 25: 22, 11: 23, 8: 24, 7: 26, 5: 29, 6: 31, 12: 32, 13: 33, 19: 35, 16: 36,
    26: 37, 20: 38, 21: 40,
}  # fmt: skip


def test_the_wiring_table_matches_the_example_configuration():
    from edge.config import SCHEMA

    rows = re.findall(
        r"^\| GPIO (\d+) \| (\d+) \| [^|]+ \| `([^`]+)` \|$", (REPO / "docs/installer.md").read_text(), re.M
    )
    assert len(rows) >= 14
    for bcm, physical, key in rows:
        assert BCM_TO_PHYSICAL[int(bcm)] == int(physical), (bcm, physical)
        found = re.fullmatch(r"(\w+)\.(\w+)\[(\d+)\]\.(\w+)", key)
        if found:  # a pin from the configuration: the default must be this GPIO
            table, lists, index, field = found.groups()
            assert SCHEMA[table][lists].default[int(index)][field] == int(bcm), key
    documented = {key for _, _, key in rows}
    for index, category in enumerate(SCHEMA["queue"]["categories"].default):
        assert f"queue.categories[{index}].pin" in documented, category
    for index, _ in enumerate(SCHEMA["locker"]["compartments"].default):
        assert f"locker.compartments[{index}].lock_pin" in documented
        assert f"locker.compartments[{index}].door_pin" in documented


def test_the_watchdog_the_unit_relies_on_stops_when_the_core_hangs(tmp_path, monkeypatch):
    """WatchdogSec= restarts a hung core only if WATCHDOG=1 stops: the daemon pings only while it turns."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s; stale after 1.5 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    pings: list[float] = []
    hung_at: list[float] = []
    release = threading.Event()

    def listen() -> None:
        while not release.is_set():
            try:
                if listener.recv(256).startswith(b"WATCHDOG=1"):
                    pings.append(time.monotonic())
            except TimeoutError:
                continue

    def hang_then_stop(daemon: Daemon) -> None:
        wait_for(lambda: len(pings) >= 2, 10, "pings from a healthy core")
        hung_at.append(time.monotonic())
        daemon.core.call_soon(lambda: release.wait(10))  # a handler that never returns
        # Hung past the stale limit (1.5 s) plus two ping intervals: pings would show by now.
        wait_for(lambda: time.monotonic() - daemon.core.heartbeat > 2.6, 10, "the core hung for 2.6 s")
        daemon.stop_requested.set()
        release.set()

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    daemon = Daemon(make_config(tmp_path))
    daemon.start()
    threads = [threading.Thread(target=listen), threading.Thread(target=hang_then_stop, args=(daemon,))]
    try:
        for thread in threads:
            thread.start()
        daemon.run_until_signalled()  # must run on the main thread: it installs signal handlers
    finally:
        release.set()
        daemon.stop()
        for thread in threads:
            thread.join(5)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        listener.close()
    after_hang = [t - hung_at[0] for t in pings if t > hung_at[0]]
    assert all(delay < 2.1 for delay in after_hang), after_hang  # 1.5 s stale limit + one interval


MDWE_EXEC = """\
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, REFUSE_EXEC_GAIN
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""

# ProtectSystem=strict, ProtectHome=, StateDirectory=, RuntimeDirectory= + WorkingDirectory= as a
# private mount namespace: the whole file system read-only but for the state and working folders.
SANDBOX = """\
mount -o bind,remount,ro / || exit 78
touch /etc/.hall-edge-ro-probe 2>/dev/null && exit 79
for folder in "$STATE" "$RUN"; do
    mount --bind "$folder" "$folder" && mount -o bind,remount,rw "$folder" || exit 78
done
cd "$RUN" && exec "$PY" -c "$MDWE" "$PY" -m edge run --config "$CONFIG"
"""
CANNOT_SANDBOX = {77: "this kernel has no PR_SET_MDWE (Linux < 6.3)", 78: "no private mount namespace here"}


def load_idle_soak():
    if str(REPO / "bench") not in sys.path:
        sys.path.append(str(REPO / "bench"))  # its rig module, as when it runs as a script
    spec = importlib.util.spec_from_file_location("idle_soak", REPO / "bench" / "idle_soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["idle_soak"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is not installed")
def test_the_simulated_hall_runs_in_the_units_file_and_memory_sandbox(tmp_path):
    """The unit's ProtectSystem=strict (+ its writable folders) and MemoryDenyWriteExecute=yes,
    emulated with a read-only mount namespace and the kernel's PR_SET_MDWE: the hall still works."""
    soak = load_idle_soak()
    broker = soak.Mosquitto(tmp_path / "broker", persistence=False).start()
    hall = soak.SimulatedHall(tmp_path)
    notify = soak.Notifications(tmp_path / "notify.sock")
    state, run = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    run.mkdir()
    config = tmp_path / "hall-edge.toml"
    config.write_text(hall.config(broker.port, state))
    env = {
        **os.environ, **hall.env(), "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "HOME": "/nonexistent",
        "STATE": str(state), "RUN": str(run), "PY": sys.executable, "MDWE": MDWE_EXEC, "CONFIG": str(config),
        "PYTHONPATH": str(REPO),
    }  # fmt: skip
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", SANDBOX]
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(command, stderr=log, env=env)
    try:
        wait_for(lambda: notify.ready.is_set() or daemon.poll() is not None, 30, "READY=1 or an exit")
        if daemon.poll() in CANNOT_SANDBOX:
            pytest.skip(CANNOT_SANDBOX[daemon.poll()])
        assert notify.ready.is_set(), (daemon.poll(), (tmp_path / "daemon.log").read_text()[-2000:])
        hall.board.click(5)  # key A: render and print a ticket
        wait_for(lambda: hall.printer.tickets, 10, "a ticket printed in the sandbox")
        assert daemon.poll() is None
    finally:
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:  # the signal-handler deadlock noted in the issue 9 report
            daemon.kill()
            daemon.wait()
        notify.close()
        hall.stop()
        broker.stop()
    log_text = (tmp_path / "daemon.log").read_text()
    assert "features=link,health,commands,buzzer,voice,tickets,display,locker,console" in log_text
    assert "level=error" not in log_text and "Traceback" not in log_text, log_text[-2000:]
    assert (state / "hall-edge.db").exists()
