"""What the loader's tests share: a small daily KPI over a DuckDB shop, its export, and the warehouses it loads
into — the embedded DuckDB file and BigQuery (the emulator) — behind one small interface, so that every rule
of the loader is tested on both."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline.core.manifest import Manifest
from pipeline.export import export
from pipeline.export.files import FileOptions
from pipeline.load import load_manifest
from pipeline.sources import open_source
from pipeline.sources.duckdb import DuckDbSource
from pipeline.stores import LocalStore
from pipeline.warehouses import Warehouse, open_warehouse
from tests.exporting import days, duckdb_orders, make_kpi

HEADER = """
grain: day
time_column: day
timezone: Asia/Tokyo
description: Orders per JST day
cluster_by: [status]
columns:
  day:    {type: DATE, description: JST day}
  status: {type: STRING, description: Status}
  orders: {type: INT64, description: Orders}
  sales:  {type: NUMERIC, description: Sales}
"""
SQL = """
SELECT DATE(created_at) AS day, status, COUNT(*) AS orders, SUM(amount) AS sales
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1, 2
"""
SHOP_ORDERS = (
    "('2024-03-01 10:00', 'paid', 10.50)",
    "('2024-03-01 11:00', 'paid', 1.25)",
    "('2024-03-01 12:00', 'refunded', 3.00)",
    "('2024-03-02 09:00', 'paid', 7.00)",
)


def shop_source(tmp_path: Path) -> str:
    return duckdb_orders(tmp_path / "shop.duckdb", *SHOP_ORDERS)


def run(
    shop: str,
    tmp_path: Path,
    header: str = HEADER,
    sql: str = SQL,
    first: str = "2024-03-01",
    count: int = 1,
    run_id: str | None = None,
    files_per_row: bool = False,
) -> list[Manifest]:
    """Export the KPI ``daily`` from ``shop`` into the lake ``tmp_path/lake`` (with ``files_per_row``, every row
    in a file of its own: a partition of several files without generating hundreds of megabytes)."""
    kpi = make_kpi(tmp_path / "q", "daily", header, sql)
    store = LocalStore(tmp_path / "lake")
    source = DuckDbSource(shop, batch_rows=1) if files_per_row else open_source(shop)
    files = FileOptions(max_file_bytes=1, row_group_rows=1) if files_per_row else None
    return export(kpi, days(first, count), source=source, store=store, run_id=run_id, files=files)


def key_of(manifest: Manifest) -> str:
    return f"daily/day={manifest.partition}/run={manifest.run_id}/_manifest.json"


@dataclass
class Target:
    """A warehouse under test and a way to read it back. ``rows`` takes SQL with ``{daily}`` and ``{audit}`` for
    the tables and double-quoted identifiers (turned into BigQuery's backticks)."""

    name: str
    open: Callable[[], Warehouse]
    _query: Callable[[str], list[tuple[Any, ...]]]
    _tables: dict[str, str]
    describe: Callable[[str], tuple[str, dict[str, str]]]  # table → (its description, column → description)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self._query(sql.format(**self._tables))


def duckdb_target(path: Path) -> Target:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path)) as db:  # the warehouse's own configuration: it may still be open here
            return db.execute(sql).fetchall()

    def describe(table: str) -> tuple[str, dict[str, str]]:
        ((comment,),) = query(f"SELECT comment FROM duckdb_tables() WHERE table_name = '{table}'")
        columns = query(f"SELECT column_name, comment FROM duckdb_columns() WHERE table_name = '{table}'")
        return str(comment), {name: str(text) for name, text in columns}

    return Target(
        "duckdb", lambda: open_warehouse(str(path)), query, {"daily": "daily", "audit": "_kpi_loads"}, describe
    )


def bigquery_target(url: str, client: Any) -> Target:
    from pipeline.warehouses.bigquery import BigQueryWarehouse, parse_bigquery_url

    where = parse_bigquery_url(url)

    def query(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in client.query(sql.replace('"', "`")).result()]

    def describe(table: str) -> tuple[str, dict[str, str]]:
        found = client.get_table(where.table(table))
        return found.description or "", {f.name: f.description or "" for f in found.schema}

    tables = {"daily": f"`{where.table('daily')}`", "audit": f"`{where.table('_kpi_loads')}`"}
    return Target("bigquery", lambda: BigQueryWarehouse(url, client=client), query, tables, describe)


def loaded_snapshot(tmp_path: Path, warehouse_url: str | None = None) -> tuple[Path, Path]:
    """The snapshot KPI `by_plan` exported from a DuckDB shop and loaded into ``wh.duckdb`` (or the warehouse at
    ``warehouse_url``): (queries, the DuckDB file)."""
    shop = tmp_path / "shop.duckdb"
    with duckdb.connect(str(shop)) as db:
        db.execute("CREATE TABLE plans AS SELECT * FROM (VALUES ('free', 3), ('paid', 5)) t(plan, users)")
    queries = tmp_path / "q"
    kpi = make_kpi(
        queries,
        "by_plan",
        "grain: none\ncolumns:\n  plan: {type: STRING}\n  users: {type: INT64}",
        "SELECT plan, users FROM plans",
    )
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, [], source=open_source(f"duckdb:///{shop}"), store=store)
    warehouse = open_warehouse(warehouse_url or str(tmp_path / "wh.duckdb"))
    load_manifest(store, f"by_plan/snapshot/run={manifest.run_id}/_manifest.json", warehouse)
    warehouse.close()
    return queries, tmp_path / "wh.duckdb"


@contextmanager
def held_open(path: Path, *, read_only: bool = False) -> Iterator[None]:
    """Another process holds the DuckDB file open until the block ends: for writing (DuckDB lets one process
    write a file: a transient failure of a loader, cured once that process is gone) or read-only (many may read;
    no writer can open it meanwhile)."""
    code = f"import duckdb, sys; c = duckdb.connect({str(path)!r}, read_only={read_only}); print('held', flush=True)"
    holder = subprocess.Popen(
        [sys.executable, "-c", code + "; sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
