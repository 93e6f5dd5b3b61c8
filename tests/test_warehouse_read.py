"""The warehouses' reading side: `reading.row_range` (table-driven), and a DuckDB warehouse opened read-only —
never created, never locked for writing, refusing to load — as `kpi status`, `kpi preview`, `pipeline.read` and
the demo's report open it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.types import BqType
from pipeline.errors import LoadError, UsageError
from pipeline.warehouses import open_warehouse
from pipeline.warehouses.duckdb import DuckDbWarehouse
from pipeline.warehouses.reading import order_by, row_range
from tests.exporting import make_kpi
from tests.loading import held_open, loaded_snapshot

TOKYO = ZoneInfo("Asia/Tokyo")
DAY_KPI = "grain: day\ntime_column: day\ntimezone: Asia/Tokyo\ncolumns:\n  day: {type: DATE}\n  n: {type: INT64}"
MARCH_1, MARCH_3 = datetime(2024, 3, 1, tzinfo=TOKYO), datetime(2024, 3, 3, tzinfo=TOKYO)


@pytest.mark.parametrize(
    ("column_type", "first", "last", "expected"),
    [
        (BqType.DATE, MARCH_1, MARCH_3, [(">=", date(2024, 3, 1)), ("<", date(2024, 3, 3))]),
        (BqType.DATE, MARCH_1, None, [(">=", date(2024, 3, 1))]),
        (BqType.DATE, None, MARCH_3, [("<", date(2024, 3, 3))]),
        (BqType.DATE, None, None, []),
        # DATETIME: the source's wall clock (the KPI's zone here), naive
        (BqType.DATETIME, MARCH_1, MARCH_3, [(">=", datetime(2024, 3, 1)), ("<", datetime(2024, 3, 3))]),
        # TIMESTAMP: the UTC instant of the JST midnight
        (
            BqType.TIMESTAMP,
            MARCH_1,
            MARCH_3,
            [(">=", datetime(2024, 2, 29, 15, tzinfo=UTC)), ("<", datetime(2024, 3, 2, 15, tzinfo=UTC))],
        ),
    ],
)
def test_row_range_is_the_time_columns_bounds_in_its_own_type(
    tmp_path: Path,
    column_type: BqType,
    first: datetime | None,
    last: datetime | None,
    expected: list[tuple[str, date | datetime]],
) -> None:
    kpi = make_kpi(tmp_path / "q", "daily", DAY_KPI.replace("day: {type: DATE}", f"day: {{type: {column_type}}}"), SQL)
    found = row_range(kpi, {"day": column_type, "n": BqType.INT64}, first, last)
    assert found == expected
    for (_, value), (_, wanted) in zip(found, expected, strict=True):  # a DATE bound is a date, not a datetime
        assert type(value) is type(wanted)
        assert getattr(value, "tzinfo", None) == getattr(wanted, "tzinfo", None)
    assert order_by(kpi) == "day"


def test_row_range_of_a_snapshot_is_everything_and_a_missing_time_column_is_named(tmp_path: Path) -> None:
    snapshot = make_kpi(tmp_path / "q", "snap", "grain: none\ncolumns:\n  n: {type: INT64}", "SELECT 1 AS n")
    assert row_range(snapshot, {"n": BqType.INT64}, None, None) == []
    assert order_by(snapshot) is None
    daily = make_kpi(tmp_path / "q", "daily", DAY_KPI, SQL)
    with pytest.raises(UsageError, match="the warehouse's table daily has no column day") as caught:
        row_range(daily, {"n": BqType.INT64}, MARCH_1, None)
    assert caught.value.where == "daily"


SQL = "SELECT DATE '2024-03-01' AS day, 1 AS n WHERE :start IS NOT NULL AND :end IS NOT NULL"


def test_a_read_only_duckdb_warehouse_that_does_not_exist_reads_as_empty_and_is_not_created(tmp_path: Path) -> None:
    kpi = make_kpi(tmp_path / "q", "daily", DAY_KPI, SQL)
    path = tmp_path / "wh.duckdb"
    reader = open_warehouse(f"duckdb:///{path}", read_only=True)
    assert reader.kind == "DuckDB"
    assert reader.loads("daily") == {}
    assert reader.schema("daily") is None
    with pytest.raises(UsageError, match=r"has no table daily: nothing was loaded yet"):
        reader.read(kpi)
    reader.close()
    assert not path.exists()
    result = CliRunner().invoke(
        cli,
        ["--queries", str(tmp_path / "q"), "status", "--now", "2024-03-05T00:00+09:00"],
        env={"KPI_WAREHOUSE": str(path)},
    )
    assert result.exit_code == 1, result.output  # never loaded: failing, as `kpi status` says
    assert "never loaded" in result.output
    assert not path.exists()  # status created nothing


def test_a_read_only_duckdb_warehouse_reads_beside_another_reader_and_refuses_to_write(tmp_path: Path) -> None:
    queries, path = loaded_snapshot(tmp_path)
    with held_open(path, read_only=True):  # another process reading: a writer could not open the file now
        writer = DuckDbWarehouse(str(path), lock_wait=0)
        with pytest.raises(LoadError, match="Could not set lock"):
            writer.loads("by_plan")
        reader = open_warehouse(str(path), read_only=True, lock_wait=0)
        assert set(reader.loads("by_plan")) == {"snapshot"}
        assert [(f.name, f.type) for f in reader.schema("by_plan") or []] == [("plan", "STRING"), ("users", "INT64")]
        from pipeline.catalog import load_one

        rows = reader.read(load_one((queries,), "by_plan")).to_pylist()
        assert sorted((r["plan"], r["users"]) for r in rows) == [("free", 3), ("paid", 5)]
        with pytest.raises(LoadError, match="was opened read-only"):
            reader.load([], lambda entry: open(entry.path, "rb"))  # noqa: SIM115
        reader.close()


def test_bigquery_reads_the_schema_in_standard_names_and_none_for_a_missing_table(tmp_path: Path, bq_url: str) -> None:
    queries, _ = loaded_snapshot(tmp_path, bq_url)
    reader = open_warehouse(bq_url, read_only=True)
    try:
        assert (reader.kind, reader.native_type("NUMERIC")) == ("BigQuery", "NUMERIC")
        assert [(f.name, f.type) for f in reader.schema("by_plan") or []] == [("plan", "STRING"), ("users", "INT64")]
        assert reader.schema("never_loaded") is None
        assert set(reader.loads("by_plan")) == {"snapshot"}
        from pipeline.catalog import load_one

        rows = reader.read(load_one((queries,), "by_plan")).to_pylist()
        assert sorted((r["plan"], r["users"]) for r in rows) == [("free", 3), ("paid", 5)]
    finally:
        reader.close()


def test_reading_does_not_wait_for_a_writer_and_says_what_to_do(tmp_path: Path) -> None:
    import pipeline

    queries, path = loaded_snapshot(tmp_path)
    with held_open(path), pytest.raises(UsageError, match=r"cannot open the DuckDB warehouse .* for reading") as caught:
        pipeline.read("by_plan", queries=queries, warehouse=str(path))
    assert "wait for the load to finish" in caught.value.hint
