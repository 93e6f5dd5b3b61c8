"""kpi run, kpi backfill, kpi status on the embedded warehouse: batching, resuming, failures, freshness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.intervals import Grain, intervals_between
from pipeline.core.plan import batches, due_intervals, plan_backfill
from pipeline.errors import UsageError
from tests.exporting import DAILY, DAILY_SQL, make_kpi
from tests.loading import held_open


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shop with one order every 7 hours through 2024, and the KPI `daily` over it."""
    shop = tmp_path / "shop.duckdb"
    with duckdb.connect(str(shop)) as db:
        db.execute(
            "CREATE TABLE orders AS SELECT i AS id, TIMESTAMP '2024-01-01 00:30' + INTERVAL (7 * i) HOUR AS created_at "
            "FROM range(0, 1252) t(i)"
        )
    make_kpi(tmp_path / "queries", "daily", DAILY, DAILY_SQL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_SOURCE", f"duckdb:///{shop}")
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("KPI_QUERIES", raising=False)
    monkeypatch.delenv("KPI_ENV", raising=False)
    return tmp_path


def warehouse(project: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as db:
        return db.execute(sql).fetchall()


def expected_orders(first: str, last: str) -> list[tuple[date, int]]:
    """What the source holds per day, computed here independently of the pipeline."""
    start = datetime(2024, 1, 1, 0, 30)
    counts: dict[date, int] = {}
    for i in range(1252):
        day = (start + timedelta(hours=7 * i)).date()
        if date.fromisoformat(first) <= day <= date.fromisoformat(last):
            counts[day] = counts.get(day, 0) + 1
    return sorted(counts.items())


def test_a_year_of_days_is_planned_as_one_query_per_month(project: Path) -> None:
    from pipeline import catalog

    kpi = catalog.load_one((project / "queries",), "daily")
    year = list(intervals_between(Grain.DAY, kpi.zone, datetime(2024, 1, 1), datetime(2024, 12, 31)))
    now = datetime(2025, 6, 1, tzinfo=kpi.zone)
    plan = plan_backfill(kpi, year, {}, now=now)
    assert (plan.partitions, len(plan.batches)) == (366, 12)
    assert [len(b) for b in plan.batches][:3] == [31, 29, 31]
    shifted = list(intervals_between(Grain.DAY, kpi.zone, datetime(2023, 12, 20), datetime(2024, 12, 19)))
    late = plan_backfill(kpi, shifted, {"2024-01-05": kpi.sql_hash, "2024-01-06": "another-sql"}, now=now)
    assert late.before_start == tuple(f"2023-12-{d}" for d in range(20, 32))
    assert late.done == ("2024-01-05",)
    assert [(b[0].partition, b[-1].partition) for b in late.batches[:2]] == [
        ("2024-01-01", "2024-01-04"),
        ("2024-01-06", "2024-01-31"),
    ]
    mid_march = plan_backfill(kpi, year, {}, now=datetime(2024, 3, 15, 12, tzinfo=kpi.zone))
    assert (mid_march.partitions, mid_march.incomplete[0], len(mid_march.incomplete)) == (74, "2024-03-15", 292)
    new_york = replace(kpi, timezone="America/New_York")  # DST starts on 2024-03-10: a day of 23 hours
    march = list(intervals_between(Grain.DAY, new_york.zone, datetime(2024, 3, 1), datetime(2024, 3, 31)))
    (one_batch,) = plan_backfill(new_york, march, {}, now=now).batches
    assert len(one_batch) == 31
    assert one_batch[9].partition == "2024-03-10"
    assert one_batch[9].duration == timedelta(hours=23)
    assert one_batch[0].start.utcoffset() != one_batch[-1].end.utcoffset()
    hours = list(intervals_between(Grain.HOUR, kpi.zone, datetime(2024, 3, 1), datetime(2024, 3, 3, 23)))
    assert [len(b) for b in batches(hours)] == [24, 24, 24]
    now = datetime(2024, 3, 10, 5, tzinfo=kpi.zone)
    assert [i.partition for i in due_intervals(kpi, now)] == ["2024-03-07", "2024-03-08", "2024-03-09"]


def test_backfill_dry_run_prints_the_plan_and_touches_nothing(project: Path) -> None:
    result = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2023-12-30", "--end", "2024-12-31", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "daily: 366 partition(s) in 12 source queries on source 'default'" in result.output
    assert "2 before the header's start, left out" in result.output
    assert "created_at >= $start AND created_at < $end" in result.output
    assert "dry run: nothing was exported or loaded" in result.output
    as_json = CliRunner().invoke(
        cli, ["backfill", "daily", "--start", "2024-01-01", "--end", "2024-03-31", "--dry-run", "--json"]
    )
    plan = json.loads(as_json.output)
    assert (plan["partitions"], plan["queries"]) == (91, 3)
    assert plan["batches"][1]["values"] == {"start": "2024-02-01 00:00:00", "end": "2024-03-01 00:00:00"}
    assert not (project / "lake").exists()
    assert not (project / "wh.duckdb").exists()


def test_a_dry_run_reads_the_warehouse_read_only_beside_another_reader(project: Path) -> None:
    """The plan reads the audit only: another process holding the file read-only (no writer could open it) does
    not stop it, and the file is not changed."""
    loaded = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-02"])
    assert loaded.exit_code == 0, loaded.output
    path = project / "wh.duckdb"
    before = path.stat().st_mtime_ns
    with held_open(path, read_only=True):
        dry = CliRunner().invoke(
            cli, ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-03", "--dry-run"]
        )
    assert dry.exit_code == 0, dry.output
    assert "daily: 1 partition(s) in 1 source query on source 'default'; 2 already loaded from this SQL" in dry.output
    assert path.stat().st_mtime_ns == before


def test_backfill_loads_every_day_including_empty_ones_and_resumes(project: Path) -> None:
    first = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-12-20", "--end", "2025-01-10", "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output)["kpis"][0]
    assert (summary["partitions"], summary["status"]) == (22, "ok")
    loaded = warehouse(project, 'SELECT "partition", "rows" FROM _kpi_loads ORDER BY 1')
    assert len(loaded) == 22
    assert loaded[-1] == ("2025-01-10", 0)  # after the last order: committed empty, a zero on the dashboard
    assert warehouse(project, "SELECT day, orders FROM daily ORDER BY day") == expected_orders(
        "2024-12-20", "2024-12-31"
    )
    again = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-12-01", "--end", "2025-01-10", "--json"])
    assert json.loads(again.output)["kpis"][0]["partitions"] == 19  # only December 1-19 was missing
    assert warehouse(project, 'SELECT COUNT(*), COUNT(DISTINCT "partition") FROM _kpi_loads') == [(41, 41)]
    forced = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-12-30", "--end", "2024-12-31", "--force"])
    assert forced.exit_code == 0, forced.output
    assert warehouse(project, "SELECT COUNT(*) FROM _kpi_loads") == [(43,)]


def test_a_backfill_killed_half_way_and_run_again_loads_only_the_missing_partitions(project: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "kpi"),
        "backfill",
        "daily",
        "--start",
        "2024-01-01",
        "--end",
        "2024-04-30",
        "--parallel",
        "1",
        "--json",
    ]
    process = subprocess.Popen(command, cwd=project, env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    march = project / "lake" / "daily" / "day=2024-03-01"
    deadline = time.monotonic() + 60
    while not march.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # February's batch is exported once January's partitions are all loaded
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the backfill finished before it could be killed"
    before = warehouse(project, 'SELECT "partition" FROM _kpi_loads')
    assert 31 <= len(before) < 121

    rerun = subprocess.run(command, cwd=project, env=os.environ, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["kpis"][0]["partitions"] == 121 - len(before)
    after = warehouse(project, 'SELECT "partition", COUNT(*) FROM _kpi_loads GROUP BY 1')
    assert len(after) == 121
    assert {count for _, count in after} == {1}  # no partition loaded twice
    assert warehouse(project, "SELECT day, orders FROM daily ORDER BY day") == expected_orders(
        "2024-01-01", "2024-04-30"
    )


def test_run_loads_what_is_due_and_a_failure_does_not_stop_the_others(project: Path) -> None:
    make_kpi(
        project / "queries",
        "broken",
        DAILY.replace("lookback: 2", "lookback: 0"),
        DAILY_SQL.replace("FROM orders", "FROM no_such_table"),
    )
    result = CliRunner().invoke(cli, ["run", "--date", "2024-03-01", "--json"])
    assert result.exit_code == 1
    outcome = json.loads(result.output)
    lines = {k["kpi"]: k for k in outcome["kpis"]}
    assert lines["daily"]["status"] == "ok"
    assert lines["broken"]["status"] == "1 failed"
    (failure,) = lines["broken"]["failed"]
    assert (failure["partition"], failure["kind"], failure["where"]) == ("2024-03-01", "source", "broken")
    assert "no_such_table" in failure["message"]
    (project / "queries" / "typo.sql").write_text("/*---\ngrian: day\n---*/\nSELECT 1 AS n\n")
    with_typo = CliRunner().invoke(cli, ["run", "daily", "--date", "2024-03-01", "--json"])
    assert with_typo.exit_code == 0, with_typo.output  # named KPIs only: the broken file is not in the way
    everything = CliRunner().invoke(cli, ["run", "--date", "2024-03-01", "--json"])
    assert everything.exit_code == 1
    left_out = {k["kpi"]: k for k in json.loads(everything.stdout)["kpis"]}["typo"]
    assert left_out["failed"] == [
        {
            "partition": "",
            "kind": "spec",
            "message": "not run: its file has 4 problem(s):\n"
            "  queries/typo.sql:2:1: unknown header key 'grian' (did you mean 'grain'?) (the README lists every "
            "header key; `kpi new NAME` writes them all)\n"
            "  queries/typo.sql:2:1: the header has no `columns` (declare every output column: `columns:` then "
            "`  name: {type: STRING, description: …}`)\n"
            "  queries/typo.sql:2:1: grain 'day' needs a `time_column` (name the output column that carries the "
            "partition, e.g. `time_column: sales_date`)\n"
            "  queries/typo.sql:4:1: an incremental KPI (grain: day) must filter on :start and :end; missing :start "
            "and :end (add e.g. `WHERE created_at >= :start AND created_at < :end`; a query over the whole table is "
            "a snapshot (`grain: none`))",
            "hint": "run `kpi check` and fix the file",
            "where": "",
        }
    ]
    (project / "queries" / "typo.sql").unlink()
    assert warehouse(project, "SELECT day, orders FROM daily") == expected_orders("2024-03-01", "2024-03-01")
    due = CliRunner().invoke(cli, ["run", "daily", "--json"])  # today's due partitions: after the data, empty
    assert due.exit_code == 0, due.output
    assert json.loads(due.output)["kpis"][0]["partitions"] == 3  # the latest complete day and lookback 2


def test_run_reports_each_failure_with_its_whole_reason(project: Path) -> None:
    """Which check failed on which partition, which column does not match and why: in the table and in --json.
    Partitions of one batch are judged one by one: the day without orders fails `min_rows` alone, its neighbours
    in the same source query are loaded."""
    with duckdb.connect(str(project / "shop.duckdb")) as db:
        db.execute("DELETE FROM orders WHERE CAST(created_at AS DATE) = DATE '2024-03-02'")
    checked = DAILY.replace("lookback: 2", "checks: {min_rows: 1}")
    make_kpi(project / "queries", "daily", checked, DAILY_SQL)
    mistyped = DAILY.replace("orders: {type: INT64}", "orders: {type: DATE}")
    make_kpi(project / "queries", "typed", mistyped, DAILY_SQL)
    result = CliRunner().invoke(cli, ["run", "--start", "2024-03-01", "--end", "2024-03-03", "--json"])
    assert result.exit_code == 1, result.output
    lines = {k["kpi"]: k for k in json.loads(result.output)["kpis"]}
    neighbours = [(day, n) for day, n in expected_orders("2024-03-01", "2024-03-03") if day != date(2024, 3, 2)]
    assert (lines["daily"]["partitions"], lines["daily"]["rows"], lines["daily"]["status"]) == (3, 2, "1 failed")
    assert lines["daily"]["loaded"] == ["2024-03-01", "2024-03-03"]
    assert lines["daily"]["failed"] == [
        {
            "partition": "2024-03-02",
            "kind": "checks",
            "message": "checks failed, the partition was not committed:\n  - min_rows: 0 row(s), at least 1 expected",
            "hint": "fix the query or the data, or change `checks:` in the header if the rule is wrong",
            "where": "queries/daily.sql (daily)",
        }
    ]
    assert warehouse(project, "SELECT day, orders FROM daily ORDER BY day") == neighbours
    audited = "SELECT partition FROM _kpi_loads WHERE kpi = 'daily' ORDER BY partition"
    assert warehouse(project, audited) == [("2024-03-01",), ("2024-03-03",)]
    (typed,) = {f["message"] for f in lines["typed"]["failed"]}
    assert typed == (
        "the query's result does not match the header:\n"
        "  - column 'orders': INT64 cannot be loaded as DATE without changing values; declare INT64"
    )
    assert [f["kind"] for f in lines["typed"]["failed"]] == ["export"] * 3

    table = CliRunner().invoke(cli, ["run", "--start", "2024-03-01", "--end", "2024-03-03"])
    assert table.exit_code == 1
    assert table.output.split("┘\n", 1)[1] == (
        "failed: daily 2024-03-02 (checks): queries/daily.sql (daily): checks failed, the partition was not "
        "committed:\n"
        "  - min_rows: 0 row(s), at least 1 expected\n"
        "  hint: fix the query or the data, or change `checks:` in the header if the rule is wrong\n"
        "failed: typed 2024-03-01 … 2024-03-03 (3 partitions, export): queries/typed.sql: the query's result does "
        "not match the header:\n"
        "  - column 'orders': INT64 cannot be loaded as DATE without changing values; declare INT64\n"
        "  hint: change the declared types in the header, or CAST in the SELECT (`kpi render typed` shows the SQL)\n"
    )


def test_a_backfill_batch_loads_its_passing_partitions_and_a_rerun_does_only_the_failed_one(project: Path) -> None:
    """A month is one source query; two days of it fail `min_rows`, each named with its own rows; the other 29
    are loaded; once the data is there, the same backfill runs only those two."""
    with duckdb.connect(str(project / "shop.duckdb")) as db:
        tenth = "created_at >= '2024-03-10' AND created_at < '2024-03-11'"
        db.execute(f"CREATE TABLE held AS SELECT * FROM orders WHERE {tenth}")
        db.execute(f"DELETE FROM orders WHERE {tenth}")
        db.execute("DELETE FROM orders WHERE created_at >= '2024-03-20' AND created_at < '2024-03-21' AND id % 2 = 0")
    by_status = DAILY_SQL.replace("COUNT(*) AS orders", "id % 2 AS odd, COUNT(*) AS orders").replace(
        "GROUP BY 1", "GROUP BY 1, 2"
    )
    header = DAILY.replace("lookback: 2", "checks: {min_rows: 2}").replace(
        "  orders: {type: INT64}", "  odd:    {type: INT64}\n  orders: {type: INT64}"
    )
    make_kpi(project / "queries", "daily", header, by_status)
    backfill = ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-31", "--json"]
    result = CliRunner().invoke(cli, backfill)
    assert result.exit_code == 1, result.output
    (line,) = json.loads(result.output)["kpis"]
    assert (line["partitions"], line["status"]) == (31, "2 failed")
    assert line["loaded"] == [f"2024-03-{d:02d}" for d in range(1, 32) if d not in (10, 20)]
    assert [(f["partition"], f["kind"], f["message"].splitlines()[1]) for f in line["failed"]] == [
        ("2024-03-10", "checks", "  - min_rows: 0 row(s), at least 2 expected"),
        ("2024-03-20", "checks", "  - min_rows: 1 row(s), at least 2 expected"),
    ]
    loaded = warehouse(project, "SELECT DISTINCT partition FROM _kpi_loads WHERE kpi = 'daily' ORDER BY 1")
    assert [p for (p,) in loaded] == [f"2024-03-{d:02d}" for d in range(1, 32) if d not in (10, 20)]
    assert warehouse(project, "SELECT COUNT(*) FROM daily WHERE day IN ('2024-03-10', '2024-03-20')") == [(0,)]

    with duckdb.connect(str(project / "shop.duckdb")) as db:
        db.execute("INSERT INTO orders SELECT * FROM held")
    with_odd_only = CliRunner().invoke(cli, backfill)  # 2024-03-20 still has one kind only: it fails again, alone
    (again,) = json.loads(with_odd_only.output)["kpis"]
    assert (again["partitions"], [f["partition"] for f in again["failed"]]) == (2, ["2024-03-20"])
    assert again["loaded"] == ["2024-03-10"]
    assert warehouse(project, "SELECT SUM(orders) FROM daily WHERE day = '2024-03-10'") == [
        (dict(expected_orders("2024-03-10", "2024-03-10"))[date(2024, 3, 10)],)
    ]


def test_a_run_refuses_partitions_not_over_yet_and_before_start_naming_them(project: Path) -> None:
    from pipeline import catalog
    from pipeline.core.selection import refuse_unsafe

    kpi = catalog.load_one((project / "queries",), "daily")
    now = datetime(2024, 3, 10, 9, 30, tzinfo=ZoneInfo("Asia/Tokyo"))
    both = list(intervals_between(Grain.DAY, kpi.zone, datetime(2023, 12, 30), datetime(2024, 3, 12)))
    with pytest.raises(UsageError) as refused:
        refuse_unsafe(kpi, both, now=now)
    assert refused.value.where == "queries/daily.sql"
    assert refused.value.message == (
        "refusing to run daily: 3 partitions (2024-03-10 … 2024-03-12) are not over yet (it is 2024-03-10 09:30 "
        "Asia/Tokyo now; 2024-03-10 ends 2024-03-11 00:00): loaded, a partition with partial or no rows would count "
        "as the newest data; 2 partitions (2023-12-30 … 2023-12-31) are before the header's start (2024-01-01), the "
        "earliest partition the KPI is defined for"
    )
    assert refused.value.hint == (
        "the latest complete partition is 2024-03-09; --allow-incomplete loads one that is not over; change "
        "`start:` in the header if it is wrong, or pass --allow-before-start"
    )
    refuse_unsafe(kpi, both, now=now, allow_incomplete=True, allow_before_start=True)
    refuse_unsafe(kpi, both[2:-3], now=now)  # 2024-01-01 … 2024-03-09: every one over and after the start

    future = CliRunner().invoke(cli, ["run", "daily", "--date", "2099-05-01"])
    assert future.exit_code == 2
    assert "refusing to run daily: 2099-05-01 is not over yet (it is " in future.output
    early = CliRunner().invoke(cli, ["export", "daily", "--date", "2023-12-31"])
    assert early.exit_code == 2
    assert "refusing to run daily: 2023-12-31 is before the header's start (2024-01-01)" in early.output
    assert not (project / "lake").exists()  # nothing was exported

    told = CliRunner().invoke(cli, ["run", "daily", "--date", "2099-05-01", "--allow-incomplete", "--json"])
    assert told.exit_code == 0, told.output
    CliRunner().invoke(cli, ["run", "daily", "--date", "2024-03-01"])
    status = CliRunner().invoke(cli, ["status", "daily", "--json"])
    line = json.loads(status.output)["kpis"][0]
    assert (line["partition"], line["future_partitions"], line["partitions_loaded"]) == (
        "2024-03-01",
        ["2099-05-01"],
        2,
    )
    assert line["freshness"] == "stale"  # the age counts from 2024-03-01, not from a day in 2099
    assert status.exit_code == 1
    table = CliRunner().invoke(cli, ["status", "daily"])
    assert "warning: daily: 1 loaded partition(s) have not begun yet (2099-05-01): not counted as the newest" in (
        table.output
    )
    from pipeline.core.chart import Mark
    from pipeline.demo.report_data import build_report

    kpi = catalog.load_one((project / "queries",), "daily")
    page = build_report([kpi], project / "wh.duckdb", now=datetime(2024, 6, 1, tzinfo=ZoneInfo("UTC")))
    assert "2024-03-01" in page
    assert "2099" not in page  # the report neither charts it nor shows it as the last partition
    marks = {
        "daily": [("orders", Mark("2024-03-01", "orders", "spike")), ("orders", Mark("2099-05-01", "orders", "x"))]
    }
    marked = build_report([kpi], project / "wh.duckdb", now=datetime(2024, 3, 2, tzinfo=ZoneInfo("UTC")), marks=marks)
    assert marked.count('<circle class="mark"') == 1  # the mark on a drawn point; 2099 is not drawn
    assert "2024-03-01 · orders: 4 — spike</title>" in marked


def test_a_backfill_with_nothing_to_run_says_so(project: Path) -> None:
    future = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2099-01-01", "--end", "2099-01-31"])
    assert future.exit_code == 2
    assert "daily: error: nothing to do: no partition from 2099-01-01 to 2099-01-31 can run — 31 not over yet " in (
        future.output
    )
    early = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2023-12-01", "--end", "2023-12-31"])
    assert early.exit_code == 2
    assert "31 before the header's start (2024-01-01)" in early.output
    CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-02-27", "--end", "2024-02-29"])
    done = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-02-27", "--end", "2024-02-29"])
    assert done.exit_code == 0, done.output
    assert done.output == (
        "nothing to do: daily's 3 partition(s) from 2024-02-27 to 2024-02-29 are loaded from this SQL already "
        "(--force runs them again)\n"
    )


def test_status_reports_freshness_and_fails_when_stale(project: Path) -> None:
    never = CliRunner().invoke(cli, ["status", "--json"])
    assert never.exit_code == 1
    assert json.loads(never.output)["kpis"][0]["freshness"] == "never loaded"
    now = "2024-03-10T00:30+09:00"  # the clock both commands decide at: half an hour into a Tokyo day
    CliRunner().invoke(cli, ["run", "daily", "--now", now])
    fresh = CliRunner().invoke(cli, ["status", "daily", "--json", "--now", now])
    assert fresh.exit_code == 0, fresh.output
    line = json.loads(fresh.output)["kpis"][0]
    yesterday = date(2024, 3, 9)
    assert (line["partition"], line["freshness"]) == (yesterday.isoformat(), "fresh")
    CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-02"])
    with duckdb.connect(str(project / "wh.duckdb")) as db:  # as if nothing had run for a week
        db.execute("DELETE FROM _kpi_loads WHERE \"partition\" > '2024-03-02'")
    stale = CliRunner().invoke(cli, ["status", "--now", now])
    assert stale.exit_code == 1
    assert "2024-03-02" in stale.output
    assert "stale" in stale.output


def test_status_shows_partitions_and_load_times_in_the_kpis_zone_named(project: Path) -> None:
    CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-02"])
    with duckdb.connect(str(project / "wh.duckdb")) as db:  # a load at 23:30 UTC is 08:30 the next day in Tokyo
        db.execute("UPDATE _kpi_loads SET loaded_at = TIMESTAMPTZ '2024-03-03 23:30:00+00'")
    line = json.loads(CliRunner().invoke(cli, ["status", "daily", "--json"]).output)["kpis"][0]
    assert (line["partition"], line["loaded_at"], line["timezone"]) == (
        "2024-03-02",
        "2024-03-04T08:30:00+09:00",
        "Asia/Tokyo",
    )
    table = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["status", "daily"]).output
    assert "last partition (Asia/Tokyo)" in table
    assert "loaded (Asia/Tokyo)" in table
    assert "│ 2024-03-02 " in table
    assert " 2024-03-04 08:30 " in table
    assert "UTC" not in table


def test_status_names_each_zone_when_kpis_differ(project: Path) -> None:
    make_kpi(project / "queries", "daily_utc", DAILY + "timezone: UTC\n", DAILY_SQL)
    for name in ("daily", "daily_utc"):
        CliRunner().invoke(cli, ["backfill", name, "--start", "2024-03-01", "--end", "2024-03-02"])
    with duckdb.connect(str(project / "wh.duckdb")) as db:
        db.execute("UPDATE _kpi_loads SET loaded_at = TIMESTAMPTZ '2024-03-03 23:30:00+00'")
    table = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["status"]).output
    assert "last partition (KPI's zone)" in table
    assert "loaded (KPI's zone)" in table
    lines = {line.split("│")[1].strip(): line for line in table.splitlines() if line.startswith("│")}
    assert " 2024-03-04 08:30 JST " in lines["daily"]
    assert " 2024-03-03 23:30 UTC " in lines["daily_utc"]


def test_backfill_via_sfn_starts_the_state_machine_with_the_planners_input(
    project: Path, aws_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    role = "arn:aws:iam::123456789012:role/kpi-backfill"
    definition = json.dumps({"StartAt": "Plan", "States": {"Plan": {"Type": "Pass", "End": True}}})
    machine = boto3.client("stepfunctions").create_state_machine(name="backfill", definition=definition, roleArn=role)
    range_ = ["--start", "2024-01-01", "--end", "2024-12-31"]
    missing = CliRunner().invoke(cli, ["backfill", "daily", *range_, "--via", "sfn"])
    assert missing.exit_code == 2
    assert "names no backfill state machine" in missing.output

    monkeypatch.setenv("KPI_BACKFILL_STATE_MACHINE", machine["stateMachineArn"])
    started = CliRunner().invoke(cli, ["backfill", "daily", *range_, "--via", "sfn", "--force", "--json"])
    assert started.exit_code == 0, started.output
    execution = json.loads(started.output)["execution"]
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution)
    assert json.loads(described["input"]) == {
        "kpis": ["daily"],
        "start": "2024-01-01",
        "end": "2024-12-31",
        "force": True,
    }
    assert described["name"].startswith("backfill-daily-2024-01-01-2024-12-31-")
    assert not (project / "lake").exists()  # nothing ran here
