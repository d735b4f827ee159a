"""The console feature: accounts, sessions, and the web server's bridge to the core.

The server's threads never touch hall state.  What a page shows is read on the core thread
(``read``: the registered read-only commands, ``queue.status``, ``locker.status``, ``status``,
``queue.report``, not audited: they change nothing); what a button does is a
``LocalCommand`` (``act``): the commands feature runs the same registered handler an MQTT
command runs and records ``audit.command`` with issuer ``console:<account id>``.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from edge.console.accounts import Account, Accounts
from edge.console.sessions import Lockout, Sessions, session_end
from edge.core import CommandError, Core
from edge.messages import LocalCommand
from edge.outbox import Event
from edge.protocol import new_ulid
from edge.settings import Settings

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0
ACT_TIMEOUT_S = 10.0
TICK_S = 5.0  # pages refresh at least this often (waits count up, temperatures move)
SESSION_SWEEP_S = 60.0
T = TypeVar("T")


class CoreBusy(Exception):
    """The core did not answer in time (it is stopping, or stuck)."""


class Changes:
    """A version number the core bumps on every event; the live pages wait on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.version = 0
        self.closed = False

    def bump(self) -> None:
        with self._cond:
            self.version += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen or self.closed, timeout)
            return self.version

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class ConsoleFeature:
    name = "console"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.console
        self.closing_at = self.cfg.closing_at or settings.queue.closing_at
        self.core: Core  # set by start()
        self.accounts: Accounts  # set by start()
        self.sessions = Sessions()
        self.lockout = Lockout()
        self.changes = Changes()
        self.servers: list[Any] = []  # edge.console.server.ConsoleServer
        self.tls = bool(self.cfg.tls_cert_file)

    # -- life cycle --------------------------------------------------------------

    def start(self, core: Core) -> None:
        from edge.console.server import ConsoleServer, Pages

        self.core = core
        windows = {w.number for w in self.settings.queue.windows}
        self.accounts = Accounts(core, windows, self.sessions.end_account)
        core.register_command(
            "console.account",
            self.accounts.cmd_account,
            args=("action", "id", "name", "role", "windows", "password_hash"),
        )
        core.register_status("console", self.status)
        core.outbox.listeners.append(self._on_event)
        core.every(TICK_S, self.changes.bump)
        core.every(SESSION_SWEEP_S, self._end_sessions)
        context = self._tls_context()
        pages = Pages(self)
        for address in self.cfg.listen:
            server = ConsoleServer((address, self.cfg.port), pages, context)
            self.servers.append(server)
            server.start()
            log.info("console listening on %s", server.url)
        if not self.accounts.by_id:
            log.warning("console: no account yet; set one with hall-admin console-account (docs/console.md)")

    def stop(self) -> None:
        self.changes.close()
        for server in self.servers:
            server.stop()

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cfg.tls_cert_file, self.cfg.tls_key_file)
        return context

    def _on_event(self, _event: Event) -> None:
        self.changes.bump()

    def _end_sessions(self) -> None:
        ended = self.sessions.end_expired(self.core.clock.now().timestamp())
        if ended:
            log.info("console: %d session(s) ended at closing time", ended)

    def status(self) -> dict[str, Any]:
        return {
            "listening": [server.url for server in self.servers],
            "accounts": len(self.accounts.by_id),
            "sessions": self.sessions.count(),
        }

    # -- the bridge (server threads) -------------------------------------------------

    def new_session_end(self) -> float:
        return session_end(self.core.clock.now(), self.closing_at).timestamp()

    def now(self) -> float:
        return self.core.clock.now().timestamp()

    def account(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def on_core(self, fn: Callable[[], T], timeout: float = READ_TIMEOUT_S) -> T:
        """Run ``fn`` on the core thread and return what it returned (or raise what it raised)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except Exception as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        self.core.call_soon(run)
        if not done.wait(timeout):
            raise CoreBusy("the controller did not answer in time")
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    def read(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A read-only command's result, None when this controller has no such command."""

        def run() -> dict[str, Any] | None:
            handler = self.core.command(name)
            return None if handler is None else handler(dict(args or {}), {"issuer": "console"})

        try:
            return self.on_core(run)
        except CommandError as exc:
            log.info("console read %s: %s %s", name, exc.code, exc.message)
            return None

    def act(self, account: Account, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run command ``name`` for ``account`` through the commands feature; its result payload
        (``ok`` with ``result``, or ``error`` with ``code`` and ``message``)."""
        done = threading.Event()
        box: dict[str, bytes] = {}

        def deliver(payload: bytes) -> None:
            box["payload"] = payload
            done.set()

        self.core.post(LocalCommand(f"console-{new_ulid()}", name, args, account.issuer, deliver))
        if not done.wait(ACT_TIMEOUT_S):
            raise CoreBusy("the controller did not answer in time")
        answer: dict[str, Any] = json.loads(box["payload"])
        return answer
