"""A backfill as its callers name it — KPIs and a range of dates — planned against what the warehouse holds.

``kpi backfill`` runs the plan itself; the backfill state machine asks the planner Lambda for the same plan as
a list of batches and maps the exporter over them. Both skip partitions already loaded from the same SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import catalog
from pipeline.core.plan import BackfillPlan, plan_backfill
from pipeline.core.selection import moment, requested_intervals
from pipeline.core.spec import Kpi
from pipeline.errors import UsageError
from pipeline.settings import Environment
from pipeline.warehouses import Warehouse, open_warehouse


def plan_kpi(kpi: Kpi, start: str, end: str, warehouse: Warehouse, *, force: bool = False) -> BackfillPlan:
    now = datetime.now(kpi.zone)
    requested = requested_intervals(kpi, now=now, start=moment(start), end=moment(end))
    loaded = {partition: record.sql_hash for partition, record in warehouse.loads(kpi.name).items()}
    return plan_backfill(kpi, requested, loaded, now=now, force=force)


def plan_batches(
    names: Sequence[str], start: str, end: str, *, queries: Path, environment: Environment, force: bool = False
) -> list[dict[str, Any]]:
    """``[{"kpi", "start", "end", "partitions"}]``: one item per source query, the exporter's event for it."""
    if not names:
        raise UsageError("the backfill names no KPI", hint='send {"kpis": ["daily_sales"], "start": …, "end": …}')
    found = catalog.load((queries,))
    warehouse = open_warehouse(environment.warehouse)
    try:
        plans = [plan_kpi(found.get(name), start, end, warehouse, force=force) for name in names]
    finally:
        warehouse.close()
    return [
        {"kpi": plan.kpi, "start": batch[0].partition, "end": batch[-1].partition, "partitions": len(batch)}
        for plan in plans
        for batch in plan.batches
    ]
