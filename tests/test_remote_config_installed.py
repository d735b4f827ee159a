"""Remote configuration on the layout `hall-edge install` creates, the daemon an unprivileged user.

The installer's file is root's (mode 0640, group of the service) in a folder the service cannot
write; the service owns only its state folder.  config.set and keys.add must work there (issue 18
P2: they answered `unavailable: not writable by the daemon`).  Needs root to hand the files to
another user and to start the daemon as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tomlkit
from command_rig import CommandHall
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import wait_for

from edge.admin import public_key_b64
from edge.cli import main
from edge.install import CONFIG, LAYOUT, STATE_DIR, USER
from edge.layers import REMOTE_FILE

REPO = Path(__file__).resolve().parents[1]
SERVICE = "nobody"  # stands in for the hall-edge account: no rights beyond what the layout gives

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: the files go to another user, the daemon runs as that user"
)


def reachable_by_others(path: Path) -> bool:
    """Every folder on the way searchable and the file executable by any user."""
    real = path.resolve()
    return all(os.stat(folder).st_mode & 0o001 for folder in real.parents) and bool(
        os.stat(real).st_mode & 0o001
    )


def interpreter() -> tuple[str, str]:
    """A Python of this version the service account can run, and the PYTHONPATH it needs.

    This one may live where only root can reach (pyenv in /root): then the system's Python of
    the same version, with this environment's packages.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    folders = [REPO.resolve(), *REPO.resolve().parents]
    # e.g. a checkout in a 0700 mktemp folder
    if not all(os.stat(folder).st_mode & 0o001 for folder in folders):
        pytest.skip(f"the source tree {REPO} is not readable by the account {SERVICE}")
    for candidate in (Path(sys.executable), Path("/usr/bin") / version, Path("/usr/local/bin") / version):
        if candidate.exists() and reachable_by_others(candidate):
            return str(candidate), os.pathsep.join([str(REPO), *site.getsitepackages()])
    pytest.skip(f"no {version} that the account {SERVICE} can run")


class Installed:
    """An installed controller under a folder that the unprivileged account can reach."""

    def __init__(self, hall: CommandHall, root: Path) -> None:
        self.hall, self.root = hall, root
        self.account = pwd.getpwnam(SERVICE)
        self.config = root / CONFIG.lstrip("/")
        self.state = root / STATE_DIR.lstrip("/")
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "daemon.log"

    def install(self) -> None:
        assert main(["install", "--root", str(self.root), "--no-venv"]) == 0
        doc = self.hall.document()
        doc["storage"]["dir"] = str(self.state)
        self.config.write_text("# installed by Wang, 2026-11-30: do not edit remotely\n" + tomlkit.dumps(doc))
        ids = {"root": 0, USER: self.account.pw_uid}
        gids = {"root": 0, USER: self.account.pw_gid}
        for path, (owner, group, mode) in LAYOUT.items():
            target = self.root / path.lstrip("/")
            target.chmod(mode)
            os.chown(target, ids[owner], gids[group])

    def run(self, *argv: str) -> subprocess.Popen[bytes]:
        python, path = interpreter()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": path,
            "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent",
        }  # fmt: skip
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [python, "-m", "edge", *argv],
                user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[],
                env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def start(self) -> None:
        before = len(self.online_births())
        self.process = self.run("run", "--config", str(self.config))
        wait_for(lambda: len(self.online_births()) > before or self.process.poll() is not None, 30, "online")
        assert self.process.poll() is None, self.log.read_text()[-3000:]

    def online_births(self) -> list[dict]:
        return [b for b in self.hall.watcher.bodies("/state") if b.get("online") is True]

    def wait_exit(self) -> None:
        assert self.process is not None
        wait_for(lambda: self.process.poll() is not None, 15, "the daemon to exit by itself")
        assert self.process.returncode == 0, self.log.read_text()[-3000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def command(self, name: str, args: dict, key: Ed25519PrivateKey | None = None, kid: str = "") -> dict:
        body = self.hall.body(name, args)
        self.hall.publish(self.hall.signed(body, key=key, kid=kid) if kid else self.hall.signed(body))
        return self.hall.watcher.result(body["id"], timeout=15)


@pytest.fixture
def installed(make_hall, broker):
    root = Path(tempfile.mkdtemp(prefix="hall-edge-installed-"))
    root.chmod(0o755)  # tmp_path is root's alone; the service account must reach its files
    hall = make_hall(None, rig=CommandHall, port=broker.port)
    controller = Installed(hall, root)
    try:
        controller.install()
        yield controller
    finally:
        controller.stop()
        hall.close()
        shutil.rmtree(root)


def test_config_set_and_key_rotation_work_on_the_installed_layout_as_an_unprivileged_user(installed):
    installers_file = installed.config.read_bytes()
    installed.start()
    result = installed.command("config.set", {"key": "display.brightness", "value": 90})
    assert result["ok"] is True, result
    assert result["result"]["restarting"] is True
    installed.wait_exit()
    remote = installed.state / REMOTE_FILE
    assert remote.stat().st_uid == installed.account.pw_uid
    assert installed.config.read_bytes() == installers_file  # the installer's file, comments and all

    installed.start()  # as systemd would: on the installer's file with the remote file over it
    confirmed = wait_for(lambda: installed.hall.watcher.events("audit.config_changed"), 15, "confirmed")
    assert confirmed[0]["data"]["rolled_back"] is False
    shown = installed.command("config.get", {"key": "display.brightness"})["result"]
    assert shown == {"key": "display.brightness", "value": 90, "source": str(remote)}

    new_key = Ed25519PrivateKey.generate()
    added = installed.command("keys.add", {"kid": "it-next", "public_key": public_key_b64(new_key)})
    assert added["ok"] is True, added
    removed = installed.command("keys.remove", {"kid": installed.hall.key_path.stem}, new_key, "it-next")
    assert removed["result"]["keys"] == {"it-next": "confirmed"}
    assert installed.config.read_bytes() == installers_file

    check = installed.run("check-config", "--config", str(installed.config))
    assert check.wait(30) == 0, installed.log.read_text()[-2000:]
    assert f"ok, with remote changes from {remote}: commands.public_keys, display.brightness" in (
        installed.log.read_text()
    )
