"""Slow one running process down to a fraction of a core, as ../shared/tools/slowpi does for a command.

slowpi starts a command inside a cgroup (v1 ``cpu`` controller) whose quota is 1 ms of every
1/FRACTION ms.  A bench that needs only the daemon slowed (not the simulator around it, not the
bench's own clocks) moves the daemon's threads into such a group instead: each thread id of
``/proc/PID/task`` is written into the group's ``tasks`` file (threads the daemon starts later
inherit the group).  Needs root and the cgroup v1 cpu controller, as on these machines.

    with Throttle(pid, 0.125):
        ...  # the daemon runs on an eighth of a core
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
QUOTA_US = 1000  # the kernel's smallest quota: the period grows instead


def can_throttle() -> bool:
    return os.access(CPU_ROOT, os.W_OK) and (CPU_ROOT / "tasks").exists()


class Throttle:
    """While entered, process ``pid`` (all its threads, and their later ones) gets ``fraction`` of a core."""

    def __init__(self, pid: int, fraction: float = 0.125) -> None:
        if not 0 < fraction <= 1:
            raise ValueError("fraction must be in (0, 1]")
        self.pid = pid
        self.fraction = fraction
        self.group = CPU_ROOT / f"slowcpu-{os.getpid()}-{pid}"

    def __enter__(self) -> Throttle:
        if not can_throttle():
            raise PermissionError(f"{CPU_ROOT} is not writable here (needs root and cgroup v1 cpu)")
        self.group.mkdir(exist_ok=True)
        (self.group / "cpu.cfs_period_us").write_text(str(round(QUOTA_US / self.fraction)))
        (self.group / "cpu.cfs_quota_us").write_text(str(QUOTA_US))
        self._move(self.group)
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._move(CPU_ROOT)
        with contextlib.suppress(OSError):  # a thread not moved back keeps it: it goes with the process
            self.group.rmdir()

    def threads(self) -> list[int]:
        try:
            return [int(tid) for tid in os.listdir(f"/proc/{self.pid}/task")]
        except FileNotFoundError:
            return []

    def _move(self, group: Path) -> None:
        """Each thread on its own write: the tasks file takes one id per write."""
        for tid in self.threads():
            try:
                with open(group / "tasks", "w") as tasks:
                    tasks.write(str(tid))
            except (ProcessLookupError, FileNotFoundError):
                pass  # the thread ended meanwhile

    def in_group(self) -> list[int]:
        """Thread ids now in the group (to check the move took)."""
        text = (self.group / "tasks").read_text()
        return [int(line) for line in text.split()]
