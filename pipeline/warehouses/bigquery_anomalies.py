"""BigQuery's side of anomaly scoring: the history query, and the ``_kpi_anomalies`` table written and read.

The SQL is :mod:`pipeline.warehouses.anomalies`' (DuckDB runs the same rules); here only what BigQuery needs
besides: query parameters, the table made on first use (partitioned by month of ``scored_at``, clustered by KPI
and partition, as the audit table is) and the rows appended: after a commit with one DML ``INSERT`` of typed
literals (:func:`record_scores`); by a load of one partition, beside its upload, with a streaming insert
(:func:`stream_scores`: no job, so nothing added to the load's chain of jobs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from pipeline.core.anomaly import Observation
from pipeline.warehouses.anomalies import ANOMALY_TABLE, SCORE_COLUMNS, History, StoredScore, history_sql, scores_sql
from pipeline.warehouses.base import AUDIT_TABLE


class BigQueryWarehouse(Protocol):
    """What this module uses of :class:`pipeline.warehouses.bigquery.BigQueryWarehouse` (which imports it)."""

    @property
    def target(self) -> Any: ...

    @property
    def client(self) -> bigquery.Client: ...

    def query(self, sql: str, params: dict[str, tuple[str, Any]], label: str) -> list[Any]: ...

    def start_query(self, sql: str, params: dict[str, tuple[str, Any]], label: str) -> bigquery.QueryJob: ...


ANOMALY_SCHEMA = tuple(
    bigquery.SchemaField(name, kind)
    for name, kind in zip(
        SCORE_COLUMNS,
        ("STRING",) * 4 + ("FLOAT64",) * 5 + ("STRING",) * 3 + ("TIMESTAMP",),
        strict=True,
    )
)


def history(warehouse: BigQueryWarehouse, query: History) -> list[Observation]:
    sql, params = _history_query(warehouse, query)
    try:
        rows = warehouse.query(sql, params, query.kpi)
    except google_errors.NotFound:  # nothing loaded yet
        return []
    return query.observations([tuple(row.values()) for row in rows])


def start_history(warehouse: BigQueryWarehouse, query: History) -> bigquery.QueryJob:
    """:func:`history`'s query started, not awaited (:func:`observations` reads it): a load runs it while its
    files upload."""
    sql, params = _history_query(warehouse, query)
    return warehouse.start_query(sql, params, query.kpi)


def observations(job: bigquery.QueryJob, query: History, *, timeout: float) -> list[Observation]:
    """The rows of a history query :func:`start_history` started, as :func:`history` gives them."""
    try:
        rows = list(job.result(timeout=timeout))
    except google_errors.NotFound:
        return []
    return query.observations([tuple(row.values()) for row in rows])


def _history_query(warehouse: BigQueryWarehouse, query: History) -> tuple[str, dict[str, tuple[str, Any]]]:
    sql = history_sql(query, f"`{warehouse.target.table(query.kpi)}`", "bigquery")
    return sql, {"since": (query.time_type.value, query.bound())}


def create_table(warehouse: BigQueryWarehouse) -> None:
    """``_kpi_anomalies``, when missing."""
    made = bigquery.Table(warehouse.target.table(ANOMALY_TABLE), schema=list(ANOMALY_SCHEMA))
    made.description = "Every partition scored for anomalies by kpi-pipeline: the newest row per partition wins."
    made.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.MONTH, field="scored_at")
    made.clustering_fields = ["kpi", "partition"]
    warehouse.client.create_table(made, exists_ok=True)


def record_scores(warehouse: BigQueryWarehouse, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    create_table(warehouse)
    table = warehouse.target.table(ANOMALY_TABLE)
    columns = ", ".join(f"`{c}`" for c in SCORE_COLUMNS)
    values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    warehouse.query(f"INSERT INTO `{table}` ({columns}) VALUES {values}", {}, str(rows[0][0]))


def scores(warehouse: BigQueryWarehouse, kpi: str, first: str, last: str) -> list[StoredScore]:
    sql = scores_sql(
        f"`{warehouse.target.table(ANOMALY_TABLE)}`",
        f"`{warehouse.target.table(AUDIT_TABLE)}`",
        "@kpi",
        "@first",
        "@last",
        "`partition`",
    )
    params = {"kpi": ("STRING", kpi), "first": ("STRING", first), "last": ("STRING", last)}
    try:
        rows = warehouse.query(sql, params, kpi)
    except google_errors.NotFound:
        return []
    return [StoredScore.of(tuple(row.values())) for row in rows]


def _literal(value: Any) -> str:
    """A GoogleSQL literal of one of our own score values: text, a finite float, an aware UTC time."""
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(' ')}'"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "CAST('NaN' AS FLOAT64)"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def stream_scores(warehouse: BigQueryWarehouse, rows: Sequence[tuple[Any, ...]]) -> None:
    """Append rows of ``_kpi_anomalies`` by a streaming insert (``tabledata.insertAll``): no job, no DML — a
    load writes its partition's scores so beside its upload. Rows in the streaming buffer are read by queries at
    once and cannot be updated or deleted for a while (BigQuery's "Transform data with DML": 30 minutes); this
    table is only ever appended to. A table made here, the insert is tried again once; refused rows raise."""
    if not rows:
        return
    table = warehouse.target.table(ANOMALY_TABLE)
    payload = [{column: _json(value) for column, value in zip(SCORE_COLUMNS, row, strict=True)} for row in rows]
    try:
        errors = warehouse.client.insert_rows_json(table, payload)
    except google_errors.NotFound:  # a dataset no load has scored into yet
        create_table(warehouse)
        errors = warehouse.client.insert_rows_json(table, payload)
    if errors:
        first = errors[0].get("errors", [{}])[0] if isinstance(errors[0], dict) else {}
        raise ValueError(f"BigQuery refused {len(errors)} of {len(rows)} score rows: {first.get('message', errors[0])}")


def _json(value: Any) -> Any:
    """One of our score values as insertAll's JSON carries it: a time as ISO text, a float that is not finite as
    BigQuery's text for it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value
