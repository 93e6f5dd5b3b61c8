"""`pipeline.flows.status`: the `kpi status` model from a real DuckDB warehouse's audit, judged at a given moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.flows.status import kpi_status
from tests.exporting import make_kpi
from tests.loading import loaded_snapshot
from tests.test_warehouse_read import DAY_KPI, SQL


def test_status_lines_come_from_the_audit_in_the_kpis_zone_and_never_loaded_fails(tmp_path: Path) -> None:
    queries, warehouse = loaded_snapshot(tmp_path)  # the snapshot `by_plan`, loaded just now
    from pipeline.catalog import load_one

    snapshot = load_one((queries,), "by_plan")
    never = make_kpi(queries, "daily", DAY_KPI, SQL)
    loaded_at = next(iter(_audit(warehouse)))
    now = loaded_at + timedelta(hours=3)
    lines = kpi_status([never, snapshot], str(warehouse), now)
    assert [line.kpi for line in lines] == ["by_plan", "daily"]  # by name, whatever order they were given in
    by_plan, daily = lines
    assert (by_plan.partition, by_plan.rows, by_plan.partitions_loaded) == ("snapshot", 2, 1)
    assert by_plan.age_hours == 3.0  # a snapshot's age is the time since its load
    assert by_plan.loaded_at == loaded_at
    assert by_plan.loaded_at is not None
    assert by_plan.loaded_at.utcoffset() == snapshot.zone.utcoffset(loaded_at.replace(tzinfo=None))
    assert (by_plan.freshness, by_plan.failing) == ("no freshness set", False)
    assert (daily.partition, daily.rows, daily.loaded_at, daily.freshness, daily.failing) == (
        None,
        None,
        None,
        "never loaded",
        True,
    )
    assert daily.to_dict()["future_partitions"] == []
    assert by_plan.to_dict()["loaded_at"] == loaded_at.astimezone(snapshot.zone).isoformat()


def _audit(warehouse: Path) -> list[datetime]:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as db:
        rows = db.execute("SELECT timezone('UTC', loaded_at) FROM _kpi_loads").fetchall()
    return [row[0].replace(tzinfo=UTC) for (row) in rows]
