"""The embedded default warehouse: a DuckDB file with BigQuery's load semantics.

One transaction per batch: plan it from the audit table read inside that transaction, create the table if
missing, add new columns, replace each planned partition's rows (DELETE + insert), check every partition's row
count against its manifest, append the audit rows — committed together or not at all (any failure rolls back,
and the tables are as they were). DuckDB allows one process per file: a second process waits for the file lock
(:attr:`DuckDbWarehouse.lock_wait`), threads of one process queue on a lock of their own.

Opened ``read_only`` (``kpi status``, ``kpi preview``, ``pipeline.read``, the demo's report), the warehouse never
creates the file nor takes DuckDB's write lock: it opens a read-only connection (many processes may read while
none writes) and refuses to load or remove.

CSV files are read with the manifest's ``null_marker`` (version 1: an unquoted empty field) as the only NULL, so
NULL and the empty string stay apart; BIGNUMERIC is read as text, never through a 256-bit decimal conversion.

Types follow the manifest's BigQuery names. DuckDB's DECIMAL stops at 38 digits, so BIGNUMERIC columns hold the
exact decimal text (VARCHAR); JSON is kept as text. The exact BigQuery type of every column is kept in
``_kpi_columns`` so that schema drift is judged on BigQuery types, as it will be in BigQuery.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pipeline import interrupts
from pipeline.core.anomaly import Observation
from pipeline.core.drift import schema_drift
from pipeline.core.manifest import Manifest, SchemaField
from pipeline.core.types import BqType
from pipeline.errors import LoadError, UsageError
from pipeline.warehouses.anomalies import (
    ANOMALY_TABLE,
    SCORE_COLUMNS,
    History,
    StoredScore,
    history_sql,
    score_rows,
    scores_sql,
    scoring_failure,
)
from pipeline.warehouses.base import (
    AUDIT_TABLE,
    Bounds,
    LoadRecord,
    LoadResult,
    OpenFile,
    Removal,
    audit_for_plan,
    changed_error,
    changed_since_planned,
    check_batch,
    count_mismatch,
    current_loads,
    current_loads_sql,
    partition_bounds,
    plan_batch,
    refuse_drift,
)
from pipeline.warehouses.commit_scoring import InCommit, in_commit, with_scores
from pipeline.warehouses.reading import canonical, not_loaded, order_by, row_range

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.core.spec import Kpi

if TYPE_CHECKING:  # imported where a file is opened: a plan over a warehouse not created yet needs no DuckDB
    import duckdb

COLUMNS_TABLE = "_kpi_columns"
_ROWS_PER_INSERT = 500  # scores per INSERT statement
LOCK_WAIT = 60.0  # seconds a load waits for another process's hold on the file before it fails (retryable)
LOCK_POLL = 0.25
# DuckDB would take 80% of RAM for its buffers and a thread's worth per core; bounded, it spills and a load's
# memory stays flat. Measured loading a 1 GB, 50M-row partition (bench/load_bench.py): 271 MB peak RSS with 64 MB
# and every core, about 150 MB with these, for 10-25 % more time. The external file cache would keep Parquet
# pages read once.
SETTINGS = {"memory_limit": "16MB", "threads": "1", "enable_external_file_cache": "false", "TimeZone": "UTC"}
DUCKDB_TYPES = {
    BqType.STRING: "VARCHAR",
    BqType.INT64: "BIGINT",
    BqType.NUMERIC: "DECIMAL(38,9)",
    BqType.BIGNUMERIC: "VARCHAR",  # exact decimal text: DuckDB's DECIMAL holds 38 digits, BIGNUMERIC 76
    BqType.FLOAT64: "DOUBLE",
    BqType.BOOL: "BOOLEAN",
    BqType.DATE: "DATE",
    BqType.DATETIME: "TIMESTAMP",
    BqType.TIMESTAMP: "TIMESTAMPTZ",
    BqType.TIME: "TIME",
    BqType.JSON: "VARCHAR",
    BqType.BYTES: "BLOB",
}
_META = (
    f"CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (kpi VARCHAR, partition VARCHAR, run_id VARCHAR, sql_hash VARCHAR, "
    "rows BIGINT, bytes BIGINT, job_id VARCHAR, loaded_at TIMESTAMPTZ)",
    f"CREATE TABLE IF NOT EXISTS {COLUMNS_TABLE} (kpi VARCHAR, position INTEGER, name VARCHAR, type VARCHAR, "
    "description VARCHAR)",
    f"CREATE TABLE IF NOT EXISTS {ANOMALY_TABLE} (kpi VARCHAR, partition VARCHAR, measure VARCHAR, "
    "dimension VARCHAR, actual DOUBLE, expected DOUBLE, low DOUBLE, high DOUBLE, score DOUBLE, direction VARCHAR, "
    "run_id VARCHAR, job_id VARCHAR, scored_at TIMESTAMPTZ)",
)


_WRITERS: dict[Path, threading.RLock] = {}
_WRITERS_LOCK = threading.Lock()


def _writer(path: Path) -> threading.RLock:
    """One load at a time per file within a process (parallel runs load from several threads); across
    processes, DuckDB's own file lock makes the second writer wait for, or fail on, the first."""
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(path.resolve(), threading.RLock())


def warehouse_path(url: str) -> Path:
    """``duckdb:///abs/file.duckdb``, ``duckdb://relative.duckdb`` or a plain path."""
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    return Path(unquote(parts.netloc + parts.path))


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDbWarehouse:
    kind = "DuckDB"

    def __init__(
        self,
        url: str,
        *,
        lock_wait: float = LOCK_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        read_only: bool = False,
    ) -> None:
        self.path = warehouse_path(url)
        self.url = str(self.path)
        self.lock_wait = lock_wait
        self.read_only = read_only
        self._sleep, self._clock = sleep, clock
        self._connection: duckdb.DuckDBPyConnection | None = None
        # one statement at a time on the connection, one load at a time per file (a reader takes no writer's turn)
        self._lock = threading.RLock() if read_only else _writer(self.path)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """The warehouse's one connection, opened on first use and kept until :meth:`close`: opening a DuckDB
        file and closing it (a checkpoint) cost more than a small partition's whole load."""
        if self._connection is not None:
            return self._connection
        if self.read_only:
            self._connection = self._open_waiting()
            self._connection.execute("SET TimeZone = 'UTC'")
            return self._connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = (
                "a file is in the way" if isinstance(error, FileExistsError | NotADirectoryError) else error.strerror
            )
            raise LoadError(
                f"cannot create the folder {self.path.parent} for the DuckDB warehouse: {reason}",
                hint="point KPI_WAREHOUSE (or the environment's warehouse) at a folder you may write",
            ) from None
        connection = self._open_waiting()
        for name, value in SETTINGS.items():
            connection.execute(f"SET {name} = '{value}'")
        for statement in _META:
            connection.execute(statement)
        self._connection = connection
        return connection

    def _open_waiting(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting up to :attr:`lock_wait` seconds while another process holds it: DuckDB allows
        one process per file, and a second ``kpi load`` (or a run beside a load) queues behind the first."""
        from pipeline.duckdb_import import duckdb

        started = self._clock()
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.IOException as error:
                waited = self._clock() - started
                if "Could not set lock" not in str(error) or waited >= self.lock_wait:
                    raise self._unopenable(error, waited) from None
                self._sleep(min(LOCK_POLL, self.lock_wait - waited))
            except duckdb.Error as error:
                raise self._unopenable(error, 0.0) from None

    def _unopenable(self, error: duckdb.Error, waited: float) -> LoadError | UsageError:
        if not self.read_only:
            return _unopenable(self.path, error, waited)
        return UsageError(
            f"cannot open the DuckDB warehouse {self.path} for reading: {str(error).splitlines()[0]}",
            hint="DuckDB allows one writer or many readers: wait for the load to finish, or close the other connection",
        )

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()

    def loads(self, kpi: str) -> dict[str, LoadRecord]:
        if not self.path.exists():  # nothing loaded yet; a dry run must not create the file
            return {}
        with self._lock:
            connection = self._connect()
            if self.read_only and not _has_table(connection, AUDIT_TABLE):  # a reader creates no table
                return {}
            return _loads(connection, kpi)

    def schema(self, kpi: str) -> list[SchemaField] | None:
        """From ``_kpi_columns`` (the BigQuery types the loader kept); None when the file or the table is missing."""
        if not self.path.exists():
            return None
        with self._lock:
            connection = self._connect()
            if not _has_table(connection, COLUMNS_TABLE) or not _has_table(connection, kpi):
                return None
            return _table_schema(connection, kpi) or None

    def read(self, kpi: Kpi, first: datetime | None = None, last: datetime | None = None) -> pa.Table:
        schema = self.schema(kpi.name)
        if schema is None:
            raise not_loaded(kpi, self.url)
        types = {f.name: BqType(f.type) for f in schema}
        bounds = row_range(kpi, types, first, last)
        where = " AND ".join(f"{quote(kpi.time_column or '')} {op} ?" for op, _ in bounds)
        ordered = order_by(kpi)
        sql = (
            f"SELECT {', '.join(quote(name) for name in types)} FROM {quote(kpi.name)}"
            + (f" WHERE {where}" if where else "")
            + (f" ORDER BY {quote(ordered)}" if ordered else "")
        )
        with self._lock:
            table = self._connect().execute(sql, [value for _, value in bounds]).to_arrow_table()
        return canonical(table, types)

    def native_type(self, bq_type: str) -> str:
        return DUCKDB_TYPES[BqType(bq_type)] if bq_type in BqType.__members__ else bq_type

    def _writable(self) -> None:
        if self.read_only:
            raise LoadError(
                f"the DuckDB warehouse {self.path} was opened read-only",
                hint="open it with open_warehouse(url) to load or remove",
            )

    def history(self, history: History) -> list[Observation]:
        """Per partition from ``history.since`` (and dimension value), the sums of the measures scored."""
        if not self.path.exists():
            return []
        with self._lock:
            connection = self._connect()
            tables = {name for (name,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            if history.kpi not in tables:
                return []
            return _history(connection, history)

    def record_scores(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append rows of ``_kpi_anomalies`` (:func:`~pipeline.warehouses.anomalies.score_rows`), in one
        transaction."""
        self._writable()
        if not rows:
            return
        with self._lock:
            connection = self._connect()
            connection.begin()
            try:
                _insert_scores(connection, rows)
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

    def scores(self, kpi: str, first: str, last: str) -> list[StoredScore]:
        """The newest score of each partition, measure and dimension value from ``first`` to ``last``."""
        if not self.path.exists():
            return []
        sql = scores_sql(ANOMALY_TABLE, AUDIT_TABLE, "$kpi", "$first", "$last", at="timezone('UTC', scored_at)")
        with self._lock:
            connection = self._connect()
            if not _has_table(connection, ANOMALY_TABLE):  # opened read-only on a file no load has scored into
                return []
            rows = connection.execute(sql, {"kpi": kpi, "first": first, "last": last}).fetchall()
        return [StoredScore.of((*row[:-1], row[-1].replace(tzinfo=UTC))) for row in rows]

    def load(self, manifests: Sequence[Manifest], open_file: OpenFile, *, force: bool = False) -> list[LoadResult]:
        self._writable()
        check_batch(manifests)
        with self._lock:
            connection = self._connect()
            try:
                return self._transaction(connection, manifests, open_file, force, score=True)
            except _ScoringRefused as refused:  # rolled back whole: the load again, scored after it
                import logging  # here: a dry run reads the warehouse and imports no logging (tests/test_imports.py)

                logging.getLogger(__name__).warning(
                    "scoring inside the load's transaction failed (%s): scored after it", refused.reason
                )
                return self._transaction(connection, manifests, open_file, force, score=False)

    def _transaction(
        self,
        connection: duckdb.DuckDBPyConnection,
        manifests: Sequence[Manifest],
        open_file: OpenFile,
        force: bool,
        *,
        score: bool,
    ) -> list[LoadResult]:
        connection.begin()
        try:
            results = self._load(connection, manifests, open_file, force, score=score)
        except BaseException:
            connection.rollback()
            raise
        if any(result.loaded for result in results):
            connection.commit()
        else:
            connection.rollback()
        return results

    def _load(
        self,
        connection: duckdb.DuckDBPyConnection,
        manifests: Sequence[Manifest],
        open_file: OpenFile,
        force: bool,
        *,
        score: bool,
    ) -> list[LoadResult]:
        """The batch inside one transaction, planned from the audit table read in that same transaction (under
        the file's write lock, so no other load can commit in between); with ``score``, a plan of one scored
        partition is scored in it too (:mod:`pipeline.warehouses.commit_scoring`)."""
        loaded, removed = _plan_audit(connection, manifests[0].kpi, [m.partition for m in manifests])
        plan = plan_batch(manifests, loaded, force=force, removed=removed)
        if not plan.write:
            return plan.results({})
        newest = max(plan.write, key=lambda m: m.run_id)  # the header the table follows
        current = _table_schema(connection, newest.kpi)
        drift = schema_drift(current, newest.schema) if current else None
        refuse_drift(drift, newest)
        table = quote(newest.kpi)
        if not current:
            columns = ", ".join(f"{quote(f.name)} {DUCKDB_TYPES[BqType(f.type)]}" for f in newest.schema)
            connection.execute(f"CREATE TABLE {table} ({columns})")
            _remember_columns(connection, newest.kpi, newest.schema, start=0)
        elif drift and drift.added:
            for field in drift.added:
                connection.execute(
                    f"ALTER TABLE {table} ADD COLUMN {quote(field.name)} {DUCKDB_TYPES[BqType(field.type)]}"
                )
            _remember_columns(connection, newest.kpi, drift.added, start=len(current))
        _describe(connection, newest, current)
        ranges = [_partition_predicate(manifest) for manifest in plan.write]
        batch = (" OR ".join(f"({text})" for text, _ in ranges), [value for _, values in ranges for value in values])
        connection.execute(f"DELETE FROM {table} WHERE {batch[0]}", batch[1])
        _insert_files(connection, plan.write, open_file, batch)  # only rows inside the batch's partitions land
        job_id, loaded_at = f"duckdb-{uuid.uuid4().hex[:12]}", datetime.now(UTC)
        # every partition counted after every insert (one scan): a file holding another partition's rows is caught
        counts = ", ".join(f"COUNT(*) FILTER (WHERE {text})" for text, _ in ranges)
        found = connection.execute(f"SELECT {counts} FROM {table} WHERE {batch[0]}", batch[1] + batch[1]).fetchone()
        written: dict[str, LoadResult] = {}
        for manifest, count in zip(plan.write, found or (), strict=True):
            if count != manifest.rows:
                raise count_mismatch(manifest, count)
            written[manifest.partition] = LoadResult.replaced(
                manifest, LoadRecord.of(manifest, job_id, loaded_at), drift
            )
        _audit(connection, [result.record for result in written.values() if result.record])
        results = plan.results(written)
        scoring = in_commit(plan.write) if score else None
        return results if scoring is None else _score_within(connection, scoring, results, job_id, loaded_at)

    def remove(self, kpi: str, removals: Sequence[Removal], *, whole_table: bool = False) -> list[LoadRecord]:
        """One transaction: the plan judged again against the audit table (a load that committed since it was
        planned: nothing removed, :func:`changed_since_planned`), each partition's rows deleted (or the whole
        table's), a removal row each in the audit. A stop (Ctrl-C, SIGTERM) interrupts the statement running and
        rolls it all back: :class:`~pipeline.interrupts.Interrupted`."""
        from pipeline.duckdb_import import duckdb

        job_id, at = f"duckdb-{uuid.uuid4().hex[:12]}", datetime.now(UTC)
        records = [removal.record(job_id, at) for removal in removals]
        table = quote(kpi)
        self._writable()
        with self._lock:
            connection = self._connect()
            connection.begin()
            try:
                with interrupts.on_stop(connection.interrupt):
                    changes = changed_since_planned(removals, _loads(connection, kpi), whole_table=whole_table)
                    if changes:
                        raise changed_error(kpi, changes, f"{kpi} in {self.path}")
                    for bounds in [None] if whole_table else [r.bounds for r in removals]:
                        predicate, values = _bounds_predicate(bounds)
                        interrupts.check()  # between statements: interrupt() stops only a statement running
                        connection.execute(f"DELETE FROM {table} WHERE {predicate}", values)
                    for record in records:
                        values = list(record.__dict__.values())
                        connection.execute(f"INSERT INTO {AUDIT_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
                    interrupts.check()  # the last moment a stop still rolls it all back
            except duckdb.Error as error:
                connection.rollback()
                interrupts.check()  # interrupted by a stop: the rollback was the point
                raise LoadError(
                    f"cannot remove {kpi}'s partitions: {str(error).splitlines()[0]}",
                    where=f"{kpi} in {self.path}",
                    hint="nothing was removed (one transaction); `kpi status` shows what is loaded",
                ) from None
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
        return records


class _ScoringRefused(Exception):
    """The scoring inside a load's transaction failed: DuckDB then refuses every statement of the transaction
    but a rollback (and scores half inserted must not commit)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.reason = scoring_failure(error)


def _score_within(
    connection: duckdb.DuckDBPyConnection,
    scoring: InCommit,
    results: Sequence[LoadResult],
    job_id: str,
    at: datetime,
) -> list[LoadResult]:
    """The target scored inside the transaction that wrote it: one history query (the new rows in it), the
    expectations from the partitions before the target, the target's sums judged against them, the scores
    inserted. Unscored (left to the scoring after the commit) when partitions after the target are loaded."""
    try:
        observations = _history(connection, scoring.history)
        expectations = scoring.expectations(observations)
        if expectations is None:
            return list(results)
        scores = scoring.judge(expectations, observations)
        _insert_scores(connection, score_rows(scores, {scoring.target: scoring.manifest.run_id}, job_id, at))
    except Exception as error:  # a refused statement aborts the transaction: the load again, without scoring
        raise _ScoringRefused(error) from None
    return with_scores(results, scores, {scoring.target})


def _history(connection: duckdb.DuckDBPyConnection, history: History) -> list[Observation]:
    sql = history_sql(history, quote(history.kpi), "duckdb")
    return history.observations(connection.execute(sql, [history.bound()]).fetchall())


def _insert_scores(connection: duckdb.DuckDBPyConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """One INSERT of every row (``executemany`` runs one statement per row: 2.4 ms for a single row, measured)."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        marks = ", ".join(["(" + ", ".join("?" * len(SCORE_COLUMNS)) + ")"] * len(chunk))
        connection.execute(f"INSERT INTO {ANOMALY_TABLE} VALUES {marks}", [v for row in chunk for v in row])


def _audit(connection: duckdb.DuckDBPyConnection, records: Sequence[LoadRecord]) -> None:
    """The audit rows of a batch in one INSERT: DuckDB's ``executemany`` runs one statement per row (measured in
    ``kpi demo``: 10 ms for the 24 rows of a day of hours, against 2.5 ms in one statement)."""
    if not records:
        return
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(records))
    connection.execute(
        f"INSERT INTO {AUDIT_TABLE} VALUES {rows}", [value for record in records for value in record.__dict__.values()]
    )


def _unopenable(path: Path, error: duckdb.Error, waited: float) -> LoadError:
    locked = "Could not set lock" in str(error)
    return LoadError(
        f"cannot open the DuckDB warehouse {path}: {str(error).splitlines()[0]}"
        + (f" (waited {waited:.0f} s)" if locked else ""),
        hint="another process is writing to it (DuckDB allows one at a time): let it finish, then load again"
        if locked
        else "check that the file is a DuckDB database this version can read",
        retryable=locked,
    )


# loaded_at as naive UTC: DuckDB needs pytz to hand out TIMESTAMPTZ values, and we have no other use for it
_RECORD_COLUMNS = "kpi, partition, run_id, sql_hash, rows, bytes, job_id, timezone('UTC', loaded_at)"


def _loads(connection: duckdb.DuckDBPyConnection, kpi: str) -> dict[str, LoadRecord]:
    """The KPI's current loads: the newest run per partition since its latest removal (:func:`current_loads`)."""
    sql = current_loads_sql(_RECORD_COLUMNS, AUDIT_TABLE, "$kpi")
    return current_loads(map(_record, connection.execute(sql, {"kpi": kpi}).fetchall()))


def _plan_audit(
    connection: duckdb.DuckDBPyConnection, kpi: str, partitions: Sequence[str]
) -> tuple[dict[str, LoadRecord], dict[str, LoadRecord]]:
    """What a load of ``partitions`` plans from: their current loads, and the latest removal of those not loaded
    since — chosen by :func:`~pipeline.warehouses.base.audit_for_plan` from every audit row of the partitions, in
    Python. The rule as SQL (:func:`~pipeline.warehouses.audit_rule.plan_audit_sql`, what BigQuery runs, to keep
    the rows it would send) costs DuckDB more than the rows: measured on the anomaly bench's warehouse (791 audit
    rows), 4.1 ms for the query against 0.6 ms for the plain select of one partition's rows, and a new day's load
    took 7.2 ms instead of 12.0; a batch's rows are its partitions' reloads, a few each."""
    sql = f"SELECT {_RECORD_COLUMNS} FROM {AUDIT_TABLE} WHERE kpi = $kpi AND list_contains($partitions, partition)"
    return audit_for_plan(
        map(_record, connection.execute(sql, {"kpi": kpi, "partitions": list(partitions)}).fetchall())
    )


def _has_table(connection: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = connection.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()
    return bool(found and found[0])


def _record(row: tuple[Any, ...]) -> LoadRecord:
    kpi, partition, run_id, sql_hash, count, size, job_id, loaded_at = row
    return LoadRecord(kpi, partition, run_id, sql_hash, count, size, job_id, loaded_at.replace(tzinfo=UTC))


def _table_schema(connection: duckdb.DuckDBPyConnection, kpi: str) -> list[SchemaField]:
    rows = connection.execute(
        f"SELECT name, type, description FROM {COLUMNS_TABLE} WHERE kpi = ? ORDER BY position", [kpi]
    ).fetchall()
    return [SchemaField(name, type_, description or "") for name, type_, description in rows]


def _remember_columns(
    connection: duckdb.DuckDBPyConnection, kpi: str, fields: Sequence[SchemaField], *, start: int
) -> None:
    for position, field in enumerate(fields, start):
        connection.execute(
            f"INSERT INTO {COLUMNS_TABLE} VALUES (?, ?, ?, ?, ?)", [kpi, position, field.name, field.type, ""]
        )


def _describe(connection: duckdb.DuckDBPyConnection, manifest: Manifest, current: Sequence[SchemaField]) -> None:
    """Table and column descriptions follow the header of the newest load. Nothing is written when the table
    says so already (``current``: its columns before this load) — the usual load, which would otherwise send
    two statements per column and one for the table (in ``kpi demo``, profiled: 502 statements, 0.22 s)."""
    table = quote(manifest.kpi)
    known = {field.name: field.description for field in current}
    if all(known.get(field.name) == field.description for field in manifest.schema):
        found = connection.execute(
            "SELECT comment FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?", [manifest.kpi]
        ).fetchone()
        if found is not None and (found[0] or "") == manifest.description:
            return
    connection.execute(f"COMMENT ON TABLE {table} IS {_literal(manifest.description)}")
    for field in manifest.schema:
        connection.execute(f"COMMENT ON COLUMN {table}.{quote(field.name)} IS {_literal(field.description)}")
        connection.execute(
            f"UPDATE {COLUMNS_TABLE} SET description = ? WHERE kpi = ? AND name = ?",
            [field.description, manifest.kpi, field.name],
        )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _partition_predicate(manifest: Manifest) -> tuple[str, list[Any]]:
    """The rows of the manifest's partition: all rows for a snapshot."""
    bounds = partition_bounds(manifest)
    if bounds is None:
        return "TRUE", []
    column, _, start, end = bounds
    return f"{quote(column)} >= ? AND {quote(column)} < ?", [start, end]


def _insert_files(
    connection: duckdb.DuckDBPyConnection,
    write: Sequence[Manifest],
    open_file: OpenFile,
    batch: tuple[str, list[Any]],
) -> None:
    """The batch's rows that fall in its partitions (``batch``: their predicate and its values). Each file's own
    row count was checked as it was opened. Parquet files on disk go in one statement — DuckDB's own scan of
    all of them, streaming (an hour's partitions are 24 small files: one statement, not 24)."""
    first = write[0]
    table = quote(first.kpi)
    names = ", ".join(quote(f.name) for f in first.schema)
    predicate, values = batch
    with ExitStack() as stack:
        handles = [stack.enter_context(open_file(entry)) for manifest in write for entry in manifest.files]
        paths = [getattr(handle, "name", None) for handle in handles]
        if (
            first.format == "parquet"
            and BqType.BIGNUMERIC not in _types_of(first)
            and all(isinstance(path, str) for path in paths)
        ):
            # DuckDB's Parquet scan streams into the table; Arrow batches registered one by one would be held in
            # the transaction (measured on a 500 MB partition: 271 MB peak RSS against 2.1 GB).
            scan = f"SELECT {names} FROM read_parquet(?, hive_partitioning = false) WHERE {predicate}"
            connection.execute(f"INSERT INTO {table} ({names}) {scan}", [paths, *values])
            return
        for handle in handles:  # CSV, and BIGNUMERIC (DuckDB would read a 76-digit decimal as a float): via Arrow
            for rows in _batches(first, handle):
                connection.register("_kpi_incoming", rows)
                connection.execute(
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM _kpi_incoming WHERE {predicate}", values
                )
                connection.unregister("_kpi_incoming")


def _types_of(manifest: Manifest) -> set[BqType]:
    return {BqType(f.type) for f in manifest.schema}


def csv_options(manifest: Manifest, schema: Any) -> Any:
    """NULL is the manifest's marker, unquoted, in every column; a quoted field is always a value (``""`` is the
    empty string). BIGNUMERIC arrives as text (Arrow's CSV reader has no 256-bit decimals)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    wide = {f.name for f in manifest.schema if f.type == BqType.BIGNUMERIC}
    types = {field.name: pa.string() if field.name in wide else field.type for field in schema}
    return pacsv.ConvertOptions(
        column_types=types,
        null_values=[manifest.null_marker or ""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )


def _batches(manifest: Manifest, handle: Any) -> Iterator[Any]:
    """The file's rows in Arrow batches, BIGNUMERIC as exact text (DuckDB's DECIMAL holds 38 digits). pyarrow is
    imported here only: the usual Parquet load never needs it (about 30 MB of the loader's memory)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from pipeline.core.typeplan import ARROW_TYPES

    schema = pa.schema([pa.field(f.name, ARROW_TYPES[BqType(f.type)]) for f in manifest.schema])
    if manifest.format == "csv":
        reader: Iterator[Any] = iter(pacsv.open_csv(handle, convert_options=csv_options(manifest, schema)))
    else:
        reader = pq.ParquetFile(handle).iter_batches(batch_size=65_536)
    wide = [f.name for f in manifest.schema if f.type == BqType.BIGNUMERIC]
    for batch in reader:
        if wide:
            names = batch.schema.names
            arrays = [batch.column(n).cast(pa.string()) if n in wide else batch.column(n) for n in names]
            batch = pa.RecordBatch.from_arrays(arrays, names=names)
        yield batch


def _bounds_predicate(bounds: Bounds | None) -> tuple[str, list[Any]]:
    """The rows between a partition's bounds (see :func:`partition_bounds`); every row for None."""
    if bounds is None:
        return "TRUE", []
    column, _, start, end = bounds
    return f"{quote(column)} >= ? AND {quote(column)} < ?", [start, end]
