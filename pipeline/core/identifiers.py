"""Warehouse identifiers: the table and column names a KPI may have, one spelling that BigQuery and DuckDB both take.

Checked where a name enters — a KPI header (:mod:`pipeline.core.header_rules`) and a manifest read from the lake
(:mod:`pipeline.core.manifest`) — so that no name reaches a warehouse statement unchecked.
"""

from __future__ import annotations

import re

KPI_NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
# https://cloud.google.com/bigquery/docs/schemas#column_names
RESERVED_COLUMN_PREFIXES = ("_TABLE_", "_FILE_", "_PARTITION", "_ROW_TIMESTAMP", "__ROOT__", "_COLON_")


def is_table_name(name: str) -> bool:
    """Lower-case letters, digits and ``_``, starting with a letter: DuckDB ignores case, BigQuery does not."""
    return bool(KPI_NAME.match(name))


def is_column_name(name: str) -> bool:
    """Letters, digits and ``_``, starting with a letter or ``_``, not a prefix BigQuery reserves."""
    return bool(COLUMN_NAME.match(name)) and not name.upper().startswith(RESERVED_COLUMN_PREFIXES)
