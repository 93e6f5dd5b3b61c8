"""`kpi preview` against the real MariaDB (and the embedded DuckDB): the exporter's session and types, a bounded
read, every quirk reported with the header change that fixes it — and nothing written anywhere."""

from __future__ import annotations

import json
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

import pipeline.cli.preview  # noqa: F401  (registers `kpi preview` until pipeline/cli/__init__.py imports it)
from pipeline.cli import cli
from pipeline.core.typeplan import ARROW_TYPES
from pipeline.core.types import BqType
from pipeline.errors import UsageError
from pipeline.flows.preview import preview_kpi
from pipeline.load import load_manifest
from pipeline.sources import open_source
from pipeline.sources.mysql import MySqlSource
from pipeline.stores import LocalStore
from pipeline.warehouses import open_warehouse
from tests.conftest import MySqlServer
from tests.exporting import days, make_kpi
from tests.loading import HEADER, SQL, key_of, run, shop_source


def url(db: MySqlServer) -> str:
    return f"mysql://{db.user}@{db.host}:{db.port}/{db.database}"


def run_sql(db: MySqlServer, *statements: str) -> None:
    with db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with its own lake and warehouse paths (neither exists yet), and no kpi.toml."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    for name in ("KPI_QUERIES", "KPI_ENV", "KPI_CONFIG", "KPI_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def preview(place: Path, source: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--queries", str(place / "q"), "preview", *args], env={"KPI_SOURCE": source}, catch_exceptions=False
    )


def cells(lines: list[str], first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``, stripped (column widths vary)."""
    for line in lines:
        parts = [part.strip() for part in line.split("│")[1:-1]]
        if parts and parts[0] == first:
            return parts
    raise AssertionError(f"no row {first!r} in:\n" + "\n".join(lines))


def preview_json(place: Path, source: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = preview(place, source, *args, "--json")
    return result.exit_code, json.loads(result.output)


ORDERS_HEADER = """
grain: day
time_column: day
timezone: Asia/Tokyo
columns:
  day:    {type: DATE, description: JST day}
  status: {type: STRING, description: Status}
  orders: {type: INT64, description: Orders}
  sales:  {type: NUMERIC, description: Sales}
"""
ORDERS_SQL = """
SELECT DATE(created_at) AS day, status, COUNT(*) AS orders, SUM(amount) AS sales
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1, 2 ORDER BY 2
"""


def orders(db: MySqlServer) -> None:
    run_sql(
        db,
        "CREATE TABLE orders (created_at DATETIME, status VARCHAR(16), amount DECIMAL(12,2))",
        "INSERT INTO orders VALUES ('2024-03-01 00:00:00', 'paid', 10.50), ('2024-03-01 23:59:59', 'paid', 1.25),"
        " ('2024-03-01 12:00:00', 'refunded', 5.00), ('2024-03-02 08:00:00', 'paid', 7.00)",
    )


@pytest.mark.mysql
def test_preview_prints_rows_and_every_type_and_writes_nothing(mysql_db: MySqlServer, place: Path) -> None:
    orders(mysql_db)
    make_kpi(place / "q", "daily", ORDERS_HEADER, ORDERS_SQL)
    result = preview(place, url(mysql_db), "daily", "--date", "2024-03-01")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"daily, partition 2024-03-01 (Asia/Tokyo), from {url(mysql_db)}: 2 row(s) in ")
    assert lines[0].endswith("— a preview: nothing was written")
    assert "│ 2024-03-01 │ paid     │ 2      │ 11.75 │" in lines
    assert "│ 2024-03-01 │ refunded │ 1      │ 5     │" in lines
    assert cells(lines, "sales") == ["sales", "DECIMAL(34,2)", "decimal128(38, 9)", "DECIMAL(38,9)", "NUMERIC", ""]
    assert cells(lines, "day") == ["day", "DATE", "date32[day]", "DATE", "DATE", ""]
    assert cells(lines, "orders") == ["orders", "BIGINT", "int64", "BIGINT", "INT64", ""]
    assert "note: the warehouse has no table daily yet: the first load creates it with the declared types" in lines
    assert not (place / "lake").exists()
    assert not (place / "wh.duckdb").exists()

    code, data = preview_json(place, url(mysql_db), "daily", "--date", "2024-03-01")
    assert code == 0
    assert data["rows"] == [
        {"day": "2024-03-01", "status": "paid", "orders": 2, "sales": "11.75"},
        {"day": "2024-03-01", "status": "refunded", "orders": 1, "sales": "5"},
    ]
    assert (data["ok"], data["written"], data["more_rows"], data["findings"]) == (True, False, False, [])
    sales = next(c for c in data["columns"] if c["name"] == "sales")
    assert sales == {
        "name": "sales",
        "source_type": "DECIMAL(34,2)",
        "arrow_type": "decimal128(38, 9)",
        "warehouse_type": "DECIMAL(38,9)",
        "declared": "NUMERIC",
        "mark": "",
        "findings": [],
    }


def test_a_preview_of_a_loaded_kpi_changes_no_table_no_audit_row_and_no_lake_object(place: Path) -> None:
    shop = shop_source(place)
    warehouse_url = f"duckdb:///{place / 'wh.duckdb'}"
    (manifest,) = run(shop, place, run_id="20240302T000000000Z-aaaaaa")
    warehouse = open_warehouse(warehouse_url)
    load_manifest(LocalStore(place / "lake"), key_of(manifest), warehouse)
    warehouse.close()

    def state() -> tuple[object, ...]:
        with duckdb.connect(str(place / "wh.duckdb"), read_only=True) as db:
            tables = db.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
            rows = db.execute("SELECT * FROM daily ORDER BY ALL").fetchall()
            audit = db.execute(
                "SELECT * REPLACE (loaded_at::VARCHAR AS loaded_at) FROM _kpi_loads ORDER BY ALL"
            ).fetchall()
        lake = sorted(str(p.relative_to(place / "lake")) for p in (place / "lake").rglob("*"))
        return tables, rows, audit, lake

    before = state()
    for date_text in ("2024-03-01", "2024-03-02"):
        code, data = preview_json(place, shop, "daily", "--date", date_text)
        assert code == 0, data
        assert data["notes"] == []  # the table exists: its types are the warehouse's own
    assert state() == before

    retyped = HEADER.replace("orders: {type: INT64", "orders: {type: FLOAT64")
    make_kpi(place / "q", "daily", retyped, SQL)
    code, data = preview_json(place, shop, "daily", "--date", "2024-03-01")
    assert code == 1
    (finding,) = data["findings"]
    assert finding["column"] == "orders"
    assert finding["message"] == "the load would stop: column 'orders' is INT64 in the table but FLOAT64 in the export"
    assert "restore it in the SELECT or its type in the header" in finding["fix"]
    orders_column = next(c for c in data["columns"] if c["name"] == "orders")
    assert (orders_column["warehouse_type"], orders_column["declared"], orders_column["mark"]) == (
        "BIGINT",
        "FLOAT64",
        "✗",
    )
    assert state() == before


@pytest.mark.mysql
def test_preview_honours_the_limit_and_stops_the_query_on_the_server(mysql_db: MySqlServer, place: Path) -> None:
    header = "grain: none\ncolumns:\n  n: {type: INT64}\n  pad: {type: STRING}"
    make_kpi(place / "q", "huge", header, "SELECT seq AS n, REPEAT('x', 100) AS pad FROM seq_1_to_100000000 AS marker")
    started = time.monotonic()
    code, data = preview_json(place, url(mysql_db), "huge", "--limit", "5")
    assert time.monotonic() - started < 10  # 100M rows would take minutes to read
    assert code == 0
    assert [row["n"] for row in data["rows"]] == [1, 2, 3, 4, 5]
    assert (data["rows_shown"], data["more_rows"], data["limit"]) == (5, True, 5)

    def running() -> list[tuple[Any, ...]]:
        with mysql_db.connect() as admin, admin.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE info LIKE '%seq_1_to_100000000 AS marker%' "
                "AND info NOT LIKE '%processlist%'"
            )
            return list(cursor.fetchall())

    deadline = time.monotonic() + 5
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running() == []  # the dropped connection stopped the query: it was not left scanning

    code, data = preview_json(place, url(mysql_db), "huge", "--limit", "0")
    assert (code, data["rows"], data["more_rows"]) == (0, [], True)
    assert [c["source_type"] for c in data["columns"]] == ["BIGINT UNSIGNED", "VARCHAR"]


@pytest.mark.mysql
def test_preview_reports_a_type_mismatch_and_a_zero_date_with_the_fixing_header_change(
    mysql_db: MySqlServer, place: Path
) -> None:
    run_sql(
        mysql_db,
        "SET SESSION sql_mode = ''",
        "CREATE TABLE shipments (id INT, created_at DATETIME, shipped_on DATE, weight DECIMAL(8,3))",
        "INSERT INTO shipments VALUES (1, '2024-03-01 10:00', '2024-03-02', 1.250),"
        " (2, '2024-03-01 11:00', '0000-00-00', 0.400), (3, '2024-03-01 12:00', '2024-03-04', 12.000)",
    )
    header = """
grain: day
time_column: day
columns:
  day:        {type: DATE}
  shipped_on: {type: DATE}
  weight:     {type: INT64}
"""
    sql = """
SELECT DATE(created_at) AS day, shipped_on, weight FROM shipments
WHERE created_at >= :start AND created_at < :end ORDER BY id
"""
    make_kpi(place / "q", "shipments", header, sql)
    result = preview(place, url(mysql_db), "shipments", "--date", "2024-03-01")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert cells(lines, "shipped_on") == ["shipped_on", "DATE", "date32[day]", "DATE", "DATE", "✗"]
    assert cells(lines, "weight") == ["weight", "DECIMAL(8,3)", "int64", "BIGINT", "INT64", "✗"]
    assert "✗ weight: DECIMAL(8,3) has 3 decimal places; INT64 would drop them" in lines
    assert "  fix: declare NUMERIC → `weight: {type: NUMERIC}`" in lines
    assert "✗ shipped_on: row 2: zero date '0000-00-00' (zero dates in 1 of the 3 rows shown)" in lines
    assert (
        "  fix: set `zero_dates: null` on column shipped_on to load NULL instead, or filter it in the SQL"
        " → `shipped_on: {type: DATE, zero_dates: null}`"
    ) in lines
    assert "the export or the load would stop (2 problem(s) above)" in lines
    # the rows are still shown, the refused columns as the source returned them
    assert cells(lines, "2024-03-01")[1:] == ["2024-03-02", "1.250"]
    assert "│ 2024-03-01 │ 0000-00-00 │ 0.400  │" in lines

    make_kpi(place / "q", "shipments", header.replace("INT64", "NUMERIC") + "zero_dates: null\n", sql)
    code, data = preview_json(place, url(mysql_db), "shipments", "--date", "2024-03-01")
    assert code == 0
    assert [row["shipped_on"] for row in data["rows"]] == ["2024-03-02", None, "2024-03-04"]
    assert [row["weight"] for row in data["rows"]] == ["1.25", "0.4", "12"]
    assert data["findings"] == [
        {
            "column": "shipped_on",
            "severity": "note",
            "message": "zero dates in 1 of the 3 rows shown, loaded as NULL",
            "fix": "as the header says (`zero_dates: null`); the manifest counts them",
        }
    ]


QUIRKS_TABLE = (
    "CREATE TABLE quirks (id INT, flag TINYINT(1), ubig BIGINT UNSIGNED, raw VARBINARY(8), doc JSON)",
    "INSERT INTO quirks VALUES (1, 1, 1, 'ok', '{}'), (2, 2, 18446744073709551615, x'c328', '[1]')",
)


@pytest.mark.mysql
@pytest.mark.parametrize(
    ("declared", "message", "fix"),
    [
        ("flag: {type: BOOL}", "row 2: value 2 is neither 0 nor 1", "declare INT64 to keep every value"),
        (
            "ubig: {type: INT64}",
            "BIGINT UNSIGNED → INT64, row 2: value '18446744073709551615' does not fit INT64 exactly",
            "declare NUMERIC to hold values above INT64",
        ),
        (
            "raw: {type: STRING}",
            "row 2: invalid UTF-8 b'\\xc3(' (invalid UTF-8 in 1 of the 2 rows shown)",
            "set `invalid_utf8: null` on column raw to load NULL instead, or declare it BYTES"
            " → `raw: {type: STRING, invalid_utf8: null}`",
        ),
        (
            "doc: {type: DATE}",
            "TEXT cannot be loaded as DATE without changing values",  # MariaDB's JSON is LONGTEXT
            "declare STRING → `doc: {type: STRING}`",
        ),
    ],
)
def test_each_quirk_is_reported_with_its_row_and_fix(
    mysql_db: MySqlServer, place: Path, declared: str, message: str, fix: str
) -> None:
    run_sql(mysql_db, *QUIRKS_TABLE)
    column = declared.split(":")[0]
    header = f"grain: none\ncolumns:\n  id: {{type: INT64}}\n  {declared}"
    make_kpi(place / "q", "quirky", header, f"SELECT id, {column} FROM quirks ORDER BY id")
    code, data = preview_json(place, url(mysql_db), "quirky")
    assert code == 1
    (finding,) = data["findings"]
    assert finding["column"] == column
    assert finding["severity"] == "stop"
    assert finding["message"].startswith(message)
    assert finding["fix"] == fix
    assert [row["id"] for row in data["rows"]] == [1, 2]  # the other columns still show


@pytest.mark.mysql
def test_rows_outside_the_partition_are_reported(mysql_db: MySqlServer, place: Path) -> None:
    orders(mysql_db)
    make_kpi(place / "q", "leaky", ORDERS_HEADER, ORDERS_SQL.replace("AND created_at < :end", "OR created_at < :end"))
    code, data = preview_json(place, url(mysql_db), "leaky", "--date", "2024-03-01")
    assert code == 1
    (finding,) = data["findings"]
    assert finding["column"] == "day"
    assert "day = datetime.date(2024, 3, 2) lies outside the exported range" in finding["message"]
    assert "filter the query with `day >= :start AND day < :end`" in finding["fix"]


@pytest.mark.mysql
def test_a_slow_query_is_stopped_at_the_kpi_timeout(mysql_db: MySqlServer, place: Path) -> None:
    header = "grain: none\ntimeout: 1s\ncolumns:\n  n: {type: INT64}"
    make_kpi(place / "q", "slow", header, "SELECT COUNT(*) AS n FROM seq_1_to_1000000000 AS s WHERE MD5(s.seq) = ''")
    started = time.monotonic()
    result = preview(place, url(mysql_db), "slow")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert "timeout (0:00:01)" in result.output


@pytest.mark.mysql
def test_the_library_reads_in_small_batches_inside_the_read_only_session(mysql_db: MySqlServer, place: Path) -> None:
    run_sql(mysql_db, "CREATE TABLE t (n INT)", "INSERT INTO t SELECT seq FROM seq_1_to_50000")
    kpi = make_kpi(place / "q", "t", "grain: none\ncolumns:\n  n: {type: INT64}", "SELECT n FROM t ORDER BY n")
    source = MySqlSource(url(mysql_db))
    result = preview_kpi(kpi, None, source=source, limit=3)
    assert source.batch_rows == 4  # the first batch arrives after a few rows, not after 16,384
    assert result.rows.column("n").to_pylist() == [1, 2, 3]
    assert result.rows.schema.field("n").type == ARROW_TYPES[BqType.INT64]
    assert result.more
    assert result.ok
    assert result.warehouse == ""
    # the source was left cleanly: the same source previews again
    assert preview_kpi(kpi, None, source=source, limit=50_000 // 5).rows.num_rows == 10_000
    with pytest.raises(UsageError, match="outside 0…10,000"):
        preview_kpi(kpi, None, source=source, limit=10_001)


def test_preview_on_the_embedded_duckdb_source(place: Path) -> None:
    shop = shop_source(place)
    make_kpi(place / "q", "daily", HEADER, SQL)
    code, data = preview_json(place, shop, "daily", "--date", "2024-03-01")
    assert code == 0
    assert sorted(data["rows"], key=lambda r: r["status"]) == [
        {"day": "2024-03-01", "status": "paid", "orders": 2, "sales": "11.75"},
        {"day": "2024-03-01", "status": "refunded", "orders": 1, "sales": "3"},
    ]
    types = {c["name"]: (c["source_type"], c["arrow_type"], c["warehouse_type"]) for c in data["columns"]}
    assert types["sales"] == ("DECIMAL(38,2)", "decimal128(38, 9)", "DECIMAL(38,9)")
    assert types["day"] == ("DATE", "date32[day]", "DATE")
    result = preview(place, shop, "daily", "--date", "2024-03-01")
    header = next(line for line in result.output.splitlines() if line.startswith("┃ column"))
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "column",
        "DuckDB result",
        "Arrow (lake)",
        "DuckDB table",
        "declared",
        "",
    ]
    kpi = make_kpi(place / "q", "daily", HEADER, SQL)
    found = preview_kpi(kpi, days("2024-03-02", 1)[0], source=open_source(shop))
    assert found.rows.to_pylist() == [{"day": date(2024, 3, 2), "status": "paid", "orders": 1, "sales": Decimal("7")}]
    assert found.findings == []
    assert found.ok
