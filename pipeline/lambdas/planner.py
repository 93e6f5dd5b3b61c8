"""The backfill planner Lambda (outside the VPC: it reads the warehouse's audit table).

Event ``{"kpis": [NAME…], "start": D, "end": D, "force"?: bool}``; returns ``{"batches": [{"kpi", "start", "end",
"partitions"}], "partitions": N}`` — the items the backfill state machine's Distributed Map hands, one by one,
to the exporter. Partitions already loaded from the same SQL are left out, so a backfill run again resumes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline import settings
from pipeline.errors import KpiError, UsageError
from pipeline.flows.backfill import plan_batches
from pipeline.lambdas.errorlog import log_error, reraise


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    try:
        if not isinstance(event.get("kpis"), list) or not event.get("start") or not event.get("end"):
            raise UsageError(
                "the backfill event needs kpis (a list), start and end",
                hint='send {"kpis": ["daily_sales"], "start": "2024-01-01", "end": "2024-12-31"}',
            )
        batches = plan_batches(
            [str(name) for name in event["kpis"]],
            str(event["start"]),
            str(event["end"]),
            queries=Path(os.environ.get("KPI_QUERIES", "queries")),
            environment=settings.load_environment(),
            force=bool(event.get("force", False)),
        )
    except KpiError as error:
        log_error(error, event=event)
        reraise(error)
    return {"batches": batches, "partitions": sum(b["partitions"] for b in batches)}
