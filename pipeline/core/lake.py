"""Where a KPI's files live in the lake, and what a run is called.

``<lake>/<kpi>/<time_column>=<partition>/run=<run-id>/part-00000.parquet`` plus ``_manifest.json`` written last.
The batch index of an export job, written after its manifests, is ``<lake>/<kpi>/_batches/run=<run-id>/<first
partition>/_batch.json`` (:mod:`pipeline.core.batch`).
Snapshot KPIs (``grain: none``) use ``<lake>/<kpi>/snapshot/run=<run-id>/``. Run ids sort by the time the run
started (UTC), so "newer run" is a string comparison for the loader and for people reading an S3 listing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from pipeline.core.intervals import Interval
from pipeline.core.spec import Kpi

MANIFEST_NAME = "_manifest.json"
BATCH_NAME = "_batch.json"
BATCHES = "_batches"
SNAPSHOT = "snapshot"
# What a run id may be: it names a folder in S3 and on disk, a BigQuery job label and staging table.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def is_run_id(text: str) -> bool:
    """Letters, digits, ``.``, ``_`` and ``-`` (at most 128, starting with a letter or digit)."""
    return bool(_RUN_ID.match(text))


def new_run_id(now: datetime | None = None) -> str:
    """``20240301T060000123Z-1a2b3c``: UTC start time to the millisecond, then randomness against collisions."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def execution_run_id(started_at: datetime, execution: str) -> str:
    """The run id of a Step Functions execution: its start time (so runs still sort by time, which decides which
    run a partition keeps) and a digest of its name (so a retried state exports under the same id, and finds
    what an earlier attempt committed)."""
    digest = hashlib.sha256(execution.encode()).hexdigest()[:6]
    return new_run_id(started_at).rsplit("-", 1)[0] + "-" + digest


def partition_name(interval: Interval | None) -> str:
    return interval.partition if interval is not None else SNAPSHOT


def partition_prefix(kpi: Kpi, interval: Interval | None) -> str:
    if interval is None:
        return f"{kpi.name}/{SNAPSHOT}"
    return f"{kpi.name}/{kpi.time_column}={interval.partition}"


def run_prefix(kpi: Kpi, interval: Interval | None, run_id: str) -> str:
    return f"{partition_prefix(kpi, interval)}/run={run_id}"


def manifest_key(kpi: Kpi, interval: Interval | None, run_id: str) -> str:
    return f"{run_prefix(kpi, interval, run_id)}/{MANIFEST_NAME}"


def part_name(index: int, extension: str) -> str:
    return f"part-{index:05d}.{extension}"


def batch_index_key(kpi: str, run_id: str, first_partition: str) -> str:
    """Where the index of the batch starting at ``first_partition`` lives (one export job, one run)."""
    return f"{kpi}/{BATCHES}/run={run_id}/{first_partition}/{BATCH_NAME}"
