"""Anomaly scoring on the BigQuery emulator: the same history SQL and ``_kpi_anomalies`` as on DuckDB, through
the real load path (the scores of a BigQuery load are the embedded warehouse's), for a daily and an hourly KPI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from bench.anomaly_bench import intervals, load_series, write_source
from bench.anomaly_series import Generated, Injected, hourly
from pipeline import catalog
from pipeline.cli import cli
from pipeline.core.lake import manifest_key
from pipeline.core.manifest import Manifest
from pipeline.core.spec import Kpi
from pipeline.errors import LoadError
from pipeline.export import export
from pipeline.flows.removal import plan_removal, remove
from pipeline.load import load_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses import Warehouse
from pipeline.warehouses.anomalies import StoredScore
from pipeline.warehouses.bigquery import BigQueryWarehouse
from pipeline.warehouses.duckdb import DuckDbWarehouse
from tests.bigquery import BigQueryBridge, SentJob
from tests.test_anomaly_measured import small
from tests.test_commit_scoring import as_an_older_exporter_wrote_it, history_then, load_last

# Infrastructure (the BigQuery emulator): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra


def test_a_bigquery_load_scores_its_partitions_and_stores_them_as_duckdb_does(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    series = small(spike_at=59)
    kpi, warehouse, errors = load_series(tmp_path / "bq", series, warehouse=BigQueryWarehouse(bq_url, client=bq_client))
    stored = {s.score.partition: s.score for s in warehouse.scores(kpi.name, "2026-07-28", "2026-07-30")}
    warehouse.close()
    assert errors == []
    _, local, _ = load_series(tmp_path / "duckdb", series)
    expected = {s.score.partition: s.score for s in local.scores(kpi.name, "2026-07-28", "2026-07-30")}
    local.close()
    assert sorted(stored) == ["2026-07-28", "2026-07-29", "2026-07-30"]
    assert [p for p, s in stored.items() if s.anomalous] == ["2026-07-30"]
    for partition, score in stored.items():
        assert score.actual == expected[partition].actual
        assert score.low == pytest.approx(expected[partition].low)
        assert score.high == pytest.approx(expected[partition].high)
    history = [j.sql for j in bq_client.jobs if j.kind == "query" and "SUM(CAST(`sales` AS FLOAT64))" in j.sql]
    assert history
    assert "FORMAT_DATE('%Y-%m-%d', `day`) AS p" in history[0]


def test_a_removed_partitions_scores_are_no_longer_read_on_bigquery(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    """As on DuckDB (tests/test_anomaly_measured.py): ``kpi remove`` of the spike's day takes its score out of
    what the warehouse reads, through the same audit rule; its row stays in ``_kpi_anomalies``."""
    series = small(spike_at=59)
    warehouse = BigQueryWarehouse(bq_url, client=bq_client)
    kpi, _, _ = load_series(tmp_path, series, warehouse=warehouse)
    day = next(i for i in intervals(series) if i.partition == "2026-07-30")
    before = [s.score.partition for s in warehouse.scores(kpi.name, "2026-07-28", "2026-07-30")]
    remove(plan_removal(kpi, warehouse, [day]), warehouse)
    after = [s.score.partition for s in warehouse.scores(kpi.name, "2026-07-28", "2026-07-30")]
    warehouse.close()
    assert before == ["2026-07-28", "2026-07-29", "2026-07-30"]
    assert after == ["2026-07-28", "2026-07-29"]


# -- an hourly KPI ----------------------------------------------------------------------------------------------

SPIKE = "2026-03-09T20"  # a Monday evening, ~250 orders an hour
MIN_HOURS = 7 * 24  # the KPI's anomaly.min_history: a week of hours before the first scored one
HOURLY_KPI = f"""/*---
name: hourly_series
grain: hour
timezone: Asia/Tokyo
time_column: hour_start
anomaly: {{min_history: {MIN_HOURS}}}
columns:
  hour_start: {{type: TIMESTAMP}}
  orders: {{type: INT64}}
---*/
SELECT hour_start, orders FROM series WHERE hour_start >= :start AND hour_start < :end
"""


def hours_to_score() -> Generated:
    """The hourly series of ``bench/anomaly_series.py`` from Monday 2026-03-02 18:00 (Japan time) to 2026-03-09
    21:00 — 172 hours: 168 and more before the first of the last three, which are scored — with 20:00 doubled (a
    week of history leaves ranges wide: ×1.6 is 3.6 scales from expected, under the threshold of 4)."""
    values = {p: v for p, v in hourly().values.items() if "2026-03-02T18" <= p <= "2026-03-09T21"}
    values[SPIKE] = round(values[SPIKE] * 2)
    order = sorted(values)
    return Generated("hour", values, tuple(order[-3:]), (Injected(SPIKE, 2.0),), frozenset())


def load_hours(folder: Path, series: Generated, warehouse: Warehouse, bridge: BigQueryBridge | None) -> Kpi:
    """Export and load ``series`` as production would: its history in one batch, then each scored hour in its
    own (the hourly schedule's loads), every load scoring what it wrote. On the emulator the history's load jobs
    into its staging table are coalesced into one (``tests/bigquery.py``); each scored hour is its own job."""
    queries = folder / "queries"
    queries.mkdir(parents=True)
    (queries / "hourly_series.sql").write_text(HOURLY_KPI, encoding="utf-8")
    kpi = catalog.load_one((queries,), "hourly_series")
    source = open_source(write_source(folder / "source.duckdb", series))
    store = LocalStore(folder / "lake")
    every = intervals(series)
    for chunk, coalesce in ((every[:-3], True), *(([hour], False) for hour in every[-3:])):
        if bridge is not None:
            bridge.coalesce = coalesce
        manifests = export(kpi, chunk, source=source, store=store)
        keys = [manifest_key(kpi, i, m.run_id) for i, m in zip(chunk, manifests, strict=True)]
        for _, result in load_manifests(store, keys, warehouse):
            assert result.loaded, result
            assert result.scoring_error == "", result.scoring_error
    return kpi


def scores_of(warehouse: Warehouse, kpi: Kpi) -> dict[str, StoredScore]:
    try:
        return {s.score.partition: s for s in warehouse.scores(kpi.name, "2026-03-09T00", "2026-03-09T23")}
    finally:
        warehouse.close()


def test_an_hourly_timestamp_kpi_in_tokyo_is_scored_on_bigquery_as_on_duckdb_and_listed_by_kpi_anomalies(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    """An hourly KPI whose time column is a TIMESTAMP, partitioned by the hour in Asia/Tokyo: the history query
    buckets it with ``FORMAT_TIMESTAMP(…, 'Asia/Tokyo')`` on BigQuery and ``strftime(timezone(…))`` on DuckDB,
    and both find the same hours, the same expected ranges and the one spike.

    Bridged (``BigQueryBridge.coalesce``): the history batch's 169 load jobs into its staging table, sent as one
    load job of the same rows (measured: 32 s for this test with them, 22 s without; the scored hours' three load
    jobs are sent as they are). The batch's transaction runs on the emulator for real, and it is what bounds the
    history: the emulator takes ~0.1 s per partition in a transaction script (measured: 379 hours, 41 s, the
    same in batches of 48 or 96), so the default ``min_history`` of hourly KPIs (14 days, 336 hours) would keep
    this test over 40 s; the KPI says ``min_history: 168`` instead (a week of hours), which changes nothing else
    in the method or the SQL."""
    series = hours_to_score()
    assert sorted(series.values).index(series.scored[0]) >= MIN_HOURS
    bq = BigQueryWarehouse(bq_url, client=bq_client)
    kpi = load_hours(tmp_path / "bq", series, bq, bq_client)
    on_bigquery = scores_of(bq, kpi)
    local = DuckDbWarehouse(str(tmp_path / "duckdb" / "warehouse.duckdb"))
    load_hours(tmp_path / "duckdb", series, local, None)
    on_duckdb = scores_of(local, kpi)

    assert sorted(on_bigquery) == ["2026-03-09T18", "2026-03-09T19", SPIKE, "2026-03-09T21"]
    assert sorted(on_duckdb) == sorted(on_bigquery)
    assert [p for p, s in on_bigquery.items() if s.score.anomalous] == [SPIKE]
    spike = on_bigquery[SPIKE].score
    assert (spike.direction, spike.actual) == ("spike", series.values[SPIKE])
    assert spike.high < spike.actual
    for partition, stored in on_bigquery.items():
        expected = on_duckdb[partition].score
        assert (stored.score.actual, stored.score.anomalous) == (expected.actual, expected.anomalous)
        assert stored.score.expected == pytest.approx(expected.expected)
        assert stored.score.low == pytest.approx(expected.low)
        assert stored.score.high == pytest.approx(expected.high)
        assert stored.score.score == pytest.approx(expected.score)
    history = [
        j.sql
        for j in bq_client.jobs
        if j.kind == "query" and "BEGIN TRANSACTION" not in j.sql and "SUM(CAST(`orders` AS FLOAT64))" in j.sql
    ]
    assert "FORMAT_TIMESTAMP('%Y-%m-%dT%H', `hour_start`, 'Asia/Tokyo') AS p" in history[-1]
    loads = [j.kind for j in bq_client.jobs if j.kind in ("load", "merged")]
    assert loads == ["load"] * 169 + ["merged"] + ["load"] * 3

    env = {"KPI_WAREHOUSE": bq_url, "KPI_QUERIES": str(tmp_path / "bq" / "queries"), "COLUMNS": "200"}
    arguments = ["anomalies", "hourly_series", "--from", "2026-03-09", "--to", "2026-03-09", "--json"]
    result = CliRunner().invoke(cli, arguments, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert (found["from"], found["to"], found["partitions_loaded"]) == ("2026-03-09", "2026-03-09", 22)
    assert found["partitions_scored"] == 4  # 18:00 on: the hours before have less than a week before them
    (anomaly,) = found["anomalies"]
    assert (anomaly["partition"], anomaly["direction"], anomaly["actual"]) == (SPIKE, "spike", spike.actual)
    assert (anomaly["low"], anomaly["high"]) == (round(spike.low, 2), round(spike.high, 2))


def what(sql: str) -> str:
    """A query job's kind, as these tests name them."""
    if "BEGIN TRANSACTION" in sql:
        return "script"
    return "history" if "SUM(CAST(`sales` AS FLOAT64))" in sql else "audit" if "_kpi_loads" in sql else sql


def kinds(jobs: list[SentJob]) -> list[str]:
    return [j.kind if j.kind != "query" else what(j.sql) for j in jobs]


def a_day_to_score(
    folder: Path, bq_url: str, bq_client: BigQueryBridge
) -> tuple[Generated, BigQueryWarehouse, tuple[Kpi, list[Manifest], list[str]]]:
    """The small series with a spike on its last day, every day but that one loaded on the emulator."""
    series = small(spike_at=59)
    warehouse = BigQueryWarehouse(bq_url, client=bq_client)
    return series, warehouse, history_then(folder, series, warehouse)


def test_one_new_partition_s_scores_are_written_beside_its_upload_and_its_script_is_an_unscored_load_s(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    # The scheduled load of a scored KPI (one new day): the history query is sent before the staging table's
    # load job; the exporter's totals judged against it and streamed into _kpi_anomalies (tabledata.insertAll,
    # no job) beside the upload; the transaction script is the one an unscored KPI's load sends.
    series, warehouse, (kpi, manifests, keys) = a_day_to_score(tmp_path, bq_url, bq_client)
    sent, streamed = len(bq_client.jobs), len(bq_client.inserts)
    result = load_last(tmp_path, keys[-1], warehouse)
    jobs, inserts = bq_client.jobs[sent:], bq_client.inserts[streamed:]
    stored = warehouse.scores(kpi.name, "2026-07-30", "2026-07-30")
    warehouse.close()

    assert kinds(jobs) == ["audit", "history", "load", "script"]
    (script,) = [j.sql for j in jobs if what(j.sql) == "script"]
    assert "_kpi_anomalies" not in script
    ((table, rows),) = inserts
    assert table.endswith("._kpi_anomalies")
    assert [(r["partition"], r["measure"], r["actual"], r["run_id"], r["job_id"]) for r in rows] == [
        ("2026-07-30", "sales", float(series.values["2026-07-30"]), manifests[-1].run_id, "insertAll")
    ]
    assert manifests[-1].totals is not None
    assert [(t.measure, t.dimension, t.value) for t in manifests[-1].totals] == [
        ("sales", None, float(series.values["2026-07-30"]))
    ]

    assert (result.loaded, result.scored, result.scoring_error) == (True, True, "")
    (anomaly,) = result.anomalies
    assert (anomaly.partition, anomaly.direction, anomaly.actual) == (
        "2026-07-30",
        "spike",
        series.values["2026-07-30"],
    )
    (score,) = [s.score for s in stored]
    assert score.anomaly() == anomaly
    assert {(s.run_id, s.job_id) for s in stored} == {(manifests[-1].run_id, "insertAll")}
    # the scores equal the embedded warehouse's, scored the same way (from the loaded rows)
    local = DuckDbWarehouse(str(tmp_path / "duckdb.duckdb"))
    _, _, local_keys = history_then(tmp_path / "duckdb", series, local)
    local_result = load_last(tmp_path / "duckdb", local_keys[-1], local)
    (expected,) = [s.score for s in local.scores(kpi.name, "2026-07-30", "2026-07-30")]
    local.close()
    assert local_result.scored
    assert (score.actual, score.anomalous) == (expected.actual, expected.anomalous)
    assert (score.expected, score.low, score.high, score.score) == pytest.approx(
        (expected.expected, expected.low, expected.high, expected.score)
    )


def test_a_manifest_without_totals_is_scored_by_its_load_s_own_script(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    # A version 3 manifest (an older exporter) has no totals: the script sums the staged rows, inserts the scores
    # inside its transaction and returns them — no INSERT job of their own, no history query after the commit.
    _series, warehouse, (kpi, manifests, keys) = a_day_to_score(tmp_path, bq_url, bq_client)
    as_an_older_exporter_wrote_it(tmp_path, keys[-1])
    sent, streamed = len(bq_client.jobs), len(bq_client.inserts)
    result = load_last(tmp_path, keys[-1], warehouse)
    jobs = bq_client.jobs[sent:]
    stored = warehouse.scores(kpi.name, "2026-07-30", "2026-07-30")
    warehouse.close()

    assert kinds(jobs) == ["audit", "history", "load", "script"]
    assert len(bq_client.inserts) == streamed
    (script,) = [j.sql for j in jobs if what(j.sql) == "script"]
    inserted = script.index("._kpi_anomalies` (`kpi`")
    assert script.index("INSERT INTO `", inserted - 60) < inserted < script.index("COMMIT TRANSACTION")
    assert script.rstrip(";").endswith("ORDER BY measure, dimension")  # the scores, returned by the script
    assert (result.loaded, result.scored, result.scoring_error) == (True, True, "")
    assert [(a.partition, a.direction) for a in result.anomalies] == [("2026-07-30", "spike")]
    assert result.record is not None
    assert {(s.run_id, s.job_id) for s in stored} == {(manifests[-1].run_id, result.record.job_id)}
    assert [s.score.anomaly() for s in stored] == list(result.anomalies)


def test_scores_streamed_for_a_load_that_then_failed_are_never_read_and_its_retry_scores_once(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    # The scores go into _kpi_anomalies before the load commits; what reads them reads only the run loaded
    # (pipeline.warehouses.audit_rule): a load that fails after them leaves rows no reader sees.
    _series, warehouse, (kpi, manifests, keys) = a_day_to_score(tmp_path, bq_url, bq_client)
    bq_client.fail_next_load()
    with pytest.raises(LoadError):
        load_last(tmp_path, keys[-1], warehouse)
    ((_, rows),) = bq_client.inserts[-1:]
    in_table = list(
        bq_client.query(
            f"SELECT run_id FROM `{warehouse.target.table('_kpi_anomalies')}` WHERE `partition` = '2026-07-30'"
        ).result()
    )
    failed = warehouse.scores(kpi.name, "2026-07-29", "2026-07-30")
    retried = load_last(tmp_path, keys[-1], warehouse)
    after = warehouse.scores(kpi.name, "2026-07-30", "2026-07-30")
    warehouse.close()
    assert [r["run_id"] for r in rows] == [manifests[-1].run_id]
    assert [row.run_id for row in in_table] == [manifests[-1].run_id]  # written, and not read:
    assert [s.score.partition for s in failed] == ["2026-07-29"]
    assert (retried.loaded, retried.scored, [a.partition for a in retried.anomalies]) == (True, True, ["2026-07-30"])
    assert [(s.score.partition, s.run_id) for s in after] == [("2026-07-30", manifests[-1].run_id)]  # once


def test_refused_streamed_scores_never_fail_the_load_which_is_scored_after_its_commit(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    _series, warehouse, (kpi, manifests, keys) = a_day_to_score(tmp_path, bq_url, bq_client)
    bq_client.refuse_next_insert()
    sent = len(bq_client.jobs)
    result = load_last(tmp_path, keys[-1], warehouse)
    jobs = bq_client.jobs[sent:]
    stored = warehouse.scores(kpi.name, "2026-07-30", "2026-07-30")
    warehouse.close()
    # the load's script unscored; then the scoring after the commit: its history query and one DML INSERT
    assert kinds(jobs)[:5] == ["audit", "history", "load", "script", "history"]
    assert [j.sql[: len("INSERT INTO `")] for j in jobs[5:]] == ["INSERT INTO `"]
    assert (result.loaded, result.scored, result.scoring_error) == (True, True, "")
    assert [a.partition for a in result.anomalies] == ["2026-07-30"]
    assert [(s.score.partition, s.run_id) for s in stored] == [("2026-07-30", manifests[-1].run_id)]
    assert {s.job_id for s in stored} != {"insertAll"}


BY_STATUS = """/*---
name: orders_by_status
grain: day
time_column: day
anomaly: {measures: [orders], by: [status]}
columns:
  day: {type: DATE}
  status: {type: STRING}
  orders: {type: INT64}
---*/
SELECT day, status, orders FROM orders WHERE day >= :start AND day < :end
"""


def test_a_kpi_split_by_status_is_judged_from_totals_named_as_bigquery_names_its_values(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    # The exporter names each dimension value as the warehouse's history query does (CAST AS STRING, NULL as
    # "(null)"): were a name to differ, its series would be judged by 0 — a false drop — and the value by no
    # expectation. Paid orders triple on the last day; cancelled and NULL-status orders stay as they were.
    series = small()
    days = sorted(series.values)
    source = tmp_path / "source.duckdb"
    with duckdb.connect(str(source)) as db:
        db.execute("CREATE TABLE orders (day DATE, status VARCHAR, orders BIGINT)")
        for n, day in enumerate(days):
            paid = int(series.values[day]) * (3 if day == days[-1] else 1)
            values = [(paid, "paid"), (int(series.values[day]) // 10, "cancelled"), (5 + n % 2, None)]
            for orders, status in values:
                db.execute("INSERT INTO orders VALUES (?, ?, ?)", [date.fromisoformat(day), status, orders])
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "orders_by_status.sql").write_text(BY_STATUS, encoding="utf-8")
    kpi = catalog.load_one((tmp_path / "queries",), "orders_by_status")
    warehouse = BigQueryWarehouse(bq_url, client=bq_client)
    _, manifests, keys = history_then(tmp_path, series, warehouse, kpi=kpi, source=f"duckdb:///{source}")
    streamed = len(bq_client.inserts)
    result = load_last(tmp_path, keys[-1], warehouse)
    stored = warehouse.scores(kpi.name, days[-1], days[-1])
    warehouse.close()

    ((_, rows),) = bq_client.inserts[streamed:]
    assert sorted(r["dimension"] for r in rows) == ["status=(null)", "status=cancelled", "status=paid"]
    assert [(t.dimension, t.value) for t in manifests[-1].totals or ()] == [
        ("status=(null)", 5.0 + (len(days) - 1) % 2),
        ("status=cancelled", float(int(series.values[days[-1]]) // 10)),
        ("status=paid", float(int(series.values[days[-1]]) * 3)),
    ]
    assert (result.loaded, result.scored, result.scoring_error) == (True, True, "")
    assert [(a.dimension, a.direction) for a in result.anomalies] == [("status=paid", "spike")]
    assert sorted((s.score.dimension, s.score.anomalous) for s in stored) == [
        ("status=(null)", False),
        ("status=cancelled", False),
        ("status=paid", True),
    ]
