"""Warehouses the loader writes to, chosen by URL (``KPI_WAREHOUSE``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline.errors import LoadError
from pipeline.warehouses.base import LoadRecord, LoadResult, Warehouse

__all__ = ["LoadRecord", "LoadResult", "Warehouse", "open_warehouse"]


def open_warehouse(url: str, *, read_only: bool = False, lock_wait: float | None = None) -> Warehouse:
    """``bigquery://project/dataset[?…]``, or a DuckDB file (``duckdb:///path/file.duckdb`` or a path ending in
    ``.duckdb``). Each warehouse imports its client library only when chosen: the BigQuery loader Lambda has no
    DuckDB, and a local run never needs Google's libraries.

    ``read_only`` for the readers (status, preview, the notebook API, the report): a DuckDB file is then never
    created nor locked for writing. ``lock_wait``: seconds a DuckDB open waits while another process writes the
    file (default :data:`~pipeline.warehouses.duckdb.LOCK_WAIT`; 0 fails at once)."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "bigquery":
        from pipeline.warehouses.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(url)
    if scheme == "duckdb" or (not scheme and url.endswith((".duckdb", ".db"))):
        from pipeline.warehouses.duckdb import LOCK_WAIT, DuckDbWarehouse

        return DuckDbWarehouse(url, read_only=read_only, lock_wait=LOCK_WAIT if lock_wait is None else lock_wait)
    raise LoadError(
        f"unknown warehouse URL {url!r}",
        hint="use bigquery://PROJECT/DATASET or duckdb:///path/warehouse.duckdb",
    )
