"""MySQL / Aurora MySQL as a source: one connection per run, read-only, time-boxed, rows streamed.

Guards, in the order they act: the SQL gate (``kpi check``) refuses anything but one SELECT; the session runs
``START TRANSACTION READ ONLY`` so that the server itself refuses writes; ``MAX_EXECUTION_TIME`` (MySQL) or
``max_statement_time`` (MariaDB) stops the query on the server at the KPI's ``timeout``, and the client stops
reading at the same deadline; connect and read timeouts bound every network wait. The session ``time_zone``
is pinned to the source's zone, so MySQL TIMESTAMP values and ``:start``/``:end`` mean the same instants.

URL: ``mysql://user:password@host:3306/db?ssl=true&ssl_ca=/path/ca.pem&secret=<arn>&iam=true&region=…``.
``secret`` reads user, password (and host, port, dbname when the URL leaves them out) from AWS Secrets
Manager (the RDS secret format); ``iam=true`` signs an RDS IAM auth token instead of a password (TLS forced).
Passwords never appear in ``url``, logs or errors.

TLS (``ssl=true``, ``ssl_ca=…`` or ``iam=true``) verifies the server's certificate *and* its host name, so a
password or an IAM token cannot be handed to a server in the middle: against ``ssl_ca`` when given, otherwise
against the RDS CA bundle shipped in the package (every region's root CAs, ``rds-global-bundle.pem``) and the
system's store. ``ssl=insecure`` encrypts without verifying — for a dev server with a self-made certificate only.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import pymysql
import pymysql.converters
import pymysql.cursors
from pymysql.constants import ER

from pipeline import interrupts
from pipeline.core.render import Rendered, render_mysql
from pipeline.core.sqlgate import Query
from pipeline.errors import SourceError
from pipeline.secrets import json_secret
from pipeline.sources.base import BATCH_ROWS, ResultStream
from pipeline.sources.mysql_types import source_column
from pipeline.sources.mysql_wire import DeadlineExceeded, read_batches
from pipeline.sources.tls import RDS_CA_BUNDLE as RDS_CA_BUNDLE
from pipeline.sources.tls import certificate_refused
from pipeline.sources.tls import tls_context as tls_context

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 10  # seconds
# pymysql's converters keyed by Python type encode bound values; those keyed by MySQL type (decoders) are left out.
_ENCODERS = {key: value for key, value in pymysql.converters.conversions.items() if not isinstance(key, int)}
_TIMEOUT_ERRORS = {3024, 1969}  # MySQL and Aurora MAX_EXECUTION_TIME, MariaDB max_statement_time
# 1317 "Query execution was interrupted": KILL QUERY from another session (an operator, a monitor) or a shutdown.
# Not the KPI's timeout — that is 3024/1969 — and not our own stop, which ends as Interrupted before this.
_KILLED = ER.QUERY_INTERRUPTED
_LOST = {2006, 2013, 2055, 1927, 1053}  # gone away, lost during query, killed, shutdown
_TRANSIENT = {2003, 1040, 1205, 1213}  # cannot connect, too many connections, lock wait, deadlock
_SQL_HINT = "run `kpi render {kpi}` and try the SQL in a MySQL client against the same database"
_HINTS = {  # by error code; {kpi} is the KPI's name
    ER.ACCESS_DENIED_ERROR: "check the user and password (or the secret / IAM setup) of KPI_SOURCE",
    1698: "check the user and password (or the secret / IAM setup) of KPI_SOURCE",
    ER.BAD_DB_ERROR: "check the database name at the end of KPI_SOURCE",
    2026: "the URL asks for TLS (ssl=true, ssl_ca or iam=true) but the server does not offer it",
    1792: "the exporter only reads: the statement tried to write inside START TRANSACTION READ ONLY",
    1298: "the server has no time zone tables: load them (mysql_tzinfo_to_sql) or use a zone without DST",
}


def _hint(code: int, kpi: str, text: str = "") -> str:
    """What to do about a MySQL error: a certificate refused is about TLS; a connection error (client codes
    2000–2999, a server gone) is about the network; a server busy is retried; any other server error is about the
    SQL, which the KPI's render shows."""
    if certificate_refused(text) and "mismatch" in text:
        return (
            "TLS checks the server's name: connect by the name its certificate was issued for (the cluster or "
            "instance endpoint, not an IP address or a CNAME of your own); ssl=insecure skips the check (dev only)"
        )
    if certificate_refused(text):
        return (
            "the server's certificate is not signed by a CA of the RDS bundle or the system store: give ssl_ca=PATH "
            "of the CA that signed it; ssl=insecure skips the check (dev only)"
        )
    if code in _HINTS:
        return _HINTS[code]
    if 2000 <= code < 3000 or code in _LOST:
        return "check that the source is reachable: host and port, the network path (VPC, security group), the server"
    if code in _TRANSIENT:
        return "the server is busy (connections, a lock wait or a deadlock): try again, or lower the source's parallel"
    return _SQL_HINT.format(kpi=kpi or "<kpi>")


@dataclass(frozen=True)
class MySqlSettings:
    """A parsed source URL. ``password`` is excluded from ``repr`` so that it cannot leak into a log line."""

    host: str
    port: int = 3306
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    ssl: bool = False
    ssl_ca: str | None = None
    ssl_verify: bool = True  # False only for ssl=insecure
    secret: str | None = None
    iam: bool = False
    region: str | None = None

    @property
    def display(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"mysql://{who}{self.host}:{self.port}/{self.database}"


def parse_mysql_url(url: str) -> MySqlSettings:
    """The URL's parts; a malformed one is a SourceError that names the part, never echoing the URL (it may hold
    a password)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", 3306 if parts.port is None else parts.port
        if port == 0:  # urlsplit reads ':0' as a port; no server listens there (and `or 3306` hid it)
            raise ValueError("port 0")
    except ValueError:
        address = url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[2]  # after the credentials
        if "[" in address and "]" not in address:
            raise SourceError(
                "the source URL's host is a malformed [IPv6] address", hint="use mysql://user@[::1]:3306/db"
            ) from None
        text = address.rpartition("]")[2].rpartition(":")[2]
        raise SourceError(
            f"the source URL's port '{text}' is not a number from 1 to 65535", hint="use mysql://user@host:3306/db"
        ) from None
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"ssl", "ssl_ca", "secret", "iam", "region"}
    tls = query.get("ssl", "").lower()
    if tls not in _TLS_VERIFIED | _TLS_OFF | {"insecure"} or (tls == "insecure" and "ssl_ca" in query):
        raise SourceError(
            "the source URL's ssl= must be true (TLS, the server's certificate and name verified) or insecure (TLS "
            "without verification, for a dev server)"
            + ("; insecure with ssl_ca means nothing" if tls == "insecure" else ""),
            hint="use ?ssl=true (and ssl_ca=PATH for a CA of your own), or ?ssl=insecure for a dev server",
        )
    if parts.scheme not in ("mysql", "mariadb", "aurora") or unknown:
        raise SourceError(
            f"cannot read the source URL (scheme {parts.scheme!r}"
            + (f", unknown options {', '.join(sorted(unknown))})" if unknown else ")"),
            hint="use mysql://user:password@host:3306/db[?ssl=true&ssl_ca=PATH&secret=ARN&iam=true&region=R]",
        )
    return MySqlSettings(
        host=host,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
        ssl=tls in _TLS_VERIFIED or tls == "insecure" or "ssl_ca" in query,
        ssl_ca=query.get("ssl_ca"),
        ssl_verify=tls != "insecure",
        secret=query.get("secret"),
        iam=query.get("iam", "").lower() in ("1", "true"),
        region=query.get("region"),
    )


class MySqlSource:
    dialect = "mysql"

    def __init__(self, url: str, *, batch_rows: int = BATCH_ROWS) -> None:
        self.settings = parse_mysql_url(url)
        self.url = self.settings.display
        self.batch_rows = batch_rows
        self.explain_guard: object | None = None  # pipeline.sources.explain.ExplainGuard, set by open_source

    def render(self, query: Query, values: Mapping[str, Any]) -> Rendered:
        return render_mysql(query, values)

    @contextmanager
    def stream(self, rendered: Rendered, *, timeout: timedelta, zone: ZoneInfo, where: str) -> Iterator[ResultStream]:
        deadline = time.monotonic() + timeout.total_seconds()
        settings = self._credentials(where)
        connection = self._connect(settings, timeout, where)
        try:
            with interrupts.on_stop(lambda: _cancel(settings, connection)):
                with self._errors(where, timeout):
                    cursor = self._start(connection, rendered, timeout, zone)
                result = cursor._result  # the cursor stays referenced: closing it would drain the rows
                columns = [source_column(f) for f in result.fields]
                batches = read_batches(connection, result, len(columns), deadline=deadline, batch_rows=self.batch_rows)
                yield ResultStream(columns, self._guarded(batches, where, timeout), text=True)
                with self._errors(where, timeout):
                    connection.rollback()  # ends the read-only transaction; nothing to undo
        finally:
            _release(connection)

    def _guarded(self, batches: Iterator[Any], where: str, timeout: timedelta) -> Iterator[Any]:
        with self._errors(where, timeout):
            for batch in batches:
                interrupts.check()  # rows already on the wire must not keep an export going after a stop
                yield batch

    def _connect(self, settings: MySqlSettings, timeout: timedelta, where: str) -> Any:
        if settings.ssl and not settings.ssl_verify:
            log.warning("%s: TLS without verification (ssl=insecure): for a dev server only", self.url)
        with self._errors(where, timeout):
            return pymysql.connect(
                **connection_arguments(settings, connect_timeout=CONNECT_TIMEOUT),
                charset="utf8mb4",
                read_timeout=timeout.total_seconds() + 30,
                write_timeout=60,
                autocommit=True,
                conv=_ENCODERS,  # values are decoded by the exporter, never by pymysql
            )

    def _credentials(self, where: str) -> MySqlSettings:
        return resolve_credentials(self.settings, where)

    def _start(self, connection: Any, rendered: Rendered, timeout: timedelta, zone: ZoneInfo) -> Any:
        """Pin the session, open the read-only transaction, send the query; return the cursor of the result."""
        cursor = connection.cursor(pymysql.cursors.SSCursor)
        cursor.execute(time_limit_statement(connection.get_server_info(), timeout))
        cursor.execute("SET SESSION time_zone = %s", (_session_zone(zone),))
        cursor.execute("SET SESSION net_write_timeout = %s", (int(timeout.total_seconds()) + 60,))
        cursor.execute("START TRANSACTION READ ONLY")
        cursor.execute(rendered.sql, rendered.values or None)
        if cursor._result is None or not cursor._result.unbuffered_active:
            raise SourceError("the statement returned no result set", hint="a KPI is one SELECT")
        return cursor

    def explain(self, rendered: Rendered, *, zone: ZoneInfo, where: str, timeout: timedelta) -> tuple[str, Any]:
        """``EXPLAIN FORMAT=JSON`` of ``rendered`` in a session set up as the query's own would be (time limit,
        zone, read-only transaction): the server's version and the plan as the server wrote it (None when it
        answered no row). Reading the plan is :mod:`pipeline.sources.explain`'s."""
        settings = self._credentials(where)
        connection = self._connect(settings, timeout, where)
        try:
            with self._errors(where, timeout):
                version = connection.get_server_info()
                with connection.cursor(pymysql.cursors.Cursor) as cursor:
                    cursor.execute(time_limit_statement(version, timeout))
                    json_format = explain_format_statement(version)
                    if json_format:
                        cursor.execute(json_format)
                    cursor.execute("SET SESSION time_zone = %s", (_session_zone(zone),))
                    cursor.execute("START TRANSACTION READ ONLY")
                    cursor.execute("EXPLAIN FORMAT=JSON " + rendered.sql, rendered.values or None)
                    row = cursor.fetchone()
                    connection.rollback()
        finally:
            _release(connection)
        return str(version), row[0] if row else None

    @contextmanager
    def _errors(self, where: str, timeout: timedelta) -> Iterator[None]:
        """pymysql's exceptions as SourceError: what happened, at which source, and whether to retry. After a stop
        request, the error that the cancelled query ends with is :class:`~pipeline.interrupts.Interrupted`."""
        try:
            yield
        except (DeadlineExceeded, pymysql.err.MySQLError, OSError) as error:
            interrupts.check()
            raise self._error(error, where, timeout) from None

    def _error(self, error: Exception, where: str, timeout: timedelta) -> SourceError:
        if isinstance(error, DeadlineExceeded):
            return SourceError(
                f"the query ran longer than the KPI's timeout ({timeout}); stopped reading from {self.url}",
                where=where,
                hint="make the query cheaper (an index on the time column?) or raise `timeout` (at most 15m)",
            )
        if isinstance(error, pymysql.err.MySQLError):
            code = error.args[0] if error.args and isinstance(error.args[0], int) else 0
            text = error.args[1] if len(error.args) > 1 else str(error)
            if code == _KILLED:
                return SourceError(
                    f"{self.url} stopped the query: {text} (KILL QUERY from another session, or the server "
                    "shutting down)",
                    where=where,
                    hint="someone or something on the database ended it: ask whoever runs it (SHOW PROCESSLIST, "
                    "the server's log), then run the KPI again",
                )
            if code in _TIMEOUT_ERRORS:
                return SourceError(
                    f"{self.url} stopped the query at the KPI's timeout ({timeout}): {text}",
                    where=where,
                    hint="make the query cheaper (an index on the time column?) or raise `timeout` (at most 15m)",
                )
            return SourceError(
                f"{self.url}: MySQL error {code}: {text}",
                where=where,
                hint=_hint(code, where, text),
                retryable=code in _LOST or code in _TRANSIENT,
            )
        return SourceError(f"{self.url}: {error}", where=where, retryable=True)  # socket timeouts and resets


def connection_arguments(settings: MySqlSettings, *, connect_timeout: float) -> dict[str, Any]:
    """pymysql's arguments for resolved ``settings``: address, credentials, TLS. One place, so that the exporter's
    connection, the one that cancels its query and ``kpi clone plan --url`` connect alike."""
    options: dict[str, Any] = {}
    if settings.ssl or settings.iam:
        options["ssl"] = tls_context(settings.ssl_ca, verify=settings.ssl_verify)
    return {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password,
        "database": settings.database or None,
        "connect_timeout": connect_timeout,
        **options,
    }


_TLS_VERIFIED = {"1", "true", "required", "verify_identity", "verify_ca"}
_TLS_OFF = {"", "0", "false"}


def _cancel(settings: MySqlSettings, connection: Any) -> None:
    """Stop the connection's query on the server: ``KILL QUERY`` from a second connection (closing ours would not
    do — the server notices a client gone only when it next writes to it, which an aggregating query may not do
    for minutes), then drop our socket so that the thread reading it stops waiting. A user may kill its own
    queries without any privilege (MySQL, Aurora and MariaDB alike). An IAM token lives 15 minutes, as long as a
    query may run, so the second connection signs a fresh one."""
    thread = int(connection.thread_id())
    try:
        if settings.iam:
            settings = replace(settings, password=_iam_token(settings, "KILL QUERY"))
        killer = pymysql.connect(**connection_arguments(settings, connect_timeout=5), read_timeout=5, write_timeout=5)
        try:
            with killer.cursor() as cursor:
                cursor.execute(f"KILL QUERY {thread}")
        finally:
            killer.close()
    finally:
        with suppress(OSError, AttributeError):
            connection._sock.shutdown(socket.SHUT_RDWR)


def _release(connection: Any) -> None:
    """Close the connection; mid-result, drop the socket instead of draining the remaining rows (pymysql's way)."""
    result = connection._result
    if result is not None and result.unbuffered_active:
        result.unbuffered_active = False
        connection._force_close()
    elif connection.open:
        with suppress(pymysql.err.Error, OSError):
            connection.close()


def _session_zone(zone: ZoneInfo) -> str:
    """A fixed offset (``+09:00``) when the zone has kept one for the last and next years, which needs no time
    zone tables on the server; the zone's name otherwise (DST zones need the server's tables)."""
    now = datetime.now(UTC)
    offsets = {(now + timedelta(days=day)).astimezone(zone).utcoffset() for day in range(-400, 400, 15)}
    if len(offsets) != 1:
        return zone.key
    offset = offsets.pop() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def resolve_credentials(settings: MySqlSettings, where: str) -> MySqlSettings:
    """The settings with the password filled in from ``secret=`` (Secrets Manager) or ``iam=true`` (a signed RDS
    token, which forces TLS). Also used by ``kpi clone plan --url``."""
    if settings.secret:
        settings = _from_secret(settings, settings.secret, where)
    if settings.iam:
        settings = replace(settings, password=_iam_token(settings, where), ssl=True)
    if not settings.host:
        raise SourceError("the source URL names no host", where=where, hint="mysql://user@host:3306/db")
    return settings


def _from_secret(settings: MySqlSettings, secret: str, where: str) -> MySqlSettings:
    """Fill user, password (and host, port, database when missing) from an RDS-format Secrets Manager secret."""
    value = json_secret(secret, region=settings.region, what="database", where=where, error=SourceError)
    return replace(
        settings,
        user=settings.user or str(value.get("username", "")),
        password=str(value.get("password", "")),
        host=settings.host or str(value.get("host", "")),
        port=settings.port if settings.host else int(value.get("port", settings.port)),
        database=settings.database or str(value.get("dbname", "")),
    )


def _iam_token(settings: MySqlSettings, where: str) -> str:
    import boto3
    import botocore.exceptions

    try:
        client = boto3.client("rds", region_name=settings.region)
        token: str = client.generate_db_auth_token(settings.host, settings.port, settings.user, settings.region)
    except botocore.exceptions.BotoCoreError as error:
        raise SourceError(
            f"cannot sign an RDS IAM auth token: {type(error).__name__}",
            where=where,
            hint="the role needs rds-db:connect on this database user; set region= in the URL",
        ) from None
    return token


def explain_format_statement(server_info: str) -> str | None:
    """The statement that makes ``EXPLAIN FORMAT=JSON`` print the JSON the guard reads
    (:func:`pipeline.core.explain.unreadable_plan`), or None where it is the only one: MySQL 8.3 added
    ``explain_json_format_version`` (1, the default, or 2: another tree), which a server's configuration may set to
    2; MariaDB and MySQL 8.0 — Aurora MySQL 3 says ``8.0.mysql_aurora.3.…`` — have neither the variable nor the
    second format. Tested as text: no MySQL 8.3 server runs here."""
    if "mariadb" in server_info.lower():
        return None
    found = re.match(r"(\d+)\.(\d+)", server_info)
    if found is None or (int(found[1]), int(found[2])) < (8, 3):
        return None
    return "SET SESSION explain_json_format_version = 1"


def time_limit_statement(server_info: str, timeout: timedelta) -> str:
    """The session's time limit, as the server spells it: MariaDB's ``max_statement_time`` (seconds), MySQL 8's
    and Aurora MySQL 3's ``max_execution_time`` (milliseconds; it bounds SELECTs, all a KPI sends). The server
    then stops a query at the KPI's ``timeout`` itself. The one place the two spellings differ, named, so that the
    MySQL 8 form is tested as text: no MySQL 8 server runs here."""
    millis = max(1, int(timeout.total_seconds() * 1000))
    if "mariadb" in server_info.lower():
        return f"SET SESSION max_statement_time = {millis / 1000:.3f}"
    return f"SET SESSION max_execution_time = {millis}"
