"""The update command end to end: a release root in a temp folder, bundles served over HTTPS on
127.0.0.1, the real broker, and the daemon run as a process by a stand-in for systemd that
reads the unit's ExecStartPre/ExecStart lines (tests/update_rig.py).

Releases are tiny wheels of test versions (a .pth to this checkout), built into real venvs by
``edge.releases.install_release`` (~5 s each): the session builds each version once, and a test
that is not about the build copies it into its root, where the update finds it in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tarfile
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from command_rig import Watcher
from support import config_document, wait_for
from update_rig import (
    BROKEN_LINK,
    CRASHES,
    MIGRATES,
    RELEASE_KID,
    BundleServer,
    Service,
    described,
    make_bundle,
    outcome,
    release_public_key,
    server_certificate,
    update_events,
    wait_state,
)

from edge.admin import generate_key, load_private_key
from edge.protocol import load_public_keys, sign
from edge.release import read_bundle
from edge.releases import current_version, install_release, previous_version, release_dir, switch_to
from edge.update.guard import read_marker

KID = "it-test"
BUILDS = {"0.1.0": {}, "0.2.0": {}, "0.3.0": {**BROKEN_LINK, **MIGRATES}, "0.4.0": CRASHES}


class Kit:
    """What every update test shares: the HTTPS server, the bundles, each version built once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.www = folder / "www"
        self.www.mkdir()
        self.cert, key = server_certificate(folder)
        self.server = BundleServer(self.www, self.cert, key)
        self.bundles = {
            version: make_bundle(self.www, version, extra=extra) for version, extra in BUILDS.items()
        }
        self.template = folder / "template"
        self._built: set[str] = set()
        self._lock = threading.Lock()

    def built(self, version: str) -> Path:
        """``releases/VERSION`` in the template root, built from its bundle the first time."""
        with self._lock:
            if version not in self._built:
                keys, _ = load_public_keys({RELEASE_KID: release_public_key()})
                bundle = self.bundles[version].path
                with working_folder(self.folder):
                    install_release(self.template, bundle, read_bundle(bundle, keys))
                self._built.add(version)
        return release_dir(self.template, version)

    def place(self, root: Path, version: str) -> None:
        """Put a built release into ``root`` (the update then finds it installed)."""
        shutil.copytree(self.built(version), release_dir(root, version), symlinks=True)


@contextlib.contextmanager
def working_folder(folder: Path) -> Iterator[None]:
    """Not this checkout: its hall_edge.egg-info would name a new release's version wrongly."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    kit = Kit(tmp_path_factory.mktemp("update"))
    yield kit
    kit.server.close()


class Controller:
    """One controller on 0.1.0 under ``folder/root``, run by the systemd stand-in."""

    def __init__(
        self,
        folder: Path,
        kit: Kit,
        port: int,
        site: str | None = None,
        device: str = "hall-01",
        **update: Any,
    ) -> None:
        self.kit = kit
        self.port = port
        self.root = folder / "root"
        self.site = site or "t" + uuid.uuid4().hex[:10]
        self.device = device
        self.topic = f"lgsc/v1/{self.site}/{device}"
        kit.place(self.root, "0.1.0")
        switch_to(self.root, "0.1.0")
        key_path = folder / "admin" / f"{KID}.key"
        self.key_path = key_path
        public = generate_key(key_path)
        self.key = load_private_key(str(key_path))
        doc = config_document(folder, {"mqtt": {"port": port, "reconnect_cap_s": 1.0}}, site=self.site)
        doc["device"] = device
        doc["commands"] = {"public_keys": {KID: public}}
        doc["releases"] = {"public_keys": {RELEASE_KID: release_public_key()}}
        doc["update"] = {
            "root": str(self.root),
            "ca_file": str(kit.cert),
            "timeout_s": 5.0,
            "health_deadline_s": 15.0,
            **update,
        }
        self.config = folder / "hall-edge.toml"
        self.config.write_text(tomlkit.dumps(doc))
        self.state_dir = Path(doc["storage"]["dir"])
        self.watcher = Watcher(port, self.topic + "/#")
        self.service = Service(self.root, self.config, folder / "service.log")

    def start(self) -> Controller:
        self.service.start()
        wait_state(self.watcher, self.topic, "0.1.0")
        return self

    def close(self) -> None:
        self.service.stop()
        self.watcher.close()

    def send(self, name: str, args: dict[str, Any]) -> str:
        now = datetime.now().astimezone().replace(microsecond=0)
        command_id = "c-" + uuid.uuid4().hex[:16]
        body = {
            "id": command_id,
            "name": name,
            "device": f"{self.site}/{self.device}",
            "issued_at": now.isoformat(),
            "expires_at": (now + timedelta(minutes=5)).isoformat(),
            "issuer": "it-test",
            "args": args,
        }
        self.watcher.publish(f"{self.topic}/cmd", sign(json.dumps(body), self.key, KID))
        return command_id

    def pending(self) -> tuple[Any, ...] | None:
        with contextlib.closing(sqlite3.connect(self.state_dir / "hall-edge.db")) as db:
            try:
                return db.execute("SELECT state, reason FROM update_pending").fetchone()
            except sqlite3.OperationalError:
                return None

    def columns(self, table: str) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.state_dir / "hall-edge.db")) as db:
            return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]

    def admin_flags(self) -> list[str]:
        path = self.root.parent / "hall-admin.toml"
        path.write_text(
            f'[broker]\nhost = "127.0.0.1"\nport = {self.port}\ntls = false\n'
            f'[signing]\nkey_file = "{self.key_path}"\nkid = "{KID}"\nissuer = "it-test"\n'
        )
        return ["--config", str(path)]


@pytest.fixture
def controller(tmp_path: Path, kit: Kit, broker: Any) -> Iterator[Controller]:
    made = Controller(tmp_path, kit, broker.port)
    try:
        yield made.start()
    finally:
        made.close()


def assert_unchanged(ctl: Controller, version: str) -> None:
    """Still on 0.1.0, the same daemon, no trace of ``version`` in the root."""
    assert current_version(ctl.root) == "0.1.0"
    assert not release_dir(ctl.root, version).exists()
    assert ctl.service.starts == 1, ctl.service.log_text()[-2000:]
    assert read_marker(ctl.root) is None


# ---- the tests ----------------------------------------------------------------------------------


def test_an_update_is_installed_switched_to_and_confirmed(controller: Controller, kit: Kit, capsys) -> None:
    """0.1.0 -> 0.2.0, built from the bundle; the download is cut once and resumes; hall-admin waits."""
    from edge.admin import main as admin

    bundle = kit.bundles["0.2.0"]
    kit.server.cut_once[bundle.path.name] = bundle.size // 2
    args = [f"--arg={key}={value}" for key, value in bundle.args(kit.server).items()]
    code = admin(
        [
            "send",
            f"{controller.site}/hall-01",
            "update",
            *args,
            "--wait-timeout",
            "60",
            *controller.admin_flags(),
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed
    assert "confirmed" in printed.out and "0.2.0" in printed.out, printed
    wait_state(controller.watcher, controller.topic, "0.2.0")
    assert current_version(controller.root) == "0.2.0"
    assert previous_version(controller.root) == "0.1.0"
    assert read_marker(controller.root) is None
    ranges = [wanted for path, wanted in kit.server.requests if path.endswith(bundle.path.name)]
    assert ranges[-1] == f"bytes={bundle.size // 2}-", ranges  # resumed, not started again
    command_id = printed_id(printed.out)
    # hall-admin saw the confirmation on its own subscription; the watcher's copy may still be in flight.
    assert outcome(controller.watcher, command_id)["type"] == "update.confirmed"
    types = [event["type"] for event in update_events(controller.watcher, command_id)]
    assert types == ["update.started", "update.confirmed"]


def printed_id(text: str) -> str:
    for word in text.split():
        if word.startswith("c-"):
            return word
    raise AssertionError(f"no command id in {text!r}")


def test_a_release_that_fails_its_health_check_rolls_back_by_itself(controller: Controller, kit: Kit) -> None:
    """0.3.0 adds a column and its paho is broken: it switches back to 0.1.0, which runs on that database."""
    kit.place(controller.root, "0.3.0")
    command_id = controller.send("update", kit.bundles["0.3.0"].args(kit.server))
    final = outcome(controller.watcher, command_id)
    assert final["type"] == "update.failed"
    assert final["data"]["reason"] == "unhealthy"
    assert "link" in final["data"]["detail"]
    wait_state(controller.watcher, controller.topic, "0.1.0")
    assert current_version(controller.root) == "0.1.0"
    assert "route" in controller.columns("outbox")  # 0.3.0 did migrate the database 0.1.0 now runs on
    result = wait_for(
        lambda: [
            b for b in controller.watcher.bodies("/cmd/result") if b.get("id") == command_id and not b["ok"]
        ],
        15,
        "the second result",
    )
    assert result[0]["error"]["code"] == "unhealthy"


def test_a_release_that_crashes_is_switched_back_by_the_guard(controller: Controller, kit: Kit) -> None:
    """0.4.0 exits before any of its code runs: the guard (0.1.0's code) switches back."""
    kit.place(controller.root, "0.4.0")
    command_id = controller.send("update", kit.bundles["0.4.0"].args(kit.server))
    final = outcome(controller.watcher, command_id)
    assert final["type"] == "update.failed"
    assert final["data"]["reason"] == "crashed"
    assert current_version(controller.root) == "0.1.0"
    wait_state(controller.watcher, controller.topic, "0.1.0")


def test_bad_bundles_and_commands_are_refused_with_their_reason_and_change_nothing(
    controller: Controller, kit: Kit
) -> None:
    www = kit.www
    good = kit.bundles["0.2.0"]
    tampered = www / "tampered-0.2.0.tar"
    data = bytearray(good.path.read_bytes())
    with tarfile.open(good.path) as tar:
        wheel = next(member for member in tar.getmembers() if member.name.startswith("wheels/"))
    data[wheel.offset_data + 100] ^= 0xFF  # a byte of the wheel: the manifest's hash no longer fits
    tampered.write_bytes(bytes(data))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = make_bundle(www, "0.2.0", key=Ed25519PrivateKey.generate(), kid="rel-other", name="other.tar")
    unknown_kid = make_bundle(www, "0.2.0", key=Ed25519PrivateKey.generate(), name="forged.tar")
    old = make_bundle(www, "0.0.9", name="old.tar")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("tampered_file", described(tampered, "0.2.0").args(kit.server)),
        ("wrong_hash", good.args(kit.server, sha256="0" * 64)),
        ("unknown_release_key", stranger.args(kit.server)),
        ("bad_signature", unknown_kid.args(kit.server)),
        ("downgrade", old.args(kit.server)),
        ("no_space", good.args(kit.server, size=1 << 50)),
        ("insecure_url", good.args(kit.server, url=kit.server.url(good.path.name).replace("https", "http"))),
        ("version_mismatch", good.args(kit.server, version="0.2.1")),
    ]
    for reason, args in cases:
        command_id = controller.send("update", args)
        final = outcome(controller.watcher, command_id, 20)
        assert (final["type"], final["data"]["reason"]) == ("update.refused", reason), final
        wait_for(lambda: controller.pending() is None, 10, f"{reason}: no update pending")
        assert_unchanged(controller, "0.2.0")
        assert_unchanged(controller, "0.0.9")


KILL_STEPS = [
    # (where the daemon dies, the release asked for, the one running at the end, what it reports)
    ("update-downloaded", "0.2.0", "0.1.0", ("update.failed", "interrupted")),
    ("venv", "0.2.0", "0.1.0", ("update.failed", "interrupted")),  # inside install_release: a real build
    ("update-installed", "0.2.0", "0.1.0", ("update.failed", "interrupted")),
    ("update-marked", "0.2.0", "0.1.0", ("update.failed", "interrupted")),
    ("update-switched", "0.2.0", "0.2.0", ("update.confirmed", None)),
    ("update-probation", "0.2.0", "0.1.0", ("update.failed", "crashed")),
    ("update-confirming", "0.2.0", "0.2.0", ("update.confirmed", None)),
    ("update-rolling-back", "0.3.0", "0.1.0", ("update.failed", "unhealthy")),
]
NEW_RELEASE_STEPS = ("update-probation", "update-confirming", "update-rolling-back")


@pytest.mark.slow  # 2-8 s a step on an idle 2-core machine, ~35 s in all
@pytest.mark.parametrize("case", KILL_STEPS, ids=[s[0] for s in KILL_STEPS])
def test_a_kill_at_any_step_leaves_a_working_release_that_says_what_happened(
    controller: Controller, kit: Kit, case: tuple[str, str, str, tuple[str, str | None]]
) -> None:
    step, version, ends_on, expected = case
    if step != "venv":  # built already: the kill, not the build, is tested
        kit.place(controller.root, version)
    stop_at = {"HALL_EDGE_RELEASE_STOP_AT": step}
    if step in NEW_RELEASE_STEPS:  # steps of the new release's first start
        controller.service.env_once = stop_at
    else:  # steps of the running 0.1.0: start it again with the stop
        controller.service.stop()
        controller.service = Service(controller.root, controller.config, controller.root.parent / "s2.log")
        controller.service.env_once = stop_at
        controller.service.start()
        wait_state(controller.watcher, controller.topic, "0.1.0")
    restarts = controller.service.starts
    command_id = controller.send("update", kit.bundles[version].args(kit.server))
    final = outcome(controller.watcher, command_id, 60)
    assert (final["type"], final["data"].get("reason")) == expected, final
    assert controller.service.starts > restarts
    wait_state(controller.watcher, controller.topic, ends_on)
    assert current_version(controller.root) == ends_on
    if ends_on == "0.1.0":
        assert read_marker(controller.root) is None
    if step in ("venv", "update-installed"):  # a release never switched to is not left half-made
        assert not release_dir(controller.root, version).exists()
    wait_for(lambda: controller.pending() is None, 15, "the outcome reported")


@pytest.mark.slow  # ~15 s: two controllers, one rollback
def test_a_rollout_stops_at_the_first_controller_that_rolls_back(
    tmp_path: Path, kit: Kit, broker: Any, capsys
):
    from edge.admin import main as admin

    site = "t" + uuid.uuid4().hex[:10]
    controllers = [
        Controller(tmp_path / device, kit, broker.port, site=site, device=device)
        for device in ("hall-01", "hall-02")
    ]
    try:
        for ctl in controllers:
            kit.place(ctl.root, "0.3.0")
            ctl.start()
        args = [f"--arg={key}={value}" for key, value in kit.bundles["0.3.0"].args(kit.server).items()]
        code = admin(["rollout", site, *args, "--wait-timeout", "60", *controllers[0].admin_flags()])
        printed = capsys.readouterr().out
        assert code == 1, printed
        rows = {line.split()[0]: line for line in printed.splitlines() if line.startswith(site)}
        assert "rolled back: unhealthy" in rows[f"{site}/hall-01"], printed
        assert "not started: the rollout stopped" in rows[f"{site}/hall-02"], printed
        assert [current_version(ctl.root) for ctl in controllers] == ["0.1.0", "0.1.0"]
        assert controllers[1].service.starts == 1  # never touched
    finally:
        for ctl in controllers:
            ctl.close()


def test_plain_http_only_from_a_named_lan_mirror():
    from edge.update.download import DownloadRefused, check_url

    check_url("https://mirror.example/hall-edge-0.2.0.tar", ())
    check_url("http://192.168.1.10/hall-edge-0.2.0.tar", ("192.168.1.10",))
    for url, allowed in [
        ("http://192.168.1.10/b.tar", ()),
        ("http://evil.example/b.tar", ("192.168.1.10",)),
        ("ftp://192.168.1.10/b.tar", ("192.168.1.10",)),
        ("file:///etc/passwd", ()),
    ]:
        with pytest.raises(DownloadRefused) as refused:
            check_url(url, allowed)
        assert refused.value.reason == "insecure_url"


def test_a_bundle_the_server_does_not_have_fails_at_once_and_changes_nothing(
    controller: Controller, kit: Kit
):
    args = kit.bundles["0.2.0"].args(kit.server)
    command_id = controller.send("update", {**args, "url": kit.server.url("no-such-bundle.tar")})
    final = outcome(controller.watcher, command_id, 20)
    assert (final["type"], final["data"]["reason"]) == ("update.failed", "download_failed"), final
    assert "HTTP 404" in final["data"]["detail"]
    wait_for(lambda: controller.pending() is None, 10, "no update pending")
    assert_unchanged(controller, "0.2.0")
