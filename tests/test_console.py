"""The staff console over HTTP: who may use it, what each button does, and bad input."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from console_support import ACCOUNTS, PASSWORDS, Client, add_accounts, console_overrides, console_url
from support import make_config

from edge.config import ConfigError
from edge.console.sessions import FREE_FAILURES, LOCKOUT_MAX_S, Lockout, session_end

FEATURES = ["commands", "tickets", "console"]


@pytest.fixture
def hall(make_hall):
    hall = make_hall(FEATURES, console_overrides())
    add_accounts(hall)
    return hall


def issue(hall, *categories: str) -> list[str]:
    tickets = hall.feature("tickets")
    return [hall.on_core(lambda c=c: tickets.issue(c)) for c in categories]


def called(hall) -> list[str]:
    return [d["ticket"] for d in hall.data("ticket.called")]


def test_nothing_is_reachable_without_a_session(hall):
    client = Client(console_url(hall))
    issue(hall, "A")
    for path in ("/", "/window/1", "/locker", "/today", "/device"):
        page = client.get(path)
        assert (page.status, page.location) == (303, "/login"), path
    assert client.get("/events?view=window/1").status == 403
    page = client.post("/window/1/call", {"csrf": "guessed"})
    assert (page.status, page.location) == (303, "/login")
    assert called(hall) == []
    login = client.get("/login")
    assert login.status == 200 and "工作人员登录" in login.text


def test_no_account_no_login(make_hall):
    hall = make_hall(FEATURES, console_overrides())
    client = Client(console_url(hall))
    for user, password in (("admin", "admin"), ("", ""), ("w1", PASSWORDS["w1"])):
        assert client.login(user, password).status == 401
    assert client.cookie == ""


def test_a_call_from_the_console_is_the_window_key_audited_with_the_staff_id(hall):
    issue(hall, "A", "A")
    client = Client(console_url(hall))
    page = client.login("w1")
    assert (page.status, page.location) == (303, "/window/1")
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP
    client.get("/window/1")
    assert client.act("/window/1/call") == "已呼叫 A001"
    assert called(hall) == ["A001"]
    audit = hall.wait_event("audit.command")
    assert audit[-1] == {"id": audit[-1]["id"], "name": "queue.call", "issuer": "console:w1", "ok": True}
    assert client.act("/window/1/finish") == "已办结 A001，请群众评价"
    message = client.act("/window/1/skip")
    assert message.startswith("当前没有正在办理的号"), message
    assert [a["ok"] for a in hall.data("audit.command")][-1] is False


def test_a_form_without_the_session_token_is_refused(hall):
    issue(hall, "A")
    client = Client(console_url(hall))
    client.login("w1")
    client.get("/window/1")
    assert client.post("/window/1/call", csrf=False).status == 403
    assert client.post("/window/1/call", {"csrf": "x" * 43}).status == 403
    other = Client(console_url(hall))
    other.login("sup")
    other.get("/today")
    assert client.post("/window/1/call", {"csrf": other.csrf}).status == 403  # another session's token
    client.origin = "http://evil.example"
    assert client.post("/window/1/call").status == 403  # right token, posted from another site
    assert called(hall) == []


def test_wrong_passwords_lock_the_name_out_even_for_the_right_one(hall):
    client = Client(console_url(hall))
    for _ in range(FREE_FAILURES):
        assert client.login("w1", "guess").status == 401
    assert client.login("w1", "guess").status == 401  # the one that starts the lockout
    locked = client.login("w1")
    assert locked.status == 429 and "秒后再试" in locked.text
    assert int(locked.headers["retry-after"]) >= 1
    assert client.cookie == ""


def test_lockout_doubles_up_to_its_cap_and_a_success_clears_it():
    now = [0.0]
    lockout = Lockout(lambda: now[0])
    for _ in range(FREE_FAILURES):
        lockout.failed("user:a")
    assert lockout.wait_s("user:a") == 0
    waits = []
    for _ in range(8):
        lockout.failed("user:a")
        waits.append(lockout.wait_s("user:a"))
    assert waits[:3] == [30.0, 60.0, 120.0] and waits[-1] == LOCKOUT_MAX_S
    assert lockout.wait_s("user:b") == 0
    lockout.succeeded("user:a")
    assert lockout.wait_s("user:a") == 0


def test_a_window_account_cannot_act_for_another_window(hall):
    issue(hall, "A")
    client = Client(console_url(hall))
    client.login("w1")
    client.get("/window/1")
    assert client.get("/window/2").status == 403
    assert client.post("/window/2/call").status == 403
    assert client.get("/locker").status == 403
    assert client.get("/events?view=window/2").status == 403
    assert called(hall) == []
    supervisor = Client(console_url(hall))
    supervisor.login("sup")
    supervisor.get("/today")
    assert supervisor.act("/window/2/call") == "已呼叫 A001"


def test_markup_from_accounts_and_inputs_is_shown_as_text(hall):
    script = "<script>alert(1)</script>"
    hall.command(
        "console.account",
        {"id": "x1", "name": script, "role": "supervisor", "windows": [],
         "password_hash": hash_of("pw-x1")},
    )  # fmt: skip
    client = Client(console_url(hall))
    client.login("x1", "pw-x1")
    page = client.get("/today")
    assert script not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    message = client.act("/window/1/recall", {"ticket": '<img src=x onerror="alert(1)">'})
    assert "<img" not in message and "&lt;img" in message
    assert "script-src 'self'" in page.headers["content-security-policy"]


def hash_of(password: str) -> str:
    from edge.protocol import hash_password

    return hash_password(password)


def test_very_long_inputs_are_refused_clearly_and_nothing_breaks(hall):
    client = Client(console_url(hall))
    assert client.post("/login", {"user": "w1", "password": "p" * 100_000}, csrf=False).status == 413
    client.login("w1")
    client.get("/window/1")
    message = client.act("/window/1/recall", {"ticket": "A" * 600})
    assert message.startswith("输入过长")
    message = client.act("/window/1/recall", {"ticket": "A" * 300})
    assert "输入有误" in message or "未完成" in message or "没有这个号" in message, message
    assert client.get("/window/1").status == 200
    assert client.request("GET", "/window/" + "9" * 5000).status in (303, 404, 414)


def test_two_staff_pressing_call_at_the_same_moment_get_two_different_tickets(hall):
    issue(hall, "A", "A", "A")
    one, two = Client(console_url(hall)), Client(console_url(hall))
    one.login("w1")
    one.get("/window/1")
    two.login("w2")
    two.get("/window/2")
    start = threading.Barrier(2)
    messages: dict[str, str] = {}

    def press(name: str, client: Client, window: int) -> None:
        start.wait()
        messages[name] = client.act(f"/window/{window}/call")

    threads = [threading.Thread(target=press, args=a) for a in (("one", one, 1), ("two", two, 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(messages.values()) == ["已呼叫 A001", "已呼叫 A002"]
    assert sorted(called(hall)) == ["A001", "A002"]
    issuers = sorted(a["issuer"] for a in hall.data("audit.command") if a["name"] == "queue.call")
    assert issuers == ["console:w1", "console:w2"]


def test_logout_and_a_removed_account_end_the_session(hall):
    client = Client(console_url(hall))
    client.login("w1")
    client.get("/window/1")
    page = client.post("/logout")
    assert (page.status, page.location) == (303, "/login") and client.cookie == ""
    assert client.get("/window/1").location == "/login"
    client.login("w2")
    assert client.get("/window/2").status == 200
    hall.command("console.account", {"action": "remove", "id": "w2"})
    assert client.get("/window/2").location == "/login"
    assert client.login("w2").status == 401


def test_the_page_updates_live_through_server_sent_events(hall):
    issue(hall, "A")
    client = Client(console_url(hall))
    client.login("sup")
    stream = client.stream("/events?view=today")
    first = stream.next_event()
    assert first[0] == "live" and 'id="issued">1<' in first[1]
    issue(hall, "B")
    assert 'id="issued">2<' in stream.next_event(lambda e: 'id="issued">2<' in e[1])[1]
    stream.close()


def test_sessions_end_at_closing_time():
    zone = ZoneInfo("Asia/Shanghai")
    morning = datetime(2026, 11, 30, 8, 30, tzinfo=zone)
    assert session_end(morning, "18:00") == datetime(2026, 11, 30, 18, 0, tzinfo=zone)
    late = datetime(2026, 11, 30, 19, 0, tzinfo=zone)
    assert session_end(late, "18:00") == datetime(2026, 12, 1, 9, 0, tzinfo=zone)  # at most 14 h


def test_the_console_account_command_checks_what_it_is_given(hall):
    from edge.core import CommandError

    good = {"id": "w9", "name": "x", "role": "window", "windows": [1], "password_hash": hash_of("pw")}
    for bad in (
        {"id": "W 9"},
        {"role": "boss"},
        {"windows": [7]},
        {"windows": []},
        {"password_hash": "plaintext-password"},
        {"name": "x" * 41},
    ):
        with pytest.raises(CommandError) as caught:
            hall.command("console.account", {**good, **bad})
        assert caught.value.code == "bad_arguments", bad
    assert set(hall.feature("console").accounts.by_id) == set(ACCOUNTS)


def test_the_config_allows_plain_http_only_on_named_addresses(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, {"console": {"enabled": True, "listen": ["192.168.1.20"]}})
    assert "console.plain_http" in str(caught.value.errors)
    with pytest.raises(ConfigError) as caught:
        make_config(
            tmp_path, {"console": {"enabled": True, "listen": ["0.0.0.0"], "plain_http": ["0.0.0.0"]}}
        )
    assert "every address" in str(caught.value.errors)
    with pytest.raises(ConfigError):
        make_config(
            tmp_path, {"console": {"enabled": True, "listen": ["hall.local"], "plain_http": ["hall.local"]}}
        )
    cfg = make_config(
        tmp_path, {"console": {"enabled": True, "listen": ["192.168.1.20"], "plain_http": ["192.168.1.20"]}}
    )
    assert cfg.console.listen == ("192.168.1.20",)
    assert re.fullmatch(r"\d\d:\d\d", cfg.queue.closing_at)


def plain(address: str) -> dict:
    return {"enabled": True, "listen": [address], "plain_http": [address]}


MARKUP_TITLE = "<script>alert(1)</script>"
MARKUP_TEXT = "<b>x</b>"


def test_markup_in_the_platforms_jobs_and_notices_is_text_on_the_device_page(make_hall, broker):
    """The device page shows what the LED screen shows: platform text, escaped, never markup."""
    from link_support import Watcher, unique_site
    from support import JOB, signed_snapshot, wait_for

    site = unique_site()
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    later = (now + timedelta(days=1)).isoformat(timespec="seconds")
    job = {**JOB, "title": MARKUP_TITLE, "employer": MARKUP_TEXT, "expires_at": later,
           "posted_at": now.isoformat(timespec="seconds"), "starts_at": later}  # fmt: skip
    stamp = now.isoformat(timespec="seconds")
    earlier = (now - timedelta(hours=1)).isoformat(timespec="seconds")
    notice = {"id": "N1", "text": f"{MARKUP_TITLE} {MARKUP_TEXT}", "starts_at": earlier, "ends_at": later}
    platform = Watcher(broker.port, site)
    try:
        jobs = {"schema": "lgsc.jobs/1", "generated_at": stamp, "jobs": [job]}
        notices = {"schema": "lgsc.notices/1", "generated_at": stamp, "notices": [notice]}
        platform.publish(f"lgsc/v1/{site}/jobs", signed_snapshot(jobs, site), retain=True)
        platform.publish(f"lgsc/v1/{site}/notices", signed_snapshot(notices, site), retain=True)
        all_day = {"open_from": "00:00", "open_until": "00:00", "night_from": "00:00", "night_until": "00:00"}
        hall = make_hall(
            ["commands", "link", "display", "console"],
            {**console_overrides(), "mqtt": {"host": "127.0.0.1", "port": broker.port, "tls": False},
             "display": {"enabled": True, "device": "dummy", "page_seconds": 1.0, **all_day}},
            site=site, device="hall-01",
        )  # fmt: skip
        add_accounts(hall, "sup")
        client = Client(console_url(hall))
        client.login("sup")
        seen: list[str] = []

        def shown_both() -> bool:
            seen.append(client.get("/device").text)
            pages = "".join(seen)
            return "&lt;script&gt;" in pages and "&lt;b&gt;x&lt;/b&gt;" in pages

        wait_for(shown_both, 30, "the job's and the notice's markup on the device page, as text")
        for page in seen:
            assert "<script>alert" not in page and "<b>x" not in page, page
        status = hall.on_core(lambda: hall.core.status()["display"])
        assert status["jobs"] == 1 and status["notices"] == 1, status
    finally:
        platform.close()
