"""The demo's control socket: ``hall-sim press A`` talks to a running ``hall-sim demo``.

One JSON object per line each way over a unix stream socket:

    request   {"verb": "press", "args": ["A"], "cwd": "/home/me"}
    response  {"ok": true, "result": ...}  or  {"ok": false, "error": "no category 'Z' (A, B, C)"}

The server holds a table of verbs (name -> handler, usage, help); a handler
takes the argument words and returns something JSON can carry, or raises
``ControlError`` with a message for the person at the keyboard.  Any other
failure in a handler is reported the same way and the server keeps running.

The client finds the demo from ``--data DIR``, else ``$HALLSIM_DATA``, else
the folder of the most recent demo (recorded in ``/tmp/hall-sim-last``), and
reads the socket path from ``DIR/sim.json``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hallsim.listener import UnixListener

log = logging.getLogger(__name__)

LAST_DEMO = Path(tempfile.gettempdir()) / "hall-sim-last"
ENV_DATA = "HALLSIM_DATA"
SIM_JSON = "sim.json"


class ControlError(Exception):
    """A request that cannot be carried out; the message is shown to the user as it is."""


@dataclass(frozen=True)
class Verb:
    handler: Callable[[list[str]], Any]
    usage: str
    help: str


@dataclass(frozen=True)
class Request:
    verb: str
    args: list[str]
    cwd: str

    def path(self, word: str) -> Path:
        """A path the user typed, relative to the directory they typed it in."""
        return Path(self.cwd, word).resolve()


# ---- server (in the demo process) ---------------------------------------------


class ControlServer:
    def __init__(self, socket_path: str | Path, verbs: dict[str, Verb]) -> None:
        self.socket_path = str(socket_path)
        self.verbs = verbs
        self.current: Request | None = None  # the request being handled (for handlers that need cwd)
        self._listener = UnixListener(self.socket_path, self._serve, "control", backlog=8)
        self._lock = threading.Lock()  # one request at a time: the simulation is not re-entrant

    def start(self) -> ControlServer:
        self._listener.start()
        return self

    def stop(self) -> None:
        self._listener.stop()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                response = self.handle_line(line)
                stream.write(json.dumps(response, ensure_ascii=False).encode() + b"\n")
                stream.flush()

    def handle_line(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
            request = Request(str(message["verb"]), [str(a) for a in message.get("args", [])], message["cwd"])
        except (ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": f"malformed request: {exc}"}
        return self.handle(request)

    def handle(self, request: Request) -> dict[str, Any]:
        verb = self.verbs.get(request.verb)
        if verb is None:
            return {
                "ok": False,
                "error": f"unknown verb {request.verb!r}; try: {', '.join(sorted(self.verbs))}",
            }
        with self._lock:
            self.current = request
            try:
                return {"ok": True, "result": verb.handler(request.args)}
            except ControlError as exc:
                return {"ok": False, "error": f"{exc}\nusage: hall-sim {verb.usage}"}
            except Exception as exc:
                log.exception("control verb %s failed", request.verb)
                return {"ok": False, "error": f"{request.verb} failed: {type(exc).__name__}: {exc}"}
            finally:
                self.current = None


# ---- client (hall-sim <verb> ...) -------------------------------------------------


def find_data_dir(data: str | None) -> Path:
    """--data DIR, else $HALLSIM_DATA, else the last demo's folder."""
    if data:
        return Path(data).resolve()
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA]).resolve()
    try:
        return Path(LAST_DEMO.read_text().strip())
    except OSError:
        raise ControlError(
            "no running demo found: start one with `hall-sim demo`, or pass --data DIR"
        ) from None


def load_sim(data_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((data_dir / SIM_JSON).read_text())
    except FileNotFoundError:
        raise ControlError(
            f"{data_dir / SIM_JSON} does not exist: is `hall-sim demo` running there?"
        ) from None
    except ValueError as exc:
        raise ControlError(f"{data_dir / SIM_JSON} is not valid JSON: {exc}") from None


def request(socket_path: str, verb: str, args: list[str], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running demo and return its response."""
    message = {"verb": verb, "args": args, "cwd": os.getcwd()}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError as exc:
            raise ControlError(
                f"cannot reach the demo at {socket_path} ({exc.strerror}): has it stopped?"
            ) from None
        sock.sendall(json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as stream:
            line = stream.readline()
    if not line:
        raise ControlError("the demo closed the connection without an answer")
    return json.loads(line)
