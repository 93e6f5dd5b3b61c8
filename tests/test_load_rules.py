"""The load rules both warehouses share, the batch index and the BigQuery script's text — pure, table-driven."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.core.batch import BatchIndex
from pipeline.core.lake import batch_index_key
from pipeline.core.manifest import Manifest, SchemaField
from pipeline.errors import LoadError, StoreError
from pipeline.warehouses.base import (
    LoadRecord,
    LoadResult,
    check_batch,
    count_mismatch,
    partition_bounds,
    plan_batch,
    superseded,
)
from pipeline.warehouses.bigquery_sql import (
    Tables,
    batch_script,
    count_error,
    string,
    superseded_error,
    table_name,
    time_literal,
)
from tests.test_manifest import VALID

BASE = Manifest.from_json(json.dumps(VALID))
OLD, NEW = "20240302T000000000Z-aaaaaa", "20240303T000000000Z-bbbbbb"
LOADED_AT = datetime(2024, 3, 3, 6, 0, tzinfo=UTC)


def manifest(partition: str = "2024-03-01", run_id: str = NEW, **changes: Any) -> Manifest:
    day = partition
    following = f"{day[:8]}{int(day[8:]) + 1:02d}"
    return replace(
        BASE,
        partition=partition,
        run_id=run_id,
        interval_start=f"{day}T00:00:00+09:00",
        interval_end=f"{following}T00:00:00+09:00",
        decorator=day.replace("-", ""),
        **changes,
    )


def record(run_id: str, partition: str = "2024-03-01") -> LoadRecord:
    return LoadRecord.of(manifest(partition, run_id), "job-1", LOADED_AT)


@pytest.mark.parametrize(
    ("loaded", "run_id", "force", "skip"),
    [
        (None, NEW, False, None),
        (OLD, NEW, False, None),
        (NEW, NEW, False, "is already loaded"),
        (NEW, NEW, True, None),  # force reloads the same run
        (NEW, OLD, False, f"is older than run {NEW}"),
        (NEW, OLD, True, f"is older than run {NEW}"),  # never older, even with force
    ],
)
def test_never_older_and_exactly_once(loaded: str | None, run_id: str, force: bool, skip: str | None) -> None:
    reason = superseded(record(loaded) if loaded else None, manifest(run_id=run_id), force=force)
    if skip is None:
        assert reason is None
    else:
        assert reason == f"run {run_id} {skip}, loaded 2024-03-03 06:00 UTC"


def test_a_plan_writes_what_is_newer_and_says_why_it_skips_the_rest() -> None:
    batch = [manifest("2024-03-01"), manifest("2024-03-02"), manifest("2024-03-03")]
    plan = plan_batch(
        batch, {"2024-03-02": record(NEW, "2024-03-02"), "2024-03-03": record(OLD, "2024-03-03")}, force=False
    )
    assert [m.partition for m in plan.write] == ["2024-03-01", "2024-03-03"]
    assert [(m.partition, reason.split(",")[0]) for m, reason in plan.skip] == [
        ("2024-03-02", f"run {NEW} is already loaded")
    ]
    written = {m.partition: LoadResult(m.partition, True, "replaced") for m in plan.write}
    assert [(r.partition, r.loaded) for r in plan.results(written)] == [
        ("2024-03-01", True),
        ("2024-03-02", False),
        ("2024-03-03", True),
    ]
    assert plan_batch(batch, {}, force=False).skip == ()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([], "a batch to load holds no manifest"),
        ([manifest(), replace(manifest(), kpi="other")], "a batch holds partitions of 2 KPIs (daily_sales, other)"),
        ([manifest(), manifest(run_id=OLD)], "partition 2024-03-01 appears twice in one batch"),
        (
            [manifest("2024-03-01"), manifest("2024-03-02", schema=(SchemaField("sales_date", "DATE"),))],
            "partition 2024-03-02 has other columns or another file format than 2024-03-01",
        ),
        ([manifest("2024-03-01"), manifest("2024-03-02", format="csv")], "another file format"),
    ],
)
def test_a_batch_is_one_kpi_each_partition_once_one_schema(batch: list[Manifest], message: str) -> None:
    with pytest.raises(LoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_batch(batch)


def test_a_count_mismatch_names_the_partition_and_both_counts() -> None:
    error = count_mismatch(manifest(), 7)
    assert str(error).startswith("daily_sales 2024-03-01 (run 20240303T000000000Z-bbbbbb): the partition holds 7 rows")
    assert "the manifest says 3" in str(error)


@pytest.mark.parametrize(
    ("column_type", "start", "end"),
    [
        ("DATE", "DATE '2024-03-01'", "DATE '2024-03-02'"),
        ("DATETIME", "DATETIME '2024-03-01 00:00:00.000000'", "DATETIME '2024-03-02 00:00:00.000000'"),
        # a Japan-time day of a TIMESTAMP column: two UTC days, one range
        ("TIMESTAMP", "TIMESTAMP '2024-02-29 15:00:00.000000+00'", "TIMESTAMP '2024-03-01 15:00:00.000000+00'"),
    ],
)
def test_partition_bounds_are_literals_in_the_column_type_clock(column_type: str, start: str, end: str) -> None:
    schema = (SchemaField("sales_date", column_type), *BASE.schema[1:])
    bounds = partition_bounds(manifest(schema=schema))
    assert bounds is not None
    _, kind, first, stop = bounds
    assert (time_literal(first, kind), time_literal(stop, kind)) == (start, end)


def test_strings_and_names_cannot_break_out_of_the_script() -> None:
    assert string("it's a \\ back\nslash") == "'it\\'s a \\\\ back\\nslash'"
    assert table_name("acme-analytics", "kpi", "daily") == "`acme-analytics.kpi.daily`"
    with pytest.raises(ValueError, match="cannot be part of a BigQuery table name"):
        table_name("acme", "kpi`; DROP", "daily")


def test_the_batch_script_locks_rechecks_replaces_counts_and_audits_in_one_transaction() -> None:
    tables = Tables("p", "d", "daily_sales", "_kpi_staging_x")
    batch = [manifest("2024-03-01"), manifest("2024-03-02")]
    script = batch_script(tables, batch, force=False, job_id="kpi_job_1")
    statements = [line.split(" ", 1)[0] for line in script.splitlines() if line and not line.startswith(" ")]
    assert statements == [
        *("INSERT", "BEGIN", "UPDATE", "SELECT", ");", "DELETE", "INSERT", "SELECT", ")", ")", "INSERT", "COMMIT")
    ]
    assert "`partition` = '2024-03-01' AND run_id >= '20240303T000000000Z-bbbbbb'" in script
    forced = batch_script(tables, batch, force=True, job_id="kpi_job_1")
    assert "run_id > '" in forced  # force: the same run reloads
    # a partition whose latest audit row removed the very run planned is refused too (base.removed_again) …
    removed_again = "WHERE n = 1 AND STARTS_WITH(job_id, 'removed:') AND ((`partition` = '2024-03-01' AND run_id = "
    assert removed_again in script
    assert "`partition` IN ('2024-03-01', '2024-03-02')" in script
    assert removed_again not in forced  # … but not under force, which loads it on purpose
    assert "SELECT '2024-03-02' AS p, 3 AS want" in script
    day = "(`sales_date` >= DATE '2024-03-02' AND `sales_date` < DATE '2024-03-03')"
    assert f"WHEN {day} THEN '2024-03-02' END AS p, COUNT(*) AS found" in script
    assert "'kpi_job_1', CURRENT_TIMESTAMP())" in script
    assert "$" not in script


def test_the_batch_script_grows_linearly_a_month_of_hours_under_bigquerys_query_limit() -> None:
    """BigQuery refuses a query over 1,024K characters; a backfill's batch is a month, 744 hourly partitions.
    Counting each partition over every range (the script's former count) made 69 MB of it; now 0.65 MB."""
    schema = (SchemaField("hour_start", "TIMESTAMP"), SchemaField("orders", "INT64"))
    first = datetime(2026, 3, 1, tzinfo=ZoneInfo("Asia/Tokyo"))
    hours = [first + timedelta(hours=n) for n in range(744)]
    batch = [
        replace(
            BASE,
            grain="hour",
            time_column="hour_start",
            schema=schema,
            partition=f"{start:%Y-%m-%dT%H}",
            interval_start=start.isoformat(),
            interval_end=(start + timedelta(hours=1)).isoformat(),
            decorator=f"{start:%Y%m%d%H}",
        )
        for start in hours
    ]
    tables = Tables("acme-analytics", "kpi", "hourly_orders", "_kpi_staging_hourly_orders_x_0123abcd")
    month = len(batch_script(tables, batch, force=False, job_id="kpi_job_1"))
    day = len(batch_script(tables, batch[:24], force=False, job_id="kpi_job_1"))
    assert month < 1_024_000
    assert month < 31 * day * 1.1  # linear: a month is 31 days' scripts, give or take the fixed part
    assert "WHEN (`hour_start` >= TIMESTAMP '2026-03-31 14:00:00.000000+00' AND `hour_start` < TIMESTAMP " in (
        batch_script(tables, batch, force=False, job_id="kpi_job_1")
    )


def test_the_scripts_errors_are_read_back() -> None:
    message = "Query error: kpi-count: 2024-03-01T05 41 at [9:1]"
    assert count_error(message) == ("2024-03-01T05", 41)
    assert superseded_error("kpi-superseded: 2024-03-01 20240303T000000000Z-bbbbbb") == (
        "2024-03-01",
        "20240303T000000000Z-bbbbbb",
    )
    assert count_error("Transaction is aborted due to concurrent update") is None


def test_a_batch_index_round_trips_and_is_validated() -> None:
    keys = (f"daily_sales/sales_date=2024-03-0{d}/run={NEW}/_manifest.json" for d in (1, 2))
    index = BatchIndex("daily_sales", NEW, tuple(keys))
    assert BatchIndex.from_json(index.to_json()) == index
    assert batch_index_key("daily_sales", NEW, "2024-03-01") == f"daily_sales/_batches/run={NEW}/2024-03-01/_batch.json"
    wrong = json.loads(index.to_json())
    wrong["manifests"] = ["other/sales_date=2024-03-01/run=x/_manifest.json", "../../etc/passwd"]
    wrong["run_id"] = "no/slash"
    with pytest.raises(ValueError, match="is not a run id") as refused:
        BatchIndex.from_json(json.dumps(wrong))
    assert str(refused.value) == (
        "run_id 'no/slash' is not a run id; manifests[0] 'other/sales_date=2024-03-01/run=x/_manifest.json' is not a "
        "manifest of daily_sales run no/slash; manifests[1] '../../etc/passwd' is not a manifest of daily_sales run "
        "no/slash"
    )
    with pytest.raises(StoreError, match="the batch index cannot be read: batch_version 2 is not supported"):
        BatchIndex.parse(json.dumps({**json.loads(index.to_json()), "batch_version": 2}).encode(), where="s3://b/k")
