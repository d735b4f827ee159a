"""Release figures: bundle size per architecture, and the disk two releases take side by side.

    .venv/bin/python bench/release_bench.py

Builds bundles of this checkout (needs the package index for the dependency wheels; pip caches
them) for aarch64, x86_64 and both, then installs two versions of the host bundle into a temporary
root with edge/releases.py and measures the folder.  Prints one line per figure.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.admin.release import build_bundle  # noqa: E402
from edge.protocol import generate_private_key, load_public_keys  # noqa: E402
from edge.release import read_bundle  # noqa: E402
from edge.releases import base_python, install_release, prune, switch_to  # noqa: E402


def disk_bytes(folder: Path) -> int:
    """Allocated bytes (like du), counting each file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in folder.rglob("*"):
        info = path.lstat()
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def main() -> None:
    host = platform.machine()
    with tempfile.TemporaryDirectory(prefix="hall-edge-release-bench-") as work:
        folder = Path(work)
        public = generate_private_key(folder / "rel-bench.key")
        keys, _ = load_public_keys({"rel-bench": public})
        for platforms in (["aarch64"], [host], ["aarch64", host]):
            started = time.monotonic()
            built = build_bundle(
                REPO, folder / "+".join(platforms), str(folder / "rel-bench.key"), "rel-bench", platforms
            )
            print(
                f"bundle {'+'.join(platforms):<16} {built.path.stat().st_size / 1e6:6.1f} MB"
                f"  {len(built.files)} files  built in {time.monotonic() - started:.1f} s"
            )
        root = folder / "root"
        for version in ("0.1.0", "0.2.0"):
            bundle = build_bundle(
                REPO, folder / version, str(folder / "rel-bench.key"), "rel-bench", [host], version=version
            ).path
            started = time.monotonic()
            install_release(root, bundle, read_bundle(bundle, keys), python=base_python())
            switch_to(root, version)
            print(f"install {version} ({host}) {time.monotonic() - started:6.1f} s")
        prune(root)
        for version in ("0.1.0", "0.2.0"):
            print(f"disk release {version}        {disk_bytes(root / 'releases' / version) / 1e6:6.1f} MB")
        two = disk_bytes(root) / 1e6
        print(f"disk two releases            {two:6.1f} MB  ({os.readlink(root / 'current')})")


if __name__ == "__main__":
    main()
