"""The SQL of a BigQuery batch load, rendered as text — pure: no client, no I/O.

One script lands a batch (:func:`batch_script`): a conditional insert of the KPI's row in ``_kpi_lock``, then one
multi-statement transaction that

1. updates that lock row — a mutation of one shared row, so two transactions loading one KPI always conflict
   and BigQuery cancels one ("Transaction is aborted due to concurrent update"), even when both would only
   insert (an empty partition deletes nothing);
2. re-checks the audit table: if a run as new or newer (newer only, under ``force``) is already loaded for a
   partition of the plan — loaded since the partition's latest removal (``kpi remove``), as
   :func:`pipeline.warehouses.base.current_loads` decides — ``ERROR('kpi-superseded: …')`` rolls everything back
   and the loader plans again;
3. deletes the plan's partition ranges from the KPI's table and inserts the staged rows of those ranges;
4. counts each partition's rows (one scan, each row named by its partition's range with ``CASE``) and fails
   with ``ERROR('kpi-count: <partition> <rows>')`` on any difference from its manifest;
5. inserts the audit rows and commits.

Values are literals, never query parameters: the emulator the tests run on cannot pass parameters into scripts,
and every value here is one the loader validated (names by :mod:`pipeline.core.identifiers`, run ids by
:func:`pipeline.core.lake.is_run_id`) or a number or a time it computed; strings are escaped all the same. The
emulator hangs on ``RAISE``; ``ERROR()`` works there as in BigQuery and rolls the transaction back.

The script grows linearly with the batch: each partition's range appears a fixed number of times. BigQuery
refuses a query over 1,024K characters, and a month of hourly partitions (744, one backfill batch) is 0.58 MB
so; counting each partition with its own ``COUNTIF`` over every range, as this once did, grew with the square
of the batch and passed the limit from about 90 hourly partitions (1.3 MB for 100, 69 MB for a month).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pipeline.core.manifest import Manifest
from pipeline.core.types import BqType
from pipeline.warehouses.base import AUDIT_TABLE, REMOVED, partition_bounds

LOCK_TABLE = "_kpi_lock"
SUPERSEDED = "kpi-superseded:"
COUNT = "kpi-count:"
_COUNT_ERROR = re.compile(re.escape(COUNT) + r" (\S+) (\d+)")
_SUPERSEDED_ERROR = re.compile(re.escape(SUPERSEDED) + r" (\S+) (\S+)")
# Project ids, dataset and table names as a `bigquery://` URL and our identifiers allow them
_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}


@dataclass(frozen=True)
class Tables:
    """The fully qualified names a batch script touches."""

    project: str
    dataset: str
    kpi: str
    staging: str

    def name(self, table: str) -> str:
        return table_name(self.project, self.dataset, table)


def table_name(project: str, dataset: str, table: str) -> str:
    """`` `project.dataset.table` `` — each part checked, so that no backtick or quote can reach a statement."""
    for part in (project, dataset, table):
        if not _NAME_PART.match(part):
            raise ValueError(f"{part!r} cannot be part of a BigQuery table name")
    return f"`{project}.{dataset}.{table}`"


def column(name: str) -> str:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise ValueError(f"{name!r} is not a column name")
    return f"`{name}`"


def string(text: str) -> str:
    """A GoogleSQL string literal: quotes, backslashes and control characters escaped."""
    return "'" + "".join(_ESCAPES.get(c, c) for c in text) + "'"


def time_literal(value: date | datetime, column_type: BqType) -> str:
    """A partition bound as a typed literal: TIMESTAMP in UTC, DATETIME as its wall clock, DATE as a day."""
    if column_type is BqType.TIMESTAMP:
        assert isinstance(value, datetime)
        return f"TIMESTAMP '{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}+00'"
    if column_type is BqType.DATETIME:
        assert isinstance(value, datetime)
        return f"DATETIME '{value:%Y-%m-%d %H:%M:%S.%f}'"
    day = value.date() if isinstance(value, datetime) else value
    return f"DATE '{day:%Y-%m-%d}'"


def partition_predicate(manifest: Manifest) -> str:
    """The rows of the manifest's partition in its time column; TRUE (every row) for a snapshot."""
    bounds = partition_bounds(manifest)
    if bounds is None:
        return "TRUE"
    name, column_type, start, end = bounds
    return (
        f"({column(name)} >= {time_literal(start, column_type)} AND {column(name)} < {time_literal(end, column_type)})"
    )


def lock_row(tables: Tables, kpi: str) -> str:
    """The KPI's row in ``_kpi_lock``, inserted when missing (two first loads may both insert one: harmless, the
    update below then touches both)."""
    lock = tables.name(LOCK_TABLE)
    return (
        f"INSERT INTO {lock} (kpi, run_id, locked_at) SELECT {string(kpi)}, '', CURRENT_TIMESTAMP() "
        f"FROM UNNEST([1]) WHERE NOT EXISTS (SELECT 1 FROM {lock} WHERE kpi = {string(kpi)})"
    )


def batch_script(tables: Tables, write: Sequence[Manifest], *, force: bool, job_id: str) -> str:
    """The whole script of one batch (see the module docstring); ``write`` is the plan's partitions."""
    kpi = write[0].kpi
    table, audit, lock = tables.name(tables.kpi), tables.name(AUDIT_TABLE), tables.name(LOCK_TABLE)
    names = ", ".join(column(f.name) for f in write[0].schema)
    ranges = " OR ".join(partition_predicate(m) for m in write)
    newer = ">" if force else ">="
    taken = " OR ".join(f"(`partition` = {string(m.partition)} AND run_id {newer} {string(m.run_id)})" for m in write)
    wanted = "\n  UNION ALL ".join(f"SELECT {string(m.partition)} AS p, {m.rows} AS want" for m in write)
    cases = " ".join(f"WHEN {partition_predicate(m)} THEN {string(m.partition)}" for m in write)
    runs = sorted({m.run_id for m in write})
    audit_rows = ",\n  ".join(
        f"({string(m.kpi)}, {string(m.partition)}, {string(m.run_id)}, {string(m.sql_hash)}, {m.rows}, {m.bytes}, "
        f"{string(job_id)}, CURRENT_TIMESTAMP())"
        for m in write
    )
    return f"""{lock_row(tables, kpi)};
BEGIN TRANSACTION;
UPDATE {lock} SET run_id = {string(runs[-1])}, locked_at = CURRENT_TIMESTAMP() WHERE kpi = {string(kpi)};
SELECT ERROR(CONCAT({string(SUPERSEDED + " ")}, `partition`, ' ', run_id)) FROM {audit}
  LEFT JOIN (
    SELECT `partition` AS removed_partition, MAX(loaded_at) AS removed_at FROM {audit}
    WHERE kpi = {string(kpi)} AND STARTS_WITH(job_id, {string(REMOVED)}) GROUP BY 1
  ) ON `partition` = removed_partition
  WHERE kpi = {string(kpi)} AND ({taken}) AND NOT STARTS_WITH(job_id, {string(REMOVED)})
    AND (removed_at IS NULL OR loaded_at > removed_at);
DELETE FROM {table} WHERE {ranges};
INSERT INTO {table} ({names}) SELECT {names} FROM {tables.name(tables.staging)} WHERE {ranges};
SELECT ERROR(CONCAT({string(COUNT + " ")}, w.p, ' ', CAST(IFNULL(f.found, 0) AS STRING))) FROM (
  {wanted}
) AS w LEFT JOIN (
  SELECT CASE {cases} END AS p, COUNT(*) AS found FROM {table} WHERE {ranges} GROUP BY 1
) AS f ON w.p = f.p WHERE IFNULL(f.found, 0) != w.want;
INSERT INTO {audit} (kpi, `partition`, run_id, sql_hash, `rows`, bytes, job_id, loaded_at) VALUES
  {audit_rows};
COMMIT TRANSACTION;"""


def count_error(message: str) -> tuple[str, int] | None:
    """(partition, rows found) of a ``kpi-count`` failure in a job's error message."""
    found = _COUNT_ERROR.search(message)
    return (found.group(1), int(found.group(2))) if found else None


def superseded_error(message: str) -> tuple[str, str] | None:
    """(partition, run id loaded) of a ``kpi-superseded`` failure."""
    found = _SUPERSEDED_ERROR.search(message)
    return (found.group(1), found.group(2)) if found else None
