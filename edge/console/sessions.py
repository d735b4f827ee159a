"""Console sessions, their CSRF tokens, when they end, and the lockout after wrong passwords.

Sessions live in memory (a restart of the daemon logs everyone out) and end at closing time.
These are used from the server's threads: one lock each, held only for dictionary work.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

SESSION_MAX = timedelta(hours=14)  # a login after closing time still ends, at the latest then
FREE_FAILURES = 5  # wrong passwords in a row before the lockout starts
LOCKOUT_FIRST_S = 30.0
LOCKOUT_MAX_S = 900.0
TRACKED_MAX = 5000  # names and addresses remembered for the lockout: bounded memory


@dataclass
class Session:
    token: str
    csrf: str
    account_id: str
    ends_at: float  # epoch seconds
    flash: list[tuple[bool, str]] = field(default_factory=list)  # (ok, text) shown once

    def csrf_ok(self, offered: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), offered.encode())


def session_end(now: datetime, closing_at: str) -> datetime:
    """The next closing time after ``now`` (hall time), at most SESSION_MAX away."""
    hour, minute = (int(part) for part in closing_at.split(":"))
    closing = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if closing <= now:
        closing += timedelta(days=1)
    return min(closing, now + SESSION_MAX)


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def create(self, account_id: str, ends_at: datetime) -> Session:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(token, csrf, account_id, ends_at.timestamp())
        with self._lock:
            self._by_token[session.token] = session
        return session

    def get(self, token: str | None, now: float) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._by_token.get(token)
            if session is not None and session.ends_at <= now:
                del self._by_token[token]
                return None
            return session

    def end(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)

    def end_account(self, account_id: str) -> None:
        with self._lock:
            for token in [t for t, s in self._by_token.items() if s.account_id == account_id]:
                del self._by_token[token]

    def end_expired(self, now: float) -> int:
        with self._lock:
            gone = [t for t, s in self._by_token.items() if s.ends_at <= now]
            for token in gone:
                del self._by_token[token]
        return len(gone)

    def count(self) -> int:
        with self._lock:
            return len(self._by_token)


class Lockout:
    """Wrong passwords per key (the account name, and the client address): after FREE_FAILURES
    in a row each further one locks that key out for twice as long, 30 s up to 15 min."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (count, until)

    def wait_s(self, *keys: str) -> float:
        """How long these keys are still locked out (0: a try is allowed)."""
        now = self._clock()
        with self._lock:
            return max((self._failures.get(k, (0, 0.0))[1] - now for k in keys), default=0.0) if keys else 0.0

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                count = self._failures.pop(key, (0, 0.0))[0] + 1
                over = count - FREE_FAILURES
                until = now + min(LOCKOUT_MAX_S, LOCKOUT_FIRST_S * 2 ** (over - 1)) if over > 0 else 0.0
                self._failures[key] = (count, until)
            while len(self._failures) > TRACKED_MAX:
                self._failures.popitem(last=False)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
