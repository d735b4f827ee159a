"""A unix stream socket that serves each connection on its own thread (the control socket, the pin board)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path


class UnixListener:
    """Listens at ``path`` (a stale socket file there is replaced) and hands each connection to ``serve``."""

    def __init__(
        self, path: str | Path, serve: Callable[[socket.socket], None], name: str, backlog: int
    ) -> None:
        self.path = str(path)
        self.serve = serve
        self.name = name
        self.backlog = backlog
        self.connections: list[socket.socket] = []  # accepted and still being served
        self._server: socket.socket | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.path)
        server.listen(self.backlog)
        self._server = server
        threading.Thread(target=self._accept, name=f"{self.name}-accept", daemon=True).start()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        """No more connections; the socket file is removed (connections in hand stay open)."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _accept(self) -> None:
        server = self._server
        while server is not None:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), name=f"{self.name}-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        finally:
            with contextlib.suppress(ValueError):
                self.connections.remove(conn)
