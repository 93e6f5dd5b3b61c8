"""The loader Lambda (outside the VPC), triggered by S3 notifications of new batch indexes (``_batch.json``).

Configured only by environment variables (``KPI_WAREHOUSE``). Each announced batch lands in one warehouse
transaction (all of its partitions or none); a bare ``_manifest.json`` is loaded as a batch of one.
Through SQS (as deployed) the answer is a partial batch response (:mod:`pipeline.lambdas.queue`): a message whose
load failed for a transient reason is retried after a backoff, one that failed for good goes to the dead-letter
queue at once, the others are deleted. Delivered directly by S3, a failure is raised (``RetryableError`` when
retrying can help). Delivery is at least once: a retried manifest that did load is skipped by the audit table.

A load that failed for good — a permanent failure, or a transient one on its last receive before the dead-letter
queue (:data:`LAST_RECEIVE`) — alerts the KPI's owner (``KPI_ALERTS_*``, :mod:`pipeline.flows.alerts`), and so do
the anomalies a load's scoring found (:mod:`pipeline.flows.anomalies`): one message per owner per announced batch,
its delivery logged as one JSON line; a delivery failure never changes the answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import settings
from pipeline.core.alerts import AnomalyLike
from pipeline.core.lake import BATCH_NAME
from pipeline.errors import KpiError
from pipeline.lambdas.errorlog import log_error, reraise
from pipeline.lambdas.queue import handle_messages, is_queue_event
from pipeline.load.events import announced
from pipeline.load.flow import load_announced, split_manifest_url
from pipeline.stores import open_store
from pipeline.warehouses import open_warehouse

if TYPE_CHECKING:
    from pipeline.core.alerts import Alert
    from pipeline.core.spec import Kpi
    from pipeline.settings import Environment

LAST_RECEIVE = 5  # the load queue's maxReceiveCount (infra/template.yaml): after it, the dead-letter queue


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    if is_queue_event(event):
        return handle_messages(event["Records"], _load_announced)
    try:
        return {"manifests": _load_announced(event)}
    except KpiError as error:
        reraise(error)


def _load_announced(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Load every batch (or bare manifest) ``event`` (an S3 notification, or one SQS record wrapping one)
    announces, in order; one outcome per partition."""
    outcomes: list[dict[str, Any]] = []
    for url in announced(event if "Records" in event else {"Records": [event]}):
        try:
            lake, key = split_manifest_url(url)
            warehouse = open_warehouse(settings.load_environment().warehouse)
            try:
                loaded = load_announced(open_store(lake), key, warehouse)
            finally:
                warehouse.close()
        except KpiError as error:
            log_error(error, manifest=url)
            receives = int((event.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
            if failed_for_good(error.retryable, receives):
                _alert(url, error)
            raise
        outcomes.extend(
            {
                "manifest": f"{lake.rstrip('/')}/{manifest_key}",
                "kpi": manifest.kpi,
                "partition": manifest.partition,
                "run_id": manifest.run_id,
                "loaded": result.loaded,
                "reason": result.reason,
                "added_columns": list(result.added_columns),
                "anomalies": [anomaly.to_json() for anomaly in result.anomalies],
                "scoring_error": result.scoring_error or None,  # scoring failed; the load stands
            }
            for manifest_key, manifest, result in loaded
        )
        _alert_anomalies([anomaly for _, _, result in loaded for anomaly in result.anomalies])
    return outcomes


def failed_for_good(retryable: bool, receives: int) -> bool:
    """Whether a failed load will not be tried again — so its owner is alerted now: a permanent failure (parked in
    the dead-letter queue at once), or a transient one on its ``LAST_RECEIVE``-th receive (SQS parks it next)."""
    return not retryable or receives >= LAST_RECEIVE


def _alert_anomalies(anomalies: Sequence[AnomalyLike]) -> None:
    """Tell the owners of the KPIs whose partitions the batch's scoring found anomalous; never raises."""
    if not anomalies:
        return

    def build(kpis: Mapping[str, Kpi], environment: Environment) -> list[Alert]:
        from pipeline.flows.alerts import anomaly_alerts

        return anomaly_alerts(anomalies, kpis, environment.warehouse, environment.alerts)

    _send(build)


def _alert(url: str, error: KpiError) -> None:
    """Tell the owner of the KPI ``url`` belongs to that its load failed for good; never raises."""

    def build(kpis: Mapping[str, Kpi], environment: Environment) -> list[Alert]:
        from pipeline.flows.alerts import failure_alerts

        parts = url.rstrip("/").split("/")
        if parts[-1] == BATCH_NAME:  # <lake>/<kpi>/_batches/run=<id>/<first partition>/_batch.json
            kpi, partition = parts[-5], f"batch from {parts[-2]}"
        else:  # <lake>/<kpi>/<time column>=<partition>/run=<id>/_manifest.json
            kpi, partition = parts[-4], parts[-3].partition("=")[2] or parts[-3]
        return failure_alerts([(kpi, partition, error.message)], kpis, environment.warehouse, environment.alerts)

    _send(build)


def _send(build: Callable[[Mapping[str, Kpi], Environment], list[Alert]]) -> None:
    """The alerts ``build`` makes (given the KPIs of ``KPI_QUERIES``, whose headers name their owners) sent, one
    message per owner, the delivery logged as one JSON line; nothing when alerts are not configured. Never
    raises: alerting must never change what the loader answers."""
    try:
        environment = settings.load_environment()
        if not environment.alerts.configured:
            return
        from pipeline import catalog
        from pipeline.flows.alerts import send_alerts

        kpis = catalog.load((Path(os.environ.get("KPI_QUERIES", "queries")),)).kpis
        report = send_alerts(build(kpis, environment), environment.alerts, datetime.now(UTC), context="kpi loader")
        print(json.dumps({"level": "info" if report.ok else "warning", "alerts": report.as_dict()}))
    except Exception as failure:
        print(json.dumps({"level": "warning", "alerts": f"not sent: {type(failure).__name__}"}))
