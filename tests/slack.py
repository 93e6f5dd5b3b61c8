"""A stand-in for Slack's incoming webhooks: a real HTTP server on 127.0.0.1 (in a thread) that records every
POST and answers as told — 200 ``ok``, another status, or nothing until released (a hung webhook)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class SlackStandIn:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []  # each POST's JSON body, in order
        self.paths: list[str] = []
        self.status = 200
        self.hang = threading.Event()  # set: requests wait (without answering) until `release` is set
        self.release = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                stand_in.paths.append(self.path)
                stand_in.received.append(json.loads(body))
                if stand_in.hang.is_set():
                    stand_in.release.wait(30)
                    return
                answer = b"ok" if stand_in.status == 200 else b"invalid_payload"
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: no request lines on stderr
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The webhook URL, shaped like Slack's (its path is the secret part)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/s3cr3tXYZtoken"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
