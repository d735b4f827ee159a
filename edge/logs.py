"""Structured log lines for journald, with personal data masked.

Each line is ``level=info logger=edge.core msg="..."``.  Whatever a message
says, a mainland mobile number in it is masked (138****5678) and a raw card
UID written as ``uid=...`` or ``card=...`` is redacted.  Drivers and features
never log UIDs in the first place; the mask here is the last line of defence.
The last lines are also kept in memory for the ``logs.tail`` command.
"""

from __future__ import annotations

import logging
import re
import sys
from collections import deque
from datetime import datetime, tzinfo

from edge.protocol import escaped

# A mainland mobile number, also written 138-1234-5678, 138 1234 5678, 138.1234.5678 or
# +86 13812345678 (one separator at most between two digits).
PHONE_RE = re.compile(r"(?<![0-9])((?:\+?86[-. ]?)?)(1[-. ]?[3-9](?:[-. ]?[0-9]){9})(?![0-9])")
# A landline with its area code: 0351-7654321, 010 12345678 (not inside a word or a longer number).
LANDLINE_RE = re.compile(r"(?<![0-9A-Za-z])(0[1-9][0-9]{1,2})[-. ]?([0-9]{3,4})[-. ]?([0-9]{4})(?![0-9])")
# Full-width digits (１３８...) are read as the ASCII ones: a number must not hide behind them.
_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
# A hex card UID given as uid=..., card=... or card_uid=... (8-20 hex digits).
UID_RE = re.compile(r"\b((?:card_)?uid|card)(\s*[=:]\s*[\"']?)([0-9A-Fa-f]{8,20})\b")


def mask_phone(text: str) -> str:
    """Every phone-like number in ``text`` masked: 138****5678 (mobile), 0351****4321 (landline).

    The one masking function: log lines, events, and everything the screen shows from the
    platform's snapshots (a posting may put a number in its title, not only in ``contact``).
    """
    text = text.translate(_FULL_WIDTH_DIGITS)
    text = PHONE_RE.sub(_masked_mobile, text)
    return LANDLINE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def _masked_mobile(match: re.Match[str]) -> str:
    digits = re.sub(r"[^0-9]", "", match.group(2))
    return f"{match.group(1)}{digits[:3]}****{digits[-4:]}"


def mask_personal(text: str) -> str:
    """Phone numbers masked and raw card UIDs redacted: the last line of defence for a log line."""
    return UID_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", mask_phone(text))


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = mask_personal(record.getMessage())
        line = f'level={record.levelname.lower()} logger={record.name} msg="{_quote(message)}"'
        if record.exc_info:
            line += f' exc="{_quote(mask_personal(self.formatException(record.exc_info)))}"'
        return line


def _quote(text: str) -> str:
    """A logfmt value: backslash and quote escaped, and every control character (ESC, CR, ...)
    written as an escape, whoever wrote it: a log line is one line and never drives a terminal."""
    return escaped(text.replace("\\", "\\\\").replace('"', '\\"'))


class RecentLines(logging.Handler):
    """Keeps the last formatted lines in memory (for logs.tail), each with its time: journald
    stamps its own copy, this one would otherwise have none."""

    def __init__(self, capacity: int = 2000, zone: tzinfo | None = None) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=capacity)
        self.zone = zone  # hall time, as in events and status; None: the system's zone

    def emit(self, record: logging.LogRecord) -> None:
        at = datetime.fromtimestamp(record.created, self.zone).astimezone(self.zone)
        self.lines.append(f"time={at.isoformat(timespec='milliseconds')} {self.format(record)}")

    def tail(self, count: int) -> list[str]:
        return list(self.lines)[-count:] if count > 0 else []


recent = RecentLines()


def setup(level: str = "info", zone: tzinfo | None = None) -> None:
    """Route all logging to stderr in logfmt, at ``level``; ``logs.tail`` lines in ``zone``."""
    formatter = LogfmtFormatter()
    recent.zone = zone
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    recent.setFormatter(formatter)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(stream)
    root.addHandler(recent)
    root.setLevel(level.upper())
