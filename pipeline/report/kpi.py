"""One KPI's section of the report, as values: what the page shows beside the chart model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.core.chart import ChartModel


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class Lineage:
    """Where the KPI's numbers come from (:mod:`pipeline.core.lineage`, as ``kpi lineage`` prints it): per result
    column the source ``table.column``s its values are computed from (none: counted or constant), in the header's
    column order; and every ``table.column`` the query reads anywhere (WHERE, JOIN, GROUP BY included)."""

    columns: tuple[tuple[str, tuple[str, ...]], ...]
    reads: tuple[str, ...]


@dataclass(frozen=True)
class ReportKpi:
    name: str
    description: str
    owner: str
    grain: str
    time_column: str | None
    columns: tuple[Column, ...]
    chart: ChartModel
    freshness: str  # e.g. "fresh", "stale (warn)", "stale (error)", "never loaded"
    last_partition: str | None
    last_loaded: datetime | None
    rows: int
    lineage: Lineage | None = None  # None: not known (the section says nothing about it)
