"""What the loader needs from a warehouse: replace one partition from a manifest's files, atomically, audited.

The rules both warehouses share live here, so that the embedded DuckDB warehouse and BigQuery decide alike:
which run wins (:func:`superseded`), which rows a partition is (:func:`partition_bounds`), and which schema
changes stop a load (:func:`refuse_drift`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import BinaryIO, Protocol
from zoneinfo import ZoneInfo

from pipeline.core.bounds import column_bound
from pipeline.core.drift import DRIFT_HINT, Drift
from pipeline.core.manifest import DataFile, Manifest
from pipeline.core.types import BqType
from pipeline.errors import LoadError

AUDIT_TABLE = "_kpi_loads"

OpenFile = Callable[[DataFile], BinaryIO]  # the lake's file, seekable, checked against its size, checksum and rows


@dataclass(frozen=True)
class LoadRecord:
    """One row of the audit table ``_kpi_loads``: the source of truth for status, freshness and resume."""

    kpi: str
    partition: str
    run_id: str
    sql_hash: str
    rows: int
    bytes: int
    job_id: str
    loaded_at: datetime

    @classmethod
    def of(cls, manifest: Manifest, job_id: str) -> LoadRecord:
        return cls(
            manifest.kpi,
            manifest.partition,
            manifest.run_id,
            manifest.sql_hash,
            manifest.rows,
            manifest.bytes,
            job_id,
            datetime.now(UTC),
        )


@dataclass(frozen=True)
class LoadResult:
    loaded: bool  # False: skipped, see `reason`
    reason: str  # what happened, for people: "replaced …", "older than run … already loaded"
    record: LoadRecord | None = None
    added_columns: tuple[str, ...] = ()

    @classmethod
    def replaced(cls, manifest: Manifest, record: LoadRecord, drift: Drift | None) -> LoadResult:
        added = tuple(f.name for f in drift.added) if drift else ()
        return cls(True, f"replaced {manifest.partition} with {manifest.rows:,} rows", record, added)


class Warehouse(Protocol):
    url: str

    def load(self, manifest: Manifest, open_file: OpenFile, *, force: bool = False) -> LoadResult:
        """Replace the manifest's partition with its files in one atomic step and record it in the audit table —
        unless a run as new or newer is already loaded (``force`` reloads the same run). Raises LoadError,
        leaving the table as it was, on schema drift that is not additive or on a row-count mismatch."""
        ...

    def last_load(self, kpi: str, partition: str) -> LoadRecord | None:
        """The newest run loaded for the partition, from the audit table."""
        ...

    def close(self) -> None:
        """Release connections (the DuckDB file lock); the warehouse reopens on next use."""
        ...

    def loads(self, kpi: str) -> dict[str, LoadRecord]:
        """The newest run loaded for each partition of the KPI (one query: backfills plan with it, ``kpi status``
        reports from it); empty when nothing was ever loaded."""
        ...

    def remove(self, kpi: str, removals: Sequence[Removal], *, whole_table: bool = False) -> list[LoadRecord]:
        """Delete the rows of each removal's partition (every row of the KPI's table with ``whole_table``) and
        append a removal row per partition to the audit table, all in one transaction; return those rows. Raises
        LoadError, leaving table and audit as they were, when the warehouse refuses."""
        ...


def where(manifest: Manifest) -> str:
    """How messages name a load: KPI, partition and run."""
    return f"{manifest.kpi} {manifest.partition} (run {manifest.run_id})"


def superseded(manifest: Manifest, last: LoadRecord | None, *, force: bool) -> LoadResult | None:
    """The skip, when the partition already holds this run or a newer one. Run ids sort by their start time, so
    an S3 event delivered twice or late never puts older numbers back on a dashboard."""
    if last is None or manifest.run_id > last.run_id or (manifest.run_id == last.run_id and force):
        return None
    why = "is already loaded" if manifest.run_id == last.run_id else f"is older than run {last.run_id}"
    return LoadResult(False, f"run {manifest.run_id} {why}, loaded {last.loaded_at:%Y-%m-%d %H:%M} UTC")


def refuse_drift(drift: Drift | None, manifest: Manifest) -> None:
    if drift and drift.blocking:
        raise LoadError(
            "the table's columns changed in a way the warehouse cannot follow:\n  - " + "\n  - ".join(drift.problems()),
            where=where(manifest),
            hint=DRIFT_HINT,
        )


def partition_bounds(manifest: Manifest) -> tuple[str, BqType, date | datetime, date | datetime] | None:
    """(time column, its type, first value, end value exclusive) of the manifest's partition; None for a snapshot,
    whose partition is the whole table."""
    if manifest.interval_start is None or manifest.interval_end is None or not manifest.time_column:
        return None
    column_type = BqType(next(f.type for f in manifest.schema if f.name == manifest.time_column))
    zone = ZoneInfo(manifest.source_timezone or manifest.timezone)
    start, end = (
        column_bound(datetime.fromisoformat(text), column_type, zone)
        for text in (manifest.interval_start, manifest.interval_end)
    )
    return manifest.time_column, column_type, start, end


# -- removing partitions (``kpi remove``) ------------------------------------------------------------------------
#
# A removal deletes a partition's rows and appends an audit row that records it: the removed run's id and rows,
# no SQL hash, and a job id starting with REMOVED. The audit table stays append-only, so it still tells what was
# loaded when and what was taken out. What is loaded now is decided by :func:`current_loads`: the loads after a
# partition's latest removal. A removal therefore resets "never older": the next load of the partition is
# accepted whatever its run (an older one too: undoing a wrong load may mean loading the earlier run again), and
# from that load on the rule holds again as before.

REMOVED = "removed:"  # the job id of an audit row that records a removal starts with it
Bounds = tuple[str, BqType, date | datetime, date | datetime]  # a partition's rows: see partition_bounds


@dataclass(frozen=True)
class Removal:
    """One partition to remove: the load being removed, and the rows it is — ``bounds`` (time column, its type,
    first value, end value exclusive) as :func:`partition_bounds` gives them; None for the whole table."""

    load: LoadRecord
    bounds: Bounds | None

    def record(self, job_id: str, at: datetime) -> LoadRecord:
        """The audit row of this removal."""
        load = self.load
        return LoadRecord(load.kpi, load.partition, load.run_id, "", load.rows, 0, REMOVED + job_id, at)


def is_removal(record: LoadRecord) -> bool:
    return record.job_id.startswith(REMOVED)


def current_loads(records: Iterable[LoadRecord]) -> dict[str, LoadRecord]:
    """The newest run loaded for each partition since its latest removal (by ``loaded_at``), from every audit row
    of a KPI; a partition whose latest row is a removal is not loaded."""
    rows = list(records)
    removed: dict[str, datetime] = {}
    for record in filter(is_removal, rows):
        removed[record.partition] = max(record.loaded_at, removed.get(record.partition, record.loaded_at))
    current: dict[str, LoadRecord] = {}
    for record in rows:
        cut = removed.get(record.partition)
        if is_removal(record) or (cut is not None and record.loaded_at <= cut):
            continue
        best = current.get(record.partition)
        if best is None or (record.run_id, record.loaded_at) > (best.run_id, best.loaded_at):
            current[record.partition] = record
    return current
