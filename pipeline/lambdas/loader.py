"""The loader Lambda (outside the VPC), triggered by S3 notifications of new ``_manifest.json`` objects.

Configured only by environment variables (``KPI_WAREHOUSE``). Each announced manifest is loaded on its own;
errors are logged as one JSON line and re-raised, so that the event is retried (delivery is at least once and
a retried manifest that did load is skipped by the audit table).
"""

from __future__ import annotations

from typing import Any

from pipeline import settings
from pipeline.errors import KpiError
from pipeline.lambdas.errorlog import log_error
from pipeline.load.events import announced_manifests
from pipeline.load.flow import load_manifest, split_manifest_url
from pipeline.stores import open_store
from pipeline.warehouses import open_warehouse


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    outcomes = []
    for url in announced_manifests(event):
        try:
            lake, key = split_manifest_url(url)
            warehouse = open_warehouse(settings.load_environment().warehouse)
            try:
                manifest, result = load_manifest(open_store(lake), key, warehouse)
            finally:
                warehouse.close()
        except KpiError as error:
            log_error(error, manifest=url)
            raise
        outcomes.append(
            {
                "manifest": url,
                "kpi": manifest.kpi,
                "partition": manifest.partition,
                "run_id": manifest.run_id,
                "loaded": result.loaded,
                "reason": result.reason,
                "added_columns": list(result.added_columns),
            }
        )
    return {"manifests": outcomes}
