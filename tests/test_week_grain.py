"""Week partitions: Monday (or Sunday) weeks in the KPI's timezone, named by their first day, across year
boundaries and DST changes; batched per quarter; one BigQuery DAY partition each; end to end on the embedded
warehouse; `kpi new --grain week`."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from click.testing import CliRunner
from google.cloud import bigquery

from pipeline import catalog
from pipeline.cli import cli
from pipeline.core.intervals import Grain, interval_containing, intervals_between, latest_complete, preceding
from pipeline.core.plan import plan_backfill
from pipeline.core.spec import Kpi
from pipeline.core.types import BqType
from pipeline.errors import ExportError, SpecError
from pipeline.export import export
from pipeline.load import load_manifest
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses.base import partition_bounds
from pipeline.warehouses.bigquery import BigQueryWarehouse, time_partitioning
from tests.bigquery import PROJECT, BigQueryBridge
from tests.exporting import duckdb_orders, make_kpi

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
MONDAY, SUNDAY = 0, 6

WEEKLY = """
grain: week
time_column: week
timezone: {zone}
{week_start}
start: 2024-01-01
columns:
  week:   {{type: DATE, description: First day of the week}}
  orders: {{type: INT64, description: Orders}}
"""
WEEKLY_SQL = """
SELECT CAST(DATE_SUB(DATE(created_at), INTERVAL MOD(DATEDIFF(created_at, '{epoch}'), 7) DAY) AS DATE) AS week,
       COUNT(*) AS orders
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1
"""


def weekly(folder: Path, *, zone: str = "Asia/Tokyo", sunday: bool = False, sql: str = WEEKLY_SQL) -> Kpi:
    header = WEEKLY.format(zone=zone, week_start="week_start: sunday" if sunday else "")
    return make_kpi(folder, "weekly", header, sql.format(epoch="1970-01-04" if sunday else "1970-01-05"))


@pytest.mark.parametrize(
    ("moment", "zone", "first_weekday", "partition", "local_bounds", "hours"),
    [
        # A Wednesday in the middle of a Monday week.
        (datetime(2024, 1, 31, 12), TOKYO, MONDAY, "2024-01-29", (datetime(2024, 1, 29), datetime(2024, 2, 5)), 168),
        # Monday 00:00 belongs to its own week; Sunday 23:59 to the week before.
        (datetime(2024, 1, 29, 0, 0), TOKYO, MONDAY, "2024-01-29", (datetime(2024, 1, 29), datetime(2024, 2, 5)), 168),
        (
            datetime(2024, 1, 28, 23, 59),
            TOKYO,
            MONDAY,
            "2024-01-22",
            (datetime(2024, 1, 22), datetime(2024, 1, 29)),
            168,
        ),
        # Year boundaries: the week of 1 January 2025 (a Wednesday) starts on 30 December 2024 …
        (datetime(2025, 1, 1, 9), TOKYO, MONDAY, "2024-12-30", (datetime(2024, 12, 30), datetime(2025, 1, 6)), 168),
        # … and the week of 1 January 2027 (a Friday) on 28 December 2026; a Sunday week on the 27th.
        (datetime(2027, 1, 1), TOKYO, MONDAY, "2026-12-28", (datetime(2026, 12, 28), datetime(2027, 1, 4)), 168),
        (datetime(2027, 1, 1), TOKYO, SUNDAY, "2026-12-27", (datetime(2026, 12, 27), datetime(2027, 1, 3)), 168),
        # Sunday start: Sunday is the first day, Saturday the last.
        (datetime(2024, 1, 28, 0, 0), TOKYO, SUNDAY, "2024-01-28", (datetime(2024, 1, 28), datetime(2024, 2, 4)), 168),
        (datetime(2024, 2, 3, 23, 59), TOKYO, SUNDAY, "2024-01-28", (datetime(2024, 1, 28), datetime(2024, 2, 4)), 168),
        # DST: the New York week of the spring change is 167 hours, that of the autumn change 169.
        (datetime(2024, 3, 10, 12), NEW_YORK, MONDAY, "2024-03-04", (datetime(2024, 3, 4), datetime(2024, 3, 11)), 167),
        (
            datetime(2024, 11, 3, 12),
            NEW_YORK,
            MONDAY,
            "2024-10-28",
            (datetime(2024, 10, 28), datetime(2024, 11, 4)),
            169,
        ),
        # A Sunday week starts on the DST change day itself (at midnight, before the change at 02:00).
        (
            datetime(2024, 3, 10, 12),
            NEW_YORK,
            SUNDAY,
            "2024-03-10",
            (datetime(2024, 3, 10), datetime(2024, 3, 17)),
            167,
        ),
    ],
)
def test_weeks_table(
    moment: datetime,
    zone: ZoneInfo,
    first_weekday: int,
    partition: str,
    local_bounds: tuple[datetime, datetime],
    hours: int,
) -> None:
    week = interval_containing(Grain.WEEK, zone, moment, first_weekday)
    assert week.partition == partition
    assert week.decorator == partition.replace("-", "")
    assert week.bounds_in(zone) == local_bounds
    assert week.duration == timedelta(hours=hours)


def test_a_tokyo_week_binds_in_utc_from_sunday_15_00() -> None:
    week = interval_containing(Grain.WEEK, TOKYO, datetime(2024, 1, 31), MONDAY)
    assert week.bounds_in(ZoneInfo("UTC")) == (datetime(2024, 1, 28, 15), datetime(2024, 2, 4, 15))


def test_weeks_step_contiguously_over_a_year_end_and_the_latest_complete_is_last_week() -> None:
    weeks = list(intervals_between(Grain.WEEK, TOKYO, datetime(2024, 12, 18), datetime(2025, 1, 8), SUNDAY))
    assert [w.partition for w in weeks] == ["2024-12-15", "2024-12-22", "2024-12-29", "2025-01-05"]
    assert all(a.end == b.start for a, b in itertools.pairwise(weeks))
    assert preceding(weeks[0], TOKYO).partition == "2024-12-08"
    # Monday 06:00: last week is complete; on Sunday night it is the week before.
    now = datetime(2025, 1, 6, 6, tzinfo=TOKYO)
    assert latest_complete(Grain.WEEK, TOKYO, now, MONDAY).partition == "2024-12-30"
    assert latest_complete(Grain.WEEK, TOKYO, now - timedelta(hours=7), MONDAY).partition == "2024-12-23"


def test_a_backfill_of_weeks_is_one_query_per_quarter_of_their_first_days(tmp_path: Path) -> None:
    kpi = weekly(tmp_path / "queries")
    year = list(intervals_between(Grain.WEEK, kpi.zone, datetime(2024, 1, 1), datetime(2024, 12, 31), MONDAY))
    plan = plan_backfill(kpi, year, {}, now=datetime(2025, 3, 1, tzinfo=kpi.zone))
    assert plan.partitions == 53  # 2024-01-01 … 2024-12-30, all Mondays
    assert [(b[0].partition, b[-1].partition, len(b)) for b in plan.batches] == [
        ("2024-01-01", "2024-03-25", 13),
        ("2024-04-01", "2024-06-24", 13),
        ("2024-07-01", "2024-09-30", 14),  # the week of 30 September runs into October: it is Q3's
        ("2024-10-07", "2024-12-30", 13),
    ]


def test_week_start_sunday_is_read_from_the_header_and_refused_on_other_grains(tmp_path: Path) -> None:
    assert weekly(tmp_path / "a", sunday=True).first_weekday == SUNDAY
    assert weekly(tmp_path / "b").first_weekday == MONDAY
    with pytest.raises(SpecError) as wrong:
        make_kpi(
            tmp_path / "c",
            "daily",
            "grain: day\ntime_column: day\nweek_start: sunday\ncolumns:\n  day: {type: DATE}",
            "SELECT DATE(created_at) AS day FROM orders WHERE created_at >= :start AND created_at < :end",
        )
    assert "`week_start` has no meaning for grain 'day'" in str(wrong.value)
    with pytest.raises(SpecError) as typo:
        make_kpi(tmp_path / "d", "weekly", WEEKLY.format(zone="UTC", week_start="week_start: sundae"), WEEKLY_SQL)
    assert "'week_start' is 'sundae' (did you mean 'sunday'?)" in str(typo.value)


def test_a_week_time_column_must_be_a_date(tmp_path: Path) -> None:
    header = WEEKLY.format(zone="Asia/Tokyo", week_start="").replace("week:   {type: DATE", "week:   {type: DATETIME")
    with pytest.raises(SpecError) as error:
        make_kpi(tmp_path / "q", "weekly", header, WEEKLY_SQL.format(epoch="1970-01-05"))
    assert "time_column 'week' is DATETIME, which cannot carry partitions of grain 'week'" in str(error.value)
    assert "declare it as DATE" in str(error.value)


def test_an_export_of_two_weeks_splits_rows_by_first_day_and_refuses_a_row_dated_midweek(tmp_path: Path) -> None:
    source = open_source(
        duckdb_orders(
            tmp_path / "shop.duckdb",
            "('2024-01-28 23:59:00', 'paid', 1)",  # Sunday: the week of 22 January (Monday start)
            "('2024-01-29 00:00:00', 'paid', 1)",  # Monday
            "('2024-02-04 23:59:59', 'paid', 1)",  # Sunday, same week
            "('2024-02-05 08:00:00', 'paid', 1)",  # next Monday
        )
    )
    kpi = weekly(tmp_path / "queries")
    weeks = list(intervals_between(Grain.WEEK, kpi.zone, datetime(2024, 1, 29), datetime(2024, 2, 5), MONDAY))
    manifests = export(kpi, weeks, source=source, store=LocalStore(tmp_path / "lake"))
    assert [(m.partition, m.decorator, m.rows) for m in manifests] == [
        ("2024-01-29", "20240129", 1),
        ("2024-02-05", "20240205", 1),
    ]
    daily_sql = "SELECT DATE(created_at) AS week, COUNT(*) AS orders FROM orders "
    wrong = weekly(tmp_path / "wrong", sql=daily_sql + "WHERE created_at >= :start AND created_at < :end GROUP BY 1")
    with pytest.raises(ExportError) as error:
        export(wrong, weeks[:1], source=source, store=LocalStore(tmp_path / "lake2"))
    assert "week = datetime.date(2024, 2, 4) is not the first day of its week (datetime.date(2024, 1, 29))" in str(
        error.value
    )
    assert "MOD(DATEDIFF(created_at, '1970-01-05'), 7)" in (error.value.hint or "")
    assert not list((tmp_path / "lake2").rglob("_manifest.json"))


def test_a_week_is_one_bigquery_day_partition_of_its_first_day(tmp_path: Path) -> None:
    source = open_source(duckdb_orders(tmp_path / "shop.duckdb", "('2024-01-31 12:00:00', 'paid', 1)"))
    kpi = weekly(tmp_path / "queries")
    week = interval_containing(Grain.WEEK, kpi.zone, datetime(2024, 1, 31), MONDAY)
    (manifest,) = export(kpi, [week], source=source, store=LocalStore(tmp_path / "lake"))
    partitioning = time_partitioning(manifest)
    assert partitioning is not None
    assert (partitioning.type_, partitioning.field) == (bigquery.TimePartitioningType.DAY, "week")
    assert manifest.decorator == "20240129"
    # the rows a load replaces: every row of a week holds its first day (the exporter checks), one DAY partition
    assert partition_bounds(manifest) == ("week", BqType.DATE, date(2024, 1, 29), date(2024, 2, 5))


def test_a_week_loads_into_the_bigquery_day_partition_of_its_first_day(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    """On the emulator, with the jobs recorded (tests/bigquery.py): staged, then one transaction over the week."""
    source = open_source(
        duckdb_orders(
            tmp_path / "shop.duckdb",
            "('2024-01-29 00:10:00', 'paid', 1)",
            "('2024-01-31 12:00:00', 'paid', 1)",
            "('2024-02-04 23:50:00', 'paid', 1)",
        )
    )
    kpi = weekly(tmp_path / "queries")
    week = interval_containing(Grain.WEEK, kpi.zone, datetime(2024, 2, 1), MONDAY)
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, [week], source=source, store=store)
    key = f"weekly/week={manifest.partition}/run={manifest.run_id}/_manifest.json"
    load_manifest(store, key, BigQueryWarehouse(bq_url, client=bq_client))
    assert bq_client.loads_into("weekly") == []  # the files go to a staging table, never into the KPI's
    (script,) = bq_client.transactions()
    assert "(`week` >= DATE '2024-01-29' AND `week` < DATE '2024-02-05')" in script
    table = bq_client.get_table(f"{PROJECT}.{bq_dataset}.weekly")
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "week")
    rows = bq_client.query(f"SELECT week, orders FROM `{PROJECT}.{bq_dataset}.weekly`").result()
    assert [tuple(row.values()) for row in rows] == [(date(2024, 1, 29), 3)]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shop with one order every 7 hours from 2024-01-01 00:30 (Tokyo wall clock), and a Sunday-week KPI."""
    shop = tmp_path / "shop.duckdb"
    with duckdb.connect(str(shop)) as db:
        db.execute(
            "CREATE TABLE orders AS SELECT i AS id, TIMESTAMP '2024-01-01 00:30' + INTERVAL (7 * i) HOUR AS created_at "
            "FROM range(0, 1252) t(i)"
        )
    weekly(tmp_path / "queries", sunday=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_SOURCE", f"duckdb:///{shop}")
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("KPI_QUERIES", raising=False)
    monkeypatch.delenv("KPI_ENV", raising=False)
    return tmp_path


def test_a_backfill_of_sunday_weeks_loads_exact_counts_across_a_quarter(project: Path) -> None:
    result = CliRunner().invoke(cli, ["backfill", "weekly", "--start", "2024-03-10", "--end", "2024-04-13", "--json"])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as db:
        loaded = db.execute("SELECT week, orders FROM weekly ORDER BY 1").fetchall()
    start = datetime(2024, 1, 1, 0, 30)
    expected: dict[date, int] = {}
    for i in range(1252):
        day = (start + timedelta(hours=7 * i)).date()
        first = day - timedelta(days=(day.weekday() + 1) % 7)  # the Sunday on or before
        if date(2024, 3, 10) <= first <= date(2024, 4, 7):
            expected[first] = expected.get(first, 0) + 1
    assert loaded == sorted(expected.items())
    assert [d.isoformat() for d, _ in loaded] == ["2024-03-10", "2024-03-17", "2024-03-24", "2024-03-31", "2024-04-07"]
    summary = json.loads(result.output)["kpis"][0]
    assert (summary["partitions"], summary["status"]) == (5, "ok")


def test_kpi_new_grain_week_writes_a_file_that_passes_check(project: Path) -> None:
    created = CliRunner().invoke(cli, ["new", "weekly_refunds", "--grain", "week"])
    assert created.exit_code == 0, created.output
    text = (project / "queries" / "weekly_refunds.sql").read_text()
    assert "grain: week" in text
    assert "week_start: monday" in text
    assert "MOD(DATEDIFF(created_at, '1970-01-05'), 7)" in text
    checked = CliRunner().invoke(cli, ["check", "queries/weekly_refunds.sql"])
    assert checked.exit_code == 0, checked.output
    assert catalog.load_one((project / "queries",), "weekly_refunds").grain is Grain.WEEK
