"""The SQL of a BigQuery removal (``kpi remove``), rendered as text — pure: no client, no I/O.

One script (:func:`removal_script`), shaped like a batch load's (:mod:`pipeline.warehouses.bigquery_sql`) so that
removals and loads of one KPI are serialised by the same means: the row of the KPI's own lock table
``_kpi_lock_<kpi>`` inserted when missing, then one multi-statement transaction that

1. updates that lock row, so that a load (or another removal) of the KPI in flight conflicts with it and BigQuery
   cancels one of the two ("Transaction is aborted due to concurrent update") — never both half-applied. Loads
   and removals of other KPIs lock other tables and do not conflict with it;
2. judges the plan again (:func:`pipeline.warehouses.base.changed_since_planned`): when the current load of a
   planned partition is no longer the one planned (loaded again, or removed, since ``kpi remove`` showed it) —
   or, for the whole table, a partition was loaded since — ``ERROR('kpi-changed: …')`` rolls it all back;
3. deletes each partition's rows (the whole table's for ``--all``);
4. inserts a removal row per partition into the audit table, ``loaded_at`` by BigQuery's clock, and commits.

DML only: it does not count toward the table's daily modification limit. Values are typed literals of our own
(partition bounds, names, run and job ids), escaped all the same; the emulator the tests run on refuses query
parameters inside scripts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from pipeline.errors import LoadError
from pipeline.warehouses.base import AUDIT_TABLE, Bounds, LoadRecord, Removal, current_loads_sql
from pipeline.warehouses.bigquery_sql import Tables, lock_row, string

CHANGED = "kpi-changed:"
_CHANGED_ERROR = re.compile(re.escape(CHANGED) + r" (\S+)")
AUDIT_COLUMNS = ("kpi", "partition", "run_id", "sql_hash", "rows", "bytes", "job_id")
AUDIT_TYPES = ("STRING", "STRING", "STRING", "STRING", "INT64", "INT64", "STRING")


def removal_script(
    tables: Tables, kpi: str, removals: Sequence[Removal], records: Sequence[LoadRecord], *, whole_table: bool
) -> str:
    """The whole removal (see the module docstring): ``records`` are the removal rows to insert, one per removal."""
    table, audit, lock = tables.name(kpi), tables.name(AUDIT_TABLE), tables.lock
    current = current_loads_sql("`partition`, run_id, job_id", audit, string(kpi), "`partition`")
    pairs = " OR ".join(
        f"(`partition` = {string(r.load.partition)} AND run_id = {string(r.load.run_id)} "
        f"AND job_id = {string(r.load.job_id)})"
        for r in removals
    )
    planned = ", ".join(string(r.load.partition) for r in removals)
    scope = "TRUE" if whole_table else f"`partition` IN ({planned})"
    deletes = "\n".join(
        f"DELETE FROM {table} WHERE {bounds_predicate(bounds)};"
        for bounds in ([None] if whole_table else [r.bounds for r in removals])
    )
    columns = ", ".join(f"`{name}`" for name in (*AUDIT_COLUMNS, "loaded_at"))
    values = ",\n  ".join(
        "("
        + ", ".join(literal(t, v) for t, v in zip(AUDIT_TYPES, list(r.__dict__.values())[:-1], strict=True))
        + ", CURRENT_TIMESTAMP())"  # BigQuery's clock: later loads are judged against it, not this machine's
        for r in records
    )
    return f"""{lock_row(tables)};
BEGIN TRANSACTION;
UPDATE {lock} SET run_id = '', locked_at = CURRENT_TIMESTAMP() WHERE kpi = {string(kpi)};
SELECT ERROR(CONCAT({string(CHANGED + " ")}, `partition`)) FROM ({current}) WHERE {scope} AND NOT ({pairs});
SELECT ERROR({string(CHANGED + " a planned load is no longer current")}) FROM (
  SELECT COUNT(*) AS n FROM ({current}) WHERE {pairs}
) WHERE n != {len(removals)};
{deletes}
INSERT INTO {audit} ({columns}) VALUES
  {values};
COMMIT TRANSACTION;"""


def changed_partition(message: str) -> str | None:
    """The partition (or words) a ``kpi-changed`` failure names, in a job's error message."""
    found = _CHANGED_ERROR.search(message)
    return found.group(1) if found else None


def bounds_predicate(bounds: Bounds | None) -> str:
    """The rows between a partition's bounds (see :func:`partition_bounds`), as SQL; every row for None."""
    if bounds is None:
        return "TRUE"
    column, column_type, start, end = bounds
    return f"`{column}` >= {literal(column_type.value, start)} AND `{column}` < {literal(column_type.value, end)}"


def literal(kind: str, value: Any) -> str:
    """A typed GoogleSQL literal of one of our own values (partition bounds, audit fields)."""
    if value is None:
        return "NULL"
    if kind in {"INT64", "INTEGER"}:
        return str(int(value))
    if kind == "STRING":
        return string(str(value))
    if kind in {"DATE", "DATETIME", "TIMESTAMP"}:
        text = (
            value.isoformat() if isinstance(value, date) and not isinstance(value, datetime) else value.isoformat(" ")
        )
        return f"{kind} '{text}'"
    raise LoadError(
        f"a partition bound of type {kind} cannot be written",
        hint="declare the time column DATE, DATETIME or TIMESTAMP",
    )
