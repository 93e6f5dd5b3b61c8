"""What the demo's report shows, read from the embedded DuckDB warehouse: per KPI its series and its status.

A time-partitioned KPI becomes a line per numeric column, summed per partition over every loaded partition —
a partition committed without rows shows as zero, as it would on a dashboard. A snapshot becomes bars of its
first text column. Status and freshness come from the audit table, as ``kpi status`` reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline.core.freshness import freshness, split_future
from pipeline.core.spec import Kpi
from pipeline.core.types import BqType
from pipeline.errors import LoadError
from pipeline.report import Chart, Column, ReportKpi, render_report
from pipeline.warehouses.base import LoadRecord
from pipeline.warehouses.duckdb import DuckDbWarehouse, quote

MEASURE_TYPES = {BqType.INT64, BqType.NUMERIC, BqType.FLOAT64}
LABEL_FORMATS = {"day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H", "month": "%Y-%m"}
TOP_CATEGORIES = 12


def build_report(kpis: Sequence[Kpi], warehouse: Path, *, now: datetime) -> str:
    store = DuckDbWarehouse(str(warehouse))
    try:
        loads = {kpi.name: store.loads(kpi.name) for kpi in kpis}
    finally:
        store.close()
    sections = []
    try:
        db = duckdb.connect(str(warehouse))
    except duckdb.Error as error:
        raise LoadError(
            f"cannot open the DuckDB warehouse {warehouse} for the report: {str(error).splitlines()[0]}",
            hint="point KPI_WAREHOUSE (or the environment's warehouse) at a folder you may write",
        ) from None
    with db:
        tables = {name for (name,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for kpi in sorted(kpis, key=lambda k: k.name):
            loaded = loads[kpi.name]
            chart = _chart(db, kpi, loaded, now) if kpi.name in tables else Chart("line", (), {})
            sections.append(_section(kpi, loaded, chart, now))
    return render_report(sections, title="kpi-pipeline demo", generated_at=now)


def _section(kpi: Kpi, loaded: dict[str, LoadRecord], chart: Chart, now: datetime) -> ReportKpi:
    begun = split_future(kpi, loaded, now)[0]  # a partition loaded ahead of its time is neither newest nor charted
    newest = loaded[begun[-1]] if begun else None
    state = freshness(kpi, newest.partition if newest else None, newest.loaded_at if newest else None, now)
    return ReportKpi(
        name=kpi.name,
        description=kpi.description,
        owner=kpi.owner,
        grain=kpi.grain.value,
        time_column=kpi.time_column,
        columns=tuple(Column(c.name, c.type.value, c.description) for c in kpi.columns),
        chart=chart,
        freshness=state.level,
        last_partition=newest.partition if newest else None,
        last_loaded=newest.loaded_at if newest else None,
        rows=newest.rows if newest else 0,
    )


def _chart(db: duckdb.DuckDBPyConnection, kpi: Kpi, loaded: dict[str, LoadRecord], now: datetime) -> Chart:
    measures = [c.name for c in kpi.columns if c.type in MEASURE_TYPES and c.name != kpi.time_column]
    sums = ", ".join(f"CAST(SUM({quote(m)}) AS DOUBLE)" for m in measures)
    if kpi.time_column:
        rows = db.execute(f"SELECT {quote(kpi.time_column)}, {sums} FROM {quote(kpi.name)} GROUP BY 1").fetchall()
        by_label = {_label(value, kpi.grain.value): values for value, *values in rows}
        labels = split_future(kpi, set(loaded) | set(by_label), now)[0]
        series = {
            m: [_number(by_label.get(label, [0.0] * len(measures))[n]) for label in labels]
            for n, m in enumerate(measures)
        }
        return Chart("line", tuple(labels), series)
    category = next((c.name for c in kpi.columns if c.type is BqType.STRING), None)
    if category is None or not measures:
        return Chart("bar", (), {})
    rows = db.execute(
        f"SELECT {quote(category)}, {sums} FROM {quote(kpi.name)} GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1 "
        f"LIMIT {TOP_CATEGORIES}"
    ).fetchall()
    categories = tuple(str(row[0]) for row in rows)
    return Chart("bar", categories, {m: [_number(row[n + 1]) for row in rows] for n, m in enumerate(measures)})


def _label(value: Any, grain: str) -> str:
    return value.strftime(LABEL_FORMATS[grain]) if hasattr(value, "strftime") else str(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
