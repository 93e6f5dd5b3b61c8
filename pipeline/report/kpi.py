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
