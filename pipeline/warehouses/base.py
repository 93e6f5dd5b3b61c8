"""What the loader needs from a warehouse: replace one partition from a manifest's files, atomically, audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from pipeline.core.manifest import DataFile, Manifest

AUDIT_TABLE = "_kpi_loads"

OpenFile = Callable[[DataFile], BinaryIO]  # the lake's file, seekable, checked against its size and checksum


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


@dataclass(frozen=True)
class LoadResult:
    loaded: bool  # False: skipped, see `reason`
    reason: str  # what happened, for people: "replaced …", "older than run … already loaded"
    record: LoadRecord | None = None
    added_columns: tuple[str, ...] = ()


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
