"""`kpi demo`, the README's first command: from nothing to a report whose every chart draws in Chromium."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.demo.generate import OUTAGE_DAYS_AGO
from pipeline.warehouses.duckdb import DuckDbWarehouse
from tests.browser import render_page
from tests.conftest import ROOT

# Infrastructure (the whole demo and its report drawn in headless Chromium): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra

ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def fresh_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's queries/ and kpi.toml in an empty folder, with no KPI_* variable set."""
    shutil.copytree(ROOT / "queries", tmp_path / "queries")
    shutil.copy(ROOT / "kpi.toml", tmp_path / "kpi.toml")
    for name in ("KPI_SOURCE", "KPI_LAKE", "KPI_WAREHOUSE", "KPI_QUERIES", "KPI_ENV", "KPI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_demo_runs_the_whole_flow_and_its_report_draws_every_chart(fresh_clone: Path) -> None:
    first = CliRunner().invoke(cli, ["demo", "--json"])
    assert first.exit_code == 0, first.output
    summary = {line["kpi"]: line for line in json.loads(first.output)["kpis"]}
    assert set(summary) == {
        "daily_sales",
        "hourly_orders",
        "large_orders",
        "monthly_active_buyers",
        "users_by_plan",
        "weekly_buyers",
    }
    assert all(line["status"] == "ok" for line in summary.values())
    assert summary["daily_sales"]["partitions"] == 60
    assert summary["hourly_orders"]["partitions"] == 60 * 24
    assert summary["users_by_plan"]["partitions"] == 1
    assert summary["weekly_buyers"]["partitions"] in (8, 9)  # the complete weeks that touch the last 60 days
    kpi = fresh_clone / ".kpi"
    with duckdb.connect(str(kpi / "warehouse.duckdb")) as db:
        (orders,) = db.execute("SELECT SUM(orders) FROM daily_sales").fetchone() or (0,)
    with duckdb.connect(str(kpi / "demo.duckdb"), read_only=True) as shop:
        days = shop.execute(
            "SELECT COUNT(*) FROM orders WHERE created_at >= (SELECT MAX(CAST(created_at AS DATE)) - 59 FROM orders)"
        ).fetchone()
    assert days is not None
    assert orders == days[0]

    ARTIFACTS.mkdir(exist_ok=True)
    page = render_page(kpi / "report.html", screenshot=ARTIFACTS / "demo-report.png")
    drawn = {chart.kpi for chart in page.charts}
    assert drawn == set(summary)
    assert all(series.length > 0 for chart in page.charts for series in chart.series)
    assert all(chart.width > 0 and chart.height > 0 for chart in page.charts)
    assert page.violations == ()
    charts = {(chart.kpi, chart.measures): chart for chart in page.charts}
    with duckdb.connect(str(kpi / "warehouse.duckdb")) as db:
        statuses = [
            s for (s,) in db.execute("SELECT status FROM daily_sales GROUP BY 1 ORDER BY SUM(orders) DESC").fetchall()
        ]
        plans = db.execute("SELECT COUNT(DISTINCT plan), COUNT(*) FROM users_by_plan").fetchone()
    assert len(statuses) >= 3
    assert [s.name for s in charts[("daily_sales", "orders")].series] == statuses  # a line per status, no sum
    assert [s.name for s in charts[("daily_sales", "sales")].series] == statuses
    assert {m for k, m in charts if k == "hourly_orders"} == {"orders", "buyers"}  # two charts, not one line
    assert plans is not None
    assert len(charts[("users_by_plan", "users")].series[0].name) > 0
    assert charts[("users_by_plan", "users")].series[0].shapes == plans[0]  # a bar per plan
    tables = {t.kpi: t for t in page.tables}
    assert (tables["users_by_plan"].rows, tables["users_by_plan"].total) == (plans[1], plans[1]) == (30, 30)
    assert tables["daily_sales"].rows == tables["daily_sales"].total == 60 * len(statuses)
    sections = {name: page.dom[page.dom.index(f'id="kpi-{name}"') :] for name in summary}
    assert '<span class="badge ok">fresh</span>' in sections["hourly_orders"][:300]  # the shop ends at midnight
    assert '<span class="badge ok">fresh</span>' in sections["daily_sales"][:300]
    assert "the demo shop's clock" in page.dom
    # the demo shop's payment outage, 4 days before its day: found by daily_sales' anomaly scoring, and only it
    with duckdb.connect(str(kpi / "demo.duckdb"), read_only=True) as shop:
        (today,) = shop.execute("SELECT today FROM _demo").fetchone() or (None,)
    outage = (today - timedelta(days=OUTAGE_DAYS_AGO)).isoformat()
    # as stored (the run's own lines depend on which month's batch committed first: the later one is re-scored)
    warehouse = DuckDbWarehouse(str(kpi / "warehouse.duckdb"))
    try:
        stored = warehouse.scores("daily_sales", (today - timedelta(days=60)).isoformat(), today.isoformat())
    finally:
        warehouse.close()
    found = {
        (s.score.partition, s.score.measure, s.score.dimension, s.score.direction) for s in stored if s.score.anomalous
    }
    assert {(outage, "orders", "status=paid", "drop"), (outage, "orders", "status=cancelled", "spike")} <= found
    assert {partition for partition, *_ in found} == {outage}
    assert charts[("daily_sales", "orders")].marks >= 2
    assert "Ringed: " in sections["daily_sales"]
    assert page.dom.count('<table class="lineage">') == len(summary)  # each section says where its numbers come from
    assert "<td><code>sales</code></td><td><code>orders.amount</code></td>" in sections["daily_sales"]
    assert (ARTIFACTS / "demo-report.png").stat().st_size > 10_000

    assert_charts_add_up_to_the_warehouse(fresh_clone)

    again = CliRunner().invoke(cli, ["demo", "--json"])  # nothing missing: only the snapshot runs again
    assert again.exit_code == 0, again.output
    assert {line["kpi"]: line["partitions"] for line in json.loads(again.output)["kpis"]} == {"users_by_plan": 1}


def assert_charts_add_up_to_the_warehouse(project: Path) -> None:
    """Every example KPI's chart, built from the demo warehouse: per partition (or in all, for a snapshot) the
    series of each measure add up to the warehouse's own SUM — top N, "other" and all."""
    from pipeline import catalog
    from pipeline.core.chart import build_chart
    from pipeline.core.chart import partition_label as label_of
    from pipeline.demo.flow import shop_clock
    from pipeline.warehouses.duckdb import DuckDbWarehouse

    warehouse = project / ".kpi" / "warehouse.duckdb"
    kpis = list(catalog.load([project / "queries"]).kpis.values())
    with duckdb.connect(str(project / ".kpi" / "demo.duckdb"), read_only=True) as shop:
        (today,) = shop.execute("SELECT today FROM _demo").fetchone() or (None,)
    store = DuckDbWarehouse(str(warehouse))
    loads = {kpi.name: store.loads(kpi.name) for kpi in kpis}
    store.close()
    with duckdb.connect(str(warehouse), read_only=True) as db:
        for kpi in kpis:
            rows = db.execute(f"SELECT * FROM {kpi.name}").to_arrow_table().to_pylist()
            model = build_chart(kpi, rows, loads[kpi.name], shop_clock(today))
            assert model.charts, kpi.name
            for chart in model.charts:
                if kpi.time_column is None:
                    (total,) = db.execute(f"SELECT SUM({chart.measure}) FROM {kpi.name}").fetchone() or (None,)
                    assert sum(v or 0 for v in chart.series[chart.measure]) == pytest.approx(float(total))
                    continue
                sums: dict[str, float] = {}
                for value, total in db.execute(
                    f"SELECT {kpi.time_column}, SUM({chart.measure}) FROM {kpi.name} GROUP BY 1"
                ).fetchall():
                    sums[label_of(kpi, value)] = float(total)
                assert set(sums) <= set(model.labels), kpi.name
                for i, label in enumerate(model.labels):
                    drawn = sum(v[i] or 0 for v in chart.series.values())
                    assert drawn == pytest.approx(sums.get(label, 0.0)), (kpi.name, chart.measure, label)
