"""What both warehouses share for anomaly scoring: the history query and the audit-style table ``_kpi_anomalies``.

Scoring (:mod:`pipeline.core.anomaly`) needs per-partition sums of each measure, per dimension value: one query
per KPI computes them in the warehouse (:func:`history_sql`), so that only a few hundred numbers per series leave
it — a year of a daily KPI split by four statuses is 1,460 rows, whatever the table holds — and the loader
Lambda needs neither pandas nor NumPy. The partition of a row is its time column in the KPI's zone, cut to the
day or the hour, exactly as the exporter routed it (:mod:`pipeline.core.bounds`): DATE as it is, DATETIME read
in ``source_timezone``, TIMESTAMP converted from UTC. DuckDB and BigQuery spell the conversion and the formatting
differently (:data:`DIALECTS`), the rest of the query is the same text.

Every scored partition is stored, anomalous or not: a re-load re-scores, and the newest row of a partition,
measure and dimension value wins (:func:`scores_sql`, like :func:`~pipeline.warehouses.base.current_loads_sql`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.core.anomaly import Observation, Score, history_partitions
from pipeline.core.bounds import column_bound
from pipeline.core.manifest import Manifest
from pipeline.core.spec import AnomalySettings
from pipeline.core.totals import NULL_VALUE, scored_measures
from pipeline.core.types import BqType
from pipeline.warehouses.audit_rule import current_loads_sql

ANOMALY_TABLE = "_kpi_anomalies"
# kpi, partition, measure, dimension ('' for the partition's total), actual, expected, low, high, score, direction
# ('' when not anomalous), run_id, job_id, scored_at
SCORE_COLUMNS = (
    "kpi",
    "partition",
    "measure",
    "dimension",
    "actual",
    "expected",
    "low",
    "high",
    "score",
    "direction",
    "run_id",
    "job_id",
    "scored_at",
)


@dataclass(frozen=True)
class Dialect:
    """How one warehouse writes the parts of :func:`history_sql` that differ."""

    double: str  # the float type a measure is summed as
    text: str  # the string type a dimension is cast to
    # (format, column) → text, per column type; {zone} and {source} are the KPI's and the DATETIME's zones
    date: str
    wall_clock: str  # DATETIME whose zone is the KPI's
    datetime_in: str  # DATETIME in another zone than the KPI's
    timestamp: str
    quote: str  # the identifier quote


DIALECTS = {
    "duckdb": Dialect(
        "DOUBLE",
        "VARCHAR",
        "strftime({column}, '{format}')",
        "strftime({column}, '{format}')",
        "strftime(timezone('{zone}', timezone('{source}', {column})), '{format}')",
        "strftime(timezone('{zone}', {column}), '{format}')",
        '"',
    ),
    "bigquery": Dialect(
        "FLOAT64",
        "STRING",
        "FORMAT_DATE('{format}', {column})",
        "FORMAT_DATETIME('{format}', {column})",
        "FORMAT_TIMESTAMP('{format}', TIMESTAMP({column}, '{source}'), '{zone}')",
        "FORMAT_TIMESTAMP('{format}', {column}, '{zone}')",
        "`",
    ),
}
FORMATS = {"day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H"}


@dataclass(frozen=True)
class History:
    """What the history query of one KPI reads: its table's time column and type, grain and zones, the measures
    and the dimension scored, and the first partition it needs (``since``, a partition name)."""

    kpi: str
    time_column: str
    time_type: BqType
    grain: str
    timezone: str
    source_timezone: str
    measures: tuple[str, ...]
    by: str | None
    since: str

    def bound(self) -> date | datetime:
        """``since`` as a value of the time column: the query's lower bound."""
        day = date.fromisoformat(self.since[:10])
        hour = int(self.since[11:13]) if self.grain == "hour" else 0
        moment = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(self.timezone))
        return column_bound(moment, self.time_type, ZoneInfo(self.source_timezone))

    def observations(self, rows: Sequence[tuple[Any, ...]]) -> list[Observation]:
        """The query's rows (partition, dimension value, one sum per measure) as observations (a NULL sum, 0)."""
        by, measures = self.by, self.measures
        if by is None and len(measures) == 1:  # the common case, 3× faster without the star and the zip (measured)
            (measure,) = measures
            return [Observation(partition, measure, None, float(total or 0.0)) for partition, _, total in rows]
        return [
            Observation(partition, measure, dimension, float(total or 0.0))
            for partition, value, *sums in rows
            for dimension in (None if by is None else f"{by}={value}",)
            for measure, total in zip(measures, sums, strict=True)
        ]


def history_of(manifest: Manifest, settings: AnomalySettings, first_target: str) -> History:
    """What scoring the partitions of ``manifest``'s KPI from ``first_target`` on reads, as the manifest (the
    header it was exported with) describes the table."""
    assert manifest.time_column is not None  # a day or hour grain: checked with the manifest
    columns = [(f.name, f.type) for f in manifest.schema]
    return History(
        manifest.kpi,
        manifest.time_column,
        BqType(next(kind for name, kind in columns if name == manifest.time_column)),
        manifest.grain,
        manifest.timezone,
        manifest.source_timezone or manifest.timezone,
        scored_measures(settings.measures, columns, manifest.time_column),
        settings.by,
        first_needed(first_target, manifest.grain),
    )


def first_needed(first_target: str, grain: str) -> str:
    """The earliest partition the history of targets from ``first_target`` on needs."""
    back = history_partitions(grain)
    day = date.fromisoformat(first_target[:10])
    if grain == "hour":
        moment = datetime(day.year, day.month, day.day, int(first_target[11:13])) - timedelta(hours=back)
        return f"{moment:%Y-%m-%dT%H}"
    return (day - timedelta(days=back)).isoformat()


def history_sql(history: History, table: str, dialect: str) -> str:
    """One query: per partition from ``history.since`` on (and dimension value), the sum of each measure. The
    lower bound is the query's one parameter (``?`` in DuckDB, ``@since`` in BigQuery)."""
    d = DIALECTS[dialect]
    q = d.quote
    column = f"{q}{history.time_column}{q}"
    zones = {"zone": history.timezone, "source": history.source_timezone, "format": FORMATS[history.grain]}
    if history.time_type is BqType.DATE:
        bucket = d.date.format(column=column, **zones)
    elif history.time_type is BqType.TIMESTAMP:
        bucket = d.timestamp.format(column=column, **zones)
    elif history.source_timezone == history.timezone:
        bucket = d.wall_clock.format(column=column, **zones)
    else:
        bucket = d.datetime_in.format(column=column, **zones)
    dimension = (
        f"COALESCE(CAST({q}{history.by}{q} AS {d.text}), '{NULL_VALUE}')" if history.by else f"CAST(NULL AS {d.text})"
    )
    sums = ", ".join(f"SUM(CAST({q}{m}{q} AS {d.double}))" for m in history.measures)
    parameter = "?" if dialect == "duckdb" else "@since"
    return (
        f"SELECT {bucket} AS p, {dimension} AS v, {sums} FROM {table} "
        f"WHERE {column} >= {parameter} GROUP BY 1, 2 ORDER BY 1, 2"
    )


def score_rows(scores: Sequence[Score], run_ids: dict[str, str], job_id: str, at: datetime) -> list[tuple[Any, ...]]:
    """The rows of ``_kpi_anomalies`` for ``scores`` (``run_ids``: the run loaded per partition)."""
    return [
        (
            s.kpi,
            s.partition,
            s.measure,
            s.dimension or "",
            s.actual,
            s.expected,
            s.low,
            s.high,
            s.score,
            s.direction,
            run_ids.get(s.partition, ""),
            job_id,
            at,
        )
        for s in scores
    ]


def scores_sql(
    table: str, audit: str, kpi: str, first: str, last: str, partition: str = "partition", at: str = ""
) -> str:
    """The newest score of each partition, measure and dimension value of ``kpi`` from ``first`` to ``last``
    (placeholders or literals, partition names, both included) — of the run loaded there now: a score describes
    the rows it was judged on, so a partition removed (``kpi remove``) or loaded again by a run not scored yet has
    none (:func:`~pipeline.warehouses.audit_rule.current_loads_sql` says which run is loaded, from ``audit``).
    ``partition`` is the column as the warehouse quotes it (a reserved word in BigQuery), ``at`` how it selects
    ``scored_at`` (default: as it is)."""
    columns = [f"s.{partition}" if c == "partition" else f"s.{c}" for c in SCORE_COLUMNS[:-1]]
    columns.append(at.replace("scored_at", "s.scored_at") if at else "s.scored_at")
    span = f"{partition} >= {first} AND {partition} <= {last}"
    loaded = current_loads_sql(f"{partition} AS loaded_partition, run_id AS loaded_run", audit, kpi, partition, span)
    return (
        f"SELECT {', '.join(columns)} FROM {table} AS s "
        f"JOIN ({loaded}) AS c ON s.{partition} = c.loaded_partition AND s.run_id = c.loaded_run "
        f"WHERE s.kpi = {kpi} AND s.{partition} >= {first} AND s.{partition} <= {last} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY s.{partition}, s.measure, s.dimension ORDER BY s.scored_at DESC) = 1 "
        f"ORDER BY s.{partition}, s.measure, s.dimension"
    )


@dataclass(frozen=True)
class StoredScore:
    """A row of ``_kpi_anomalies``, as read back."""

    score: Score
    run_id: str
    job_id: str
    scored_at: datetime

    @classmethod
    def of(cls, row: Sequence[Any]) -> StoredScore:
        kpi, partition, measure, dimension, actual, expected, low, high, z, direction, run_id, job_id, at = row
        return cls(
            Score(kpi, partition, measure, dimension or None, actual, expected, low, high, z, bool(direction)),
            run_id,
            job_id,
            at,
        )


def scoring_failure(error: BaseException) -> str:
    """How a scoring failure is reported on a load's result: the load stands."""
    first = str(error).splitlines()[0] if str(error) else ""
    return f"anomaly scoring failed: {type(error).__name__}: {first}"
