"""The schema check's results kept between runs, as the parse cache keeps the parses.

Why: checking one KPI against a snapshot parses its SQL again and runs sqlglot's resolver, qualifier and type
annotator (about 15 ms), so a thousand-KPI ``kpi check`` went from 1.8 s to 14–22 s once a snapshot was
committed. A key is the SHA-256 of everything the result depends on — the KPI's path, name, source, SQL and
declared columns, the schema's snapshot text, the masked columns — and the file belongs to one version of the
checking code (the parse cache's fingerprint plus the schema modules outside ``pipeline/core``). Same folder, same
rules as :mod:`pipeline.parse_cache` (``KPI_CACHE``, atomic replace, never an error).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from pipeline.core.schema import SourceSchema, to_text
from pipeline.core.spec import Kpi
from pipeline.errors import Problem
from pipeline.parse_cache import fingerprint, folder_from_environment, read_entries, write_entries

__all__ = ["SchemaCache"]

FILE_NAME = "kpi-schema-check.pickle"
Result = tuple[list[Problem], list[Problem]]  # problems, warnings


@cache
def _owner() -> str:
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256(fingerprint().encode())
    for path in (root / "schemas.py", root / "schema_cache.py", root / "sources" / "duckdb_check.py"):
        digest.update(path.read_bytes())
    # the demo binder's warnings are DuckDB's binder's: another DuckDB (1.5 → 2.0 in place) may bind otherwise
    spec = importlib.util.find_spec("duckdb")
    origin = spec.origin if spec else None
    stat = os.stat(origin) if origin else None
    digest.update(f"duckdb {origin} {stat.st_size if stat else 0} {stat.st_mtime_ns if stat else 0}".encode())
    return digest.hexdigest()


class SchemaCache:
    """``check(kpi)`` through the cache; :meth:`save` writes what this run checked anew."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or folder_from_environment() or Path()) / FILE_NAME
        self.enabled = (folder or folder_from_environment()) is not None
        self.entries: dict[str, Result] = read_entries(self.path, _owner()) if self.enabled else {}
        self.misses = 0
        self._schemas: dict[int, str] = {}

    def check(
        self, kpi: Kpi, schema: SourceSchema, masked: Mapping[str, set[str]], run: Callable[[], Result]
    ) -> Result:
        if not self.enabled:
            return run()
        key = self._key(kpi, schema, masked)
        found = self.entries.get(key)
        if found is not None:
            return list(found[0]), list(found[1])
        self.misses += 1
        result = self.entries[key] = run()
        return result

    def save(self) -> None:
        if self.enabled and self.misses:
            write_entries(self.path, _owner(), self.entries)

    def _key(self, kpi: Kpi, schema: SourceSchema, masked: Mapping[str, set[str]]) -> str:
        text = self._schemas.get(id(schema))
        if text is None:
            text = self._schemas[id(schema)] = hashlib.sha256(to_text(schema).encode()).hexdigest()
        digest = hashlib.sha256(text.encode())
        for part in (kpi.path, kpi.name, kpi.source, kpi.query.sql, str(kpi.sql_line), schema.origin):
            digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
        for column in kpi.columns:
            digest.update(f"{column.name}:{column.type.value}\0".encode())
        digest.update(repr(sorted((t, sorted(c)) for t, c in masked.items())).encode())
        return digest.hexdigest()
