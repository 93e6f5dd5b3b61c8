"""`kpi demo`, the README's first command: from nothing to a report whose every chart draws in Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
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
    assert set(summary) == {"daily_sales", "hourly_orders", "large_orders", "monthly_active_buyers", "users_by_plan"}
    assert all(line["status"] == "ok" for line in summary.values())
    assert summary["daily_sales"]["partitions"] == 60
    assert summary["hourly_orders"]["partitions"] == 60 * 24
    assert summary["users_by_plan"]["partitions"] == 1
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
    assert (ARTIFACTS / "demo-report.png").stat().st_size > 10_000

    again = CliRunner().invoke(cli, ["demo", "--json"])  # nothing missing: only the snapshot runs again
    assert again.exit_code == 0, again.output
    assert {line["kpi"]: line["partitions"] for line in json.loads(again.output)["kpis"]} == {"users_by_plan": 1}
