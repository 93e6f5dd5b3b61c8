"""Helpers for the exporter's tests: a KPI from a header and a query, and reading back what was committed."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.catalog import load_one
from pipeline.core.intervals import Grain, Interval, interval_containing
from pipeline.core.lake import MANIFEST_NAME
from pipeline.core.manifest import Manifest
from pipeline.core.spec import Kpi
from pipeline.stores import Store

# A daily KPI over `orders(created_at)`, as several test modules use it: its partitions, its lookback, its freshness.
DAILY = """
grain: day
time_column: day
start: 2024-01-01
lookback: 2
freshness: {warn_after: 30h, error_after: 54h}
columns:
  day:    {type: DATE}
  orders: {type: INT64}
"""
DAILY_SQL = """
SELECT CAST(created_at AS DATE) AS day, COUNT(*) AS orders
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1
"""


def make_kpi(folder: Path, name: str, header: str, sql: str) -> Kpi:
    """Write ``folder/name.sql`` and load it through the real catalog (so `kpi check` rules apply)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sql").write_text(f"/*---\nname: {name}\n{header.strip()}\n---*/\n{sql.strip()}\n")
    return load_one((folder,), name)


def read_partition(store: Store, manifest: Manifest) -> pa.Table:
    """Every file of a committed partition as one table, checking sizes and checksums on the way."""
    import hashlib

    tables = []
    for entry in manifest.files:
        data = store.get_bytes(entry.path)
        assert len(data) == entry.bytes
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        tables.append(pq.read_table(io.BytesIO(data)))
    return pa.concat_tables(tables)


def keys(store: Store) -> list[str]:
    return [o.key for o in store.list("")]


def manifests(store: Store) -> list[dict[str, Any]]:
    return [json.loads(store.get_bytes(k)) for k in keys(store) if k.endswith(MANIFEST_NAME)]


def days(first: str, count: int, zone: str = "Asia/Tokyo") -> list[Interval]:
    """``count`` consecutive day partitions from ``first`` (a date), in ``zone``."""
    start = datetime.fromisoformat(first)
    return [interval_containing(Grain.DAY, ZoneInfo(zone), start + timedelta(days=n)) for n in range(count)]


def duckdb_orders(path: Path, *rows: str) -> str:
    """A DuckDB source file with the table ``orders (created_at, status, amount)`` and ``rows`` (SQL tuples)."""
    import duckdb

    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE orders (created_at TIMESTAMP, status VARCHAR, amount DECIMAL(12,2))")
        db.execute("INSERT INTO orders VALUES " + ", ".join(rows))
    return f"duckdb:///{path}"
