"""Load: read a batch's manifests, check every file they list, and let the warehouse land the batch at once.

The manifests are the only input: the loader never reads ``queries/``, so an old manifest loads exactly what
was exported. Files are checked against their manifest's size, SHA-256 and row count before a row reaches the
warehouse. A batch is the partitions one export job committed — named by its batch index (``_batch.json``,
:mod:`pipeline.core.batch`) or given as a list of manifests — and lands in one warehouse transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import BinaryIO

from pipeline.core.batch import BatchIndex
from pipeline.core.intervals import Interval
from pipeline.core.lake import BATCH_NAME, BATCHES, MANIFEST_NAME, partition_prefix
from pipeline.core.manifest import DataFile, Manifest
from pipeline.core.rowcount import PARQUET_TAIL_BYTES, CsvRecordCounter, parquet_footer_length, parquet_rows
from pipeline.core.spec import Kpi
from pipeline.errors import LoadError
from pipeline.flows.anomalies import score_loaded
from pipeline.stores import Store
from pipeline.warehouses import LoadResult, Warehouse
from pipeline.warehouses.base import OpenFile, where

_CHUNK = 1 << 20


def split_manifest_url(url: str) -> tuple[str, str]:
    """``<lake>/<kpi>/<partition>/run=<id>/_manifest.json`` → (lake URL, key of the manifest in it); a batch
    index's URL ``<lake>/<kpi>/_batches/run=<id>/<first partition>/_batch.json`` likewise."""
    parts = url.rstrip("/").split("/")
    if parts[-1] == BATCH_NAME and len(parts) >= 6 and parts[-3].startswith("run=") and parts[-4] == BATCHES:
        return "/".join(parts[:-5]) or "/", "/".join(parts[-5:])
    if parts[-1] != MANIFEST_NAME or len(parts) < 5 or not parts[-2].startswith("run="):
        raise LoadError(
            f"{url} is not a manifest URL",
            hint=f"give …/<kpi>/<partition>/run=<id>/{MANIFEST_NAME}, or a KPI name with --date",
        )
    return "/".join(parts[:-4]) or "/", "/".join(parts[-4:])


def load_announced(store: Store, key: str, warehouse: Warehouse) -> list[tuple[str, Manifest, LoadResult]]:
    """What an S3 notification names — a batch index (its batch), or a bare manifest (a batch of one) — with
    the key of each manifest loaded."""
    keys = [key]
    if key.endswith("/" + BATCH_NAME):
        keys = list(BatchIndex.parse(store.get_bytes(key), where=store.uri(key)).manifests)
    return [(k, m, r) for k, (m, r) in zip(keys, load_manifests(store, keys, warehouse), strict=True)]


def load_manifests(
    store: Store, keys: Sequence[str], warehouse: Warehouse, *, force: bool = False
) -> list[tuple[Manifest, LoadResult]]:
    """Load the manifests at ``keys`` (one KPI's partitions) as one batch: all of them land, or none. Then the
    partitions written are scored for anomalies when their manifests carry the header's settings
    (:func:`pipeline.flows.anomalies.score_loaded`): each result names its anomalies, or why scoring failed —
    which never fails the load, committed by then."""
    hint = "export the partition again; do not edit manifests by hand"
    manifests = [Manifest.parse(store.get_bytes(key), where=store.uri(key), hint=hint) for key in keys]
    results = warehouse.load(manifests, checked_opener(store, manifests), force=force)
    results = score_loaded(warehouse, manifests, results)
    return list(zip(manifests, results, strict=True))


def load_manifest(store: Store, key: str, warehouse: Warehouse, *, force: bool = False) -> tuple[Manifest, LoadResult]:
    """A single manifest: a batch of one (``kpi load``)."""
    ((manifest, result),) = load_manifests(store, [key], warehouse, force=force)
    return manifest, result


def load_batch(
    store: Store, key: str, warehouse: Warehouse, *, force: bool = False
) -> list[tuple[Manifest, LoadResult]]:
    """The batch a ``_batch.json`` index names, as one batch."""
    index = BatchIndex.parse(store.get_bytes(key), where=store.uri(key))
    return load_manifests(store, index.manifests, warehouse, force=force)


def newest_manifest(store: Store, kpi: Kpi, interval: Interval | None) -> str:
    """The manifest of the newest committed run of a partition (run ids sort by their start time)."""
    prefix = partition_prefix(kpi, interval) + "/run="
    manifests = sorted(o.key for o in store.list(prefix) if o.key.endswith("/" + MANIFEST_NAME))
    if not manifests:
        raise LoadError(
            f"no committed run of {prefix.rsplit('/', 1)[0]} in {store.url}",
            hint=f"export it first: kpi export {kpi.name}" + (f" --date {interval.partition}" if interval else ""),
        )
    return manifests[-1]


def checked_opener(store: Store, manifests: Sequence[Manifest]) -> OpenFile:
    """Each file as the warehouse will read it, refused unless its size, SHA-256 and row count are its
    manifest's: a file changed after its commit never reaches a table, whichever warehouse it is."""
    owner = {entry.path: manifest for manifest in manifests for entry in manifest.files}

    def open_file(entry: DataFile) -> BinaryIO:
        manifest = owner[entry.path]
        handle = store.open_read(entry.path)
        try:
            _check(handle, entry, manifest)
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        return handle

    return open_file


def _check(handle: BinaryIO, entry: DataFile, manifest: Manifest) -> None:
    """Bytes and SHA-256 in one pass, CSV records counted as the bytes go by; a Parquet file's rows are read from
    its footer afterwards (no pyarrow: the BigQuery loader's package has none)."""
    digest, size, records = hashlib.sha256(), 0, CsvRecordCounter()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if manifest.format == "csv":
            records.feed(chunk)
    hint = "the file or the manifest changed after the export committed them: export the partition again"
    if size != entry.bytes or digest.hexdigest() != entry.sha256:
        raise LoadError(
            f"{entry.path} does not match its manifest ({size} bytes, sha256 {digest.hexdigest()[:12]}…; "
            f"expected {entry.bytes} bytes, {entry.sha256[:12]}…)",
            where=where(manifest),
            hint=hint,
        )
    rows = records.records if manifest.format == "csv" else _parquet_rows(handle, size, entry, manifest)
    if rows != entry.rows:
        raise LoadError(
            f"{entry.path} holds {rows} rows, the manifest says {entry.rows}", where=where(manifest), hint=hint
        )


def _parquet_rows(handle: BinaryIO, size: int, entry: DataFile, manifest: Manifest) -> int:
    try:
        handle.seek(max(size - PARQUET_TAIL_BYTES, 0))
        length = parquet_footer_length(handle.read(PARQUET_TAIL_BYTES))
        handle.seek(max(size - PARQUET_TAIL_BYTES - length, 0))
        return parquet_rows(handle.read(length))
    except ValueError as error:
        raise LoadError(
            f"{entry.path} is not a readable Parquet file: {error}",
            where=where(manifest),
            hint="export the partition again",
        ) from None
