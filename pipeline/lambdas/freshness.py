"""The freshness Lambda (outside the VPC: it reads the warehouse's audit table), on a schedule: ``kpi status
--alert`` as deployed. Every enabled KPI of ``queries/`` past its header's ``freshness.error_after`` (or never
loaded) alerts its owner — one message per owner (``KPI_ALERTS_*``, :mod:`pipeline.flows.alerts`).

Event: anything (EventBridge Scheduler's input); ``{"now": ISO-8601}`` judges at that moment instead of the wall
clock (to replay a day). Returns ``{"stale": [{"kpi", "owner", "partition", "age_hours"}], "alerts": …}``; a
warehouse that cannot be read is raised (the schedule's retry and the Errors alarm), a delivery that failed is in
``alerts`` and the JSON log line, never raised.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import catalog, settings
from pipeline.errors import KpiError, UsageError
from pipeline.lambdas.errorlog import log_error, reraise


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    from pipeline.flows.alerts import send_alerts, stale_alerts, stale_kpis
    from pipeline.flows.status import kpi_status

    try:
        now = _moment(event.get("now") if isinstance(event, dict) else None)
        environment = settings.load_environment()
        found = catalog.load((Path(os.environ.get("KPI_QUERIES", "queries")),)).kpis.values()
        kpis = sorted((kpi for kpi in found if kpi.enabled), key=lambda kpi: kpi.name)
        lines = kpi_status(kpis, environment.warehouse, now)
    except KpiError as error:
        log_error(error, event=event)
        reraise(error)
    stale = stale_kpis(kpis, lines)
    alerts = stale_alerts(stale, environment.warehouse, environment.alerts)
    report = send_alerts(alerts, environment.alerts, now.astimezone(UTC), context="kpi freshness")
    answer = {
        "stale": [
            {
                "kpi": kpi.name,
                "owner": kpi.owner,
                "partition": partition,
                "age_hours": round(age.total_seconds() / 3600, 1) if age is not None else None,
            }
            for kpi, partition, age in stale
        ],
        "alerts": report.as_dict(),
    }
    print(json.dumps({"level": "info" if report.ok else "warning", **answer}, default=str))
    return answer


def _moment(text: object) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise UsageError(
            f"now '{text}' is not an ISO date-time", hint='send {"now": "2026-12-03T09:00+09:00"}'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
