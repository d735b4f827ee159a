"""Turning untrusted job and notice fields into text that is safe to show.

Everything here is pure: strings in, strings out.  A field that cannot be
shown honestly (a negative wage, an unknown unit) raises ``Unshowable`` so
that the job is skipped with an event; anything else is cleaned and cut.
Text from the platform's snapshots goes through ``masked``: a phone number
in a job's title or place is masked like the contact (``edge.logs.mask_phone``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from edge.logs import mask_phone

ELLIPSIS = "…"
WAGE_UNITS = {"hour": "时", "day": "天", "piece": "件", "month": "月"}
MAX_WAGE = 1_000_000  # yuan; anything above is a typo, not a job
MAX_HEADCOUNT_SHOWN = 9999

# Control, format, surrogate, private-use and unassigned code points are never drawn.
_DROP = {"Cc", "Cf", "Cs", "Co", "Cn"}
_SPACES = re.compile(r"\s+")


class Unshowable(ValueError):
    """A field that must not be shown at all; the message is the event's reason."""


def clean(value: Any, limit: int) -> str:
    """One line of printable text, at most ``limit`` characters (cut with …)."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", value if isinstance(value, str) else str(value))
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\t\n\r" or category in ("Zl", "Zp"):
            kept.append(" ")
        elif category not in _DROP:
            kept.append(ch)
    text = _SPACES.sub(" ", "".join(kept)).strip()
    return cut(text, limit)


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + ELLIPSIS


def masked(value: Any, limit: int) -> str:
    """``clean`` text with every phone-like number masked (138****5678), then cut to ``limit``.

    Masked before the cut, so that a cut can never leave the front of a number whole; cleaned
    before the mask, so that invisible characters cannot split a number and hide it.
    """
    return cut(mask_phone(clean(value, _UNCUT)), limit)


_UNCUT = 1 << 20


def mask_contact(value: Any) -> str:
    """The contact field is a number by contract: only its first three and last four digits."""
    digits = "".join(ch for ch in str(value or "") if ch.isascii() and ch.isdigit())
    if len(digits) < 8:
        return "****" if digits else ""
    return f"{digits[:3]}****{digits[-4:]}"


def wage_text(wage: Any) -> str:
    """300元/天, 25.5元/时; raises Unshowable for anything else."""
    if not isinstance(wage, dict):
        raise Unshowable("wage is not an object")
    amount, unit = wage.get("amount"), wage.get("unit")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise Unshowable("wage amount is not a number")
    if not math.isfinite(amount) or amount <= 0 or amount > MAX_WAGE:
        raise Unshowable("wage amount out of range")
    if unit not in WAGE_UNITS:
        raise Unshowable("unknown wage unit")
    shown = f"{amount:.2f}".rstrip("0").rstrip(".")
    return f"{shown}元/{WAGE_UNITS[unit]}"


def headcount_text(headcount: Any) -> str:
    if isinstance(headcount, bool) or not isinstance(headcount, int):
        raise Unshowable("headcount is not an integer")
    if headcount > MAX_HEADCOUNT_SHOWN:
        return f"{MAX_HEADCOUNT_SHOWN}+人"
    return f"{headcount}人"
