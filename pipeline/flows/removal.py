"""Removing loaded partitions from the warehouse, so that a wrong load can be undone (``kpi remove``).

A mistyped ``--date`` once loaded a future day; a query bug loaded a month of wrong numbers. A removal deletes
the rows of the chosen partitions — or every row of the KPI's table — and records each partition's removal in
the audit table ``_kpi_loads``, in one transaction on the warehouse (DuckDB, or a BigQuery multi-statement
transaction). Nothing in the lake changes: its files are the archive, and a removed partition can be loaded again
from them (``kpi load``) or exported anew (``kpi run``, ``kpi backfill``).

After a removal the partition counts as never loaded: ``kpi status`` does not list it, a backfill runs it
again, and its next load is accepted whatever its run — "never older" starts afresh from that load (see
:func:`pipeline.warehouses.base.current_loads`). The rows a partition is are the ones the loader replaces: the time
column between the partition's bounds, computed the same way (:func:`pipeline.core.bounds.column_bound`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.core.bounds import column_bound
from pipeline.core.intervals import Interval
from pipeline.core.spec import Kpi
from pipeline.warehouses import LoadRecord, Warehouse
from pipeline.warehouses.base import Bounds, Removal


@dataclass(frozen=True)
class RemovalPlan:
    """What a removal will do: the loaded partitions it removes, and those asked for that hold nothing."""

    kpi: Kpi
    removals: tuple[Removal, ...]
    not_loaded: tuple[str, ...] = ()  # asked for, but nothing is loaded there: nothing to remove
    whole_table: bool = False  # --all: every row of the KPI's table goes, whatever partition it is in

    @property
    def rows(self) -> int:
        """The rows the removed loads held, as the audit table recorded them."""
        return sum(removal.load.rows for removal in self.removals)

    @property
    def partitions(self) -> list[str]:
        return [removal.load.partition for removal in self.removals]


def plan_removal(kpi: Kpi, warehouse: Warehouse, intervals: Sequence[Interval] | None) -> RemovalPlan:
    """The removal of ``intervals`` (None: the whole KPI), judged by what the audit table says is loaded now."""
    loaded = warehouse.loads(kpi.name)
    if intervals is None:
        removals = tuple(Removal(loaded[name], None) for name in sorted(loaded))
        return RemovalPlan(kpi, removals, whole_table=True)
    chosen = [(interval, loaded.get(interval.partition)) for interval in intervals]
    return RemovalPlan(
        kpi,
        tuple(Removal(load, partition_rows(kpi, interval)) for interval, load in chosen if load is not None),
        tuple(interval.partition for interval, load in chosen if load is None),
    )


def remove(plan: RemovalPlan, warehouse: Warehouse) -> list[LoadRecord]:
    """Carry out ``plan`` in one warehouse transaction; the audit rows it wrote (none when nothing is loaded)."""
    if not plan.removals:
        return []
    return warehouse.remove(plan.kpi.name, plan.removals, whole_table=plan.whole_table)


def partition_rows(kpi: Kpi, interval: Interval) -> Bounds | None:
    """The partition's rows as the loader replaces them: (time column, its type, first value, end exclusive)."""
    if kpi.time_column is None:
        return None
    column_type = next(c.type for c in kpi.columns if c.name == kpi.time_column)
    start, end = (column_bound(moment, column_type, kpi.source_zone) for moment in (interval.start, interval.end))
    return kpi.time_column, column_type, start, end
