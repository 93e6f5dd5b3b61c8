"""Reading a KPI's loaded partitions (``pipeline.read``): the KPI's header, the environment's warehouse, a range.

The warehouse does the reading (:meth:`~pipeline.warehouses.base.Warehouse.read`, opened read-only); this flow
only finds the KPI and turns the partitions a person names (``"2024-03"``, a ``date``…) into the range's bounds
in the KPI's zone. The DataFrame is the notebook module's business (:func:`pipeline.notebook.read`).
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import catalog, settings
from pipeline.core.intervals import interval_containing
from pipeline.core.selection import end_moment, moment
from pipeline.core.spec import Kpi
from pipeline.errors import UsageError
from pipeline.warehouses import open_warehouse

if TYPE_CHECKING:
    import pyarrow as pa

Moment = str | date | datetime | None


def read_arrow(
    name: str,
    start: Moment = None,
    end: Moment = None,
    env: str | None = None,
    *,
    queries: str | Path | None = None,
    warehouse: str | None = None,
) -> pa.Table:
    """The KPI's rows in the partitions from the one containing ``start`` to the one containing ``end`` (both
    included; open-ended when None), as an Arrow table of the canonical types (those of the lake's files). The
    warehouse is opened read-only and not waited for: a DuckDB file being loaded is a UsageError saying so."""
    kpi = catalog.load_one((queries_folder(queries),), name)
    url = warehouse or settings.load_environment(env).warehouse
    first, last = partition_range(kpi, start, end)
    reader = open_warehouse(url, read_only=True, lock_wait=0)
    try:
        return reader.read(kpi, first, last)
    finally:
        reader.close()


def queries_folder(folder: str | Path | None) -> Path:
    """The KPI folder as the CLI finds it: the argument, else ``KPI_QUERIES``, else ``queries/``."""
    return Path(folder or os.environ.get("KPI_QUERIES") or catalog.DEFAULT_QUERIES)


def partition_range(kpi: Kpi, start: Moment, end: Moment) -> tuple[datetime | None, datetime | None]:
    """[start of the partition containing ``start``, end of the one containing ``end``), aware, in the KPI's zone."""
    if not kpi.incremental:
        if start is not None or end is not None:
            raise UsageError(f"{kpi.name} is a snapshot (grain: none): it has no partitions", hint="drop the dates")
        return None, None
    first = as_moment(start)
    last = as_moment(end, last=True)
    if first and last and last < first:
        raise UsageError(f"end {end} is before start {start}")
    return (
        interval_containing(kpi.grain, kpi.zone, first, kpi.first_weekday).start if first else None,
        interval_containing(kpi.grain, kpi.zone, last, kpi.first_weekday).end if last else None,
    )


def as_moment(value: Moment, *, last: bool = False) -> datetime | None:
    """A partition named as text (``moment``'s forms), a date (its midnight) or a datetime; None stays open. As the
    range's ``last``, a day or a month (text or date) is its last instant, as ``--end`` is
    (:func:`~pipeline.core.selection.end_moment`): the range includes all of it."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        value = value.isoformat()
    return end_moment(value) if last else moment(value)
