"""The batch index: which manifests one export job committed together, so that they load together.

Written by the export flow after the batch's last manifest (``<kpi>/_batches/run=<id>/<first partition>/
_batch.json``, :func:`pipeline.core.lake.batch_index_key`); the S3 notification that starts the loader fires on
it, and the loader lands the partitions it names in one warehouse transaction. Each manifest stays the commit of
its own partition: a manifest can still be loaded alone (a batch of one), and the index adds nothing the
manifests do not say but their grouping.

Parsed like a manifest — validated field by field, every problem listed — before a key of it is read.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict, dataclass, fields

from pipeline.core.identifiers import is_table_name
from pipeline.core.lake import MANIFEST_NAME, is_run_id
from pipeline.errors import StoreError

BATCH_VERSION = 1


@dataclass(frozen=True)
class BatchIndex:
    kpi: str
    run_id: str
    manifests: tuple[str, ...]  # keys of the batch's manifests in the lake, in partition order
    batch_version: int = BATCH_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | builtins.bytes) -> BatchIndex:
        """Parse and validate; ValueError listing every problem for anything the export flow never writes."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a batch index is a JSON object")
        if data.get("batch_version") != BATCH_VERSION or isinstance(data.get("batch_version"), bool):
            raise ValueError(f"batch_version {data.get('batch_version')!r} is not supported (this version reads 1)")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        missing = sorted({"kpi", "run_id", "manifests"} - set(data))
        if unknown:
            raise ValueError(f"unknown batch index keys: {', '.join(unknown)}")
        if missing:
            raise ValueError(f"the batch index has no {', '.join(missing)}")
        keys = data["manifests"]
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise ValueError("'manifests' must be a list of keys")
        index = cls(data["kpi"], data["run_id"], tuple(keys), data["batch_version"])
        found = index.problems()
        if found:
            raise ValueError("; ".join(found))
        return index

    @classmethod
    def parse(cls, data: builtins.bytes, *, where: str) -> BatchIndex:
        """:meth:`from_json` for an index read from the lake: a damaged one is a StoreError naming it."""
        try:
            return cls.from_json(data)
        except (ValueError, TypeError) as error:
            raise StoreError(
                f"the batch index cannot be read: {error}",
                where=where,
                hint="load its manifests one by one (kpi load <manifest URL>), or export the batch again",
            ) from None

    def problems(self) -> builtins.list[str]:
        found: builtins.list[str] = []
        if not isinstance(self.kpi, str) or not is_table_name(self.kpi):
            found.append(f"kpi {self.kpi!r} is not a table name")
        if not isinstance(self.run_id, str) or not is_run_id(self.run_id):
            found.append(f"run_id {self.run_id!r} is not a run id")
        if not self.manifests:
            found.append("manifests lists no manifest")
        if len(set(self.manifests)) != len(self.manifests):
            found.append("manifests names a manifest twice")
        for index, key in enumerate(self.manifests):
            parts = key.split("/")
            if (
                len(parts) != 4
                or parts[0] != self.kpi
                or parts[2] != f"run={self.run_id}"
                or parts[3] != MANIFEST_NAME
                or parts[1] in ("", ".", "..")
                or "\\" in key
            ):
                found.append(f"manifests[{index}] {key!r} is not a manifest of {self.kpi} run {self.run_id}")
        return found
