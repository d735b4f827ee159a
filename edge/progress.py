"""Progress of long work (installing, a self-test, a benchmark's trials), on stderr.

On a terminal one line is redrawn in place: a bar, the count and the current step::

    install [########            ] 3/7 program: building the virtualenv

Anywhere else (journald, a pipe, a log file, CI) each step is one plain line, so a
slow step shows which one it is and nothing is lost to carriage returns::

    install 3/7: program: building the virtualenv

Standard output stays the work's own report (tables, figures), so a script reading it
is not disturbed.  The one reporter for hall-edge's long work and the bench scripts.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 20


class Progress:
    """``total`` steps of ``title``; ``step(what)`` begins the next one, ``close()`` ends."""

    def __init__(self, title: str, total: int, stream: TextIO | None = None) -> None:
        self.title = title
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.live = _is_terminal(self.stream)
        self._drawn = False

    def step(self, what: str) -> None:
        """Begin the next step (counted as done once the one after it begins, or at close)."""
        self.done = min(self.done + 1, self.total)
        if self.live:
            filled = BAR_WIDTH * (self.done - 1) // self.total
            bar = "#" * filled + " " * (BAR_WIDTH - filled)
            self._write(f"\r\x1b[K{self.title} [{bar}] {self.done}/{self.total} {what}")
            self._drawn = True
        else:
            self._write(f"{self.title} {self.done}/{self.total}: {what}\n")

    def close(self) -> None:
        """Clear the live line: what comes next (the report) starts on a clean line."""
        if self._drawn:
            self._write("\r\x1b[K")
            self._drawn = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream
        return False
