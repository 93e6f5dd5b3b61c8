"""Load: read a manifest, check every file it lists, and let the warehouse replace the partition.

The manifest is the only input: the loader never reads ``queries/``, so an old manifest loads exactly what was
exported. Files are checked against the manifest's size and SHA-256 before a row reaches the warehouse.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from pipeline.core.intervals import Interval
from pipeline.core.lake import MANIFEST_NAME, partition_prefix
from pipeline.core.manifest import DataFile, Manifest
from pipeline.core.spec import Kpi
from pipeline.errors import LoadError
from pipeline.stores import Store
from pipeline.warehouses import LoadResult, Warehouse
from pipeline.warehouses.base import OpenFile

_CHUNK = 1 << 20


def split_manifest_url(url: str) -> tuple[str, str]:
    """``<lake>/<kpi>/<partition>/run=<id>/_manifest.json`` → (lake URL, key of the manifest in it)."""
    parts = url.rstrip("/").split("/")
    if parts[-1] != MANIFEST_NAME or len(parts) < 5 or not parts[-2].startswith("run="):
        raise LoadError(
            f"{url} is not a manifest URL",
            hint=f"give …/<kpi>/<partition>/run=<id>/{MANIFEST_NAME}, or a KPI name with --date",
        )
    return "/".join(parts[:-4]) or "/", "/".join(parts[-4:])


def load_manifest(store: Store, key: str, warehouse: Warehouse, *, force: bool = False) -> tuple[Manifest, LoadResult]:
    hint = "export the partition again; do not edit manifests by hand"
    manifest = Manifest.parse(store.get_bytes(key), where=store.uri(key), hint=hint)
    return manifest, warehouse.load(manifest, _checked_opener(store, manifest), force=force)


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


def _checked_opener(store: Store, manifest: Manifest) -> OpenFile:
    def open_file(entry: DataFile) -> BinaryIO:
        handle = store.open_read(entry.path)
        digest, size = hashlib.sha256(), 0
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if size != entry.bytes or digest.hexdigest() != entry.sha256:
            handle.close()
            raise LoadError(
                f"{entry.path} does not match its manifest ({size} bytes, sha256 {digest.hexdigest()[:12]}…; "
                f"expected {entry.bytes} bytes, {entry.sha256[:12]}…)",
                where=f"{manifest.kpi} {manifest.partition} (run {manifest.run_id})",
                hint="the file changed after the export committed it: export the partition again",
            )
        handle.seek(0)
        return handle

    return open_file
