"""The freshness Lambda (outside the VPC: it reads the warehouse's audit table), on a schedule: ``kpi status
--alert`` as deployed. Every enabled KPI of ``queries/`` past its header's ``freshness.error_after`` (or never
loaded) alerts its owner — one message per owner (``KPI_ALERTS_*``, :mod:`pipeline.flows.alerts`).

Event: anything (EventBridge Scheduler's input); ``{"now": ISO-8601}`` judges at that moment instead of the wall
clock (to replay a day). Returns ``{"stale": [{"kpi", "owner", "partition", "age_hours"}], "alerts": …}``; a
warehouse that cannot be read is raised (the schedule's retry and the Errors alarm), a delivery that failed is in
``alerts`` and the JSON log line, never raised.

It is also the owner-alert step of the export and backfill state machines: the exporter runs inside the VPC,
without a way to Slack or the owners' topics, so after their Map the machines hand this function, once per
execution, what failed — ``{"failed": [{"kpi", "partition" | "partitions" | "start"/"end", "error", "cause"}],
"execution", "started_at", "context"}`` (:mod:`pipeline.core.failed_steps`). It answers ``{"failed": [{"kpi",
"partitions"}], "routed", "alerts"}``: one message per owner for the whole execution; ``routed`` false (nothing
sent) when the stack routes no alerts. Only a configuration it cannot read is raised; a delivery that failed is
in ``alerts`` and the JSON log line.
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
    if isinstance(event, dict) and "failed" in event:
        return _failed_execution(event)
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


def _failed_execution(event: dict[str, Any]) -> dict[str, Any]:
    """A state machine's failures sent to their owners (see the module's docstring); the answer is the step's
    result in the execution's history, and the JSON log line."""
    from pipeline.core.failed_steps import parse_failed
    from pipeline.flows.alerts import alert_failed_steps

    try:
        steps = parse_failed(event["failed"])
        started = _moment(event.get("started_at"), "started_at")
        environment = settings.load_environment()
        # Every KPI, enabled or not: a header's owner is who hears of it. A file that does not read has no owner
        # here, and its failure goes to the default destination.
        kpis = catalog.load((Path(os.environ.get("KPI_QUERIES", "queries")),)).kpis
    except KpiError as error:
        log_error(error, event=event)
        reraise(error)
    execution = str(event.get("execution") or "")
    context = str(event.get("context") or "kpi run (deployed)") + (f", execution {execution}" if execution else "")
    report, failed = alert_failed_steps(steps, kpis, environment, started, context=context)
    counted: dict[str, int] = {}
    for name, _, _ in failed:
        counted[name] = counted.get(name, 0) + 1
    answer = {
        "failed": [{"kpi": name, "partitions": count} for name, count in counted.items()],
        "routed": environment.alerts.configured,
        "alerts": report.as_dict(),
    }
    print(json.dumps({"level": "info" if report.ok else "warning", "execution": execution, **answer}, default=str))
    return answer


def _moment(text: object, key: str = "now") -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise UsageError(
            f"{key} '{text}' is not an ISO date-time", hint=f'send {{"{key}": "2026-12-03T09:00+09:00"}}'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
