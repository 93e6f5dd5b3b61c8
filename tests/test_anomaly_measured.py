"""Anomaly detection through the real load path on the embedded default: the issue's measured targets, the rows
stored in ``_kpi_anomalies``, re-scoring on re-load, and a scoring failure that leaves the load standing."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from bench.anomaly_bench import intervals, load_series, measure, write_kpi
from bench.anomaly_series import Generated, Injected, daily, hourly
from pipeline.core.anomaly import THRESHOLDS
from pipeline.core.calendar_jp import is_jp_holiday
from pipeline.core.lake import manifest_key
from pipeline.core.spec import Sensitivity
from pipeline.export import export
from pipeline.flows.anomalies import anomalies_of_run, stored_anomalies
from pipeline.flows.removal import plan_removal, remove
from pipeline.load import load_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses.anomalies import ANOMALY_TABLE


def test_a_year_of_daily_loads_finds_the_injected_anomalies_and_the_plain_method_cries_wolf(tmp_path: Path) -> None:
    m = measure(tmp_path, daily())
    assert m.scoring_errors == ()
    assert m.stored == 365  # every scored day of 2026 has its row
    assert m.detector.recall >= 0.9  # measured: 11 of 12 (Obon's drop, 3.9 scales, is missed)
    assert [a.first for a in m.detector.missed] == ["2026-08-14"]
    assert len(m.detector.false_positives) <= 2  # measured: none
    # the plain weekday z-score on the same values: every false positive of it is a holiday, season or payday
    assert len(m.plain.false_positives) >= 10
    assert m.plain.on_holidays == len(m.plain.false_positives)
    assert m.plain.recall < 0.7


def test_twelve_weeks_of_hourly_loads_find_the_injected_anomalies(tmp_path: Path) -> None:
    m = measure(tmp_path, hourly())
    assert m.scoring_errors == ()
    assert m.stored == 8 * 7 * 24
    assert m.detector.recall == 1.0
    assert len(m.detector.false_positives) <= 2  # measured: none in 1,344 hours
    assert m.plain.on_holidays >= 100  # Golden Week's hours, Showa Day's, the paydays'


def small(days: int = 60, spike_at: int | None = None) -> Generated:
    """``days`` of a weekly pattern from Monday 2026-06-01 (weekends and holidays ×2); the last 3 days are
    scored."""
    first = date(2026, 6, 1)
    values = {}
    for n in range(days):
        day = first + timedelta(n)
        values[day.isoformat()] = float((200 if day.weekday() >= 5 or is_jp_holiday(day) else 100) + n % 3)
    order = sorted(values)
    injected: tuple[Injected, ...] = ()
    if spike_at is not None:
        values[order[spike_at]] = round(values[order[spike_at]] * 1.6)
        injected = (Injected(order[spike_at], 1.6),)
    return Generated("day", values, tuple(order[-3:]), injected, frozenset())


def test_the_stored_rows_hold_actual_range_score_run_and_job(tmp_path: Path) -> None:
    series = small(spike_at=58)  # Wednesday 2026-07-29, a payday week's
    kpi, warehouse, errors = load_series(tmp_path, series)
    try:
        stored = {s.score.partition: s for s in warehouse.scores(kpi.name, "2026-07-28", "2026-07-30")}
        loads = warehouse.loads(kpi.name)
    finally:
        warehouse.close()
    assert errors == []
    spike = stored["2026-07-29"]
    assert spike.score.anomalous
    assert spike.score.direction == "spike"
    assert spike.score.actual == series.values["2026-07-29"]
    assert spike.score.low < 101 < spike.score.high < spike.score.actual
    assert spike.score.score > THRESHOLDS[Sensitivity.MEDIUM]
    assert (spike.run_id, spike.job_id) == (loads["2026-07-29"].run_id, loads["2026-07-29"].job_id)
    assert not stored["2026-07-30"].score.anomalous
    assert stored["2026-07-30"].score.direction == ""


def test_a_reload_rescores_and_the_newest_score_wins(tmp_path: Path) -> None:
    series = small(spike_at=59)
    kpi, warehouse, _ = load_series(tmp_path, series)
    store = LocalStore(tmp_path / "lake")
    (key,) = [o.key for o in store.list(f"{kpi.name}/day=2026-07-30/") if o.key.endswith("_manifest.json")]
    try:
        ((_, result),) = load_manifests(store, [key], warehouse, force=True)
        (newest,) = warehouse.scores(kpi.name, "2026-07-30", "2026-07-30")
    finally:
        warehouse.close()
    assert [(a.partition, a.direction) for a in anomalies_of_run([result])] == [("2026-07-30", "spike")]
    assert result.record is not None
    assert newest.job_id == result.record.job_id
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as db:
        rows = db.execute(f"SELECT COUNT(*) FROM {ANOMALY_TABLE} WHERE partition = '2026-07-30'").fetchone()
    assert rows == (2,)  # audit-style: both scores kept, the newest read


def test_a_scoring_failure_is_reported_and_the_load_stands(tmp_path: Path) -> None:
    warehouse_file = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse_file)) as db:  # someone's table in the way: the scores cannot be written
        db.execute(f"CREATE TABLE {ANOMALY_TABLE} (note VARCHAR)")
    kpi, warehouse, errors = load_series(tmp_path, small())
    try:
        loaded = warehouse.loads(kpi.name)
    finally:
        warehouse.close()
    assert len(loaded) == 60  # every partition loaded
    assert errors
    assert all(e.startswith("anomaly scoring failed: BinderException: ") for e in errors)


def kpi_cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from pipeline.cli import cli

    env = {
        "KPI_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "KPI_QUERIES": str(tmp_path / "queries"),
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_kpi_anomalies_scores_a_range_on_demand_and_status_exits_on_an_anomaly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    load_series(tmp_path, small(spike_at=59))[1].close()
    code, output = kpi_cli(
        tmp_path, "anomalies", "daily_series", "--from", "2026-07-25", "--to", "2026-07-30", "--json"
    )
    assert code == 0, output
    found = json.loads(output)
    assert (found["from"], found["to"], found["partitions_scored"]) == ("2026-07-25", "2026-07-30", 6)
    (anomaly,) = found["anomalies"]
    assert (anomaly["partition"], anomaly["direction"], anomaly["actual"]) == ("2026-07-30", "spike", 163.0)
    assert anomaly["low"] < 102 < anomaly["high"] < 163
    code, output = kpi_cli(tmp_path, "anomalies", "daily_series", "--from", "2026-07-30", "--to", "2026-07-25")
    assert (code, "--from 2026-07-30 is after --to 2026-07-25" in output) == (2, True)

    now = "2026-07-31T09:00+09:00"
    code, output = kpi_cli(tmp_path, "status", "daily_series", "--json", "--now", now)
    (line,) = json.loads(output)["kpis"]
    assert (code, line["anomaly_scored"], [a["partition"] for a in line["anomalies"]]) == (0, True, ["2026-07-30"])
    code, output = kpi_cli(tmp_path, "status", "daily_series", "--fail-on-anomaly", "--now", now)
    assert code == 1
    assert "1: sales spike" in output
    code, output = kpi_cli(tmp_path, "status", "daily_series", "--fail-on-anomaly", "--json", "--now", now)
    assert (code, json.loads(output)["ok"]) == (1, False)


def test_kpi_anomalies_of_a_kpi_without_the_key_says_how_to_add_it(tmp_path: Path) -> None:
    from bench.anomaly_bench import write_kpi

    write_kpi(tmp_path / "queries", "day", scored=False)
    code, output = kpi_cli(tmp_path, "anomalies", "daily_series")
    assert code == 2
    assert "daily_series is not scored for anomalies: its header has no `anomaly` key" in output
    assert "add `anomaly: {}` to the header" in output


def test_the_report_rings_a_stored_anomaly_with_its_expected_range_and_says_so(tmp_path: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pipeline.demo.flow import anomaly_marks
    from pipeline.demo.report_data import build_report

    kpi, warehouse, _ = load_series(tmp_path, small(spike_at=59))
    try:
        marks = anomaly_marks(warehouse, [kpi], date(2026, 7, 31))
    finally:
        warehouse.close()
    ((measure, mark),) = marks["daily_series"]
    assert (measure, mark.x, mark.series) == ("sales", "2026-07-30", "sales")
    assert mark.expected is not None
    assert mark.expected[0] < 102 < mark.expected[1] < 163
    html = build_report(
        [kpi], tmp_path / "warehouse.duckdb", now=datetime(2026, 7, 31, tzinfo=ZoneInfo("Asia/Tokyo")), marks=marks
    )
    assert '<circle class="mark"' in html
    assert "2026-07-30 · sales: 163 — spike: " in html
    assert "Ringed: 1 anomaly found by the anomaly scoring — sales 2026-07-30 sales (spike: " in html
    assert "The line through each ring is the range its history expected." in html


def test_a_batch_loaded_after_the_next_one_rescores_it(tmp_path: Path) -> None:
    """A backfill's batches commit in any order: the later days, loaded first without their history, are scored
    again when the earlier batch lands, and the newest scores find the spike."""
    from bench.anomaly_bench import intervals, write_kpi, write_source
    from pipeline.core.lake import manifest_key
    from pipeline.export import export
    from pipeline.sources import open_source
    from pipeline.warehouses.duckdb import DuckDbWarehouse

    series = small(spike_at=59)
    kpi = write_kpi(tmp_path / "queries", "day")
    source = open_source(write_source(tmp_path / "source.duckdb", series))
    store = LocalStore(tmp_path / "lake")
    warehouse = DuckDbWarehouse(str(tmp_path / "warehouse.duckdb"))
    every = intervals(series)
    try:
        for chunk in (every[40:], every[:40]):  # the last 20 days first, then the 40 before them
            manifests = export(kpi, chunk, source=source, store=store)
            keys = [manifest_key(kpi, i, m.run_id) for i, m in zip(chunk, manifests, strict=True)]
            results = [r for _, r in load_manifests(store, keys, warehouse)]
            if chunk[0] is every[40]:
                assert anomalies_of_run(results) == []  # 20 days alone: too little history to score any
        (newest,) = warehouse.scores(kpi.name, "2026-07-30", "2026-07-30")
        loads = warehouse.loads(kpi.name)
    finally:
        warehouse.close()
    assert newest.score.anomalous
    assert newest.score.direction == "spike"
    assert newest.run_id == loads["2026-07-30"].run_id  # its own run's id, scored by the earlier days' load
    assert newest.job_id == loads["2026-06-01"].job_id


def test_a_removed_partition_and_a_run_loaded_unscored_keep_no_score(tmp_path: Path) -> None:
    """A score describes the rows it judged: ``kpi remove`` of a partition takes its scores out of every reader
    (status, report, ``kpi anomalies``), and so does a reload by a run that was not scored (here: the header's
    ``anomaly`` key dropped, the day exported and loaded again). The rows stay in the audit-style table."""
    series = small(spike_at=58)  # Wednesday 2026-07-29
    kpi, warehouse, _ = load_series(tmp_path, series)
    days = {i.start.date().isoformat(): i for i in intervals(series)}
    try:
        before = [s.score.partition for s in warehouse.scores(kpi.name, "2026-07-28", "2026-07-30")]
        remove(plan_removal(kpi, warehouse, [days["2026-07-29"]]), warehouse)
        after_removal = [s.score.partition for s in warehouse.scores(kpi.name, "2026-07-28", "2026-07-30")]
        spikes = [a.partition for a in stored_anomalies(warehouse, kpi, "2026-07-28", "2026-07-30")]
        unscored = write_kpi(tmp_path / "queries", "day", scored=False)
        store = LocalStore(tmp_path / "lake")
        (manifest,) = export(
            unscored, [days["2026-07-30"]], source=open_source(f"duckdb:///{tmp_path / 'source.duckdb'}"), store=store
        )
        key = manifest_key(unscored, days["2026-07-30"], manifest.run_id)
        ((_, result),) = load_manifests(store, [key], warehouse)
        after_reload = [s.score.partition for s in warehouse.scores(kpi.name, "2026-07-28", "2026-07-30")]
    finally:
        warehouse.close()
    assert before == ["2026-07-28", "2026-07-29", "2026-07-30"]
    assert after_removal == ["2026-07-28", "2026-07-30"]
    assert spikes == []  # the spike was the removed day's
    assert result.loaded
    assert not result.scored
    assert after_reload == ["2026-07-28"]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as db:
        kept = db.execute(f"SELECT COUNT(*) FROM {ANOMALY_TABLE} WHERE partition >= '2026-07-28'").fetchone()
    assert kept == (3,)  # audit-style: nothing deleted, only no longer the partition's
