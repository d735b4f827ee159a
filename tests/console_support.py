"""A hall with the staff console on a free loopback port, and a small HTTP client for it
(cookies, the CSRF token of the last page, no automatic redirects): what a browser does, in bytes."""

from __future__ import annotations

import http.client
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from hallsim.broker import free_port

from edge.protocol import hash_password

QUEUE = {
    "enabled": True,
    "windows": [{"number": 1}, {"number": 2}],
}
PASSWORDS = {"w1": "window-one-pw", "w2": "window-two-pw", "lk": "locker-pw", "sup": "supervisor-pw"}
ACCOUNTS = {
    "w1": {"name": "一号窗口 张三", "role": "window", "windows": [1]},
    "w2": {"name": "二号窗口 李四", "role": "window", "windows": [2]},
    "lk": {"name": "工具柜 王五", "role": "locker", "windows": []},
    "sup": {"name": "主管 赵六", "role": "supervisor", "windows": []},
}


def console_overrides(**more: Any) -> dict[str, Any]:
    console = {"enabled": True, "listen": ["127.0.0.1"], "port": free_port(), "plain_http": ["127.0.0.1"]}
    return {"queue": QUEUE, "console": {**console, **more}}


def add_accounts(hall: Any, *ids: str) -> None:
    """Set accounts as bureau IT would, through the console.account command's handler."""
    for account_id in ids or tuple(ACCOUNTS):
        args = {"action": "set", "id": account_id, **ACCOUNTS[account_id]}
        hall.command("console.account", {**args, "password_hash": hash_password(PASSWORDS[account_id])})


def console_url(hall: Any) -> str:
    return str(hall.feature("console").servers[0].url)


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


@dataclass
class Client:
    url: str
    cookie: str = ""
    csrf: str = ""
    origin: str | None = None  # the Origin header to send on a POST (a browser sends its own)
    pages: list[Page] = field(default_factory=list)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Page:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
        try:
            sent = {"Host": parts.netloc, **(headers or {})}
            if self.cookie:
                sent["Cookie"] = self.cookie
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            page = Page(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
            )
        finally:
            conn.close()
        cookie = page.headers.get("set-cookie", "")
        if cookie:
            value = cookie.split(";", 1)[0]
            self.cookie = "" if value.endswith("=") else value
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        if token:
            self.csrf = token[1]
        self.pages.append(page)
        return page

    def get(self, path: str) -> Page:
        return self.request("GET", path)

    def stream(self, path: str) -> EventStream:
        return open_stream(self, path)

    def post(self, path: str, form: dict[str, Any] | None = None, csrf: bool = True) -> Page:
        fields = dict(form or {})
        if csrf:
            fields.setdefault("csrf", self.csrf)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.origin is not None:
            headers["Origin"] = self.origin
        return self.request("POST", path, urlencode(fields).encode(), headers)

    def login(self, user: str, password: str | None = None) -> Page:
        return self.post(
            "/login",
            {"user": user, "password": PASSWORDS[user] if password is None else password},
            csrf=False,
        )

    def act(self, path: str, form: dict[str, Any] | None = None) -> str:
        """Press a button: post it, follow the redirect, return the message shown."""
        page = self.post(path, form)
        assert page.status == 303, (page.status, page.text[:300])
        shown = self.get(page.location)
        flash = re.search(r'<p class="flash [a-z]+" id="flash">(.*?)</p>', shown.text, re.S)
        return flash[1] if flash else ""


class EventStream:
    """An open ``/events`` stream: ``next_event()`` reads up to the next event (name, data)."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.conn, self.response = conn, response

    def next_event(self, match: Any = None, timeout: float = 15.0) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        name, data = "", []
        while time.monotonic() < deadline:
            line = self.response.fp.readline().decode()
            if not line:
                raise AssertionError("the event stream ended")
            line = line.rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
            elif line == "" and name:
                event = (name, "\n".join(data))
                if match is None or match(event):
                    return event
                name, data = "", []
        raise AssertionError(f"no such event within {timeout} s")

    def close(self) -> None:
        self.conn.close()


def open_stream(client: Client, path: str) -> EventStream:
    parts = urlsplit(client.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
    conn.request("GET", path, headers={"Cookie": client.cookie})
    response = conn.getresponse()
    assert response.status == 200, response.status
    return EventStream(conn, response)
