"""A real moto server on loopback, so S3 code is tested over HTTP exactly as boto3 talks to AWS."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import botocore.awsrequest

from tests.loopback import OPENER, LoopbackServer


class MotoServer(LoopbackServer):
    """``python -m moto.server``: one per test session, shared by every AWS test."""

    name = "moto server"
    ready_path = "/moto-api/"

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with OPENER.open(request, timeout=10):
            pass


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
