"""Warehouses the loader writes to, chosen by URL (``KPI_WAREHOUSE``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline.errors import LoadError
from pipeline.warehouses.base import LoadRecord, LoadResult, Warehouse

__all__ = ["LoadRecord", "LoadResult", "Warehouse", "open_warehouse"]


def open_warehouse(url: str) -> Warehouse:
    """A DuckDB file (``duckdb:///path/file.duckdb`` or a path ending in ``.duckdb``)."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "duckdb" or (not scheme and url.endswith((".duckdb", ".db"))):
        from pipeline.warehouses.duckdb import DuckDbWarehouse

        return DuckDbWarehouse(url)
    raise LoadError(
        f"unknown warehouse URL {url!r}",
        hint="use duckdb:///path/warehouse.duckdb (bigquery://project/dataset is not implemented yet)",
    )
