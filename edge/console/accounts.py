"""Staff accounts of the console: who may log in, with which role, for which windows.

Set only by bureau IT with the signed ``console.account`` command (the password hash made by
``hall-admin console-account``, so no password travels or is stored in clear); kept in SQLite.
There is no default account: until one is set, nobody can log in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from edge.core import CommandError, Core
from edge.protocol import password_hash_problem
from edge.records import record

ROLES = ("window", "locker", "supervisor")
ROLE_NAMES = {"window": "窗口", "locker": "工具柜", "supervisor": "主管"}
ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
NAME_MAX = 40

MIGRATIONS = [
    """
    CREATE TABLE console_accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        windows TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
]


@record
class Account:
    id: str
    name: str
    role: str
    windows: tuple[int, ...]
    password_hash: str

    def may_call_at(self, window: int) -> bool:
        """A window account acts only for its own windows; a supervisor for any."""
        return self.role == "supervisor" or (self.role == "window" and window in self.windows)

    @property
    def may_use_locker(self) -> bool:
        return self.role in ("locker", "supervisor")

    @property
    def issuer(self) -> str:
        """Who acted, as the audit events and the locker's ledger name it."""
        return f"console:{self.id}"


class Accounts:
    """The accounts table, with a copy the server threads read (replaced whole, never mutated).

    A change is recorded by the command's own ``audit.command`` (who set it); the table keeps
    the rest, so the platform's event contract gains nothing new."""

    def __init__(self, core: Core, windows: set[int], on_removed: Callable[[str], None]) -> None:
        self.core = core
        self.windows = windows
        self.on_removed = on_removed  # ends that account's sessions (and is called on a change too)
        core.storage.migrate("console", MIGRATIONS)
        self.by_id: dict[str, Account] = self._load()

    def _load(self) -> dict[str, Account]:
        rows = self.core.storage.execute(
            "SELECT id, name, role, windows, password_hash FROM console_accounts"
        ).fetchall()
        return {row[0]: Account(row[0], row[1], row[2], _windows_from_text(row[3]), row[4]) for row in rows}

    def get(self, account_id: str) -> Account | None:
        return self.by_id.get(account_id)

    def cmd_account(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        """console.account {action: set|remove, id, name, role, windows, password_hash}."""
        action, account_id = args.get("action", "set"), args.get("id")
        if not isinstance(account_id, str) or not ID_RE.fullmatch(account_id):
            raise CommandError("bad_arguments", "id must be 1-32 characters from a-z, 0-9, _ . - (e.g. w1)")
        if action == "remove":
            return self._remove(account_id)
        if action != "set":
            raise CommandError("bad_arguments", f"action {action!r} must be set or remove")
        account = self._checked(account_id, args)
        with self.core.storage.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO console_accounts (id, name, role, windows, password_hash, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (account.id, account.name, account.role, _windows_text(account.windows),
                 account.password_hash, self.core.clock.now().timestamp()),
            )  # fmt: skip
        self.by_id = {**self.by_id, account.id: account}
        self.on_removed(account.id)  # a changed password or role logs that person in again
        windows = list(account.windows)
        return {"id": account.id, "name": account.name, "role": account.role, "windows": windows}

    def _remove(self, account_id: str) -> dict[str, Any]:
        if account_id not in self.by_id:
            raise CommandError("unknown_account", f"no console account {account_id!r}")
        with self.core.storage.transaction() as conn:
            conn.execute("DELETE FROM console_accounts WHERE id = ?", (account_id,))
        self.by_id = {k: v for k, v in self.by_id.items() if k != account_id}
        self.on_removed(account_id)
        return {"id": account_id, "removed": True}

    def _checked(self, account_id: str, args: dict[str, Any]) -> Account:
        name, role = args.get("name"), args.get("role")
        windows, password_hash = args.get("windows", []), args.get("password_hash")
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
            raise CommandError("bad_arguments", f"name must be text of 1-{NAME_MAX} characters")
        if role not in ROLES:
            raise CommandError("bad_arguments", f"role {role!r} must be one of {', '.join(ROLES)}")
        if not isinstance(windows, list) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w in self.windows for w in windows
        ):
            known = ", ".join(str(w) for w in sorted(self.windows)) or "none"
            raise CommandError("bad_arguments", f"windows must be a list of this hall's windows ({known})")
        if role == "window" and not windows:
            raise CommandError("bad_arguments", "a window account needs its windows (e.g. windows=[1])")
        problem = password_hash_problem(password_hash)
        if problem:
            raise CommandError("bad_arguments", f"password_hash: {problem}")
        assert isinstance(password_hash, str)  # checked just above
        return Account(account_id, name.strip(), str(role), tuple(sorted(set(windows))), password_hash)


def _windows_text(windows: tuple[int, ...]) -> str:
    return ",".join(str(w) for w in windows)


def _windows_from_text(text: str) -> tuple[int, ...]:
    return tuple(int(w) for w in text.split(",") if w)
