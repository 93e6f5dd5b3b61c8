"""The masking engine: rules applied in place on the temporary cluster, in chunks by primary key, resumable.

One run, in order (each step only when the one before succeeded):

1. **Gate.** Read the schema from information_schema, build the plan: every column covered, every rule fits
   (:mod:`~pipeline.clone.coverage`); otherwise a :class:`CoverageError` with stubs, and nothing is touched.
2. **Already done?** A completion marker (if given) or a journal in step ``done`` with this run's digest
   (rules + key fingerprint) ends the run as "already masked". A journal with another digest is refused:
   rules or key changed halfway, and mixing two maskings would be neither — restore the cluster again.
3. **Preflight, before any write** (fresh runs only): the session (:func:`pipeline.clone.mysql.open_session`);
   a database whose e-mail and login columns already look masked is refused (a finished run whose journal is
   gone: masking it again would mask masked values); each custom SQL expression is tried with ``LIMIT 0``; every
   rewritten unique key is checked for values the rules would merge into one. Then the journal is created.
4. **Tables**, one by one: ``truncate``; or ``delete_where`` in chunks, then the column rules in chunks of
   ``chunk_rows`` by primary key (keyset, no OFFSET over the table), each chunk in one transaction with its
   journal row. A table without a primary key is rewritten in one transaction.
5. **Scan** (:mod:`~pipeline.clone.scan`): a hit raises; the journal stays (step ``masked``), so nothing
   downstream can take the copy for masked, and a rerun goes straight back to the scan.
6. **Done**: journal step ``done``, the marker records the digest, the journal table is dropped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pymysql.cursors

from pipeline.clone.errors import CloneError, RuleFileError
from pipeline.clone.model import RuleFile
from pipeline.clone.mysql import close_session, open_session, read_schema
from pipeline.clone.plan import MaskingPlan, TablePlan, build_plan
from pipeline.clone.progress import CompletionMarker, Journal, JournalState, Step, TableProgress
from pipeline.clone.scan import Finding, scan, scan_targets
from pipeline.clone.sql import (
    KeyPads,
    chunk_end,
    chunk_range,
    chunk_update,
    fake_update,
    masked_pattern,
    quote,
    whole_update,
)
from pipeline.errors import Problem

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "MaskingPaused",
    "MaskingReport",
    "TableReport",
    "journal_state",
    "mask",
    "plan_masking",
]

DEFAULT_CHUNK_ROWS = 5000
LOCK_WAIT_SECONDS = 10
PROBE_ROWS = 50
_TRANSIENT = {1205, 1213, 2006, 2013, 2003}  # lock wait, deadlock, gone away, lost, cannot connect
ChunkCallback = Callable[[str, TableProgress], None]


class MaskingPaused(Exception):
    """``stop_at`` passed between two chunks: the run stopped cleanly, and the next one resumes after the last
    committed chunk (a Lambda masks for at most 15 minutes at a time)."""

    def __init__(self, database: str, table: str, progress: TableProgress) -> None:
        super().__init__(f"masking {database} paused in table {table} after {progress.chunks} chunks")
        self.database, self.table, self.progress = database, table, progress


@dataclass
class TableReport:
    """One table's part of a run; ``rows`` (changed) and ``chunks`` include those of the run this one resumed."""

    name: str
    truncated: bool = False
    deleted: int = 0
    rows: int = 0
    chunks: int = 0
    resumed: bool = False

    def __str__(self) -> str:
        if self.truncated:
            return f"{self.name}: truncated"
        parts = [f"{self.deleted:,} rows deleted"] if self.deleted else []
        if self.chunks:
            parts.append(f"{self.rows:,} rows changed in {self.chunks} chunk{'s' if self.chunks != 1 else ''}")
        resumed = " (resumed)" if self.resumed else ""
        return f"{self.name}: {'; '.join(parts) or 'kept'}{resumed}"


@dataclass
class MaskingReport:
    """What a run did. ``status``: ``masked`` (this run finished it) or ``already masked`` (nothing to do)."""

    database: str
    digest: str
    status: str
    tables: list[TableReport] = field(default_factory=list)
    scanned: int = 0
    seconds: float = 0.0
    subset: list[tuple[str, int]] = field(default_factory=list)  # rows each subset step removed

    def text(self) -> str:
        if self.status != "masked":
            return f"database {self.database}: {self.status} (rules and key {self.digest}); nothing done"
        lines = [f"database {self.database}: masked in {self.seconds:.1f}s (rules and key {self.digest})"]
        lines.extend(f"  subset: {table}: {rows:,} rows removed" for table, rows in self.subset)
        lines.extend(f"  {table}" for table in self.tables)
        lines.append(f"PII scan: {self.scanned} columns sampled, nothing found")
        return "\n".join(lines)


def plan_masking(connection: Any, rules: RuleFile) -> MaskingPlan:
    """The plan for the database the rules name (the coverage gate included), reading only information_schema."""
    with connection.cursor(pymysql.cursors.Cursor) as cursor:
        return build_plan(rules, read_schema(cursor, rules.database))


def journal_state(connection: Any, database: str) -> JournalState | None:
    """The journal of an unfinished run (None when there is none): a copy with a journal is not masked yet."""
    with connection.cursor(pymysql.cursors.Cursor) as cursor:
        return Journal(database).read(cursor)


def mask(
    connection: Any,
    rules: RuleFile,
    key: bytes,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    marker: CompletionMarker | None = None,
    pause: float = 0.0,
    on_chunk: ChunkCallback | None = None,
    stop_at: float | None = None,
) -> MaskingReport:
    """Mask the database ``rules.database`` in place over ``connection`` (pymysql, to the temporary cluster).

    ``key`` is the HMAC key (bytes from Secrets Manager); ``pause`` sleeps between chunks to spare a busy
    server; ``on_chunk`` is told of every committed chunk; past ``stop_at`` (a ``time.monotonic()`` value)
    the run stops after the chunk it is in and raises :class:`MaskingPaused`. Raises :class:`CloneError` (or
    its subclasses :class:`~pipeline.clone.errors.CoverageError`, :class:`~pipeline.clone.errors.RuleFileError`).
    """
    if chunk_rows < 1:
        raise CloneError(f"chunk_rows must be 1 or more, found {chunk_rows}")
    started = time.monotonic()
    pads = KeyPads.from_key(key)
    if stop_at is not None:
        on_chunk = _stopping(rules.database, stop_at, on_chunk)
    try:
        report = _run(connection, rules, pads, chunk_rows, marker, pause, on_chunk)
        connection.commit()  # ends the last read snapshot: no metadata lock outlives the run
    except BaseException:
        _rollback_quietly(connection)  # an open transaction would hold locks that block a DROP or a resume
        raise
    report.seconds = time.monotonic() - started
    return report


def _stopping(database: str, stop_at: float, on_chunk: ChunkCallback | None) -> ChunkCallback:
    def check(table: str, progress: TableProgress) -> None:
        if on_chunk is not None:
            on_chunk(table, progress)
        if time.monotonic() >= stop_at:
            raise MaskingPaused(database, table, progress)

    return check


def _run(
    connection: Any,
    rules: RuleFile,
    pads: KeyPads,
    chunk_rows: int,
    marker: CompletionMarker | None,
    pause: float,
    on_chunk: ChunkCallback | None,
) -> MaskingReport:
    plan = plan_masking(connection, rules)
    digest = f"{plan.digest}-{pads.fingerprint}"
    with connection.cursor(pymysql.cursors.Cursor) as cursor:
        # One run per database at a time: two would each resume from the same journal row and mask a chunk
        # twice. The server releases a named lock when its session ends, a killed worker's included.
        lock = f"kpi-clone-mask:{rules.database}"[:64]
        cursor.execute("SELECT GET_LOCK(%s, %s)", (lock, LOCK_WAIT_SECONDS))
        if cursor.fetchone()[0] != 1:
            raise CloneError(
                f"another run is masking database {rules.database}",
                where=rules.path,
                hint="wait for it to finish or fail; then rerun, which resumes where it stopped",
                retryable=True,
            )
        connection.commit()  # a fresh snapshot: the journal is read as the last run left it
        try:
            return _locked_run(connection, cursor, plan, pads, digest, chunk_rows, marker, pause, on_chunk)
        finally:
            with contextlib.suppress(pymysql.MySQLError):
                cursor.execute("DO RELEASE_LOCK(%s)", (lock,))


def _locked_run(
    connection: Any,
    cursor: Any,
    plan: MaskingPlan,
    pads: KeyPads,
    digest: str,
    chunk_rows: int,
    marker: CompletionMarker | None,
    pause: float,
    on_chunk: ChunkCallback | None,
) -> MaskingReport:
    rules, database = plan.rules, plan.rules.database
    done = MaskingReport(database, digest, "already masked")
    if marker is not None:
        finished = marker.finished()
        if finished == digest:
            journal = Journal(database)
            if journal.exists(cursor):  # stopped between recording the marker and dropping the journal
                journal.drop(cursor)
            return done
        if finished:
            raise CloneError(
                f"database {database} was masked by another run ({finished}), not with these rules and key ({digest})",
                where=rules.path,
                hint="restore the temporary cluster again to mask it with the new rules",
            )
    journal = Journal(database)
    state = journal.read(cursor)
    if state is not None and not state.digest:  # created, but the run never started: nothing was written
        journal.drop(cursor)
        state = None
    if state is not None and state.digest != digest:
        raise CloneError(
            f"database {database} has an unfinished masking run with other rules or another key ({state.digest}); "
            f"these are {digest}",
            where=rules.path,
            hint="finish that run with its rules and key, or restore the temporary cluster again",
        )
    if state is not None and state.step is Step.DONE:  # stopped between the last commit and the drop
        _finish(cursor, journal, marker, digest)
        return done
    open_session(cursor, pads)
    try:
        if state is None:
            _refuse_masked(cursor, plan)
            _preflight(cursor, plan)
            first = Step.SUBSET if plan.subset else Step.MASKING
            journal.create(cursor, digest, [t.name for t in plan.tables], first)
            connection.commit()
            state = journal.read(cursor)
            assert state is not None
        report = MaskingReport(database, digest, "masked")
        if state.step is Step.SUBSET:  # every delete is idempotent: after a crash the whole subset runs again
            for step in plan.subset:
                deleted = _delete(connection, cursor, plan.table(step.table), chunk_rows, step.condition)
                report.subset.append((step.table, deleted))
            connection.begin()
            journal.set_run_step(cursor, Step.MASKING)
            connection.commit()
            state.step = Step.MASKING
        if state.step is Step.MASKING:
            for table in plan.tables:
                progress = state.tables.get(table.name, TableProgress(Step.PENDING))
                report.tables.append(
                    _mask_table(connection, cursor, journal, table, progress, chunk_rows, pause, on_chunk)
                )
            connection.begin()
            journal.set_run_step(cursor, Step.MASKED)
            connection.commit()
        _check_references(cursor, plan)
        findings = scan(cursor, plan)
        if findings:
            raise _scan_error(rules, findings)
        report.scanned = sum(len(scan_targets(t)) for t in plan.tables)
        connection.begin()
        journal.set_run_step(cursor, Step.DONE)
        connection.commit()
        _finish(cursor, journal, marker, digest)
    finally:
        _close_quietly(cursor)
    return report


def _finish(cursor: Any, journal: Journal, marker: CompletionMarker | None, digest: str) -> None:
    if marker is not None:
        marker.record(digest)
    journal.drop(cursor)


def _close_quietly(cursor: Any) -> None:
    with contextlib.suppress(pymysql.MySQLError):  # the connection is gone, and the key in its session with it
        close_session(cursor)


def _refuse_masked(cursor: Any, plan: MaskingPlan) -> None:
    """Refuse a database whose e-mail and login columns already hold masked values (≥ 90 % of a sample each)."""
    looked: list[str] = []
    for table in plan.tables:
        if table.truncate:
            continue
        for name, rule in table.rules.items():
            pattern = masked_pattern(rule)
            if pattern is None:
                continue
            column = quote(name)
            cursor.execute(f"SELECT {column} FROM {table.table_sql} WHERE {column} IS NOT NULL LIMIT %s", (PROBE_ROWS,))
            values = [str(v) for (v,) in cursor.fetchall()]
            if not values:
                continue
            masked = sum(1 for v in values if pattern.fullmatch(v))
            if masked * 10 < len(values) * 9:
                return  # this column is not masked: a fresh copy
            looked.append(f"{table.name}.{name}")
    if looked:
        raise CloneError(
            f"database {plan.schema.database} looks masked already ({', '.join(looked)} hold masked values) and "
            "no journal says how far a run got; masking it again would mask masked values",
            where=plan.rules.path,
            hint="a finished run leaves no journal: share this copy as it is, or restore the temporary cluster "
            "again to start over",
        )


def _check_references(cursor: Any, plan: MaskingPlan) -> None:
    """After a subset, no key of the database may point at a row that is gone (declared and virtual keys)."""
    dangling = []
    for check in plan.reference_checks:
        cursor.execute(check.sql, ())
        (count,) = cursor.fetchone()
        if count:
            dangling.append(f"{check.key}: {count} rows")
    if dangling:
        raise CloneError(
            "the subset left references to rows that are gone: " + "; ".join(dangling),
            where=plan.rules.path,
            hint="declare the missing key with `references:` (or subset the other table too) so that the subset "
            "follows it; restore the temporary cluster again, nothing was shared",
        )


def _preflight(cursor: Any, plan: MaskingPlan) -> None:
    problems: list[Problem] = []
    for step in plan.subset:
        rule = plan.rules.tables.get(step.table)
        location = rule.subset.location if rule is not None and rule.subset is not None else plan.rules.path
        sql = f"SELECT 1 FROM {plan.table(step.table).table_sql} WHERE {step.condition} LIMIT 0"
        _try(cursor, sql, location, problems)
    for table in plan.tables:
        if table.delete_where:
            rule = plan.rules.tables[table.name]
            where = table.delete_where.replace("%", "%%")
            _try(cursor, f"SELECT 1 FROM {table.table_sql} WHERE ({where}) LIMIT 0", rule.location, problems)
        for item in table.assignments:  # custom SQL, also inside JSON path rules: refused here, not mid-table
            location = table.rules[item.column].location
            _try(cursor, f"SELECT {item.expression} FROM {table.table_sql} LIMIT 0", location, problems)
    if problems:
        raise RuleFileError(problems)
    collisions = []
    for table in plan.tables:
        for check in table.unique_checks:
            cursor.execute(check.sql, ())
            (count,) = cursor.fetchone()
            if count:
                rules = ", ".join(f"{c}: {table.rules[c].describe()}" for c in check.columns if c in table.rules)
                collisions.append(f"{table.name}({', '.join(check.columns)}): {count} groups of values ({rules})")
    if collisions:
        raise CloneError(
            "masking would merge distinct values of a unique key into one: " + "; ".join(collisions),
            where=plan.rules.path,
            hint="give the rule a longer `length` (each hex character makes a collision 16 times less likely) or "
            "more # in a phone `format`; nothing was written",
        )


def _try(cursor: Any, sql: str, location: Any, problems: list[Problem]) -> None:
    try:
        cursor.execute(sql, ())
        cursor.fetchall()
    except pymysql.MySQLError as error:
        message = error.args[1] if len(error.args) > 1 else str(error)
        problems.append(
            Problem(location, "sql-refused", f"the server refuses this expression: {message}", "fix the SQL and rerun")
        )


def _mask_table(
    connection: Any,
    cursor: Any,
    journal: Journal,
    table: TablePlan,
    progress: TableProgress,
    chunk_rows: int,
    pause: float,
    on_chunk: ChunkCallback | None,
) -> TableReport:
    report = TableReport(
        table.name, table.truncate, 0, progress.rows, progress.chunks, resumed=progress.step is not Step.PENDING
    )
    if progress.step is Step.DONE:
        return report
    try:
        if progress.step is Step.PENDING:
            if table.truncate:
                cursor.execute(f"TRUNCATE TABLE {table.table_sql}", ())  # DDL: commits; repeating it is harmless
                connection.begin()
                journal.set_step(cursor, table.name, Step.DONE)
                connection.commit()
                return report
            if table.delete_where:
                report.deleted = _delete(connection, cursor, table, chunk_rows, table.delete_where.replace("%", "%%"))
            connection.begin()
            journal.set_step(cursor, table.name, Step.MASKING)
            connection.commit()
        if not table.assignments and not table.fakes:
            pass
        elif not table.table.primary_key:
            connection.begin()
            cursor.execute(whole_update(table.table_sql, table.assignments), ())
            rows = max(cursor.rowcount, 0)
            journal.set_step(cursor, table.name, Step.DONE, rows)
            connection.commit()
            report.rows += rows
            report.chunks += 1
            return report
        else:
            _chunks(connection, cursor, journal, table, progress, chunk_rows, pause, on_chunk, report)
        connection.begin()
        journal.set_step(cursor, table.name, Step.DONE)
        connection.commit()
    except pymysql.MySQLError as error:
        _rollback_quietly(connection)
        code = error.args[0] if error.args and isinstance(error.args[0], int) else 0
        raise CloneError(
            f"masking table {table.name} stopped: {error}",
            where=table.name,
            hint="rerun: masking resumes after the last committed chunk, and no row is masked twice",
            retryable=code in _TRANSIENT,
        ) from error
    return report


def _chunks(
    connection: Any,
    cursor: Any,
    journal: Journal,
    table: TablePlan,
    progress: TableProgress,
    chunk_rows: int,
    pause: float,
    on_chunk: ChunkCallback | None,
    report: TableReport,
) -> None:
    key = table.table.primary_key
    position = progress.position
    while True:
        connection.begin()
        sql, params = chunk_end(table.table_sql, key, position, chunk_rows)
        cursor.execute(sql, params)
        end = cursor.fetchone()
        if end is None:
            connection.commit()
            return
        rows = _fake_chunk(cursor, table, position, end) if table.fakes else 0
        if table.assignments:
            sql, params = chunk_update(table.table_sql, table.assignments, key, position, end)
            cursor.execute(sql, params)
            rows = max(rows, cursor.rowcount, 0)
        journal.advance(cursor, table.name, end, rows)
        connection.commit()  # the chunk and its journal row, together
        position = tuple(end)
        progress.position, progress.chunks, progress.rows = position, progress.chunks + 1, progress.rows + rows
        report.rows += rows
        report.chunks += 1
        if on_chunk is not None:
            on_chunk(table.name, progress)
        if pause:
            time.sleep(pause)


def _fake_chunk(cursor: Any, table: TablePlan, position: Sequence[object] | None, end: Sequence[object]) -> int:
    """One chunk's fakes: the keyed hashes read (never the values), the fakes made here, written by primary key."""
    from pipeline.clone.fakes import fake

    key = table.table.primary_key
    where, params = chunk_range(table.table_sql, key, position, end)
    digests = ", ".join(f.digest_sql for f in table.fakes)
    cursor.execute(f"SELECT {', '.join(quote(k) for k in key)}, {digests} FROM {table.table_sql} WHERE {where}", params)
    rows = cursor.fetchall()
    if not rows:
        return 0
    values: list[object] = []
    for row in rows:
        values.extend(row[: len(key)])
        for item, digest in zip(table.fakes, row[len(key) :], strict=True):
            made = (
                None
                if digest is None
                else fake(item.kind, item.locale, str(digest), suffix=item.suffix, max_length=item.max_length)
            )
            values.append(made)
    cursor.execute(fake_update(table.table_sql, key, [f.column for f in table.fakes], len(rows)), values)
    return len(rows)


def _delete(connection: Any, cursor: Any, table: TablePlan, chunk_rows: int, where: str) -> int:
    """Rows meeting ``where`` (SQL, ``%`` already doubled) deleted in chunks by primary key, each its own
    transaction (one pass over the table, however few rows match). Deleting is idempotent, so after a crash it
    simply runs again from the start."""
    key = table.table.primary_key
    total = 0
    position: tuple[object, ...] | None = None
    while True:
        connection.begin()
        if key:
            sql, params = chunk_end(table.table_sql, key, position, chunk_rows)
            cursor.execute(sql, params)
            end = cursor.fetchone()
            if end is None:
                connection.commit()
                return total
            sql, params = chunk_range(table.table_sql, key, position, end)
            cursor.execute(f"DELETE FROM {table.table_sql} WHERE {sql} AND ({where})", params)
            position = tuple(end)
        else:
            cursor.execute(f"DELETE FROM {table.table_sql} WHERE ({where}) LIMIT %s", (chunk_rows,))
        deleted = max(int(cursor.rowcount), 0)
        connection.commit()
        total += deleted
        if not key and deleted < chunk_rows:
            return total


def _rollback_quietly(connection: Any) -> None:
    with contextlib.suppress(pymysql.MySQLError):
        connection.rollback()


def _scan_error(rules: RuleFile, findings: list[Finding]) -> CloneError:
    lines = "\n  ".join(str(f) for f in findings)
    return CloneError(
        f"the PII scan found personal data after masking; nothing may be shared:\n  {lines}",
        where=rules.path,
        hint="a column marked `keep` holds personal data: mask it in the rule file, restore the temporary cluster "
        "and clone again; or, if a match is not personal data, list it under `scan.ignore` and rerun (the scan "
        "runs again, the masking does not)",
    )
