"""The demo's control socket: ``hall-sim press A`` talks to a running ``hall-sim demo``.

One JSON object per line each way over a unix stream socket:

    request   {"verb": "press", "args": ["A"], "cwd": "/home/me"}
    response  {"ok": true, "result": ...}  or  {"ok": false, "error": "no category 'Z' (A, B, C)"}

The server holds a table of verbs (name -> handler, usage, help); a handler
takes the argument words and returns something JSON can carry, or raises
``ControlError`` with a message for the person at the keyboard.  Any other
failure in a handler is reported the same way and the server keeps running.

The client finds the demo by its data folder: ``--data DIR``, else
``$HALLSIM_DATA``, else the user's default folder (``default_data_dir``), and
reads the socket path from ``DIR/sim.json``.  There is no shared pointer to
"the last demo": a verb reaches the demo of the folder it names, and a second
demo in a folder already in use is refused (``claim_data_dir``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hallsim.listener import UnixListener

log = logging.getLogger(__name__)

ENV_DATA = "HALLSIM_DATA"
SIM_JSON = "sim.json"
LOCK_FILE = "demo.lock"


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


def default_data_dir() -> Path:
    """Each user's own demo folder: ``$XDG_STATE_HOME/hall-sim/demo`` (~/.local/state/...)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state, "hall-sim", "demo").resolve()


def find_data_dir(data: str | None) -> Path:
    """--data DIR, else $HALLSIM_DATA, else the user's default folder."""
    if data:
        return Path(data).resolve()
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA]).resolve()
    return default_data_dir()


def _how_to_reach(data_dir: Path) -> str:
    flag = "" if data_dir == default_data_dir() else f" --data {data_dir}"
    return f"`hall-sim{flag} status`, stop it with `hall-sim{flag} stop`"


def claim_data_dir(data_dir: Path) -> int:
    """Hold ``DIR/demo.lock`` for as long as this process lives (the kernel lets go when it
    ends, however it ends); returns the descriptor.  A folder another demo holds is refused,
    with how to reach that demo."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = _demo_pid(data_dir)
        raise ControlError(
            f"another hall-sim demo{f' (pid {pid})' if pid else ''} is running with data in {data_dir}:"
            f" reach it with {_how_to_reach(data_dir)};"
            " or start this one with --data OTHER_DIR"
        ) from None
    return fd


def demo_running(data_dir: Path) -> bool:
    """Whether a demo holds ``data_dir`` now (without taking it)."""
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def other_demo_note(data_dir: Path) -> str | None:
    """A demo in its own folder while the default one runs: say so, and how to reach each."""
    default = default_data_dir()
    if data_dir == default or not demo_running(default):
        return None
    return (
        f"another hall-sim demo is running with data in {default} (reach it with {_how_to_reach(default)});"
        f" verbs reach this one with --data {data_dir}"
    )


def _demo_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        pid = json.loads((data_dir / SIM_JSON).read_text()).get("pid")
        return pid if isinstance(pid, int) else None
    return None


def load_sim(data_dir: Path) -> dict[str, Any]:
    """The running demo's sim.json; a demo that has stopped is said so, with how to start it."""
    try:
        sim: dict[str, Any] = json.loads((data_dir / SIM_JSON).read_text())
        if sim.get("state") == "stopped" and not demo_running(data_dir):
            hint = "" if data_dir == default_data_dir() else f" --data {data_dir}"
            raise ControlError(
                f"the demo in {data_dir} has stopped: start it again with `hall-sim demo{hint}`"
            )
        return sim
    except FileNotFoundError:
        hint = "" if data_dir == default_data_dir() else f" --data {data_dir}"
        raise ControlError(
            f"no running demo found: {data_dir / SIM_JSON} does not exist;"
            f" start one with `hall-sim demo{hint}`, or pass --data DIR of a running one"
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
