"""The loader Lambda (outside the VPC), triggered by S3 notifications of new batch indexes (``_batch.json``).

Configured only by environment variables (``KPI_WAREHOUSE``). Each announced batch lands in one warehouse
transaction (all of its partitions or none); a bare ``_manifest.json`` is loaded as a batch of one.
Through SQS (as deployed) the answer is a partial batch response (:mod:`pipeline.lambdas.queue`): a message whose
load failed for a transient reason is retried after a backoff, one that failed for good goes to the dead-letter
queue at once, the others are deleted. Delivered directly by S3, a failure is raised (``RetryableError`` when
retrying can help). Delivery is at least once: a retried manifest that did load is skipped by the audit table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline import settings
from pipeline.errors import KpiError
from pipeline.lambdas.errorlog import log_error, reraise
from pipeline.lambdas.queue import handle_messages, is_queue_event
from pipeline.load.events import announced
from pipeline.load.flow import load_announced, split_manifest_url
from pipeline.stores import open_store
from pipeline.warehouses import open_warehouse


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
    return outcomes
