"""Where a KPI's files live in the lake, and what a run is called.

``<lake>/<kpi>/<time_column>=<partition>/run=<run-id>/part-00000.parquet`` plus ``_manifest.json`` written last.
Snapshot KPIs (``grain: none``) use ``<lake>/<kpi>/snapshot/run=<run-id>/``. Run ids sort by the time the run
started (UTC), so "newer run" is a string comparison for the loader and for people reading an S3 listing.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from pipeline.core.intervals import Interval
from pipeline.core.spec import Kpi

MANIFEST_NAME = "_manifest.json"
SNAPSHOT = "snapshot"


def new_run_id(now: datetime | None = None) -> str:
    """``20240301T060000123Z-1a2b3c``: UTC start time to the millisecond, then randomness against collisions."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


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
