"""`kpi diff`: the base (a git ref) and head versions of a KPI over its last partitions — in a temporary git repo,
on the embedded DuckDB source and on the real MariaDB, where the server counts exactly two queries."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipeline import catalog
from pipeline.cli import cli
from pipeline.core.spec import Kpi
from pipeline.core.valuediff import (
    COMMENT_LIMIT,
    ColumnChange,
    PartitionSummary,
    column_changes,
    compare,
    delta_text,
    markdown,
)
from pipeline.errors import UsageError
from pipeline.flows.diff import diff_kpi
from pipeline.settings import Environment, SourceSetting
from tests.conftest import MySqlServer
from tests.server_counters import USERSTAT_GROUP, counted_login, url_of, user_statistic

TOKYO_NOON = datetime(2024, 3, 8, 12)  # the clock of every diff here: the newest complete day is 2024-03-07

KPI = """/*---
name: daily_buyers
grain: day
time_column: day
timezone: Asia/Tokyo
columns:
  day:    {{type: DATE}}
  status: {{type: STRING}}
  buyers: {{type: INT64}}
  sales:  {{type: NUMERIC}}
---*/
SELECT DATE(created_at) AS day, status, {buyers} AS buyers, SUM(amount) AS sales
FROM orders WHERE created_at >= :start AND created_at < :end
GROUP BY 1, 2
"""
DISTINCT = "COUNT(DISTINCT user_id)"


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=kpi@example.invalid", "-c", "user.name=kpi", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


def repo_with(folder: Path, base_sql: str) -> Path:
    """A git repository whose one commit holds queries/daily_buyers.sql with ``base_sql``."""
    (folder / "queries").mkdir(parents=True)
    (folder / "queries" / "daily_buyers.sql").write_text(base_sql)
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "queries")
    git(folder, "commit", "-q", "-m", "base")
    return folder


def edit(folder: Path, sql: str) -> Kpi:
    (folder / "queries" / "daily_buyers.sql").write_text(sql)
    return catalog.load_one((folder / "queries",), "daily_buyers")


# Orders on 7 days (day 1 … 7, the last one the newest complete day): day d has d+1 orders, by fewer users.
ORDERS = [
    (n, 100 + (day + n) % (day + 1) // 2, "paid" if n % 3 else "refunded", Decimal(10 * n + day), day)
    for day in range(1, 8)
    for n in range(day + 1)
]


def expected(partition_day: int) -> tuple[int, int, int, int]:
    """(result rows, sum of COUNT(*), sum of COUNT(DISTINCT user_id), result rows whose value changes) of one day,
    from ORDERS."""
    groups: dict[str, list[int]] = {}
    for _, user, status, _, day in ORDERS:
        if day == partition_day:
            groups.setdefault(status, []).append(user)
    star = sum(len(users) for users in groups.values())
    distinct = sum(len(set(users)) for users in groups.values())
    moved = sum(1 for users in groups.values() if len(users) != len(set(users)))
    return len(groups), star, distinct, moved


def make_shop(path: Path, last: date) -> str:
    """ORDERS in a DuckDB file, day 7 on ``last``."""
    with duckdb.connect(str(path)) as db:
        db.execute(
            "CREATE TABLE orders (id INT, user_id INT, status VARCHAR, amount DECIMAL(12,2), created_at TIMESTAMP)"
        )
        for n, user, status, amount, day in ORDERS:
            moment = datetime.combine(last - timedelta(days=7 - day), datetime.min.time()).replace(hour=9, minute=n)
            db.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", [day * 100 + n, user, status, amount, moment])
    return f"duckdb:///{path}"


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return make_shop(tmp_path / "shop.duckdb", date(2024, 3, 7))


def test_count_star_to_count_distinct_shows_per_partition_deltas(tmp_path: Path, shop: str) -> None:
    folder = repo_with(tmp_path / "repo", KPI.format(buyers="COUNT(*)"))
    head = edit(folder, KPI.format(buyers=DISTINCT))
    environment = Environment("test", {"default": SourceSetting(shop)})
    found, names = diff_kpi(head, "main", environment, partitions=5, now=TOKYO_NOON.replace(tzinfo=head.zone))
    assert found is not None
    assert names == ["2024-03-03", "2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]
    assert found.measures == ("buyers", "sales")
    got = {d.partition: (d.rows, d.measures.get("buyers"), "sales" in d.measures) for d in found.partitions}
    want = {}
    for day in range(3, 8):
        rows, star, distinct, _ = expected(day)
        want[f"2024-03-0{day}"] = ((rows, rows), (star, distinct) if star != distinct else None, False)
    assert got == want
    assert found.changed
    assert found.columns == ()


def test_no_change_in_values_exits_0_and_a_change_exits_3_with_a_markdown_comment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the command line, at its hidden --now: the shop's newest day is the day before."""
    yesterday = date(2024, 3, 7)
    shop = make_shop(tmp_path / "shop.duckdb", yesterday)
    now = ["--now", "2024-03-08T12:00+09:00"]
    folder = repo_with(tmp_path / "repo", KPI.format(buyers="COUNT(*)"))
    monkeypatch.chdir(folder)
    monkeypatch.setenv("KPI_SOURCE", shop)
    monkeypatch.delenv("KPI_QUERIES", raising=False)
    monkeypatch.delenv("KPI_ENV", raising=False)
    # The same SQL reformatted: other text, same values.
    edit(folder, KPI.format(buyers="count(*)"))
    same = CliRunner().invoke(cli, ["diff", "daily_buyers", "--base", "main", "--partitions", "3", *now])
    assert same.exit_code == 0, same.output
    assert same.output == "daily_buyers against main: no change in values over the last 3 partitions\n"
    edit(folder, KPI.format(buyers=DISTINCT).replace("sales:  {type: NUMERIC}", "sales:  {type: BIGNUMERIC}"))
    changed = CliRunner().invoke(
        cli, ["diff", "daily_buyers", "--base", "main", "--partitions", "3", "--markdown", *now]
    )
    assert changed.exit_code == 3, changed.output
    comment = changed.output
    assert comment.startswith(
        "### `kpi diff daily_buyers` against `main`\n\nColumns: `retyped sales: NUMERIC → BIGNUMERIC`\n"
    )
    assert "| partition | rows | buyers | rows changed |" in comment  # a retyped column is not compared
    rows, star, distinct, moved = expected(7)
    assert f"| `{yesterday}` | {rows} (=) | {delta_text(star, distinct)} | {moved} |" in comment
    new = CliRunner().invoke(cli, ["diff", "daily_buyers", "--base", "main^", "--partitions", "3"])
    assert new.exit_code == 2, new.output  # main has no parent
    assert "'main^' is not a commit" in new.output


def test_a_kpi_the_base_lacks_is_new_and_a_changed_grain_is_refused(tmp_path: Path, shop: str) -> None:
    folder = repo_with(tmp_path / "repo", KPI.format(buyers="COUNT(*)"))
    (folder / "queries" / "other.sql").write_text(KPI.format(buyers="COUNT(*)").replace("daily_buyers", "other"))
    other = catalog.load_one((folder / "queries",), "other")
    environment = Environment("test", {"default": SourceSetting(shop)})
    assert diff_kpi(other, "main", environment, now=TOKYO_NOON) == (None, [])
    hourly = KPI.format(buyers="COUNT(*)").replace("grain: day", "grain: month")
    head = edit(folder, hourly)
    with pytest.raises(UsageError) as error:
        diff_kpi(head, "main", environment, now=TOKYO_NOON)
    assert "the partitions changed (day, Asia/Tokyo → month, Asia/Tokyo)" in str(error.value)


def test_rows_that_move_between_groups_are_a_change_even_when_every_total_is_equal() -> None:
    old = PartitionSummary(2, {"n": 10}, Counter({("paid", 7): 1, ("refunded", 3): 1}))
    new = PartitionSummary(2, {"n": 10}, Counter({("paid", 6): 1, ("refunded", 4): 1}))
    (delta,) = compare("k", "main", ["2024-03-01"], {"2024-03-01": old}, {"2024-03-01": new}, [], ["n"]).partitions
    assert (delta.measures, delta.rows_changed, delta.changed) == ({}, 2, True)


def test_column_changes_and_delta_text() -> None:
    base = {"day": "DATE", "orders": "INT64", "old": "STRING"}
    head = {"day": "DATE", "orders": "NUMERIC", "new": "FLOAT64"}
    assert [str(c) for c in column_changes(base, head)] == [
        "added new (FLOAT64)",
        "retyped orders: INT64 → NUMERIC",
        "removed old (STRING)",
    ]
    assert delta_text(1204, 1180) == "1,204 → 1,180 (−24, −2.0%)"
    assert delta_text(None, 5) == "0 → 5 (+5)"
    assert delta_text(Decimal("10.50"), Decimal("10.50")) == "10.50 (=)"


def test_the_markdown_fits_one_github_comment_and_says_how_many_partitions_it_left_out() -> None:
    names = [(date(2020, 1, 1) + timedelta(days=n)).isoformat() for n in range(3000)]
    base = {n: PartitionSummary(1, {"orders": 1}) for n in names}
    head = {n: PartitionSummary(2, {"orders": 1_000_000}) for n in names}
    change = [ColumnChange("x", None, "INT64")]
    text = markdown(compare("k", "main", names, base, head, change, ["orders"]))
    assert len(text) < COMMENT_LIMIT
    shown = text.count("\n| `20")
    assert shown > 500
    assert text.endswith(f"… and {3000 - shown} more changed partition(s) not shown (comment size limit).\n")


# ------------------------------------------------------------------------------------------------ on MariaDB


@pytest.mark.xdist_group(USERSTAT_GROUP)
def test_on_mariadb_the_diff_is_exactly_two_source_queries(tmp_path: Path, mysql_db: MySqlServer) -> None:
    with mysql_db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, status VARCHAR(16), amount DECIMAL(12,2), "
            "created_at DATETIME)"
        )
        cursor.executemany(
            "INSERT INTO orders VALUES (%s, %s, %s, %s, %s)",
            [(day * 100 + n, u, s, a, datetime(2024, 3, day, 9, n)) for n, u, s, a, day in ORDERS],
        )
    folder = repo_with(tmp_path / "repo", KPI.format(buyers="COUNT(*)"))
    head = edit(folder, KPI.format(buyers=DISTINCT))
    with counted_login(mysql_db) as login:
        environment = Environment("test", {"default": SourceSetting(url_of(login))})
        before = user_statistic(mysql_db, login.user, "SELECT_COMMANDS")
        found, _ = diff_kpi(head, "main", environment, partitions=7, now=TOKYO_NOON.replace(tzinfo=head.zone))
        # one query per version, each after the production guard's EXPLAIN (MariaDB counts EXPLAIN as a SELECT)
        assert user_statistic(mysql_db, login.user, "SELECT_COMMANDS") - before == 2 + 2
    assert found is not None
    deltas = {d.partition: d.measures.get("buyers") for d in found.partitions}
    for day in range(1, 8):
        _, star, distinct, _ = expected(day)
        assert deltas[f"2024-03-0{day}"] == ((star, distinct) if star != distinct else None)
    assert json.loads(json.dumps(found.to_dict()))["changed"] is True
