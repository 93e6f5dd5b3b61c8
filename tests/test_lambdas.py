"""What the state machines send the handlers: scheduled exports of what is due, retries under one run id, and
the backfill planner's batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.core.lake import execution_run_id, new_run_id
from pipeline.errors import UsageError
from pipeline.lambdas.exporter import handler as exporter
from pipeline.lambdas.planner import handler as planner
from pipeline.load import load_manifest
from pipeline.stores import LocalStore
from pipeline.warehouses import open_warehouse
from tests.exporting import make_kpi
from tests.loading import HEADER, SQL, shop_source


@pytest.fixture
def lambda_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_kpi(tmp_path / "q", "daily", HEADER.replace("timezone: Asia/Tokyo", "timezone: Asia/Tokyo\nlookback: 2"), SQL)
    monkeypatch.setenv("KPI_QUERIES", str(tmp_path / "q"))
    monkeypatch.setenv("KPI_SOURCE", shop_source(tmp_path))
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("KPI_ENV", raising=False)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_execution_run_ids_sort_by_start_time_and_repeat_for_retries() -> None:
    first = execution_run_id(datetime(2024, 3, 2, 6, 0, 1, 123000, tzinfo=UTC), "daily-2024-03-02")
    assert first == execution_run_id(datetime(2024, 3, 2, 6, 0, 1, 123000, tzinfo=UTC), "daily-2024-03-02")
    assert first.startswith("20240302T060001123Z-")
    rerun = execution_run_id(datetime(2024, 3, 3, 6, 0, tzinfo=UTC), "daily-2024-03-02")
    assert first < rerun  # the console's "re-run with the same input" is a newer run: its rows win
    assert len(first) == len(new_run_id())


def test_a_scheduled_export_takes_what_is_due_and_a_retry_reuses_its_run(lambda_env: Path) -> None:
    event = {"kpi": "daily", "execution": "export-2024-03-05", "started_at": "2024-03-05T06:00:00.000Z"}
    first = exporter(event)
    assert len(first["partitions"]) == 3  # the latest complete day and lookback 2
    assert len({p["run_id"] for p in first["partitions"]}) == 1
    assert first["partitions"][0]["run_id"].startswith("20240305T060000000Z-")
    retried = exporter(event)  # Step Functions retries the state with the same input
    assert [p["run_id"] for p in retried["partitions"]] == [p["run_id"] for p in first["partitions"]]
    json.dumps(first)


def test_the_planner_batches_a_backfill_and_leaves_out_what_is_loaded(lambda_env: Path) -> None:
    plan = planner({"kpis": ["daily"], "start": "2024-02-20", "end": "2024-04-10"})
    assert plan["batches"] == [
        {"kpi": "daily", "start": "2024-02-20", "end": "2024-02-29", "partitions": 10},
        {"kpi": "daily", "start": "2024-03-01", "end": "2024-03-31", "partitions": 31},
        {"kpi": "daily", "start": "2024-04-01", "end": "2024-04-10", "partitions": 10},
    ]
    exported = exporter({"kpi": "daily", "start": "2024-03-01", "end": "2024-03-31", "run_id": "r1"})
    store, warehouse = LocalStore(lambda_env / "lake"), open_warehouse(str(lambda_env / "wh.duckdb"))
    for part in exported["partitions"]:
        load_manifest(store, f"daily/day={part['partition']}/run=r1/_manifest.json", warehouse)
    warehouse.close()
    resumed = planner({"kpis": ["daily"], "start": "2024-02-20", "end": "2024-04-10"})
    assert [(b["start"], b["end"]) for b in resumed["batches"]] == [
        ("2024-02-20", "2024-02-29"),
        ("2024-04-01", "2024-04-10"),
    ]
    assert resumed["partitions"] == 20
    forced = planner({"kpis": ["daily"], "start": "2024-03-01", "end": "2024-03-31", "force": True})
    assert forced["partitions"] == 31
    with pytest.raises(UsageError, match="needs kpis"):
        planner({"kpi": "daily", "start": "2024-03-01"})
