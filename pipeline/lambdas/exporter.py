"""The exporter Lambda (inside the VPC). Event: ``{"kpi", "date" | "start"+"end", "run_id"?, "params"?}``.

Configured by environment variables: ``KPI_SOURCE`` (``KPI_SOURCE_<NAME>``), ``KPI_LAKE``, ``KPI_QUERIES``.
Errors are logged as one JSON line and raised: one worth retrying as ``RetryableError`` (what the state machines
retry), any other as itself (which fails the execution at once with its message). A batch where some partitions
fail a header check commits the others (their manifests' S3 events load them) and then fails as ``ChecksFailed``,
whose message names each failing partition with its own reason and the partitions that were committed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline import settings
from pipeline.errors import KpiError
from pipeline.export import ChecksFailed
from pipeline.export.request import ExportRequest, run_export
from pipeline.lambdas.errorlog import log_error, reraise


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    try:
        request = ExportRequest.from_event(event)
        queries = Path(os.environ.get("KPI_QUERIES", "queries"))
        manifests = run_export(request, queries=queries, environment=settings.load_environment())
    except ChecksFailed as error:  # the committed partitions are loaded on their S3 events; the failures fail it
        log_error(error, event=event, committed=[m.summary() for m in error.committed], failed=list(error.failures))
        reraise(error)
    except KpiError as error:
        log_error(error, event=event)
        reraise(error)
    return {"kpi": request.kpi, "partitions": [m.summary() for m in manifests]}
