"""What each console page shows and what each of its buttons does.

Pages are rendered on the server with Jinja2, autoescaping on: every value (a job title from the
platform, a note typed by staff, an account name) is text in the page, never markup.  The live
part of a page (``*_live.html``) is rendered again for the event stream on every change.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.console.accounts import ROLE_NAMES, Account
from edge.console.chart import day_chart
from edge.console.sessions import Session
from edge.libc import keep_big_blocks_mapped
from edge.protocol import check_password, hash_password

if TYPE_CHECKING:
    from jinja2 import Environment

    from edge.console.feature import ConsoleFeature

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
FLASH_MAX = 300
INPUT_MAX = 500  # a field longer than this is refused here, before any command
WINDOW_ACTIONS = ("call", "recall", "skip", "finish", "pause", "resume", "hold", "bring_back", "transfer")
LOCKER_ACTIONS = ("inspect", "write_off", "repaired")


keep_big_blocks_mapped()  # scrypt's 16 MiB buffer goes back after each login


@functools.cache
def _dummy_hash() -> str:
    """Checked for an unknown name, which so costs as much time as a known one.  Made at the first
    login, not at start: one scrypt is ~0.1 s at full speed, ~0.8 s at 1/8 core."""
    return hash_password("no such account")


DONE = {
    "call": "已呼叫 {ticket}",
    "recall": "已重呼 {ticket}",
    "skip": "已过号 {ticket}",
    "finish": "已办结 {ticket}，请群众评价",
    "pause": "已暂停服务",
    "resume": "已恢复服务",
    "hold": "已挂起 {ticket}",
    "bring_back": "已回呼 {ticket}",
    "transfer": "已转移 {ticket}",
    "inspect": "已检查 {tool_id}",
    "write_off": "已报损 {tool_id}",
    "repaired": "{tool_id} 修好入库",
}
ERRORS = {
    "window_paused": "窗口已暂停服务，请先恢复服务",
    "nothing_called": "当前没有正在办理的号",
    "nobody_waiting": "没有等候的号",
    "unknown_ticket": "没有这个号",
    "not_recallable": "这个号不能重呼",
    "recall_limit": "重呼次数已满",
    "nothing_held": "没有挂起的号",
    "no_window_serves": "没有窗口办理该业务",
    "same_window": "不能转到本窗口",
    "bad_state": "该工具现在不能这样处理",
    "tool_out": "工具借出中，归还后再处理",
    "already_written_off": "该工具已报损",
    "not_in_repair": "该工具不在维修中",
    "unknown_command": "此控制器不支持该操作",
    "busy": "控制器忙，请稍后再试",
}
STATE_NAMES = {
    "in_stock": "在库",
    "out": "借出",
    "overdue": "逾期未还",
    "awaiting_inspection": "待检查",
    "in_repair": "维修中",
    "written_off": "已报损",
}
WINDOW_STATES = {"idle": "空闲", "serving": "服务中", "paused": "暂停服务"}


@dataclass
class Reply:
    status: int
    body: str | bytes
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None
    cookie: str | None = None  # a session token to set; "" clears it; None leaves it
    retry_after: int = 0


def redirect(location: str, cookie: str | None = None) -> Reply:
    return Reply(303, "", location=location, cookie=cookie)


@dataclass
class Visitor:
    session: Session
    account: Account
    flash: list[tuple[bool, str]] = field(default_factory=list)


def home(account: Account) -> str:
    if account.role == "window":
        return f"/window/{account.windows[0]}"
    return "/locker" if account.role == "locker" else "/today"


def clock(stamp: object) -> str:
    """HH:MM of an RFC 3339 time (the pages show today's times)."""
    if not isinstance(stamp, str):
        return ""
    try:
        return datetime.fromisoformat(stamp).strftime("%H:%M")
    except ValueError:
        return ""


def minutes(seconds: object) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    return f"{int(seconds // 60)}分{int(seconds % 60):02d}秒"


class Pages:
    def __init__(self, feature: ConsoleFeature) -> None:
        self.feature = feature
        self.hall_name = feature.settings.hall_name
        self.categories = {c.code: c.name for c in feature.settings.queue.categories}
        self.windows = sorted(w.number for w in feature.settings.queue.windows)
        self._login_slot = threading.BoundedSemaphore(1)  # one scrypt at a time: 16 MiB each

    @functools.cached_property
    def env(self) -> Environment:
        """Jinja2 and its templates, loaded for the first page asked for: not on the daemon's way
        to READY (~0.2 s at 1/8 core), nor in the memory of a hall whose console nobody has
        opened yet (~2.5 MiB)."""
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["clock"] = clock
        env.filters["minutes"] = minutes
        env.globals.update(STATE_NAMES=STATE_NAMES, WINDOW_STATES=WINDOW_STATES, ROLE_NAMES=ROLE_NAMES)
        return env

    # -- who is asking --------------------------------------------------------------------

    def visitor(self, token: str | None) -> Visitor | None:
        session = self.feature.sessions.get(token, time.time())
        if session is None:
            return None
        account = self.feature.account(session.account_id)
        if account is None:
            self.feature.sessions.end(session.token)
            return None
        return Visitor(session, account)

    def render(self, name: str, visitor: Visitor | None, status: int = 200, **data: Any) -> Reply:
        flash: list[tuple[bool, str]] = []
        if visitor is not None:
            flash, visitor.session.flash = visitor.session.flash, []
        page = self.env.get_template(name).render(
            hall_name=self.hall_name, visitor=visitor, flash=flash, windows=self.windows, **data
        )
        return Reply(status, page)

    # -- GET ------------------------------------------------------------------------------

    def static(self, name: str) -> Reply:
        if name not in STATIC:
            return Reply(404, "not found", "text/plain; charset=utf-8")
        return Reply(200, (HERE / "static" / name).read_bytes(), STATIC[name])

    def get(self, path: str, token: str | None) -> Reply:
        visitor = self.visitor(token)
        if path == "/login":
            return redirect(home(visitor.account)) if visitor else self.render("login.html", None)
        if visitor is None:
            return redirect("/login")
        if path == "/":
            return redirect(home(visitor.account))
        view = path.strip("/")
        if not self.allowed(view, visitor.account):
            return self.render("denied.html", visitor, 403 if self.known(view) else 404)
        return self.render(f"{view.split('/')[0]}.html", visitor, view=view, live=self._live(view, visitor))

    def known(self, view: str) -> bool:
        match = re.fullmatch(r"window/(\d{1,4})", view)
        return view in ("locker", "today", "device") or bool(match and int(match[1]) in self.windows)

    def allowed(self, view: str, account: Account) -> bool:
        if not self.known(view):
            return False
        if view.startswith("window/"):
            return account.may_call_at(int(view.split("/")[1]))
        if view == "locker":
            return account.may_use_locker
        return True  # today and device: every role may look

    def live(self, view: str, token: str | None) -> str | None:
        """The live part of ``view`` for the event stream; None when it may not be seen (any more)."""
        visitor = self.visitor(token)
        if visitor is None or not self.allowed(view, visitor.account):
            return None
        return self._live(view, visitor)

    def _live(self, view: str, visitor: Visitor) -> str:
        from edge.console.feature import CoreBusy

        kind = view.split("/", maxsplit=1)[0]
        try:
            data = getattr(self, f"_{kind}_data")(view)
        except CoreBusy:
            return '<p class="error">控制器未响应，请稍候</p>'
        return self.env.get_template(f"{kind}_live.html").render(
            visitor=visitor, csrf=visitor.session.csrf, view=view, categories=self.categories,
            windows=self.windows, **data,
        )  # fmt: skip

    def _window_data(self, view: str) -> dict[str, Any]:
        window = int(view.split("/")[1])
        status = self.feature.read("queue.status", {"window": window})
        mine = None
        if status is not None:
            mine = next((w for w in status.get("windows", []) if w.get("window") == window), None)
        return {"window": window, "status": status, "mine": mine}

    def _locker_data(self, _view: str) -> dict[str, Any]:
        return {"locker": self.feature.read("locker.status")}

    def _today_data(self, _view: str) -> dict[str, Any]:
        report = self.feature.read("queue.report")
        totals = day_totals(report) if report else None
        chart = day_chart(report.get("hours", {})) if report else ""
        locker = self.feature.read("locker.status")
        return {"report": report, "totals": totals, "chart": chart, "locker": locker}

    def _device_data(self, _view: str) -> dict[str, Any]:
        return {"status": self.feature.read("status")}

    # -- POST -----------------------------------------------------------------------------

    def post(self, path: str, form: dict[str, str], token: str | None, client: str) -> Reply:
        if path == "/login":
            return self.login(form, client)
        visitor = self.visitor(token)
        if visitor is None:
            return redirect("/login")
        if not visitor.session.csrf_ok(form.get("csrf", "")):
            log.warning("console: a form without its CSRF token from %s (%s)", client, visitor.account.id)
            return Reply(403, "<h1>403</h1>表单已失效，请返回重新操作")
        if path == "/logout":
            self.feature.sessions.end(visitor.session.token)
            return redirect("/login", cookie="")
        if any(len(value) > INPUT_MAX for value in form.values()):
            return self._flash_back(visitor, path, False, f"输入过长（最多 {INPUT_MAX} 字）")
        match = re.fullmatch(r"/window/(\d{1,4})/(\w+)", path)
        if match and match[2] in WINDOW_ACTIONS and int(match[1]) in self.windows:
            window = int(match[1])
            if not visitor.account.may_call_at(window):
                log.warning("console: %s may not act for window %d", visitor.account.id, window)
                return self.render("denied.html", visitor, 403)
            args = window_args(window, match[2], form)
            return self._do(visitor, f"queue.{match[2]}", args, f"/window/{window}")
        match = re.fullmatch(r"/locker/(\w+)", path)
        if match and match[1] in LOCKER_ACTIONS:
            if not visitor.account.may_use_locker:
                return self.render("denied.html", visitor, 403)
            return self._do(visitor, f"locker.{match[1]}", locker_args(form), "/locker")
        return self.render("denied.html", visitor, 404)

    def _do(self, visitor: Visitor, name: str, args: dict[str, Any], back: str) -> Reply:
        from edge.console.feature import CoreBusy

        try:
            answer = self.feature.act(visitor.account, name, args)
        except CoreBusy:
            return self._flash_back(visitor, back, False, ERRORS["busy"])
        action = name.split(".", 1)[1]
        if answer.get("ok"):
            result = answer.get("result") or {}
            if action == "call" and not result.get("ticket"):
                return self._flash_back(visitor, back, True, ERRORS["nobody_waiting"])
            facts = {"ticket": "", "tool_id": args.get("tool_id", ""), **result}
            return self._flash_back(visitor, back, True, DONE[action].format_map(_Blank(facts)))
        error = answer.get("error") or {}
        text = ERRORS.get(str(error.get("code")), "")
        detail = str(error.get("message", ""))
        return self._flash_back(visitor, back, False, f"{text}（{detail}）" if text else f"未完成：{detail}")

    def _flash_back(self, visitor: Visitor, back: str, ok: bool, text: str) -> Reply:
        visitor.session.flash.append((ok, text[:FLASH_MAX]))
        return redirect(back)

    def login(self, form: dict[str, str], client: str) -> Reply:
        user, password = form.get("user", "").strip().lower()[:64], form.get("password", "")[:256]
        keys = (f"user:{user}", f"ip:{client}")
        lockout = self.feature.lockout
        wait_s = lockout.wait_s(*keys)
        if wait_s > 0:
            reply = self.render("login.html", None, 429, error=f"尝试次数过多，请 {int(wait_s) + 1} 秒后再试")
            reply.retry_after = int(wait_s) + 1
            return reply
        account = self.feature.account(user)
        with self._login_slot:
            good = check_password(password, account.password_hash if account else _dummy_hash())
        if account is None or not good:
            lockout.failed(*keys)
            log.warning("console: wrong name or password for %r from %s", user, client)
            return self.render("login.html", None, 401, error="用户名或密码错误", user=user)
        lockout.succeeded(*keys)
        ends = datetime.fromtimestamp(self.feature.new_session_end())
        session = self.feature.sessions.create(account.id, ends)
        log.info("console: %s logged in from %s until %s", account.id, client, ends.strftime("%H:%M"))
        return redirect(home(account), cookie=session.token)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def window_args(window: int, action: str, form: dict[str, str]) -> dict[str, Any]:
    args: dict[str, Any] = {"window": window}
    if action in ("recall", "bring_back") and form.get("ticket"):
        args["ticket"] = form["ticket"]
    if action == "transfer":
        target = form.get("target", "")
        if target.startswith("window:") and target[len("window:") :].isdigit():
            args["to_window"] = int(target[len("window:") :])
        elif target.startswith("category:"):
            args["category"] = target[len("category:") :]
    return args


def locker_args(form: dict[str, str]) -> dict[str, Any]:
    args: dict[str, Any] = {"tool_id": form.get("tool_id", "")}
    if form.get("note"):
        args["note"] = form["note"]
    if "result" in form:
        args["result"] = form["result"]
    return args


def day_totals(report: dict[str, Any]) -> dict[str, Any]:
    """The hall's figures of the day: the sums over its services, as the daily report counts."""
    categories = report.get("categories", {})
    totals: dict[str, Any] = {
        key: sum(int(c.get(key) or 0) for c in categories.values())
        for key in ("issued", "called", "served", "no_show", "transferred")
    }
    waits = [c.get("wait_s") or {} for c in categories.values()]
    n = sum(int(w.get("n") or 0) for w in waits)
    totals["wait_mean_s"] = sum((w.get("mean") or 0) * (w.get("n") or 0) for w in waits) / n if n else None
    ratings: dict[str, int] = {}
    for figures in categories.values():
        for level, count in (figures.get("ratings") or {}).items():
            ratings[level] = ratings.get(level, 0) + int(count or 0)
    totals["ratings"] = ratings
    return totals
