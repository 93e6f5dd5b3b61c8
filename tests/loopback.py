"""A network service the tests start as a subprocess on a free loopback port, and stop at the end.

Used for the stand-ins at the network edge that cannot run in-process: moto's S3/SQS/Secrets Manager server and
the BigQuery emulator. Nothing here ever listens on, or talks to, an address outside 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

# Loopback only: never let an HTTP(S)_PROXY from the environment route test traffic elsewhere.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later; a clash makes start() retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LoopbackServer:
    """Subclasses say how to start the server on a port (:meth:`command`) and which path answers once it is
    ready (``ready_path``)."""

    name = "server"
    ready_path = "/"

    def __init__(self) -> None:
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        # Servers log every request: a pipe nobody reads would fill up and block them. Closed in __exit__.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, port: int) -> Sequence[str]:
        raise NotImplementedError

    def environment(self) -> Mapping[str, str]:
        return os.environ

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        for _ in range(attempts):
            self.port = free_port()
            self._process = subprocess.Popen(
                self.command(self.port), stdout=self._log, stderr=subprocess.STDOUT, env=dict(self.environment())
            )
            if self._wait_ready(timeout):
                return
            self.stop()
        self._log.seek(0)
        output = self._log.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"{self.name} did not start after {attempts} attempts:\n{output}")

    def _wait_ready(self, timeout: float) -> bool:
        """Poll until the server answers; False as soon as it exits (a port clash) or the deadline passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            if self.answers():
                return True
            time.sleep(0.05)
        return False

    def answers(self) -> bool:
        """Whether the server answers yet (an HTTP GET of ``ready_path``; other protocols override it)."""
        try:
            with OPENER.open(self.endpoint + self.ready_path, timeout=1):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
        self._log.close()
