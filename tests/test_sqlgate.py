"""The SQL gate lets every read-only query shape through and finds placeholders and output columns."""

from __future__ import annotations

import pytest

from pipeline.core.sqlgate import gate


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a AS x FROM t",
        "WITH recent AS (SELECT * FROM orders) SELECT id AS x FROM recent",
        "SELECT id AS x FROM orders UNION ALL SELECT id FROM archived_orders",
        "(SELECT id AS x FROM orders)",
        "SELECT x FROM (SELECT *, 1 AS x FROM orders) AS sub",
        "SELECT /*+ MAX_EXECUTION_TIME(1000) */ id AS x FROM orders",
        "SELECT id AS x FROM orders;",
        "SELECT id AS x FROM orders; -- trailing comment",
        "SELECT id AS x FROM orders # MySQL comment\n",
        "SELECT 'SLEEP(1)' AS x",  # a forbidden name inside a string is just text
        "SELECT 'x; DROP TABLE t' AS x",
        "SELECT sleep_minutes AS x FROM t",  # a column that merely starts like a forbidden function
        "SELECT t.x FROM t WHERE note LIKE '%INTO%'",
    ],
)
def test_read_only_queries_pass(sql: str) -> None:
    query, problems = gate("q.sql", sql, 1)
    assert problems == []
    assert query is not None
    assert [c.name for c in query.columns] == ["x"]


def test_trailing_semicolon_is_not_sent_to_the_driver() -> None:
    query, _ = gate("q.sql", "SELECT 1 AS x;\n", 1)
    assert query is not None
    assert query.sql == "SELECT 1 AS x"


def test_placeholders_are_found_in_order_with_offsets_and_not_inside_strings() -> None:
    sql = "SELECT a AS x FROM t WHERE d >= :start AND d < :end AND c = :country AND s = ':not_one' AND t > '10:30'"
    query, problems = gate("q.sql", sql, 1)
    assert problems == []
    assert query is not None
    assert [p.name for p in query.placeholders] == ["start", "end", "country"]
    assert all(sql[p.start : p.end] == f":{p.name}" for p in query.placeholders)
    assert query.parameter_names == {"start", "end", "country"}


def test_union_columns_are_named_by_the_first_select() -> None:
    query, problems = gate("q.sql", "SELECT a AS x, b AS y FROM t UNION SELECT c, d FROM u", 1)
    assert problems == []
    assert query is not None
    assert [c.name for c in query.columns] == ["x", "y"]


def test_positions_are_file_positions() -> None:
    _, problems = gate("q.sql", "SELECT a AS x\nFROM t\nWHERE SLEEP(1) = 0", 10)
    assert [(str(p.location), p.rule) for p in problems] == [("q.sql:12:7", "sql-forbidden-function")]


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT id AS x FROM orders FOR SHARE", "sql-locking-read"),
        ("SELECT id AS x FROM orders WHERE id IN (SELECT id FROM t FOR UPDATE)", "sql-locking-read"),
        ("SELECT id AS x FROM orders /*M! , SLEEP(5) */", "sql-executable-comment"),
        ("SELECT RELEASE_ALL_LOCKS() AS x", "sql-forbidden-function"),
        ("SELECT Sleep (1) AS x", "sql-forbidden-function"),
        ("SELECT MASTER_POS_WAIT('f', 4) AS x", "sql-forbidden-function"),
        ("SELECT 1 AS x; SELECT 2 AS x", "sql-multiple-statements"),
        ("SELECT t.* FROM t", "sql-select-star"),
        ("SELECT 1 AS x, 2", "sql-unnamed-column"),
        ("SELECT a AS x, b AS X FROM t", "sql-duplicate-column"),
        ("SELECT 'unterminated AS x", "sql-syntax"),
        ("SHOW TABLES", "sql-not-select"),
        ("LOCK TABLES t READ", "sql-not-select"),
        ("REPLACE INTO t VALUES (1)", "sql-not-select"),
    ],
)
def test_refusals(sql: str, rule: str) -> None:
    _, problems = gate("q.sql", sql, 1)
    assert rule in [p.rule for p in problems]
    assert all(p.hint for p in problems)
