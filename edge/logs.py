"""Structured log lines for journald, with personal data masked.

Each line is ``level=info logger=edge.core msg="..."``.  Whatever a message
says, a mainland mobile number in it is masked (138****5678) and anything
shaped like a raw card UID passed with ``uid=`` is refused at the source
(drivers never log UIDs); the mask here is the last line of defence.
The last lines are also kept in memory for the ``logs.tail`` command.
"""

from __future__ import annotations

import logging
import re
import sys
from collections import deque

PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_phone(text: str) -> str:
    """138****5678 for every mainland mobile number in ``text``."""
    return PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = mask_phone(record.getMessage())
        line = f'level={record.levelname.lower()} logger={record.name} msg="{_quote(message)}"'
        if record.exc_info:
            line += f' exc="{_quote(mask_phone(self.formatException(record.exc_info)))}"'
        return line


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RecentLines(logging.Handler):
    """Keeps the last formatted lines in memory (for logs.tail)."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def tail(self, count: int) -> list[str]:
        return list(self.lines)[-count:] if count > 0 else []


recent = RecentLines()


def setup(level: str = "info") -> None:
    """Route all logging to stderr in logfmt, at ``level``."""
    formatter = LogfmtFormatter()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    recent.setFormatter(formatter)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(stream)
    root.addHandler(recent)
    root.setLevel(level.upper())
