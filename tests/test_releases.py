"""The release layout: side by side, switched atomically, bootable after a kill -9 at any step.

A subprocess installs and switches to 0.2.0 over a root where 0.1.0 is current, and is killed
(SIGKILL, HALL_EDGE_RELEASE_STOP_AT) at each named step: current must still name a release whose
venv answers, and a second try must finish the job.  And ``hall-edge install --root DIR``
writes no path of this machine (checkout, venv, temp folder) into the tree.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from release_rig import REPO, ReleaseKey, signed_bundle

from edge.cli import main
from edge.release import read_bundle
from edge.releases import (
    STEPS,
    STOP_AT,
    current_version,
    install_release,
    installed_versions,
    previous_version,
    prune,
    switch_to,
)

pytestmark = pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="venvs use /usr/bin/python3")

UPDATE = """\
import sys
from pathlib import Path
from edge.release import read_bundle
from edge.releases import install_release, switch_to, locked
from edge.protocol import load_public_keys
root, bundle, kid, public = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
keys, _ = load_public_keys({kid: public})
manifest = read_bundle(bundle, keys)
install_release(root, bundle, manifest)
with locked(root):
    switch_to(root, manifest.version)
"""


def answers(root: Path) -> str:
    """What ``current/venv/bin/python -m edge version`` says: the release the unit would start."""
    result = subprocess.run(
        [root / "current/venv/bin/python", "-m", "edge", "version"],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def update(root: Path, bundle: Path, key: ReleaseKey, stop_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != STOP_AT}
    env["PYTHONPATH"] = str(REPO)
    if stop_at:
        env[STOP_AT] = stop_at
    command = [sys.executable, "-c", UPDATE, str(root), str(bundle), key.kid, key.public_b64]
    return subprocess.run(command, env=env, timeout=300, check=False, capture_output=True).returncode


@pytest.fixture(scope="module")
def key() -> ReleaseKey:
    return ReleaseKey()


@pytest.fixture(scope="module")
def base(tmp_path_factory, key) -> tuple[Path, Path]:
    """A root with 0.1.0 current (built once), and the 0.2.0 bundle."""
    folder = tmp_path_factory.mktemp("layout")
    root = folder / "root"
    old = signed_bundle(folder / "b1", "0.1.0", key)
    install_release(root, old, read_bundle(old, key.trusted()))
    switch_to(root, "0.1.0")
    return root, signed_bundle(folder / "b2", "0.2.0", key)


@pytest.fixture
def layout(base, tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    shutil.copytree(base[0], root, symlinks=True)
    return root, base[1]


def test_install_then_switch_keeps_the_old_release_as_previous(layout, key):
    root, bundle = layout
    assert update(root, bundle, key, None) == 0
    assert (current_version(root), previous_version(root)) == ("0.2.0", "0.1.0")
    assert answers(root) == "0.2.0"
    assert os.readlink(root / "current") == "releases/0.2.0"  # relative: the tree moves as it is
    switch_to(root, "0.1.0")  # a rollback is the same call
    assert (current_version(root), previous_version(root), answers(root)) == ("0.1.0", "0.2.0", "0.1.0")


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_9_at_each_step_leaves_a_bootable_release_and_a_retry_finishes(layout, key, step):
    root, bundle = layout
    assert update(root, bundle, key, step) == -signal.SIGKILL
    assert current_version(root) in ("0.1.0", "0.2.0")
    assert answers(root) == current_version(root)
    assert set(installed_versions(root)) <= {"0.1.0", "0.2.0"}
    assert update(root, bundle, key, None) == 0
    assert (current_version(root), previous_version(root), answers(root)) == ("0.2.0", "0.1.0", "0.2.0")
    assert not [p for p in (root / "releases").iterdir() if ".partial-" in p.name]


def test_prune_keeps_current_previous_and_the_newest(layout, key, tmp_path):
    root, bundle = layout
    update(root, bundle, key, None)
    third = signed_bundle(tmp_path / "b3", "0.3.0", key)
    install_release(root, third, read_bundle(third, key.trusted()))  # installed, not switched to
    (root / "releases" / ".0.4.0.partial-1").mkdir()  # a build that was killed
    assert prune(root, keep=1) == []  # 0.1.0 previous, 0.2.0 current, 0.3.0 the newest
    assert installed_versions(root) == ["0.1.0", "0.2.0", "0.3.0"]
    switch_to(root, "0.3.0")
    assert prune(root, keep=2) == ["0.1.0"]
    assert installed_versions(root) == ["0.2.0", "0.3.0"]
    assert not (root / "releases" / ".0.4.0.partial-1").exists()


# ---- no path of the build machine in a --root tree -------------------------------------------------


def build_machine_paths(tmp_path: Path) -> list[str]:
    paths = [str(REPO), sys.prefix, os.path.realpath(sys.executable), str(tmp_path)]
    if sys.base_prefix != "/usr":
        paths.append(sys.base_prefix)
    return paths


def offenders(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_symlink():
            text = os.readlink(path).encode()
        elif path.is_file():
            text = path.read_bytes()
        else:
            continue
        found += [f"{path.relative_to(root)}: {n}" for n in needles if n.encode() in text]
    return found


def test_install_root_no_venv_writes_no_path_of_this_machine(tmp_path, capsys):
    root = tmp_path / "card"
    assert main(["install", "--root", str(root), "--no-venv"]) == 0
    capsys.readouterr()
    assert offenders(root, build_machine_paths(tmp_path)) == []
    unit = (root / "etc/systemd/system/hall-edge.service").read_text()
    assert "ExecStart=/opt/hall-edge/current/venv/bin/python -m edge run" in unit


def test_install_root_from_a_bundle_builds_a_venv_with_no_path_of_this_machine(tmp_path, capsys, key):
    bundle = signed_bundle(tmp_path / "b", "0.2.0", key)
    root = tmp_path / "card"
    assert main(["install", "--root", str(root), "--bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "current -> releases/0.2.0 (bundle)" in out
    assert "not checked: no releases.public_keys configured yet" in out
    prefix = root / "opt/hall-edge"
    assert answers(prefix) == "0.2.0"
    assert offenders(root, build_machine_paths(tmp_path)) == []
    docs = subprocess.run(
        [prefix / "current/venv/bin/python", "-c", "import edge; print(edge.documented.__doc__)"],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert docs.stdout.strip() == "None", docs.stderr  # compiled by this installer's edge/bytecode.py
