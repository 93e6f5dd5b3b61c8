"""``kpi status``: per KPI, the newest partition loaded, its rows, when, whether it is fresh, and its anomalies — the
model.

Read from the warehouse's audit (:meth:`~pipeline.warehouses.base.Warehouse.loads`, one query per KPI, the
warehouse opened read-only) and, for KPIs scored for anomalies, the newest partition's stored scores, and judged at
the moment passed in (``now``) by the core's rules (:func:`~pipeline.core.freshness.freshness`,
:func:`~pipeline.core.freshness.split_future`). The command prints it (a table, or ``--json``) and decides the exit
code from :attr:`KpiStatus.failing` (and, with ``--fail-on-anomaly``, :attr:`KpiStatus.anomalies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipeline.core.anomaly import Anomaly
from pipeline.core.freshness import freshness, split_future
from pipeline.core.spec import Kpi
from pipeline.flows.anomalies import newest_anomalies
from pipeline.warehouses import open_warehouse


@dataclass(frozen=True)
class KpiStatus:
    """One KPI's line. ``loaded_at`` is in the KPI's own zone (its partitions are named in it too)."""

    kpi: str
    timezone: str
    partition: str | None  # the newest loaded partition that has begun at `now`; None: never loaded
    rows: int | None
    loaded_at: datetime | None
    partitions_loaded: int
    age_hours: float | None
    freshness: str  # fresh | warn | stale | never loaded | no freshness set
    failing: bool  # stale, or never loaded: `kpi status` exits 1
    future_partitions: tuple[str, ...]  # loaded, but not begun at `now` (a mistyped --date): never the newest
    age: timedelta | None = None  # unrounded, for alerts (``age_hours`` is what the table and --json show)
    anomalies: tuple[Anomaly, ...] | None = None  # of `partition`; None: not scored (pipeline.flows.anomalies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.kpi,
            "partition": self.partition,
            "rows": self.rows,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "timezone": self.timezone,  # of the partition and of loaded_at
            "partitions_loaded": self.partitions_loaded,
            "age_hours": self.age_hours,
            "freshness": self.freshness,
            "failing": self.failing,
            "future_partitions": list(self.future_partitions),
            "anomaly_scored": self.anomalies is not None,
            "anomalies": [anomaly.to_json() for anomaly in self.anomalies or ()],
        }


def kpi_status(kpis: Sequence[Kpi], warehouse_url: str, now: datetime) -> list[KpiStatus]:
    """The status of each KPI, by name, from the warehouse at ``warehouse_url`` (opened read-only: a DuckDB file
    is neither created nor locked for writing; while a load writes it, the open waits as a load's would)."""
    warehouse = open_warehouse(warehouse_url, read_only=True)
    ordered = sorted(kpis, key=lambda k: k.name)
    try:
        loaded = {kpi.name: warehouse.loads(kpi.name) for kpi in ordered}
        found = {
            kpi.name: newest_anomalies(warehouse, kpi, max(split_future(kpi, loaded[kpi.name], now)[0], default=None))
            for kpi in ordered
        }
    finally:
        warehouse.close()
    lines = []
    for kpi in ordered:
        loads = loaded[kpi.name]
        begun, future = split_future(kpi, loads, now)
        newest = loads[begun[-1]] if begun else None
        state = freshness(kpi, newest.partition if newest else None, newest.loaded_at if newest else None, now)
        lines.append(
            KpiStatus(
                kpi=kpi.name,
                timezone=kpi.timezone,
                partition=newest.partition if newest else None,
                rows=newest.rows if newest else None,
                loaded_at=newest.loaded_at.astimezone(kpi.zone) if newest else None,
                partitions_loaded=len(loads),
                age_hours=round(state.age.total_seconds() / 3600, 1) if state.age is not None else None,
                freshness=state.level,
                failing=state.failing,
                future_partitions=tuple(future),
                age=state.age,
                anomalies=_tupled(found[kpi.name]),
            )
        )
    return lines


def _tupled(anomalies: list[Anomaly] | None) -> tuple[Anomaly, ...] | None:
    return None if anomalies is None else tuple(anomalies)
