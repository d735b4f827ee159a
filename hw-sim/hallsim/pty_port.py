"""A simulated serial device's port: a raw pseudo-terminal, and a stable path to it for the daemon."""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path


def open_pty(link: Path | None = None, blocking: bool = True) -> tuple[int, int, str]:
    """(master, slave, slave path) of a new pty, raw before the host opens it (no echo, no line
    editing, no newline translation); ``link``, when given, is made to point at it (atomically)."""
    master, slave = os.openpty()
    if not blocking:
        os.set_blocking(master, False)  # a host that stops reading must not hang the device
    tty.setraw(slave)
    name = os.ttyname(slave)
    if link is not None:
        tmp = link.with_name(link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(name)
        tmp.replace(link)
    return master, slave, name


def close_pty(master: int | None, slave: int | None, link: Path | None = None) -> None:
    """Close both ends (the host's reads and writes fail from now on) and remove ``link``."""
    if link is not None:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
    for fd in (master, slave):
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
