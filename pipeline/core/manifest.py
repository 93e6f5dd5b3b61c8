"""The manifest: the one object that commits an exported partition, and the loader's whole input.

Written last into its run folder, after every file it lists is complete. It carries everything the loader needs
without reading the KPI file again — the warehouse schema with descriptions, the partition and its interval,
the table's clustering and description — so that a manifest loads the same way whatever happened to
``queries/`` since, and a re-run of an old manifest replaces a partition with exactly what was exported.
``manifest_version`` lets the format evolve; a loader refuses versions it does not know.

A manifest is trusted no further than its file format: :meth:`Manifest.from_json` checks every name (table and
column names are warehouse identifiers), every type (BigQuery's type names), the grain, the partition's and the
decorator's form, the files' keys and checksums, and refuses anything else — with every problem listed — before a
value of it can reach a warehouse statement.

Version 2 adds ``null_marker`` (CSV files: the unquoted field that means NULL). Version 1 manifests are still
read: their CSV files wrote NULL as an empty unquoted field and the empty string as ``""``. Version 3 adds
``anomaly``: the header's anomaly settings, which the loader scores the partition with after loading it (None:
not scored, as for every version 1 and 2 manifest). Version 4 adds ``totals``: a scored partition's sums per
measure and dimension value, summed by the exporter (:mod:`pipeline.core.totals`), which the loader judges the
partition by without summing the loaded rows (None: the loader sums them, as for every older manifest).
"""

from __future__ import annotations

import builtins
import json
import math
import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.core.anomaly import settings_of
from pipeline.core.identifiers import is_column_name, is_table_name
from pipeline.core.intervals import Grain
from pipeline.core.lake import is_run_id
from pipeline.core.spec import AnomalySettings
from pipeline.core.totals import Total
from pipeline.core.types import MEASURE_TYPES, PARTITION_TYPES, BqType
from pipeline.errors import StoreError

MANIFEST_VERSION = 4
READABLE_VERSIONS = frozenset({1, 2, 3, MANIFEST_VERSION})


class NewerManifest(ValueError):
    """A manifest of a version after this code's: written by an exporter newer than the reader (a deploy that
    updated the exporter first). Unlike a damaged manifest it will be readable — by the loader of its release."""


# CSV files: NULL is this text, unquoted, in every column (BigQuery's `null_marker`); every string is quoted, so an
# empty string is `""`. See pipeline.export.files.
CSV_NULL_MARKER = "\\N"
FORMATS = ("parquet", "csv")
MODES = ("NULLABLE", "REQUIRED")
MAX_CLUSTER_COLUMNS = 4
# The partition's name and its decorator's digits, per grain (`2024-11-03T01_2`: the repeated hour of a DST
# fall-back, pipeline.core.intervals).
_PARTITION = {
    Grain.DAY: (re.compile(r"^\d{4}-\d{2}-\d{2}$"), 8),
    Grain.HOUR: (re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}(_2)?$"), 10),
    Grain.MONTH: (re.compile(r"^\d{4}-\d{2}$"), 6),
    Grain.WEEK: (re.compile(r"^\d{4}-\d{2}-\d{2}$"), 8),
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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
    null_marker: str | None = None  # CSV: the unquoted field that means NULL (CSV_NULL_MARKER); None for Parquet
    anomaly: dict[str, Any] | None = None  # the header's anomaly settings (pipeline.core.anomaly.settings_json)
    totals: tuple[Total, ...] | None = None  # a scored partition's sums (pipeline.core.totals); None: not summed
    manifest_version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        """The same text as ``json.dumps(asdict(self), indent=2)``, built without ``asdict``'s deep copies: an
        export job of 24 hours writes 24 manifests (measured: 0.15 ms a manifest with ``asdict``, 0.06 ms so)."""
        data = dict(self.__dict__)
        data["files"] = [dict(f.__dict__) for f in self.files]
        data["schema"] = [dict(f.__dict__) for f in self.schema]
        data["cluster_by"] = list(self.cluster_by)
        data["params"], data["replaced"] = dict(self.params), dict(self.replaced)
        data["totals"] = None if self.totals is None else [t._asdict() for t in self.totals]
        return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str | builtins.bytes) -> Manifest:
        """Parse and validate; ValueError listing every problem (:func:`problems`) for anything else."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a manifest is a JSON object")
        version = data.get("manifest_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > MANIFEST_VERSION:
            raise NewerManifest(f"manifest_version {version} is newer than this loader reads ({MANIFEST_VERSION})")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            *older, newest = (str(v) for v in sorted(READABLE_VERSIONS))
            readable = f"{', '.join(older)} and {newest}"
            raise ValueError(f"manifest_version {version!r} is not supported (this version reads {readable})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown manifest keys: {', '.join(unknown)}")
        data["files"] = tuple(DataFile(**f) for f in _objects(data.get("files"), "files"))
        data["schema"] = tuple(SchemaField(**f) for f in _objects(data.get("schema"), "schema"))
        data["cluster_by"] = tuple(data.get("cluster_by") or ())
        if data.get("totals") is not None:
            data["totals"] = tuple(Total(**t) for t in _objects(data["totals"], "totals"))
        manifest = cls(**data)
        found = problems(manifest)
        if manifest.anomaly is not None and not found:
            try:
                settings_of(manifest.anomaly, [f.name for f in manifest.schema])
            except ValueError as error:
                found.append(str(error))
        if found:
            raise ValueError("; ".join(found))
        return manifest

    @classmethod
    def parse(cls, data: builtins.bytes, *, where: str, hint: str) -> Manifest:
        """:meth:`from_json` for a manifest read from the lake: a damaged or unknown one is a StoreError naming
        it, not a traceback."""
        try:
            return cls.from_json(data)
        except NewerManifest as error:  # an exporter deployed before its loader: retried until the loader is
            raise StoreError(
                f"the manifest cannot be read yet: {error}",
                where=where,
                hint="it was written by a newer exporter: deploy the loader of the same release (`make deploy` "
                "updates both); the load is retried meanwhile",
                retryable=True,
            ) from None
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(f"the manifest cannot be read: {error}", where=where, hint=hint) from None

    @property
    def anomaly_settings(self) -> AnomalySettings | None:
        """The anomaly settings the partition is scored with, or None (checked when the manifest was read)."""
        if self.anomaly is None:
            return None
        return settings_of(self.anomaly, [f.name for f in self.schema])

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


def _objects(value: Any, key: str) -> builtins.list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"'{key}' must be a list of objects")
    return value


def problems(manifest: Manifest) -> builtins.list[str]:
    """Everything about ``manifest`` that the exporter never writes — each a short phrase naming the field."""
    found: builtins.list[str] = []
    text = _text_fields(manifest, found)
    if not is_table_name(manifest.kpi if text else ""):
        found.append(f"kpi {manifest.kpi!r} is not a table name (lower-case letters, digits, _)")
    found += _schema_problems(manifest)
    found += _partition_problems(manifest)
    if not isinstance(manifest.run_id, str) or not is_run_id(manifest.run_id):
        found.append(f"run_id {manifest.run_id!r} is not a run id")
    if manifest.format not in FORMATS:
        found.append(f"format {manifest.format!r} is not one of {', '.join(FORMATS)}")
    if manifest.format == "csv" and manifest.manifest_version >= 2 and manifest.null_marker != CSV_NULL_MARKER:
        found.append(f"null_marker {manifest.null_marker!r} is not {CSV_NULL_MARKER!r}")
    if manifest.format != "csv" and manifest.null_marker is not None:
        found.append("null_marker is only for CSV files")
    found += _file_problems(manifest)
    found += _totals_problems(manifest)
    for key in ("timezone", "source_timezone"):
        zone = getattr(manifest, key)
        if isinstance(zone, str) and (zone or key == "timezone") and not _is_zone(zone):
            found.append(f"{key} {zone!r} is not an IANA time zone")
    for key in ("rows", "bytes"):
        if not _count(getattr(manifest, key)):
            found.append(f"{key} {getattr(manifest, key)!r} is not a count")
    return found


def _text_fields(manifest: Manifest, found: builtins.list[str]) -> bool:
    for key in ("kpi", "partition", "grain", "timezone", "run_id", "sql_hash", "format", "description"):
        if not isinstance(getattr(manifest, key), str):
            found.append(f"{key} must be text")
    return isinstance(manifest.kpi, str)


def _schema_problems(manifest: Manifest) -> builtins.list[str]:
    found: builtins.list[str] = []
    names: builtins.list[str] = []
    types = {t.value for t in BqType}
    if not manifest.schema:
        found.append("schema lists no column")
    for index, column in enumerate(manifest.schema):
        if not isinstance(column.name, str) or not is_column_name(column.name):
            found.append(f"schema[{index}].name {column.name!r} is not a column name")
        elif column.name.lower() in (n.lower() for n in names):
            found.append(f"schema[{index}].name {column.name!r} appears twice")
        else:
            names.append(column.name)
        if column.type not in types:
            found.append(f"schema[{index}].type {column.type!r} is not a BigQuery type ({', '.join(sorted(types))})")
        if column.mode not in MODES:
            found.append(f"schema[{index}].mode {column.mode!r} is not one of {', '.join(MODES)}")
        if not isinstance(column.description, str):
            found.append(f"schema[{index}].description must be text")
    cluster = manifest.cluster_by
    if len(cluster) > MAX_CLUSTER_COLUMNS or any(name not in names for name in cluster):
        found.append(f"cluster_by {builtins.list(cluster)!r} must name at most 4 of the schema's columns")
    return found


def _partition_problems(manifest: Manifest) -> builtins.list[str]:
    try:
        grain = Grain(manifest.grain)
    except ValueError:
        return [f"grain {manifest.grain!r} is not one of {', '.join(g.value for g in Grain)}"]
    if grain is Grain.NONE:
        extras = [k for k in ("time_column", "interval_start", "interval_end", "decorator") if getattr(manifest, k)]
        wrong = [] if manifest.partition == "snapshot" else [f"partition {manifest.partition!r} is not 'snapshot'"]
        return wrong + [f"a snapshot has no {key}" for key in extras]
    found: builtins.list[str] = []
    pattern, digits = _PARTITION[grain]
    if not isinstance(manifest.partition, str) or not pattern.match(manifest.partition):
        found.append(f"partition {manifest.partition!r} is not a {grain.value} partition")
    decorator = manifest.decorator
    if not isinstance(decorator, str) or len(decorator) != digits or not decorator.isdigit():
        found.append(f"decorator {decorator!r} is not {digits} digits")
    column = next((c for c in manifest.schema if c.name == manifest.time_column), None)
    if column is None:
        found.append(f"time_column {manifest.time_column!r} is not a column of the schema")
    elif column.type not in {t.value for t in PARTITION_TYPES[grain.value]}:
        found.append(f"time_column {manifest.time_column!r} is {column.type}, which cannot carry {grain.value}s")
    for key in ("interval_start", "interval_end"):
        value = getattr(manifest, key)
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            found.append(f"{key} {value!r} is not an ISO time with its offset")
    return found


def _totals_problems(manifest: Manifest) -> builtins.list[str]:
    """``totals`` only for a scored partition: each a numeric column's finite sum, for all rows or one value of
    the settings' ``by`` dimension (``status=paid``)."""
    if manifest.totals is None:
        return []
    if not isinstance(manifest.anomaly, dict):
        return ["totals are only for a partition scored for anomalies (anomaly is null)"]
    by = manifest.anomaly.get("by")
    numeric = {f.name for f in manifest.schema if f.type in MEASURE_TYPES}
    found: builtins.list[str] = []
    for index, total in enumerate(manifest.totals):
        if total.measure not in numeric:
            found.append(f"totals[{index}].measure {total.measure!r} is not a numeric column of the schema")
        dimension = total.dimension
        if not (dimension is None if by is None else isinstance(dimension, str) and dimension.startswith(f"{by}=")):
            expected = "null" if by is None else f"'{by}=<value>'"
            found.append(f"totals[{index}].dimension {dimension!r} is not {expected}")
        value = total.value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            found.append(f"totals[{index}].value {value!r} is not a finite number")
    return found


def _file_problems(manifest: Manifest) -> builtins.list[str]:
    found: builtins.list[str] = []
    if not manifest.files:
        found.append("files lists no file")
    for index, entry in enumerate(manifest.files):
        path = entry.path
        parts = path.split("/") if isinstance(path, str) else []
        if not parts or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
            found.append(f"files[{index}].path {path!r} is not a key inside the lake")
        elif parts[0] != manifest.kpi or not path.endswith("." + str(manifest.format)):
            found.append(f"files[{index}].path {path!r} is not a {manifest.format} file of {manifest.kpi}")
        if not _count(entry.rows) or not _count(entry.bytes):
            found.append(f"files[{index}] rows and bytes must be counts")
        if not isinstance(entry.sha256, str) or not _SHA256.match(entry.sha256):
            found.append(f"files[{index}].sha256 {entry.sha256!r} is not a SHA-256")
    return found


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return True
