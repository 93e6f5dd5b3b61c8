"""`kpi check` refuses what sqlglot reads as MySQL but MySQL refuses — checked side by side on the real MariaDB:
the refused form fails there (or is MariaDB-only), and the MySQL form the hint gives runs."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest

from pipeline.core.sqlgate import gate
from tests.conftest import MySqlServer

# (refused SQL, the MySQL form, whether MariaDB 10.11 runs the refused form too — MySQL 8 / Aurora does not)
CASES = [
    ("SELECT NOW()::date AS d", "SELECT CAST(NOW() AS DATE) AS d", False),
    ("SELECT 'a' ILIKE 'A' AS b", "SELECT 'a' LIKE 'A' AS b", False),
    ("SELECT 'a' || 'b' AS s", "SELECT CONCAT('a', 'b') AS s", True),  # runs, but is 0: a logical OR
    ("SELECT DATE_TRUNC('month', NOW()) AS m", "SELECT DATE_FORMAT(NOW(), '%Y-%m-01') AS m", False),
    ("SELECT STRFTIME(NOW(), '%Y') AS y", "SELECT DATE_FORMAT(NOW(), '%Y') AS y", False),
    ("SELECT STRPTIME('2024-01-02', '%Y-%m-%d') AS d", "SELECT STR_TO_DATE('2024-01-02', '%Y-%m-%d') AS d", False),
    ("SELECT TO_DATE('2024-01-02') AS d", "SELECT STR_TO_DATE('2024-01-02', '%Y-%m-%d') AS d", False),
    ("SELECT TO_CHAR(NOW(), 'YYYY') AS y", "SELECT DATE_FORMAT(NOW(), '%Y') AS y", True),
    ("SELECT TRY_CAST('1' AS SIGNED) AS n", "SELECT CAST('1' AS SIGNED) AS n", False),
    ("SELECT STRING_AGG('a', ',') AS s", "SELECT GROUP_CONCAT('a' SEPARATOR ',') AS s", False),
    ("SELECT LISTAGG('a', ',') AS s", "SELECT GROUP_CONCAT('a' SEPARATOR ',') AS s", False),
    ("SELECT ARRAY_AGG(1) AS s", "SELECT GROUP_CONCAT(1 SEPARATOR ',') AS s", False),
    ("SELECT EPOCH(NOW()) AS e", "SELECT UNIX_TIMESTAMP(NOW()) AS e", False),
    ("SELECT DATE_PART('year', NOW()) AS y", "SELECT EXTRACT(YEAR FROM NOW()) AS y", False),
    ("SELECT DATE_DIFF('day', NOW(), NOW()) AS d", "SELECT TIMESTAMPDIFF(DAY, NOW(), NOW()) AS d", False),
    ("SELECT DATEADD(day, 1, NOW()) AS d", "SELECT DATE_ADD(NOW(), INTERVAL 1 DAY) AS d", False),
    ("SELECT NVL(NULL, 1) AS n", "SELECT IFNULL(NULL, 1) AS n", True),
    ("SELECT IIF(1 = 1, 2, 3) AS n", "SELECT IF(1 = 1, 2, 3) AS n", False),
    ("SELECT COUNT_IF(1 = 1) AS n", "SELECT SUM(1 = 1) AS n", False),
    ("SELECT REGEXP_MATCHES('ab', 'a') AS b", "SELECT 'ab' REGEXP 'a' AS b", False),
    (
        "SELECT SPLIT_PART('a,b', ',', 2) AS s",
        "SELECT SUBSTRING_INDEX(SUBSTRING_INDEX('a,b', ',', 2), ',', -1) AS s",
        False,
    ),
    ("SELECT MEDIAN(1) AS m", "SELECT 1 AS m", False),
    ("SELECT LEN('ab') AS n", "SELECT CHAR_LENGTH('ab') AS n", False),
    ("SELECT GETDATE() AS d", "SELECT NOW() AS d", False),
    ("SELECT TODAY() AS d", "SELECT CURDATE() AS d", False),
    ("SELECT SAFE_DIVIDE(1, 0) AS q", "SELECT 1 / NULLIF(0, 0) AS q", False),
    ("SELECT STARTS_WITH('ab', 'a') AS b", "SELECT 'ab' LIKE 'a%' AS b", False),
    ("SELECT TRUNC(1.5) AS n", "SELECT TRUNCATE(1.5, 0) AS n", False),
    (
        "SELECT a FROM (SELECT 1 a) x FULL OUTER JOIN (SELECT 1 b) y ON a = b",
        "SELECT a FROM (SELECT 1 a) x LEFT JOIN (SELECT 1 b) y ON a = b",
        False,
    ),
    (
        "SELECT a FROM (SELECT 1 a) x ORDER BY a NULLS FIRST",
        "SELECT a FROM (SELECT 1 a) x ORDER BY a IS NULL DESC, a",
        False,
    ),
    (
        "SELECT a FROM (SELECT 1 a) x QUALIFY ROW_NUMBER() OVER () = 1",
        "SELECT a FROM (SELECT a, ROW_NUMBER() OVER () AS rn FROM (SELECT 1 a) x) y WHERE rn = 1",
        False,
    ),
    ("SELECT COUNT(*) FILTER (WHERE 1 = 1) AS n", "SELECT SUM(CASE WHEN 1 = 1 THEN 1 END) AS n", False),
    ("SELECT DISTINCT ON (a) a FROM (SELECT 1 a) x", "SELECT DISTINCT a FROM (SELECT 1 a) x", False),
    ("SELECT NOW() + INTERVAL '1 day' AS d", "SELECT NOW() + INTERVAL 1 DAY AS d", False),
    ("SELECT CAST(1 AS VARCHAR) AS s", "SELECT CAST(1 AS CHAR) AS s", False),
    ("SELECT CAST(1 AS TEXT) AS s", "SELECT CAST(1 AS CHAR) AS s", False),
    ("SELECT CAST(1 AS INT) AS n", "SELECT CAST(1 AS SIGNED) AS n", True),
    ("SELECT CAST(1 AS BIGINT) AS n", "SELECT CAST(1 AS SIGNED) AS n", False),
    ("SELECT CAST(NOW() AS TIMESTAMP) AS t", "SELECT CAST(NOW() AS DATETIME) AS t", False),
    ("SELECT CAST(1 AS BOOLEAN) AS b", "SELECT CAST(1 AS SIGNED) AS b", False),
]


@pytest.fixture(scope="module")
def cursor(mysql_server: MySqlServer) -> Iterator[pymysql.cursors.Cursor]:
    with mysql_server.connect() as connection, connection.cursor() as cursor:
        yield cursor


def _runs(cursor: pymysql.cursors.Cursor, sql: str) -> bool:
    try:
        cursor.execute(sql)  # no arguments: pymysql leaves % alone
        cursor.fetchall()
    except pymysql.MySQLError:
        return False
    return True


def _not_mysql(sql: str) -> list[str]:
    _, problems = gate("k.sql", sql, 1)
    return [f"{p.message} | {p.hint}" for p in problems if p.rule == "sql-not-mysql"]


@pytest.mark.parametrize(("refused", "mysql_form", "mariadb_runs_it"), CASES, ids=[c[0][7:40] for c in CASES])
def test_refused_form_fails_on_mariadb_and_the_hint_runs(
    cursor: pymysql.cursors.Cursor, refused: str, mysql_form: str, mariadb_runs_it: bool
) -> None:
    (found,) = _not_mysql(refused)
    assert _runs(cursor, refused) is mariadb_runs_it, found
    assert _not_mysql(mysql_form) == []
    assert _runs(cursor, mysql_form), mysql_form


def test_pipes_are_a_logical_or_on_mariadb(cursor: pymysql.cursors.Cursor) -> None:
    cursor.execute("SELECT 'a' || 'b'")
    assert cursor.fetchone() == (0,)  # why the gate refuses it: a silent wrong value, not an error


def test_the_refusal_points_at_the_construct_with_the_mysql_form() -> None:
    _, problems = gate("queries/k.sql", "SELECT\n  o.created_at::date AS d\nFROM orders o", 10)
    (problem,) = problems
    assert (str(problem.location), problem.rule) == ("queries/k.sql:11:15", "sql-not-mysql")
    assert problem.message == "`::date` is a Postgres cast; MySQL refuses it (error 1064)"
    assert problem.hint == "write CAST(x AS DATE)"


def test_strings_and_identifiers_are_not_constructs() -> None:
    assert _not_mysql("SELECT 'a::b || ILIKE' AS `date_trunc`, `list` AS l FROM t WHERE s LIKE 'x%'") == []
