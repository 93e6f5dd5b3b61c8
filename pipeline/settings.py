"""Where things are when nobody says otherwise: the environment variables and the embedded defaults.

``KPI_SOURCE`` (a database URL), ``KPI_LAKE`` (``s3://bucket/prefix`` or a folder) and ``KPI_WAREHOUSE``
configure scripts and the Lambdas alike. Without them everything is local under ``.kpi/`` (git-ignored): a
DuckDB demo source, a lake folder and a DuckDB warehouse, so that a newcomer's first command needs no server
and no cloud account.
"""

from __future__ import annotations

import os

EMBEDDED_SOURCE = "duckdb://.kpi/demo.duckdb"
EMBEDDED_LAKE = ".kpi/lake"


def source_url() -> str:
    return os.environ.get("KPI_SOURCE") or EMBEDDED_SOURCE


def lake_url() -> str:
    return os.environ.get("KPI_LAKE") or EMBEDDED_LAKE


EMBEDDED_WAREHOUSE = "duckdb://.kpi/warehouse.duckdb"


def warehouse_url() -> str:
    return os.environ.get("KPI_WAREHOUSE") or EMBEDDED_WAREHOUSE
