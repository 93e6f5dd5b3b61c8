"""A DuckDB file as a source: the embedded default, so the whole flow runs without a MySQL server.

The KPI's MySQL SQL is transpiled by sqlglot (``render_duckdb``); the file is opened read-only, and the KPI's
``timeout`` interrupts the query from a timer thread (DuckDB has no statement timeout of its own).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import pyarrow as pa

from pipeline import interrupts
from pipeline.core.mysql_on_duckdb import MACROS
from pipeline.core.render import Rendered, render_duckdb
from pipeline.core.sqlgate import Query
from pipeline.core.typeplan import SourceColumn, SourceKind
from pipeline.duckdb_import import duckdb
from pipeline.errors import SourceError
from pipeline.sources.base import BATCH_ROWS, ResultStream


def duckdb_path(url: str) -> Path:
    """``duckdb:///abs/path.duckdb``, ``duckdb://relative/path.duckdb`` or ``duckdb:path`` as a Path."""
    parts = urlsplit(url)
    return Path(unquote(parts.netloc + parts.path))


class DuckDbSource:
    """Each query opens the file read-only and closes it after — unless :meth:`hold_connections` was called (a
    run of many jobs): then each thread keeps its connection, with the MySQL macros registered once, until
    :meth:`close`. Measured in ``kpi demo`` (70 jobs): opening the file and registering the macros cost about
    20 ms a query, more than a small hourly batch's query itself."""

    dialect = "duckdb"

    def __init__(self, url: str, *, batch_rows: int = BATCH_ROWS) -> None:
        self.path = duckdb_path(url)
        self.url = f"duckdb:///{self.path}" if self.path.is_absolute() else f"duckdb://{self.path}"
        self.batch_rows = batch_rows
        self._held: dict[int, duckdb.DuckDBPyConnection] | None = None  # thread id → its open connection
        self._held_lock = threading.Lock()

    def hold_connections(self) -> None:
        """Keep connections open between queries (one per thread) until :meth:`close`."""
        with self._held_lock:
            if self._held is None:
                self._held = {}

    def close(self) -> None:
        """Close the held connections; the next query opens the file again."""
        with self._held_lock:
            held, self._held = self._held or {}, None
        for connection in held.values():
            connection.close()

    def _connection(self, where: str) -> tuple[duckdb.DuckDBPyConnection, bool]:
        """This thread's connection, and whether the query keeps it open afterwards (held)."""
        thread = threading.get_ident()
        with self._held_lock:
            held = self._held
            if held is not None and thread in held:
                return held[thread], True
        try:
            connection = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as error:
            raise SourceError(
                f"cannot open {self.path}: {str(error).splitlines()[0]}",
                where=where,
                hint="is another process writing to it? DuckDB allows one writer or many readers",
            ) from None
        try:
            register_mysql_functions(connection)
        except duckdb.Error as error:
            connection.close()
            raise SourceError(f"{self.url}: {str(error).splitlines()[0]}", where=where) from None
        except BaseException:
            connection.close()
            raise
        with self._held_lock:
            if self._held is not None:
                self._held[thread] = connection
                return connection, True
        return connection, False

    def _release(self, connection: duckdb.DuckDBPyConnection, held: bool, failed: bool) -> None:
        """Close an unheld connection; a held one after a failed query too (it may be left interrupted)."""
        if held and not failed:
            return
        if held:
            with self._held_lock:
                if self._held is not None:
                    self._held.pop(threading.get_ident(), None)
        connection.close()

    def render(self, query: Query, values: Mapping[str, Any]) -> Rendered:
        return render_duckdb(query, values)

    @contextmanager
    def stream(self, rendered: Rendered, *, timeout: timedelta, zone: ZoneInfo, where: str) -> Iterator[ResultStream]:
        if not self.path.exists():
            raise SourceError(
                f"the DuckDB source {self.path} does not exist",
                where=where,
                hint="create it (`make demo` builds the demo shop) or point KPI_SOURCE at your database",
            )
        connection, held = self._connection(where)
        timer = threading.Timer(timeout.total_seconds(), connection.interrupt)
        timer.start()
        failed = True
        try:
            with interrupts.on_stop(connection.interrupt):  # a stop request interrupts the query as the timeout does
                connection.execute("SET TimeZone = ?", [zone.key])
                reader = connection.execute(rendered.sql, rendered.values).to_arrow_reader(self.batch_rows)
                columns = [_source_column(f) for f in reader.schema]
                yield ResultStream(columns, self._batches(reader, where, timeout, timer), text=False)
                reader.close()
            failed = False
        except duckdb.Error as error:
            interrupts.check()
            raise self._error(error, where, timeout, timer) from None
        finally:
            timer.cancel()
            self._release(connection, held, failed)

    def _batches(
        self, reader: pa.RecordBatchReader, where: str, timeout: timedelta, timer: threading.Timer
    ) -> Iterator[list[pa.Array]]:
        try:
            for batch in reader:
                interrupts.check()
                yield list(batch.columns)
        except (duckdb.Error, pa.ArrowException) as error:
            interrupts.check()
            raise self._error(error, where, timeout, timer) from None

    def _error(self, error: Exception, where: str, timeout: timedelta, timer: threading.Timer) -> SourceError:
        if timer.finished.is_set() and "interrupt" in str(error).lower():
            return SourceError(
                f"the query ran longer than the KPI's timeout ({timeout}) on {self.url}",
                where=where,
                hint="make the query cheaper or raise `timeout` (at most 15m)",
            )
        unsupported = unsupported_function(error)
        if unsupported:
            _, message, hint = unsupported
            return SourceError(message, where=where, hint=hint)
        return SourceError(
            f"{self.url}: {str(error).splitlines()[0]}",
            where=where,
            hint=f"run `kpi render {where or '<kpi>'} --dialect duckdb` and try the SQL in DuckDB",
        )


# DuckDB's words for a function it lacks, or has with other arguments (a MySQL function the demo does not run).
_UNSUPPORTED = re.compile(
    r"(?:No function matches the given name and argument types '(\w+)\(|Scalar Function with name (\w+) does not)"
)


def unsupported_function(error: Exception) -> tuple[str, str, str] | None:
    """For DuckDB's error about a function it lacks: the function's name, a message and a hint that say so in
    MySQL's terms (the analyst wrote MySQL, not DuckDB); None for any other error."""
    found = _UNSUPPORTED.search(str(error))
    if not found:
        return None
    name = (found.group(1) or found.group(2)).upper()
    return (
        name,
        f"{name}() as the query calls it does not run on the embedded DuckDB demo, which stands in for MySQL only "
        f"for the functions the README lists (DuckDB: {str(error).splitlines()[0]})",
        f"run the KPI against MySQL or MariaDB (`--env ENV`), or write {name}() with the functions the README's "
        "'MySQL functions on the demo' lists",
    )


def register_mysql_functions(connection: duckdb.DuckDBPyConnection) -> None:
    """MySQL's WEEK, YEARWEEK and TIMESTAMPDIFF(MONTH…) as TEMP macros of this connection, which the transpiled
    SQL calls (:mod:`pipeline.core.mysql_on_duckdb`)."""
    for macro in MACROS:
        connection.execute(macro)


def _source_column(field: pa.Field) -> SourceColumn:
    kind, label = _kind(field.type)
    precision = getattr(field.type, "precision", 0)
    scale = getattr(field.type, "scale", 0)
    return SourceColumn(field.name, kind, label, precision, scale)


def _kind(arrow: pa.DataType) -> tuple[SourceKind, str]:
    types = pa.types
    if types.is_boolean(arrow):
        return SourceKind.BOOL, "BOOLEAN"
    if types.is_uint64(arrow):
        return SourceKind.UNSIGNED_BIGINT, "UBIGINT"
    if types.is_integer(arrow):
        return SourceKind.INTEGER, str(arrow).upper()
    if types.is_decimal(arrow):
        return SourceKind.DECIMAL, f"DECIMAL({arrow.precision},{arrow.scale})"
    if types.is_floating(arrow):
        return SourceKind.FLOAT, "DOUBLE"
    if types.is_date(arrow):
        return SourceKind.DATE, "DATE"
    if types.is_timestamp(arrow):
        return (SourceKind.TIMESTAMP, "TIMESTAMPTZ") if arrow.tz else (SourceKind.DATETIME, "TIMESTAMP")
    if types.is_time(arrow):
        return SourceKind.TIME, "TIME"
    if types.is_string(arrow) or types.is_large_string(arrow):
        return SourceKind.TEXT, "VARCHAR"
    if types.is_binary(arrow) or types.is_large_binary(arrow):
        return SourceKind.BINARY, "BLOB"
    if types.is_null(arrow):
        return SourceKind.NULL, "NULL"
    return SourceKind.UNSUPPORTED, str(arrow)
