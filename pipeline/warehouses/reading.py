"""What every warehouse's reader shares: which rows a range of partitions is, and the types they leave in.

The readers (:meth:`~pipeline.warehouses.base.Warehouse.read`, used by ``pipeline.read``, and
:meth:`~pipeline.warehouses.base.Warehouse.schema`, used by ``kpi preview``) differ only in their SQL dialect
and client; the decisions are made here once, so that BigQuery and DuckDB return the same rows in the same types:

- :func:`row_range`: the time column's bounds of ``[first, last)``, in that column's own terms, exactly as the
  loader replaces partitions (:func:`~pipeline.core.bounds.column_bound`);
- :func:`canonical`: every column in the Arrow type of its BigQuery type — the lake files' types — whatever the
  warehouse keeps (DuckDB holds BIGNUMERIC and JSON as text);
- :func:`not_loaded`: the error of a KPI whose table does not exist yet.

pyarrow is imported inside :func:`canonical` only: the BigQuery loader Lambda imports the warehouses, and its
package has no pyarrow.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING

from pipeline.core.bounds import column_bound
from pipeline.core.spec import Kpi
from pipeline.core.types import BqType
from pipeline.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

Bound = tuple[str, date | datetime]  # (">=" or "<", the time column's value)


def row_range(kpi: Kpi, types: Mapping[str, BqType], first: datetime | None, last: datetime | None) -> list[Bound]:
    """The (operator, value) pairs on the KPI's time column that select the partitions from the one starting at
    ``first`` to the one ending at ``last`` (exclusive; either open when None); none for a snapshot or an open
    range. ``types`` are the warehouse table's columns: the bound is written in the time column's own type."""
    if not kpi.time_column or (first is None and last is None):
        return []
    column_type = types.get(kpi.time_column)
    if column_type is None:
        raise UsageError(f"the warehouse's table {kpi.name} has no column {kpi.time_column}", where=kpi.name)
    found: list[Bound] = []
    if first is not None:
        found.append((">=", column_bound(first, column_type, kpi.source_zone)))
    if last is not None:
        found.append(("<", column_bound(last, column_type, kpi.source_zone)))
    return found


def order_by(kpi: Kpi) -> str | None:
    """The column a read is ordered by: the time column of an incremental KPI, else none."""
    return kpi.time_column if kpi.incremental and kpi.time_column else None


def not_loaded(kpi: Kpi, url: str) -> UsageError:
    return UsageError(
        f"the warehouse {url} has no table {kpi.name}: nothing was loaded yet",
        where=kpi.name,
        hint=f"load it first: kpi run {kpi.name} (or kpi backfill {kpi.name} --start … --end …)",
    )


def canonical(table: pa.Table, types: Mapping[str, BqType]) -> pa.Table:
    """Every column in the Arrow type of its BigQuery type (DuckDB keeps BIGNUMERIC as text, JSON as text…)."""
    import pyarrow as pa

    from pipeline.core.typeplan import ARROW_TYPES

    arrays = [table.column(name).cast(ARROW_TYPES[kind], safe=True) for name, kind in types.items()]
    return pa.Table.from_arrays(arrays, names=list(types))
