"""Rendering runs for real: every example KPI on MariaDB (pymysql, bound values) and on DuckDB (transpiled),
with the same rows from both; values are bound by the driver, so `%` and quotes survive."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
import sqlglot

from pipeline import catalog
from pipeline.core.intervals import interval_containing
from pipeline.core.parse import parse_kpi
from pipeline.core.render import bind_values, inline_mysql, mysql_literal, render_duckdb, render_mysql
from pipeline.core.spec import Kpi
from pipeline.errors import RenderError
from tests.conftest import ROOT, MySqlServer, demo_schema_statements

USERS = [
    (1, "aoi@example.com", "JP", "free", datetime(2024, 1, 5, 10, 0)),
    (2, "ben@example.com", "US", "pro", datetime(2024, 1, 6, 11, 0)),
    (3, "chie@example.com", "JP", "pro", datetime(2024, 2, 1, 9, 0)),
]
ORDERS = [
    (1, 1, "paid", Decimal("1200.50"), datetime(2024, 3, 1, 0, 0, 0)),  # first instant of the JST day
    (2, 2, "paid", Decimal("80000.00"), datetime(2024, 3, 1, 9, 15)),
    (3, 3, "paid_partially", Decimal("55000.25"), datetime(2024, 3, 1, 9, 45)),
    (4, 1, "refunded", Decimal("99999.99"), datetime(2024, 3, 1, 23, 59, 59)),  # last second of the day
    (5, 2, "paid", Decimal("10.00"), datetime(2024, 3, 2, 0, 0, 0)),  # next day: never in 2024-03-01
    (6, 3, "paid", Decimal("70000.00"), datetime(2024, 2, 29, 23, 59, 59)),  # previous day
]
EXAMPLE_DATES = {
    "daily_sales": "2024-03-01",
    "hourly_orders": "2024-03-01T09",
    "monthly_active_buyers": "2024-03",
    "large_orders": "2024-03-01",
    "users_by_plan": None,
}


@pytest.fixture(scope="module")
def examples() -> dict[str, Kpi]:
    found = catalog.load([ROOT / "queries"])
    assert found.ok, found.problems
    return found.kpis


@pytest.fixture
def shop_mysql(mysql_db: MySqlServer) -> Iterator[Any]:
    connection = mysql_db.connect(autocommit=True)
    with connection.cursor() as cursor:
        for statement in demo_schema_statements():
            cursor.execute(statement)
        cursor.executemany("INSERT INTO users VALUES (%s, %s, %s, %s, %s)", USERS)
        cursor.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", ORDERS)
    yield connection
    connection.close()


@pytest.fixture
def shop_duckdb() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    for statement in demo_schema_statements():
        connection.execute(sqlglot.transpile(statement, read="mysql", write="duckdb")[0])
    connection.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", USERS)
    connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", ORDERS)
    yield connection
    connection.close()


def _values(kpi: Kpi, when: str | None) -> dict[str, Any]:
    interval = (
        interval_containing(kpi.grain, kpi.zone, datetime.fromisoformat(when + "-01" if len(when) == 7 else when))
        if when
        else None
    )
    return bind_values(kpi, interval)


def _mysql_rows(connection: Any, kpi: Kpi, when: str | None) -> tuple[list[str], list[tuple[Any, ...]]]:
    rendered = render_mysql(kpi.query, _values(kpi, when))
    with connection.cursor() as cursor:
        cursor.execute(rendered.sql, rendered.values)
        names = [d[0] for d in cursor.description]
        return names, sorted(cursor.fetchall())


def _duckdb_rows(
    connection: duckdb.DuckDBPyConnection, kpi: Kpi, when: str | None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    rendered = render_duckdb(kpi.query, _values(kpi, when))
    result = connection.execute(rendered.sql, rendered.values)
    names = [d[0] for d in result.description]
    return names, sorted(result.fetchall())


@pytest.mark.mysql
@pytest.mark.parametrize("name", sorted(EXAMPLE_DATES))
def test_every_example_returns_its_declared_columns_and_the_same_rows_on_mysql_and_duckdb(
    examples: dict[str, Kpi], shop_mysql: Any, shop_duckdb: duckdb.DuckDBPyConnection, name: str
) -> None:
    kpi = examples[name]
    mysql_names, mysql_rows = _mysql_rows(shop_mysql, kpi, EXAMPLE_DATES[name])
    duck_names, duck_rows = _duckdb_rows(shop_duckdb, kpi, EXAMPLE_DATES[name])
    assert mysql_names == [c.name for c in kpi.columns]
    assert duck_names == mysql_names
    assert mysql_rows, "the fixture data covers every example"
    assert duck_rows == mysql_rows


@pytest.mark.mysql
def test_daily_sales_counts_exactly_the_jst_day(examples: dict[str, Kpi], shop_mysql: Any) -> None:
    _, rows = _mysql_rows(shop_mysql, examples["daily_sales"], "2024-03-01")
    assert rows == [
        (date(2024, 3, 1), "paid", 2, Decimal("81200.50")),
        (date(2024, 3, 1), "paid_partially", 1, Decimal("55000.25")),
        (date(2024, 3, 1), "refunded", 1, Decimal("99999.99")),
    ]


@pytest.mark.mysql
def test_like_percent_and_params_survive_pyformat(examples: dict[str, Kpi], shop_mysql: Any) -> None:
    # large_orders filters `status LIKE 'paid%'` and `amount >= :min_amount` (default 50000).
    _, rows = _mysql_rows(shop_mysql, examples["large_orders"], "2024-03-01")
    assert rows == [(date(2024, 3, 1), "JP", 1, Decimal("55000.25")), (date(2024, 3, 1), "US", 1, Decimal("80000.00"))]


@pytest.mark.mysql
def test_percent_signs_quotes_and_pyformat_lookalikes_reach_mysql_unchanged(shop_mysql: Any) -> None:
    text = (
        "/*---\ngrain: none\nparams:\n  prefix: {type: STRING}\ncolumns:\n  x: {type: STRING}\n---*/\n"
        "SELECT CONCAT(:prefix, '%s', '100%', '%(start)s') AS x -- 50% done\n"
    )
    kpi, problems = parse_kpi("q.sql", text.encode(), "q")
    assert problems == []
    assert kpi is not None
    rendered = render_mysql(kpi.query, bind_values(kpi, None, {"prefix": "it's %d "}))
    with shop_mysql.cursor() as cursor:
        cursor.execute(rendered.sql, rendered.values)
        assert cursor.fetchall() == (("it's %d %s100%%(start)s",),)


def test_inline_form_is_for_pasting_and_quotes_strings() -> None:
    text = (
        '/*---\ngrain: none\nparams:\n  name: {type: STRING, default: "O\'Brien"}\n'
        "columns:\n  x: {type: STRING}\n---*/\n"
        "SELECT :name AS x\n"
    )
    kpi, _ = parse_kpi("q.sql", text.encode(), "q")
    assert kpi is not None
    assert inline_mysql(kpi.query, bind_values(kpi, None)) == "SELECT 'O''Brien' AS x"


@pytest.mark.parametrize(
    "value",
    [
        "O'Brien",
        "a\\b\\'c",
        "x\ny",
        "tab\tcr\rnul\x00sub\x1abs\x08bell\x07",
        "日本語",
        "",
        0,
        -12,
        2**70,
        Decimal("1.50"),
        Decimal("-0.000001"),
        Decimal("1E+3"),
        1.5,
        1e20,
        -0.1,
        True,
        False,
        date(2024, 3, 1),
        datetime(2024, 3, 1),
        datetime(2024, 3, 1, 9, 30, 15),
        datetime(2024, 3, 1, 0, 0, 0, 5),
        datetime(2024, 3, 1, tzinfo=ZoneInfo("Asia/Tokyo")),
        None,
    ],
)
def test_a_pasted_literal_is_what_sqlglot_writes_for_mysql(value: object) -> None:
    assert mysql_literal(value) == sqlglot.exp.convert(value).sql(dialect="mysql")


def test_bound_interval_is_naive_wall_clock_in_the_source_timezone(tmp_path: Path) -> None:
    text = (
        "/*---\ntime_column: d\nsource_timezone: UTC\ncolumns:\n  d: {type: DATE}\n---*/\n"
        "SELECT DATE(created_at) AS d FROM orders WHERE created_at >= :start AND created_at < :end\n"
    )
    kpi, _ = parse_kpi("q.sql", text.encode(), "q")
    assert kpi is not None
    values = bind_values(kpi, interval_containing(kpi.grain, kpi.zone, datetime(2024, 3, 1)))
    assert values == {"start": datetime(2024, 2, 29, 15), "end": datetime(2024, 3, 1, 15)}


def test_parameter_errors_name_the_kpi_and_the_fix(examples: dict[str, Kpi]) -> None:
    kpi = examples["large_orders"]
    interval = interval_containing(kpi.grain, kpi.zone, datetime(2024, 3, 1))
    with pytest.raises(RenderError) as unknown:
        bind_values(kpi, interval, {"min_amout": "1"})
    assert (unknown.value.where, unknown.value.message, unknown.value.hint) == (
        "large_orders",
        "unknown parameter min_amout",
        "declared parameters: min_amount",
    )
    with pytest.raises(RenderError) as invalid:
        bind_values(kpi, interval, {"min_amount": "lots"})
    assert invalid.value.message == "parameter min_amount: 'lots' is not a valid NUMERIC"
    assert bind_values(kpi, interval, {"min_amount": "100.5"})["min_amount"] == Decimal("100.5")
