"""A load as callers name it — a manifest URL, or a KPI and a date — turned into :func:`load_manifest`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pipeline import catalog
from pipeline.core.lake import MANIFEST_NAME
from pipeline.core.manifest import Manifest
from pipeline.core.selection import moment, requested_intervals
from pipeline.errors import LoadError
from pipeline.load.flow import load_manifest, newest_manifest, split_manifest_url
from pipeline.settings import Environment
from pipeline.stores import open_store
from pipeline.warehouses import LoadResult, open_warehouse


def run_load(
    target: str,
    *,
    date: str | None,
    queries: Path,
    environment: Environment,
    force: bool = False,
) -> tuple[Manifest, LoadResult]:
    """``target`` is a manifest URL (its lake is the URL's prefix) or a KPI name (the newest committed run of
    the partition ``date`` names, default the latest complete one, in the environment's lake)."""
    if target.endswith(MANIFEST_NAME):
        if "://" not in target and not Path(target).is_file():
            raise LoadError(f"no manifest at {target}: the file does not exist", hint=_newest_run_hint(target))
        lake_url, key = split_manifest_url(target)
        store = open_store(lake_url)
    else:
        kpi = catalog.load_one((queries,), target)
        intervals = requested_intervals(kpi, now=datetime.now(kpi.zone), date=moment(date))
        store = open_store(environment.lake)
        key = newest_manifest(store, kpi, intervals[0] if intervals else None)
    warehouse = open_warehouse(environment.warehouse)
    try:
        return load_manifest(store, key, warehouse, force=force)
    finally:
        warehouse.close()


def _newest_run_hint(target: str) -> str:
    """How to load the partition the mistyped path names (…/<kpi>/<column>=<partition>/run=<id>/_manifest.json)."""
    parts = target.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2].startswith("run=") and "=" in parts[-3]:
        command = f"kpi load {parts[-4]} --date {parts[-3].split('=', 1)[1]}"
    else:
        command = "kpi load <kpi> --date <partition>"
    return f"check the path; `{command}` loads the partition's newest committed run"
