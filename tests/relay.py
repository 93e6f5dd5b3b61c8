"""A TCP relay on loopback in front of the MariaDB server, for the one case the real server cannot show: a server
that stops answering new connections (an overloaded Aurora) while a query runs on an existing one.

A stand-in at the network edge only: bytes are passed through unchanged in both directions; ``mute_new()`` makes
every connection accepted after it hang without a byte, as a server that no longer answers would.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from types import TracebackType
from typing import Self


class Relay:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._muted = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def mute_new(self) -> None:
        """Connections accepted from now on get no answer (they are held open, silent)."""
        self._muted.set()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.accepted += 1
                self._sockets.append(client)
            if self._muted.is_set():
                continue  # held open, never answered
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets.append(server)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    def __enter__(self) -> Self:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
    finally:
        for sock in (source, target):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
