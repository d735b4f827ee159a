"""The console's HTTP server: stdlib ``ThreadingHTTPServer``, a thread per connection.

A handful of tablets on the hall LAN, each with one live page (server-sent events) open: a
thread per connection is the simplest server that serves that, and it adds no dependency.
This module knows HTTP (cookies, CSRF, limits, headers, TLS, the event stream); ``Pages``
(``edge.console.pages``) knows what each page shows and what each button does.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edge.console.pages import Pages, Reply

log = logging.getLogger(__name__)

COOKIE = "hall_console"
BODY_MAX = 16 * 1024  # a form post: a note of 500 characters is far less
IDLE_TIMEOUT_S = 30.0  # a connection that sends nothing for this long is closed (slow clients)
KEEPALIVE_S = 15.0  # the event stream says something at least this often
SECURITY_HEADERS = {
    # Our own script and styles only: a job title or a note that got through as markup could
    # still not run anything.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send Origin: null
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], pages: Pages, tls: ssl.SSLContext | None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.pages = pages
        self.tls = tls
        super().__init__(address, Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"{'https' if self.tls else 'http'}://{shown}:{port}/"

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.settimeout(IDLE_TIMEOUT_S)
        if self.tls is not None:
            # The handshake happens in the connection's own thread, at its first read: a client
            # that stalls it holds up nobody else.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="console-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    protocol_version = "HTTP/1.1"
    server_version = "hall-console"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S

    # -- plumbing ---------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("console %s " + format, self.client_address[0], *args)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.debug("console connection from %s: %s", self.client_address[0], exc)
            self.close_connection = True

    @property
    def pages(self) -> Pages:
        return self.server.pages

    def _token(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        try:
            cookie = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel else None

    def _send(self, reply: Reply) -> None:
        body = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if reply.location:
            self.send_header("Location", reply.location)
        if reply.cookie is not None:
            self.send_header("Set-Cookie", self._cookie(reply.cookie))
        if reply.retry_after:
            self.send_header("Retry-After", str(reply.retry_after))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _cookie(self, token: str) -> str:
        secure = "; Secure" if self.server.tls is not None else ""
        if not token:
            return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
        return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"

    def _same_origin(self) -> bool:
        """A browser names the page a form came from: it must be this server's."""
        origin = self.headers.get("Origin")
        if origin is None or origin == "null":
            return origin is None
        host = self.headers.get("Host", "")
        scheme = "https" if self.server.tls is not None else "http"
        return origin == f"{scheme}://{host}"

    def _form(self) -> dict[str, str] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > BODY_MAX:
            return None
        raw = self.rfile.read(length)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        try:
            fields = parse_qs(text, keep_blank_values=True, max_num_fields=20)
        except ValueError:
            return None
        return {key: values[0] for key, values in fields.items()}

    # -- methods ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/static/"):
            self._send(self.pages.static(url.path[len("/static/") :]))
            return
        if url.path == "/events":
            self._events(parse_qs(url.query).get("view", [""])[0])
            return
        self._send(self.pages.get(url.path, self._token()))

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if int(self.headers.get("Content-Length") or 0) > BODY_MAX:
            self.close_connection = True  # the body is not read: the connection cannot go on
            self._send(Reply(413, "<h1>413</h1>内容太长"))
            return
        form = self._form()
        if form is None:
            self._send(Reply(400, "<h1>400</h1>无法读取表单"))
            return
        if not self._same_origin():
            self._send(Reply(403, "<h1>403</h1>请求来源不符"))
            return
        self._send(self.pages.post(path, form, self._token(), self.client_address[0]))

    # -- server-sent events -------------------------------------------------------------

    def _events(self, view: str) -> None:
        token = self._token()
        first = self.pages.live(view, token)
        if first is None:
            self._send(Reply(403, "<h1>403</h1>请先登录"))
            return
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Connection", "close")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        changes = self.pages.feature.changes
        seen, sent = changes.version, ""
        fragment: str | None = first
        try:
            while fragment is not None and not changes.closed:
                if fragment != sent:
                    self._event("live", fragment)
                    sent = fragment
                else:
                    self.wfile.write(b": still here\n\n")
                    self.wfile.flush()
                seen = changes.wait(seen, KEEPALIVE_S)
                fragment = self.pages.live(view, token)
            self._event("end", "")  # logged out, session over, or the daemon stopping
        except (OSError, ssl.SSLError):
            return  # the tablet went away

    def _event(self, name: str, data: str) -> None:
        lines = "".join(f"data: {line}\n" for line in data.split("\n"))
        self.wfile.write(f"event: {name}\n{lines}\n".encode())
        self.wfile.flush()
