"""What counts as loaded, as SQL both warehouses run: the newest run of each partition since its latest removal.

A leaf of its own (nothing of the package imported) because the audit's readers are on both sides of the
warehouse package: the loaders' plans (:mod:`pipeline.warehouses.base`, which re-exports these names) and the
scores read back (:func:`pipeline.warehouses.anomalies.scores_sql`, a score counting only for the run loaded).
"""

from __future__ import annotations

REMOVED = "removed:"  # the job id of an audit row that records a removal starts with it


def current_loads_sql(columns: str, audit: str, kpi: str, partition: str = "partition", only: str = "") -> str:
    """:func:`~pipeline.warehouses.base.current_loads` as one query both warehouses run (DuckDB's and BigQuery's
    SQL agree on every word of it), so that only one row per partition leaves the warehouse: the audit table of an
    hourly KPI reloaded by every lookback holds tens of rows per partition (a year of hours loaded 4 times, 35,040
    rows, in DuckDB on this busy 2-core machine: 0.63 s to read them all and choose in Python, 0.28 s with this
    query, median of 5; and BigQuery would send them all over the network on every load). ``columns`` are the
    record's columns as the warehouse selects them, ``audit`` the audit table's name, ``kpi`` a placeholder or
    literal, ``partition`` the partition column as the warehouse quotes it. The loaders pass its rows through
    ``current_loads`` all the same: on rows it chose, a no-op. ``only``, a condition on ``partition``, keeps the
    partitions a load is about (a batch of 24 hours need not read the rule's answer for the KPI's other 1,416
    partitions)."""
    removed = f"STARTS_WITH(job_id, '{REMOVED}')"
    kept = f" AND {only}" if only else ""
    return (
        f"SELECT {columns} FROM {audit} LEFT JOIN ("
        f"SELECT {partition} AS removed_partition, MAX(loaded_at) AS removed_at FROM {audit} "
        f"WHERE kpi = {kpi} AND {removed}{kept} GROUP BY 1"
        f") ON {partition} = removed_partition "
        f"WHERE kpi = {kpi}{kept} AND NOT {removed} AND (removed_at IS NULL OR loaded_at > removed_at) "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY run_id DESC, loaded_at DESC) = 1"
    )


def plan_audit_sql(columns: str, audit: str, kpi: str, partition: str = "partition", only: str = "") -> str:
    """What a load plans from, in one query: :func:`current_loads_sql`'s rows, and each partition's latest
    removal row — of which the planner keeps those of partitions no load followed
    (:func:`~pipeline.warehouses.base.audit_for_plan`): a removed run is not loaded again by a late or repeated
    event, only by ``--force``."""
    removed = f"STARTS_WITH(job_id, '{REMOVED}')"
    kept = f" AND {only}" if only else ""
    latest_removal = (
        f"SELECT {columns} FROM {audit} WHERE kpi = {kpi}{kept} AND {removed} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY loaded_at DESC) = 1"
    )
    return f"({current_loads_sql(columns, audit, kpi, partition, only)}) UNION ALL ({latest_removal})"
