"""The embedded demo (DuckDB) runs the MySQL functions analysts use with MariaDB's results: each expression runs
on the real MariaDB and through the demo source's render and connection, over edge values (week modes 0/1/3,
year boundaries, NULLs, month ends, the leap day), and the results must be equal."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pymysql
import pytest
import sqlglot

from pipeline.core.mysql_on_duckdb import to_duckdb
from pipeline.core.render import Rendered
from pipeline.errors import SourceError
from pipeline.sources.duckdb import DuckDbSource
from tests.conftest import MySqlServer

# Mondays, Sundays, the days around New Year in years whose 1 January falls on each weekday, the leap day,
# month ends, a time of day, and NULL.
MOMENTS = [
    "2024-01-01 00:00:00", "2023-01-01 00:00:00", "2024-12-29 00:00:00", "2024-12-30 00:00:00",
    "2024-12-31 23:59:59", "2021-01-03 00:00:00", "2020-12-31 00:00:00", "2024-02-29 12:30:45",
    "2023-02-28 00:00:00", "2024-03-31 00:00:00", "2019-12-30 00:00:00", "2027-01-01 00:00:00",
    "2026-01-04 07:05:09", "2022-01-02 00:00:00", "2025-12-28 00:00:00", None,
]  # fmt: skip
# …and every day from 25 December to 7 January of eleven years: 1 January on every weekday, leap years or not.
MOMENTS += [
    (datetime(year, 12, 25, 18) + timedelta(days=n)).isoformat(sep=" ") for year in range(2017, 2028) for n in range(14)
]

EXPRESSIONS = [
    "DATE_FORMAT(d, '%Y-%m-%d %H:%i:%s')",
    "DATE_FORMAT(d, '%a %b %e %c %j %W %M %y %w')",
    "DATE_FORMAT(d, '%x-W%v')",
    "DATE_FORMAT(d, '%X-%V %U %u')",
    "DATE_FORMAT(d, '%D %l %p')",
    "DATE_FORMAT(d, '%f %r %T %k %h %I %S %%')",
    "YEARWEEK(d)",
    "YEARWEEK(d, 0)",
    "YEARWEEK(d, 1)",
    "YEARWEEK(d, 3)",
    "WEEK(d)",
    "WEEK(d, 0)",
    "WEEK(d, 1)",
    "WEEK(d, 3)",
    "WEEKDAY(d)",
    "DAYOFWEEK(d)",
    "LAST_DAY(d)",
    "DATE_ADD(d, INTERVAL 1 MONTH)",
    "DATE_SUB(d, INTERVAL 1 YEAR)",
    "DATE_ADD(d, INTERVAL 1 DAY)",
    "DATE_SUB(d, INTERVAL 90 MINUTE)",
    "TIMESTAMPDIFF(DAY, d, '2024-03-31 00:00:00')",
    "TIMESTAMPDIFF(HOUR, d, '2024-03-31 12:00:00')",
    "TIMESTAMPDIFF(MINUTE, d, '2024-03-31 12:00:00')",
    "TIMESTAMPDIFF(SECOND, '2024-02-29 12:30:46', d)",
    "TIMESTAMPDIFF(WEEK, d, '2024-03-31 00:00:00')",
    "TIMESTAMPDIFF(MONTH, d, '2024-03-31 00:00:00')",
    "TIMESTAMPDIFF(MONTH, '2024-01-31 10:00:00', d)",
    "TIMESTAMPDIFF(QUARTER, d, '2024-03-31 00:00:00')",
    "TIMESTAMPDIFF(YEAR, '2024-02-29 00:00:00', d)",
    "STR_TO_DATE(DATE_FORMAT(d, '%d/%m/%Y'), '%d/%m/%Y')",
    "IFNULL(DATE(d), DATE('1970-01-01'))",
    "IFNULL(d, 'none')",  # MySQL's result is text: the datetime as text, or the fallback
    "IFNULL(DATE(d), 'n/a')",
    "COALESCE(YEAR(d), NULL, '')",
    "IFNULL(CAST(DAYOFYEAR(d) / 4 AS DECIMAL(8, 2)), 'none')",
    "CONCAT(IFNULL(d, 'never'), ' JST')",
    "IFNULL(YEAR(d), '0') + 1",  # a fallback that reads as a number stays one: arithmetic on it works
    "IF(d IS NULL, 'none', 'some')",
    "CONCAT_WS('-', 'a', DATE(d), 'b')",
    "JSON_EXTRACT(CONCAT('{\"n\": ', YEAR(d), '}'), '$.n')",
    "JSON_EXTRACT('{\"a\": {\"b\": [1, 2]}}', '$.a.b[1]')",
]
AGGREGATES = [
    "GROUP_CONCAT(DATE(d) ORDER BY d)",
    "GROUP_CONCAT(DATE(d) ORDER BY d DESC SEPARATOR ';')",
    "GROUP_CONCAT(DISTINCT YEAR(d) ORDER BY YEAR(d))",
]


@pytest.fixture(scope="module")
def maria(mysql_server: MySqlServer) -> Iterator[pymysql.cursors.Cursor]:
    with mysql_server.connect() as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE moments (id INT PRIMARY KEY, d DATETIME NULL)")
        cursor.executemany("INSERT INTO moments VALUES (%s, %s)", list(enumerate(MOMENTS)))
        yield cursor


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DuckDbSource:
    path = tmp_path_factory.mktemp("demo") / "moments.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE moments (id INTEGER PRIMARY KEY, d TIMESTAMP)")
        db.executemany("INSERT INTO moments VALUES (?, ?)", list(enumerate(MOMENTS)))
    return DuckDbSource(f"duckdb:///{path}")


def _same(value: object) -> object:
    """One spelling for equal values of the two drivers (MariaDB gives text for some, DuckDB typed values)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if value.time() != time() else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | float):
        return str(int(value)) if value == int(value) else str(value)
    return None if value is None else str(value)


def _on_maria(cursor: pymysql.cursors.Cursor, sql: str) -> list[object]:
    cursor.execute(sql)  # no arguments: pymysql leaves % alone
    return [_same(row[0]) for row in cursor.fetchall()]


def _on_demo(source: DuckDbSource, sql: str) -> list[object]:
    rendered = Rendered(to_duckdb(sqlglot.parse_one(sql, read="mysql")), {}, "duckdb")
    with source.stream(rendered, timeout=timedelta(seconds=30), zone=ZoneInfo("UTC"), where="t") as result:
        values = [value for batch in result.batches for value in batch[0].to_pylist()]
    return [_same(v) for v in values]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_demo_gives_mariadbs_results(maria: pymysql.cursors.Cursor, demo: DuckDbSource, expression: str) -> None:
    sql = f"SELECT {expression} AS x FROM moments ORDER BY id"
    expected = _on_maria(maria, sql)
    assert _on_demo(demo, sql) == expected
    assert len(set(expected)) > 1 or expression.startswith("JSON_EXTRACT('")  # the edge values tell modes apart


@pytest.mark.parametrize("expression", AGGREGATES)
def test_demo_aggregates_like_mariadb(maria: pymysql.cursors.Cursor, demo: DuckDbSource, expression: str) -> None:
    sql = f"SELECT {expression} AS x FROM moments"
    assert _on_demo(demo, sql) == _on_maria(maria, sql)


def test_week_modes_differ_at_the_year_boundary(maria: pymysql.cursors.Cursor, demo: DuckDbSource) -> None:
    sql = "SELECT CONCAT_WS(' ', WEEK(d, 0), WEEK(d, 1), WEEK(d, 3), YEARWEEK(d, 3)) AS x FROM moments WHERE id = 1"
    assert _on_demo(demo, sql) == _on_maria(maria, sql) == ["1 0 52 202252"]  # Sunday 2023-01-01


def test_a_function_the_demo_cannot_run_is_named_without_a_binder_error(demo: DuckDbSource) -> None:
    rendered = Rendered("SELECT sec_to_time(3600) AS x", {}, "duckdb")
    stream = demo.stream(rendered, timeout=timedelta(seconds=30), zone=ZoneInfo("UTC"), where="k")
    with pytest.raises(SourceError) as caught, stream:
        pass
    assert caught.value.message.startswith("SEC_TO_TIME() as the query calls it does not run on the embedded DuckDB")
    assert "--env ENV" in caught.value.hint
    assert str(Path(demo.path).name) not in caught.value.message  # names the function, not the file


GROUPED = """/*---
name: statuses
description: the statuses of the day's orders
grain: day
time_column: day
columns:
  day: {type: DATE}
  statuses: {type: STRING}
  sorted: {type: STRING}
---*/
SELECT DATE(created_at) AS day,
       GROUP_CONCAT(DISTINCT status) AS statuses,
       GROUP_CONCAT(status ORDER BY status SEPARATOR ';') AS sorted
FROM orders
WHERE created_at >= :start AND created_at < :end
GROUP BY 1
"""


def test_kpi_check_warns_where_group_concat_has_no_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The order MySQL, MariaDB and the demo list values in is each their own: no rewrite can agree, so the check
    names the call (a warning: the query is valid MySQL) and the form that does agree; the ordered call passes."""
    import json
    import shutil

    from click.testing import CliRunner

    from pipeline.cli import cli
    from tests.conftest import ROOT

    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "statuses.sql").write_text(GROUPED, encoding="utf-8")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KPI_QUERIES", raising=False)
    result = CliRunner().invoke(cli, ["check", "--json"])
    assert result.exit_code == 0, result.output
    (warning,) = json.loads(result.output)["warnings"]
    assert (warning["rule"], warning["path"], warning["line"], warning["col"]) == (
        "group-concat-unordered",
        "queries/statuses.sql",
        12,
        8,
    )
    assert warning["message"].startswith("GROUP_CONCAT() without ORDER BY lists its values in whatever order")
    assert warning["hint"] == "write the order inside the call: GROUP_CONCAT(x ORDER BY x SEPARATOR ',')"
    shown = CliRunner().invoke(cli, ["check"])
    assert "queries/statuses.sql:12:8: warning: GROUP_CONCAT() without ORDER BY" in shown.output
