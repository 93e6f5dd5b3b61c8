"""Run ``kpi`` in a child process that SIGKILLs itself at one chosen point — a ``kill -9`` at a known moment.

Killing a child from outside at "some point mid-write" races it; this kills it exactly where the test says, so
every run leaves the same debris. The kill is placed at the edge, never in our code: a call of the operating
system (``os.link``, ``os.replace``: how the local lake publishes a file or a manifest) or an HTTP request botocore
is about to send to S3. ``KPI_TEST_KILL`` names the point:

- ``os.link:GLOB`` / ``os.replace:GLOB``: when the process is about to publish a path matching GLOB;
- ``s3:OPERATION:TEXT``: before the first S3 ``OPERATION`` request (``UploadPart``, ``PutObject``…) whose URL
  contains TEXT;
- ``http:before:TEXT`` / ``http:after:TEXT``: before an HTTP request whose body contains TEXT is sent, or as soon
  as its response has arrived (``requests``' ``Session.send``, which the Google clients use) — e.g. a BigQuery
  job insert, by its job id;
- ``duckdb:N:TEXT``: before the N-th statement (from 1) that a DuckDB connection is about to execute whose SQL
  contains TEXT — the library's ``execute``/``executemany``, reached through a wrapper ``duckdb.connect`` returns.

``KPI_TEST_SIGNAL=SIGINT`` sends that signal at the point instead of SIGKILL.

Usage: ``python -m tests.killpoints ARGS…`` runs ``kpi ARGS…`` (from the repository root).
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys
from typing import Any
from urllib.parse import unquote


def _die() -> None:
    """SIGKILL, or the signal ``KPI_TEST_SIGNAL`` names (``SIGINT``: an operator's Ctrl-C at exactly that point;
    the process then goes on, as it would after a real one)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), getattr(signal, os.environ.get("KPI_TEST_SIGNAL", "SIGKILL")))


def install(point: str) -> None:
    kind, _, rest = point.partition(":")
    if kind in ("os.link", "os.replace"):
        name = kind.removeprefix("os.")
        real = getattr(os, name)

        def publish(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
            if fnmatch.fnmatch(os.fspath(dst), rest):
                _die()
            return real(src, dst, *args, **kwargs)

        setattr(os, name, publish)
        return
    if kind == "s3":
        import boto3

        operation, _, text = rest.partition(":")

        def before_send(request: Any, **_: Any) -> None:
            if text in unquote(request.url):  # keys travel URL-encoded (`=` as %3D)
                _die()

        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register(f"before-send.s3.{operation}", before_send)
        return
    if kind == "http":
        import requests

        when, _, text = rest.partition(":")
        send = requests.Session.send

        def send_or_die(session: Any, request: Any, **kwargs: Any) -> Any:
            body = request.body or b""
            hit = text.encode() in (body.encode() if isinstance(body, str) else body)
            if hit and when == "before":
                _die()
            response = send(session, request, **kwargs)
            if hit and when == "after":
                _die()
            return response

        setattr(requests.Session, "send", send_or_die)  # noqa: B010 (mypy: the method's own signature differs)
        return
    if kind == "duckdb":
        import duckdb

        count, _, text = rest.partition(":")
        seen = [0]
        connect = duckdb.connect

        class Connection:
            """DuckDB's connection, but for the one statement where the process dies."""

            def __init__(self, real: Any) -> None:
                self._real = real

            def _before(self, sql: str) -> None:
                if text in sql:
                    seen[0] += 1
                    if seen[0] == int(count):
                        _die()

            def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
                self._before(sql)
                return self._real.execute(sql, *args, **kwargs)

            def executemany(self, sql: str, *args: Any, **kwargs: Any) -> Any:
                self._before(sql)
                return self._real.executemany(sql, *args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._real, name)

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                self._real.close()

        def connect_killable(*args: Any, **kwargs: Any) -> Any:
            return Connection(connect(*args, **kwargs))

        setattr(duckdb, "connect", connect_killable)  # noqa: B010 (mypy: the module's own signature differs)
        return
    raise SystemExit(f"KPI_TEST_KILL: unknown kill point {point!r}")


def main() -> None:
    point = os.environ.get("KPI_TEST_KILL")
    if point:
        install(point)
    from pipeline.cli import main as kpi

    sys.argv = ["kpi", *sys.argv[1:]]
    kpi()


if __name__ == "__main__":
    main()
