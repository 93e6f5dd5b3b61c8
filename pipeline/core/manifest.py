"""The manifest: the one object that commits an exported partition, and the loader's whole input.

Written last into its run folder, after every file it lists is complete. It carries everything the loader needs
without reading the KPI file again — the warehouse schema with descriptions, the partition and its interval,
the table's clustering and description — so that a manifest loads the same way whatever happened to
``queries/`` since, and a re-run of an old manifest replaces a partition with exactly what was exported.
``manifest_version`` lets the format evolve; a loader refuses versions it does not know.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.errors import StoreError

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class DataFile:
    """One immutable file of the partition; ``path`` is relative to the lake root."""

    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class SchemaField:
    name: str
    type: str  # BigQuery standard SQL type name (pipeline.core.types.BqType)
    description: str = ""
    mode: str = "NULLABLE"


@dataclass(frozen=True)
class Manifest:
    kpi: str
    partition: str  # `2024-03-01`, `2024-03-01T09`, `2024-03`, or `snapshot`
    grain: str
    time_column: str | None
    timezone: str
    interval_start: str | None  # ISO 8601 with offset, in the KPI's timezone; None for snapshots
    interval_end: str | None
    decorator: str | None  # BigQuery partition decorator suffix (`20240301`); None for snapshots
    run_id: str
    sql_hash: str
    format: str  # parquet | csv
    rows: int
    bytes: int
    files: tuple[DataFile, ...]
    schema: tuple[SchemaField, ...]
    description: str = ""
    source_timezone: str = ""  # how DATETIME time columns are read: the partition's bounds for a naive column
    cluster_by: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)  # "column: zero dates" → rows loaded as NULL
    exporter_version: str = ""
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0
    manifest_version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str | builtins.bytes) -> Manifest:
        data: dict[str, Any] = json.loads(text)
        version = data.get("manifest_version")
        if version != MANIFEST_VERSION:
            raise ValueError(f"manifest_version {version!r} is not supported (this version reads {MANIFEST_VERSION})")
        data["files"] = tuple(DataFile(**f) for f in data["files"])
        data["schema"] = tuple(SchemaField(**f) for f in data["schema"])
        data["cluster_by"] = tuple(data.get("cluster_by", ()))
        return cls(**data)

    @classmethod
    def parse(cls, data: builtins.bytes, *, where: str, hint: str) -> Manifest:
        """:meth:`from_json` for a manifest read from the lake: a damaged or unknown one is a StoreError naming
        it, not a traceback."""
        try:
            return cls.from_json(data)
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(f"the manifest cannot be read: {error}", where=where, hint=hint) from None

    def summary(self) -> dict[str, Any]:
        """What a CLI or a Lambda reports about the commit (no file list, no schema)."""
        return {
            "kpi": self.kpi,
            "partition": self.partition,
            "run_id": self.run_id,
            "rows": self.rows,
            "bytes": self.bytes,
            "files": len(self.files),
            "seconds": self.seconds,
            "replaced": self.replaced,
        }
