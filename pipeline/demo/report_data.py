"""What the demo's report shows, read from the embedded DuckDB warehouse: per KPI its rows, its loads and its status.

The rows of each KPI table and its audit (which partitions were loaded) go to the pure chart model
(:func:`pipeline.core.chart.build_chart`), which decides what is drawn; status and freshness come from the audit
table, as ``kpi status`` reports them, judged at the clock the caller passes (``now``). Load times are shown in the
KPI's own zone, named. Each section shows the KPI's lineage (:func:`pipeline.core.lineage.kpi_lineage`, with the
source's schema snapshot when the caller passes one, as ``kpi lineage`` and ``kpi list --json`` give it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline.core.chart import ChartModel, Mark, add_marks, build_chart
from pipeline.core.freshness import freshness, split_future
from pipeline.core.lineage import kpi_lineage
from pipeline.core.schema import SourceSchema
from pipeline.core.spec import Kpi
from pipeline.errors import LoadError
from pipeline.report import Column, Lineage, ReportKpi, render_report
from pipeline.warehouses.base import LoadRecord
from pipeline.warehouses.duckdb import DuckDbWarehouse, quote


def build_report(
    kpis: Sequence[Kpi],
    warehouse: Path,
    *,
    now: datetime,
    generated_at: datetime | None = None,
    note: str = "",
    marks: Mapping[str, Iterable[tuple[str, Mark]]] | None = None,
    schemas: Mapping[str, SourceSchema] | None = None,
) -> str:
    """The report of ``kpis`` as the warehouse holds them; freshness and future partitions judged at ``now``.

    ``marks`` maps a KPI's name to (measure, :class:`Mark`) pairs to draw on its charts (e.g. anomalies found);
    a mark off the drawn points (outside the range, inside "other") is left out. ``schemas`` maps a source's name
    to its snapshot (``schemas/``), so that the lineage resolves unqualified columns of joins.
    """
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
        db.execute("SET TimeZone = 'UTC'")  # TIMESTAMP columns arrive as aware UTC datetimes (through Arrow)
        tables = {name for (name,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for kpi in sorted(kpis, key=lambda k: k.name):
            loaded = loads[kpi.name]
            rows = _rows(db, kpi) if kpi.name in tables else []
            chart = build_chart(kpi, rows, loaded, now)
            for measure, mark in (marks or {}).get(kpi.name, ()):
                chart = add_marks(chart, measure, [mark], strict=False)
            sections.append(_section(kpi, loaded, chart, now, _lineage(kpi, (schemas or {}).get(kpi.source))))
    return render_report(sections, title="kpi-pipeline demo", generated_at=generated_at or now, note=note)


def _rows(db: duckdb.DuckDBPyConnection, kpi: Kpi) -> list[dict[str, Any]]:
    columns = ", ".join(quote(c.name) for c in kpi.columns)
    rows: list[dict[str, Any]] = db.execute(f"SELECT {columns} FROM {quote(kpi.name)}").to_arrow_table().to_pylist()
    return rows


def _lineage(kpi: Kpi, schema: SourceSchema | None) -> Lineage:
    found = kpi_lineage(kpi, schema)
    return Lineage(tuple((name, tuple(sources)) for name, sources in found.columns.items()), tuple(found.reads))


def _section(
    kpi: Kpi, loaded: dict[str, LoadRecord], chart: ChartModel, now: datetime, lineage: Lineage | None = None
) -> ReportKpi:
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
        last_loaded=newest.loaded_at.astimezone(kpi.zone) if newest else None,
        rows=newest.rows if newest else 0,
        lineage=lineage,
    )
