"""A real moto server on loopback, so S3 code is tested over HTTP exactly as boto3 talks to AWS."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import botocore.awsrequest

# Loopback only: never let an HTTP(S)_PROXY from the environment route test traffic elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later; a clash makes start() retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MotoServer:
    """``python -m moto.server`` as a subprocess: one per test session, shared by every S3 test."""

    def __init__(self) -> None:
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        # The server logs every request: a pipe nobody reads would fill up and block it. Closed in __exit__.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0, attempts: int = 3) -> None:
        for _ in range(attempts):
            self.port = free_port()
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
            self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
            if self._wait_ready(timeout):
                return
            self.stop()
        self._log.seek(0)
        output = self._log.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"moto server did not start after {attempts} attempts:\n{output}")

    def _wait_ready(self, timeout: float) -> bool:
        """Poll until the server answers; False as soon as it exits (a port clash) or the deadline passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with _OPENER.open(f"{self.endpoint}/moto-api/", timeout=1):
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        return False

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with _OPENER.open(request, timeout=10):
            pass

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

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
        self._log.close()


class _Body:
    """The ``raw`` of a botocore AWSResponse: something with ``stream()``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
    b"<RequestId>TEST</RequestId></Error>"
)


def refuse_upload_part(client: Any, *, nth: int) -> list[int]:
    """Make S3 answer the ``nth`` UploadPart of ``client`` with 403 AccessDenied (not retried by botocore).

    A stand-in at the network edge: botocore's own event hook replaces the HTTP response, nothing of ours is
    touched. Returns the list that counts UploadPart calls.
    """
    calls: list[int] = []

    def respond(request: botocore.awsrequest.AWSPreparedRequest, **_: Any) -> Any:
        calls.append(1)
        if len(calls) == nth:
            headers = {"Content-Type": "application/xml"}
            return botocore.awsrequest.AWSResponse(request.url, 403, headers, _Body(ACCESS_DENIED))
        return None

    client.meta.events.register("before-send.s3.UploadPart", respond)
    return calls
