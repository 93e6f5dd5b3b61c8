"""The SQL of a BigQuery batch load, rendered as text — pure: no client, no I/O.

One script lands a batch (:func:`batch_script`): a conditional insert of the one row of the KPI's own lock table
``_kpi_lock_<kpi>`` (:func:`lock_table`), then one multi-statement transaction that

1. updates that lock row — a mutation of the KPI's lock table, so two transactions loading one KPI always
   conflict and BigQuery cancels one ("Transaction is aborted due to concurrent update"), even when both would
   only insert (an empty partition deletes nothing). BigQuery judges the conflict per table, not per row: a lock
   table per KPI is what lets loads of *different* KPIs commit side by side (the tables their transactions
   share, the audit table and ``_kpi_anomalies``, they only append to, which does not conflict);
2. re-checks the audit table: if a run as new or newer (newer only, under ``force``) is already loaded for a
   partition of the plan — loaded since the partition's latest removal (``kpi remove``), as
   :func:`pipeline.warehouses.base.current_loads` decides — or, without ``force``, if a partition's latest audit
   row is the removal of the very run planned (:func:`pipeline.warehouses.base.removed_again`: a late event of a
   removed run), ``ERROR('kpi-superseded: …')`` rolls everything back and the loader plans again;
3. deletes the plan's partition ranges from the KPI's table and inserts the staged rows of those ranges;
4. counts each partition's rows (one scan, each row named by its partition's range with ``CASE``) and fails
   with ``ERROR('kpi-count: <partition> <rows>')`` on any difference from its manifest;
5. inserts the audit rows — and, for a batch of one scored partition, its scores (:func:`judged_sql`,
   :mod:`pipeline.warehouses.commit_scoring`) — and commits; the scores are then the script's result.

Values are literals, never query parameters: the emulator the tests run on cannot pass parameters into scripts,
and every value here is one the loader validated (names by :mod:`pipeline.core.identifiers`, run ids by
:func:`pipeline.core.lake.is_run_id`) or a number or a time it computed; strings are escaped all the same. The
emulator hangs on ``RAISE``; ``ERROR()`` works there as in BigQuery and rolls the transaction back.

The script grows linearly with the batch: each partition's range appears a fixed number of times. BigQuery
refuses a query over 1,024K characters, and a month of hourly partitions (744, one backfill batch) is 0.65 MB
so; counting each partition with its own ``COUNTIF`` over every range, as this once did, grew with the square
of the batch and passed the limit from about 90 hourly partitions (1.3 MB for 100, 69 MB for a month).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pipeline.core.anomaly import DROP, SPIKE, Expectation
from pipeline.core.manifest import Manifest
from pipeline.core.totals import NULL_VALUE
from pipeline.core.types import BqType
from pipeline.warehouses.anomalies import ANOMALY_TABLE, SCORE_COLUMNS, History
from pipeline.warehouses.base import AUDIT_TABLE, REMOVED, partition_bounds

LOCK_PREFIX = "_kpi_lock_"  # + the KPI's name: its own lock table (lock_table)
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

    @property
    def lock(self) -> str:
        """The KPI's lock table, quoted."""
        return self.name(lock_table(self.kpi))


def lock_table(kpi: str) -> str:
    """``_kpi_lock_<kpi>``: the KPI's own lock table, one row. One per KPI, because BigQuery cancels a transaction
    that mutates a *table* another transaction in flight mutates — a shared lock table, even with a row per KPI,
    made loads of different KPIs cancel each other. No KPI's table can be named so: KPI names begin with a letter
    (:mod:`pipeline.core.identifiers`)."""
    return LOCK_PREFIX + kpi


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


def lock_row(tables: Tables) -> str:
    """The row of the KPI's lock table, inserted when missing (two first loads may both insert one: harmless, the
    update inside the transaction then touches both)."""
    lock, kpi = tables.lock, tables.kpi
    return (
        f"INSERT INTO {lock} (kpi, run_id, locked_at) SELECT {string(kpi)}, '', CURRENT_TIMESTAMP() "
        f"FROM UNNEST([1]) WHERE NOT EXISTS (SELECT 1 FROM {lock} WHERE kpi = {string(kpi)})"
    )


def batch_script(
    tables: Tables, write: Sequence[Manifest], *, force: bool, job_id: str, judged: str | None = None
) -> str:
    """The whole script of one batch (see the module docstring); ``write`` is the plan's partitions. With
    ``judged`` (:func:`judged_sql`), the partition's scores are inserted into ``_kpi_anomalies`` inside the
    transaction and read back, as committed, by the script's last statement (its result): a read of the rows
    this job wrote, cheaper than judging twice."""
    kpi = write[0].kpi
    table, audit, lock = tables.name(tables.kpi), tables.name(AUDIT_TABLE), tables.lock
    names = ", ".join(column(f.name) for f in write[0].schema)
    ranges = " OR ".join(partition_predicate(m) for m in write)
    newer = ">" if force else ">="
    taken = " OR ".join(f"(`partition` = {string(m.partition)} AND run_id {newer} {string(m.run_id)})" for m in write)
    wanted = "\n  UNION ALL ".join(f"SELECT {string(m.partition)} AS p, {m.rows} AS want" for m in write)
    cases = " ".join(f"WHEN {partition_predicate(m)} THEN {string(m.partition)}" for m in write)
    runs = sorted({m.run_id for m in write})
    removed_again = ""
    if not force:  # a partition whose latest audit row removed the very run planned (base.removed_again)
        same = " OR ".join(f"(`partition` = {string(m.partition)} AND run_id = {string(m.run_id)})" for m in write)
        planned = ", ".join(string(m.partition) for m in write)
        removed_again = (
            f"\n  UNION ALL\n  SELECT `partition`, run_id FROM (\n    SELECT `partition`, run_id, job_id, ROW_NUMBER() "
            f"OVER (PARTITION BY `partition` ORDER BY loaded_at DESC) AS n FROM {audit}\n"
            f"    WHERE kpi = {string(kpi)} AND `partition` IN ({planned})\n"
            f"  ) WHERE n = 1 AND STARTS_WITH(job_id, {string(REMOVED)}) AND ({same})"
        )
    scores = ", ".join(column(c) for c in SCORE_COLUMNS)
    scored = f"\nINSERT INTO {tables.name(ANOMALY_TABLE)} ({scores})\n{judged};" if judged else ""
    returned = ""
    if judged:  # the scored_at bound prunes the read to this month's partition (two at a month's turn)
        returned = (
            f"\nSELECT {scores} FROM {tables.name(ANOMALY_TABLE)}\n  WHERE kpi = {string(kpi)} "
            f"AND `partition` = {string(write[0].partition)} AND job_id = {string(job_id)}\n"
            "    AND scored_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)\n"
            "  ORDER BY measure, dimension;"
        )
    audit_rows = ",\n  ".join(
        f"({string(m.kpi)}, {string(m.partition)}, {string(m.run_id)}, {string(m.sql_hash)}, {m.rows}, {m.bytes}, "
        f"{string(job_id)}, CURRENT_TIMESTAMP())"
        for m in write
    )
    return f"""{lock_row(tables)};
BEGIN TRANSACTION;
UPDATE {lock} SET run_id = {string(runs[-1])}, locked_at = CURRENT_TIMESTAMP() WHERE kpi = {string(kpi)};
SELECT ERROR(CONCAT({string(SUPERSEDED + " ")}, p, ' ', r)) FROM (
  SELECT `partition` AS p, run_id AS r FROM {audit}
  LEFT JOIN (
    SELECT `partition` AS removed_partition, MAX(loaded_at) AS removed_at FROM {audit}
    WHERE kpi = {string(kpi)} AND STARTS_WITH(job_id, {string(REMOVED)}) GROUP BY 1
  ) ON `partition` = removed_partition
  WHERE kpi = {string(kpi)} AND ({taken}) AND NOT STARTS_WITH(job_id, {string(REMOVED)})
    AND (removed_at IS NULL OR loaded_at > removed_at){removed_again}
);
DELETE FROM {table} WHERE {ranges};
INSERT INTO {table} ({names}) SELECT {names} FROM {tables.name(tables.staging)} WHERE {ranges};
SELECT ERROR(CONCAT({string(COUNT + " ")}, w.p, ' ', CAST(IFNULL(f.found, 0) AS STRING))) FROM (
  {wanted}
) AS w LEFT JOIN (
  SELECT CASE {cases} END AS p, COUNT(*) AS found FROM {table} WHERE {ranges} GROUP BY 1
) AS f ON w.p = f.p WHERE IFNULL(f.found, 0) != w.want;
INSERT INTO {audit} (kpi, `partition`, run_id, sql_hash, `rows`, bytes, job_id, loaded_at) VALUES
  {audit_rows};{scored}
COMMIT TRANSACTION;{returned}"""


def judged_sql(
    staging: str, manifest: Manifest, history: History, expectations: Sequence[Expectation], job_id: str, at: datetime
) -> str:
    """The rows of ``_kpi_anomalies`` for the batch's one partition: its staged rows summed per measure and
    dimension value, as the history query sums them, judged against ``expectations`` (computed from the history
    before the load) as :meth:`pipeline.core.anomaly.Expectation.judge` judges — the z-score on the ``asinh``
    scale, anomalous beyond the threshold; a series the partition lacks counts 0. ``staging`` is the staging
    table's quoted name. The expectations are literal rows joined with ``UNION ALL``: the emulator runs
    ``UNNEST([STRUCT(…)])`` 2–3 times slower (0.15 s against 0.06–0.09 s for one row, measured)."""
    by = history.by
    value = f"COALESCE(CAST({column(by)} AS STRING), {string(NULL_VALUE)})" if by else "''"
    sums = ", ".join(f"SUM(CAST({column(m)} AS FLOAT64)) AS s{i}" for i, m in enumerate(history.measures))
    pick = " ".join(f"WHEN {string(m)} THEN a.s{i}" for i, m in enumerate(history.measures))
    prefix = f"{by}=" if by else ""
    names = ("measure", "v", "dimension", "center", "scale", "threshold", "expected", "low", "high")
    expected = "\n      UNION ALL ".join(
        "SELECT "
        + ", ".join(
            f"{literal} AS {name}" if first else literal
            for name, literal in zip(
                names,
                (
                    string(e.measure),
                    string((e.dimension or "")[len(prefix) :]),
                    string(e.dimension or ""),
                    *(float_literal(x) for x in (e.center, e.scale, e.threshold, e.expected, e.low, e.high)),
                ),
                strict=True,
            )
        )
        for first, e in ((i == 0, e) for i, e in enumerate(expectations))
    )
    direction = f"IF(ABS(z) > threshold, IF(z > 0, {string(SPIKE)}, {string(DROP)}), '')"
    return f"""SELECT {string(manifest.kpi)} AS kpi, {string(manifest.partition)} AS `partition`, measure,
  dimension, actual, expected, low, high, z AS score, {direction} AS direction, {string(manifest.run_id)} AS run_id,
  {string(job_id)} AS job_id, {time_literal(at, BqType.TIMESTAMP)} AS scored_at
FROM (
  SELECT *, (ASINH(actual) - center) / scale AS z FROM (
    SELECT e.*, IFNULL(CASE e.measure {pick} END, 0) AS actual FROM (
      {expected}
    ) AS e LEFT JOIN (
      SELECT {value} AS v, {sums} FROM {staging} WHERE {partition_predicate(manifest)} GROUP BY 1
    ) AS a ON e.v = a.v
  )
)
ORDER BY measure, dimension"""


def float_literal(value: float) -> str:
    """A FLOAT64 literal; infinities and NaN as BigQuery spells them."""
    if math.isfinite(value):
        return repr(float(value))
    return f"CAST({string(str(value))} AS FLOAT64)"


def count_error(message: str) -> tuple[str, int] | None:
    """(partition, rows found) of a ``kpi-count`` failure in a job's error message."""
    found = _COUNT_ERROR.search(message)
    return (found.group(1), int(found.group(2))) if found else None


def superseded_error(message: str) -> tuple[str, str] | None:
    """(partition, run id loaded) of a ``kpi-superseded`` failure."""
    found = _SUPERSEDED_ERROR.search(message)
    return (found.group(1), found.group(2)) if found else None
