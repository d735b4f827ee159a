"""The boot guard: systemd runs it before every start, from the release known to work.

A new release may crash before it runs any of its own code (a broken
interpreter, a missing dependency, an import error) or hang before READY
(systemd kills it after TimeoutStartSec).  Then nothing inside it can roll
back.  So the unit's first ``ExecStartPre`` runs this module with the
*previous* release's Python (``/opt/hall-edge/previous``): while an update is
on probation, that is the release the update started from, which did work.

Before switching ``current``, the running release writes the boot marker
``<root>/update-boot.json`` (``{"to", "from", "starts", "max_starts"}``).
Each start on the new release counts one; the new release removes the
marker once healthy (or when it rolls back by itself).  A start when the
count is already used up means the new release stopped without proving
itself: the guard points ``current`` back at ``from`` and writes why into the
marker, which the old release reports as ``update.failed`` (``crashed``).

``max_starts`` is 1: a second start would also cost a slot of systemd's start
limit (4 in 120 s), and the rollback needs one.  A power cut during the
probation therefore also rolls back; the update can be sent again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from edge.config_change import write_atomic

log = logging.getLogger(__name__)

MARKER = "update-boot.json"
MAX_STARTS = 1


def marker_path(root: Path) -> Path:
    return root / MARKER


def read_marker(root: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads(marker_path(root).read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # half-written is impossible (atomic), so: someone edited it
        log.error("%s is not JSON: ignored", marker_path(root))
        return None
    return marker if isinstance(marker, dict) else None


def write_marker(root: Path, marker: dict[str, Any]) -> None:
    write_atomic(marker_path(root), json.dumps(marker).encode(), 0o644)


def clear_marker(root: Path) -> None:
    marker_path(root).unlink(missing_ok=True)


def guard(root: Path) -> str:
    """One start's check; returns what it did (for the journal and the tests)."""
    # Here, not at the top: the daemon imports this module for its markers only, and the release
    # tooling (tarfile with it) loads when an update runs (as edge.update.updater does).
    from edge.releases import current_version, switch_to

    marker = read_marker(root)
    if marker is None or marker.get("rolled_back"):
        return "nothing to guard"
    running = current_version(root)
    if running != marker.get("to"):
        return f"current is {running}, not the update's {marker.get('to')}: nothing to guard"
    starts = int(marker.get("starts", 0)) + 1
    allowed = int(marker.get("max_starts", MAX_STARTS))
    if starts <= allowed:
        write_marker(root, {**marker, "starts": starts})
        return f"start {starts} of {allowed} on the new release {running}"
    reason = (
        f"release {running} stopped {allowed} time(s) before it proved healthy"
        " (crashed, hung before READY, or the power went)"
    )
    switch_to(root, str(marker["from"]))
    write_marker(root, {**marker, "starts": starts, "rolled_back": reason})
    return f"rolled back to {marker['from']}: {reason}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.update.guard", description=__doc__)
    parser.add_argument("--root", default="/opt/hall-edge", help="the releases' root")
    args = parser.parse_args(argv)
    print(f"hall-edge boot guard: {guard(Path(args.root))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
