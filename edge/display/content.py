"""What the screen may show, read from the jobs and notices snapshots.

``read_jobs`` keeps only jobs the bureau allows on the wall (verified,
headcount > 0) and turns their fields into display text; a job whose fields
cannot be shown honestly comes back in ``rejected`` with the reason, for an
event.  Expiry depends on the clock, so it is checked when a page is chosen.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from edge.display.text import Unshowable, clean, headcount_text, mask_contact, masked, wage_text
from edge.records import record

TITLE_CHARS = 16
LOCATION_CHARS = 40
EMPLOYER_CHARS = 16
NOTICE_CHARS = 120
ID_CHARS = 64


@record
class JobCard:
    id: str
    title: str
    headcount: str  # 3人
    wage: str  # 300元/天
    location: str
    contact: str  # masked: 138****5678
    urgent: bool
    expires_at: datetime | None
    employer: str = ""
    starts: str = ""  # 开工11/23 07:00, hall time

    def showable(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@record
class NoticeCard:
    id: str
    text: str
    starts_at: datetime | None
    ends_at: datetime | None

    def current(self, now: datetime) -> bool:
        started = self.starts_at is None or self.starts_at <= now
        return started and (self.ends_at is None or now < self.ends_at)


@record
class Rejected:
    id: str
    reason: str


def read_jobs(snapshot: dict[str, Any], zone: tzinfo) -> tuple[list[JobCard], list[Rejected]]:
    """Showable job cards, urgent first (snapshot order otherwise), and the rejected entries."""
    cards: list[JobCard] = []
    rejected: list[Rejected] = []
    entries = snapshot.get("jobs") if isinstance(snapshot, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            rejected.append(Rejected("?", "job entry is not an object"))
            continue
        if entry.get("verified") is not True or entry.get("headcount") == 0:
            continue  # bureau policy, not an error: never on the wall
        try:
            cards.append(_job_card(entry, zone))
        except Unshowable as exc:
            rejected.append(Rejected(clean(entry.get("id"), ID_CHARS) or "?", str(exc)))
    cards.sort(key=lambda card: not card.urgent)  # stable: snapshot order within each group
    return cards, rejected


def _job_card(entry: dict[str, Any], zone: tzinfo) -> JobCard:
    job_id = clean(entry.get("id"), ID_CHARS)
    if not job_id:
        raise Unshowable("job has no id")
    title = masked(entry.get("title"), TITLE_CHARS)
    if not title:
        raise Unshowable("job has no title")
    headcount = entry.get("headcount")
    if isinstance(headcount, int) and not isinstance(headcount, bool) and headcount < 0:
        raise Unshowable("headcount is negative")
    return JobCard(
        id=job_id,
        title=title,
        headcount=headcount_text(headcount),
        wage=wage_text(entry.get("wage")),
        location=masked(entry.get("location"), LOCATION_CHARS),
        contact=mask_contact(entry.get("contact")),
        urgent=entry.get("urgent") is True,
        expires_at=moment(entry.get("expires_at"), zone, "expires_at"),
        employer=clean(entry.get("employer"), EMPLOYER_CHARS),
        starts=_start_text(entry.get("starts_at"), zone),
    )


def _start_text(value: Any, zone: tzinfo) -> str:
    """开工11/23 07:00 in hall time; an unreadable start is left out (it is a detail, not a reason to
    hide the job)."""
    try:
        start = moment(value, zone, "starts_at")
    except Unshowable:
        return ""
    if start is None:
        return ""
    local = start.astimezone(zone)
    return f"开工{local.month}/{local.day} {local:%H:%M}"


def read_notices(snapshot: dict[str, Any], zone: tzinfo) -> list[NoticeCard]:
    """Notices with text; a notice with unreadable times is dropped (it cannot be known current)."""
    notices = []
    entries = snapshot.get("notices") if isinstance(snapshot, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        text = masked(entry.get("text"), NOTICE_CHARS)
        try:
            starts = moment(entry.get("starts_at"), zone, "starts_at")
            ends = moment(entry.get("ends_at"), zone, "ends_at")
        except Unshowable:
            continue
        if text:
            notices.append(NoticeCard(clean(entry.get("id"), ID_CHARS), text, starts, ends))
    return notices


def moment(value: Any, zone: tzinfo, name: str) -> datetime | None:
    """An RFC 3339 time; one without an offset is read as hall local time."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Unshowable(f"{name} is not a time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Unshowable(f"{name} is not a time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
