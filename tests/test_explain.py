"""The production EXPLAIN guard: the EXPLAIN JSON of MariaDB (recorded here) and MySQL 8 (format version 1, written
after its manual: tests/explain/README.md) parsed table by table; the judgement and its hint; and on the real
MariaDB, a KPI over a 200,000-row table refused without an index on its filter column and accepted with one, by
`kpi check --explain` and before `kpi backfill`'s query — with EXPLAIN only (the server's row count per login)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from click.testing import CliRunner

from pipeline import catalog
from pipeline.cli import cli
from pipeline.core.explain import (
    Dialect,
    TableAccess,
    dialect_of,
    filtered_columns,
    judge,
    parse_plan,
    query_tables,
)
from pipeline.settings import load_environment
from pipeline.sources import open_source
from pipeline.sources.explain import ExplainGuard, FullScanRefused, clear_cache
from tests.conftest import MySqlServer
from tests.exporting import make_kpi
from tests.server_counters import USERSTAT_GROUP, counted_login, url_of, user_statistic

PLANS = Path(__file__).resolve().parent / "explain"


def plan(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PLANS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize(
    ("fixture", "dialect", "expected"),
    [
        (
            "mariadb_join_full_scan",
            Dialect.MARIADB,
            [("o", "ALL", 199660, None, False), ("u", "eq_ref", 1, "PRIMARY", False)],
        ),
        (
            "mariadb_join_range",
            Dialect.MARIADB,
            [("o", "range", 144, "ix_orders_created_at", False), ("u", "eq_ref", 1, "PRIMARY", False)],
        ),
        ("mariadb_group_full_scan", Dialect.MARIADB, [("orders", "ALL", 199660, None, False)]),
        (
            "mariadb_derived",
            Dialect.MARIADB,
            [("<derived2>", "ALL", 1008, None, True), ("orders", "range", 1008, "ix_orders_created_at", False)],
        ),
        (
            "mysql8_join_full_scan",
            Dialect.MYSQL8,
            [("o", "ALL", 199533, None, False), ("u", "eq_ref", 1, "PRIMARY", False)],
        ),
        (
            "mysql8_join_range",
            Dialect.MYSQL8,
            [("o", "range", 144, "ix_orders_created_at", False), ("u", "eq_ref", 1, "PRIMARY", False)],
        ),
        (
            "mysql8_derived",
            Dialect.MYSQL8,
            [("d", "ALL", 1008, None, True), ("orders", "range", 1008, "ix_orders_created_at", False)],
        ),
    ],
)
def test_plans_table(fixture: str, dialect: Dialect, expected: list[tuple[str, str, int, str | None, bool]]) -> None:
    found = parse_plan(plan(fixture), dialect)
    assert [(a.table, a.access_type, a.rows, a.key, a.derived) for a in found] == expected


def test_the_estimate_is_read_from_the_dialects_own_key() -> None:
    """MariaDB's `rows` and MySQL 8's `rows_examined_per_scan`: each parser reads its own, the other finds none."""
    assert [a.rows for a in parse_plan(plan("mysql8_join_full_scan"), Dialect.MARIADB)] == [0, 0]
    assert [a.rows for a in parse_plan(plan("mariadb_join_full_scan"), Dialect.MYSQL8)] == [0, 0]


@pytest.mark.parametrize(
    ("version", "dialect"),
    [
        ("10.11.19-MariaDB-0+deb12u1", Dialect.MARIADB),
        ("5.5.5-10.11.6-MariaDB", Dialect.MARIADB),
        ("8.0.36", Dialect.MYSQL8),
        ("8.0.mysql_aurora.3.05.2", Dialect.MYSQL8),
    ],
)
def test_the_dialect_comes_from_the_server_version(version: str, dialect: Dialect) -> None:
    assert dialect_of(version) is dialect


SQL = (
    "SELECT DATE(o.created_at) AS day, u.country, COUNT(*) AS orders FROM orders o JOIN users u ON u.id = o.user_id "
    "WHERE o.status = 'paid' AND o.created_at >= :start AND o.created_at < :end GROUP BY 1, 2"
)


def test_the_query_names_its_tables_and_the_time_filter_comes_first() -> None:
    tree = sqlglot.parse_one(SQL, read="mysql")
    assert query_tables(tree) == {"o": "orders", "u": "users"}
    assert filtered_columns(tree) == {"orders": ["created_at", "user_id", "status"], "users": ["id"]}
    single = sqlglot.parse_one("SELECT COUNT(*) FROM orders WHERE amount > :minimum", read="mysql")
    assert filtered_columns(single) == {"orders": ["amount"]}


@pytest.mark.parametrize("fixture", ["mariadb_join_full_scan", "mysql8_join_full_scan"])
def test_a_full_scan_over_the_limit_is_refused_naming_the_index_on_the_time_column(fixture: str) -> None:
    tree = sqlglot.parse_one(SQL, read="mysql")
    dialect = Dialect.MYSQL8 if fixture.startswith("mysql8") else Dialect.MARIADB
    accesses = parse_plan(plan(fixture), dialect)
    args: dict[str, Any] = {"tables": query_tables(tree), "filters": filtered_columns(tree), "partition": "2024-03-01"}
    (refusal,) = judge(accesses, max_rows=100_000, allow_full_scan=False, **args)
    assert refusal.table == "orders"
    assert refusal.message.startswith("partition 2024-03-01: a full scan of orders (estimated 199,")
    assert refusal.message.endswith("rows examined) exceeds the environment's limit of 100,000 rows")
    assert "`CREATE INDEX ix_orders_created_at ON orders (created_at)`" in refusal.hint
    assert "`allow_full_scan: true`" in refusal.hint
    assert judge(accesses, max_rows=200_000, allow_full_scan=False, **args) == []  # under the limit
    assert judge(accesses, max_rows=100_000, allow_full_scan=True, **args) == []  # the header allows it


@pytest.mark.parametrize("fixture", ["mariadb_join_range", "mariadb_derived", "mysql8_join_range", "mysql8_derived"])
def test_index_reads_and_derived_tables_pass_whatever_the_limit(fixture: str) -> None:
    dialect = Dialect.MYSQL8 if fixture.startswith("mysql8") else Dialect.MARIADB
    accesses = parse_plan(plan(fixture), dialect)
    assert judge(accesses, max_rows=0, allow_full_scan=False, tables={}, filters={}, partition="p") == []


def test_a_full_scan_the_server_chose_over_an_index_says_so() -> None:
    access = TableAccess("orders", "ALL", 500_000, None, ("ix_orders_created_at",))
    (refusal,) = judge([access], max_rows=1000, allow_full_scan=False, tables={}, filters={}, partition="p")
    assert refusal.hint.startswith("the server prefers a full scan to the index ix_orders_created_at")


@pytest.mark.parametrize(
    ("version", "statement"),
    [
        ("10.11.19-MariaDB-ubu2204", None),
        ("11.4.2-MariaDB", None),  # MariaDB 11 is not MySQL 11: neither the variable nor the format
        ("8.0.36", None),
        ("8.0.mysql_aurora.3.05.2", None),  # Aurora MySQL 3 is MySQL 8.0
        ("8.3.0", "SET SESSION explain_json_format_version = 1"),
        ("8.4.3", "SET SESSION explain_json_format_version = 1"),
        ("9.1.0-commercial", "SET SESSION explain_json_format_version = 1"),
    ],
)
def test_the_session_asks_for_the_json_format_the_guard_reads_where_there_is_another(
    version: str, statement: str | None
) -> None:
    from pipeline.sources.mysql import explain_format_statement

    assert explain_format_statement(version) == statement


class _MySql84Answer:
    """Stands in for one call, :meth:`MySqlSource.explain`'s round trip to a MySQL 8.4 server (none runs here):
    it answers as a server whose configuration sets ``explain_json_format_version = 2`` would, had the guard's
    session not asked for version 1; and records that the guard asked."""

    url = "mysql://reader@mysql84.internal:3306/shop"

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.asked: list[str] = []

    def explain(self, rendered: Any, *, zone: Any, where: str, timeout: Any) -> tuple[str, str]:
        self.asked.append(rendered.sql)
        return "8.4.3", json.dumps(self.document)


def test_a_plan_in_mysql_8_3s_second_json_format_is_refused_not_judged_empty(tmp_path: Path) -> None:
    """Read as version 1, a version 2 plan holds no table object: without the shape check its full scan of
    200,000 rows would pass a limit of 1,000."""
    from datetime import datetime

    from pipeline.core.explain import unreadable_plan
    from pipeline.core.render import render_mysql

    document = plan("mysql84_v2_join_full_scan")
    assert parse_plan(document, Dialect.MYSQL8) == []  # what the guard would have judged
    for readable in ("mariadb_join_full_scan", "mysql8_join_full_scan", "mysql8_derived"):
        assert unreadable_plan(plan(readable), "2024-03-01") is None

    header = HEADER.format(extra="")
    make_kpi(tmp_path / "queries", "daily_orders", header, KPI_SQL)
    kpi = catalog.load_one((tmp_path / "queries",), "daily_orders")
    source = _MySql84Answer(document)
    rendered = render_mysql(kpi.query, {"start": datetime(2024, 3, 1), "end": datetime(2024, 3, 2)})
    clear_cache()
    with pytest.raises(FullScanRefused) as refused:
        ExplainGuard(max_rows=1000).report(kpi, source, rendered, "2024-03-01")
    clear_cache()
    assert refused.value.message == (
        "partition 2024-03-01: the server's EXPLAIN FORMAT=JSON has no top-level query_block (found: "
        "access_type, estimated_rows, estimated_total_cost, inputs, json_schema_version, operation, query, "
        "query_type), so the guard cannot tell whether the query scans a whole table"
    )
    assert refused.value.where == "daily_orders"
    assert "explain_json_format_version = 1" in (refused.value.hint or "")
    assert not refused.value.retryable
    assert len(source.asked) == 1

    # the hint's way out: a KPI whose header allows full scans is not judged, so its plan need not be read
    make_kpi(tmp_path / "queries", "daily_orders", HEADER.format(extra="allow_full_scan: true"), KPI_SQL)
    allowed = catalog.load_one((tmp_path / "queries",), "daily_orders")
    report = ExplainGuard(max_rows=1000).report(allowed, source, rendered, "2024-03-01")
    clear_cache()
    assert (report.accesses, report.refusals) == ((), ())
    assert len(source.asked) == 2


# ------------------------------------------------------------------------------------------------ on MariaDB

HEADER = """
grain: day
time_column: day
start: 2024-01-01
{extra}
columns:
  day:     {{type: DATE}}
  country: {{type: STRING}}
  orders:  {{type: INT64}}
"""
KPI_SQL = """
SELECT DATE(o.created_at) AS day, u.country, COUNT(*) AS orders
FROM orders o JOIN users u ON u.id = o.user_id
WHERE o.created_at >= :start AND o.created_at < :end
GROUP BY 1, 2
"""
TABLE_ROWS = 200_000


@pytest.fixture
def shop(mysql_db: MySqlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MySqlServer]:
    """200,000 orders, one every 10 minutes from 2024-01-01 (3.8 years), no index on created_at; a project whose
    `prod` environment reads it with a limit of 100,000 rows."""
    with mysql_db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE users (id BIGINT PRIMARY KEY, country CHAR(2) NOT NULL)")
        cursor.execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, created_at DATETIME NOT NULL)"
        )
        cursor.execute("INSERT INTO users SELECT seq, IF(seq % 3 = 0, 'US', 'JP') FROM seq_0_to_4999")
        cursor.execute(
            f"INSERT INTO orders SELECT seq, seq % 5000, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (seq * 600) SECOND "
            f"FROM seq_1_to_{TABLE_ROWS}"
        )
        cursor.execute("ANALYZE TABLE orders, users")
        cursor.fetchall()
    url = f"mysql://{mysql_db.user}@{mysql_db.host}:{mysql_db.port}/{mysql_db.database}"
    (tmp_path / "kpi.toml").write_text(
        f'[environments.prod]\nlake = "lake"\nwarehouse = "duckdb://wh.duckdb"\nexplain_max_rows = 100_000\n'
        f'[environments.prod.sources]\ndefault = "{url}"\n'
    )
    make_kpi(tmp_path / "queries", "daily_orders", HEADER.format(extra=""), KPI_SQL)
    monkeypatch.chdir(tmp_path)
    for name in ("KPI_SOURCE", "KPI_LAKE", "KPI_WAREHOUSE", "KPI_QUERIES", "KPI_ENV", "KPI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    clear_cache()
    yield mysql_db
    clear_cache()


def _run(mysql_db: MySqlServer, sql: str) -> None:
    with mysql_db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(sql)


def test_kpi_check_explain_refuses_the_full_scan_then_accepts_it_once_the_index_exists(shop: MySqlServer) -> None:
    refused = CliRunner().invoke(
        cli, ["check", "--explain", "--env", "prod", "--start", "2024-03-01", "--end", "2024-03-02"]
    )
    assert refused.exit_code == 1, refused.output
    assert "daily_orders: partition 2024-03-01…2024-03-02: a full scan of orders (estimated" in refused.output
    assert "CREATE INDEX ix_orders_created_at ON orders (created_at)" in refused.output
    assert "refused: 1 of 1 queries would full-scan a table over the limit of 100,000 rows" in refused.output
    _run(shop, "CREATE INDEX ix_orders_created_at ON orders (created_at)")
    accepted = CliRunner().invoke(
        cli, ["check", "--explain", "--env", "prod", "--start", "2024-03-01", "--end", "2024-03-02", "--json"]
    )
    assert accepted.exit_code == 0, accepted.output
    report = json.loads(accepted.output)
    assert report["ok"] is True
    (batch,) = report["explain"]["reports"]
    assert batch["partition"] == "2024-03-01…2024-03-02"
    assert [(t["table"], t["access_type"], t["key"]) for t in batch["tables"]] == [
        ("o", "range", "ix_orders_created_at"),
        ("u", "eq_ref", "PRIMARY"),
    ]
    assert 0 < batch["tables"][0]["rows"] < 1000  # two days of orders every 10 minutes: 288 rows, estimated


@pytest.mark.xdist_group(USERSTAT_GROUP)
def test_the_guard_sends_explain_only(shop: MySqlServer) -> None:
    """Counted by the server for a login of the test's own (USER_STATISTICS.ROWS_READ), so that other sessions on
    the shared server cannot move the figure."""
    from pipeline.core.intervals import Grain, interval_containing
    from pipeline.core.render import bind_values

    kpi = catalog.load_one((Path("queries"),), "daily_orders")
    guard = ExplainGuard(100_000)
    with counted_login(shop) as login:
        source = open_source(url_of(login))
        day = interval_containing(Grain.DAY, kpi.zone, _march_first())
        rendered = source.render(kpi.query, bind_values(kpi, day))
        before = user_statistic(shop, login.user, "ROWS_READ")
        report = guard.report(kpi, source, rendered, "2024-03-01")
        read = user_statistic(shop, login.user, "ROWS_READ") - before
        assert report.refusals, "the plan is a full scan of 200,000 rows"
        assert read < 100, f"the EXPLAIN read {read} rows; the table has {TABLE_ROWS}"
        # The contrast: the query itself, sent by the same login, reads the whole table.
        before = user_statistic(shop, login.user, "ROWS_READ")
        with login.connect() as connection, connection.cursor() as cursor:
            cursor.execute(rendered.sql, rendered.values)
            cursor.fetchall()
        assert user_statistic(shop, login.user, "ROWS_READ") - before >= TABLE_ROWS
    # An accepted plan is cached per source, SQL and bound values; a refused one is asked again.
    source = open_source(load_environment("prod").source("default").url)
    _run(shop, "CREATE INDEX ix_orders_created_at ON orders (created_at)")
    first = guard.report(kpi, source, rendered, "2024-03-01")
    again = guard.report(kpi, source, rendered, "2024-03-01")
    assert (first.refusals, first.cached, again.cached) == ((), False, True)


def test_a_backfill_on_the_guarded_source_is_refused_before_its_query_and_runs_once_indexed(shop: MySqlServer) -> None:
    args = ["backfill", "daily_orders", "--env", "prod", "--start", "2024-03-01", "--end", "2024-03-03", "--json"]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1, refused.output
    summary = json.loads(refused.output)["kpis"][0]
    assert summary["status"] == "3 failed"
    assert "a full scan of orders" in json.dumps(summary["failed"])
    assert not list(Path("lake").rglob("_manifest.json"))
    _run(shop, "CREATE INDEX ix_orders_created_at ON orders (created_at)")
    accepted = CliRunner().invoke(cli, args)
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.output)["kpis"][0]["partitions"] == 3


def test_allow_full_scan_in_the_header_lets_it_run_and_kpi_list_shows_it(shop: MySqlServer) -> None:
    make_kpi(Path("queries"), "daily_orders", HEADER.format(extra="allow_full_scan: true"), KPI_SQL)
    checked = CliRunner().invoke(cli, ["check", "--explain", "--env", "prod"])
    assert checked.exit_code == 0, checked.output
    assert "ok: 1 EXPLAIN(s), no full scan over 100,000 rows" in checked.output
    listed = CliRunner().invoke(cli, ["list", "--json"])
    assert json.loads(listed.output)[0]["allow_full_scan"] is True
    table = CliRunner().invoke(cli, ["list"], terminal_width=200)
    assert "daily_orders (full scan allowed)" in table.output


def test_a_guarded_export_refusal_is_not_retryable(shop: MySqlServer) -> None:
    kpi = catalog.load_one((Path("queries"),), "daily_orders")
    source = open_source(load_environment("prod").source("default").url, explain_max_rows=100_000)
    from pipeline.core.intervals import Grain, interval_containing
    from pipeline.export import export
    from pipeline.stores import LocalStore

    day = interval_containing(Grain.DAY, kpi.zone, _march_first())
    with pytest.raises(FullScanRefused) as error:
        export(kpi, [day], source=source, store=LocalStore(Path("lake")))
    assert error.value.retryable is False
    assert not list(Path("lake").rglob("*"))


def _march_first() -> Any:
    from datetime import datetime

    return datetime(2024, 3, 1, 12)


def test_the_limit_comes_from_kpi_toml_or_kpi_explain_max_rows_with_a_default(tmp_path: Path) -> None:
    from pipeline.errors import UsageError
    from pipeline.settings import DEFAULT_EXPLAIN_MAX_ROWS

    config = tmp_path / "kpi.toml"
    config.write_text('[environments.prod]\nexplain_max_rows = 5_000_000\n[environments.dev]\nlake = "l"\n')
    assert load_environment("prod", config=config, environ={}).explain_max_rows == 5_000_000
    assert load_environment("dev", config=config, environ={}).explain_max_rows == DEFAULT_EXPLAIN_MAX_ROWS == 1_000_000
    variable = {"KPI_EXPLAIN_MAX_ROWS": "250000"}
    assert load_environment("prod", config=config, environ=variable).explain_max_rows == 250_000
    config.write_text('[environments.prod]\nexplain_max_rows = "lots"\n')
    with pytest.raises(UsageError) as error:
        load_environment("prod", config=config, environ={})
    assert "[environments.prod]: explain_max_rows must be a whole number of rows ≥ 0" in str(error.value)


def test_max_join_size_as_a_second_guard_would_refuse_an_indexed_batch_the_guard_accepts(shop: MySqlServer) -> None:
    """Why the session carries no ``max_join_size`` (README: "No second guard on the session"), shown on MariaDB:
    the server compares it with the optimizer's estimate of rows read, index reads included, so it is a row
    budget, not "no full scan". A month's backfill batch read through the index — accepted by the guard — is
    refused (error 1104) as soon as the budget is below the batch's estimate, and a KPI that says
    ``allow_full_scan: true`` would be refused all the same."""
    import pymysql

    from pipeline.core.intervals import Grain, Interval, intervals_between
    from pipeline.core.render import bind_values

    _run(shop, "CREATE INDEX ix_orders_created_at ON orders (created_at)")
    kpi = catalog.load_one((Path("queries"),), "daily_orders")
    source = open_source(load_environment("prod").source("default").url)
    month = list(intervals_between(Grain.DAY, kpi.zone, _march_first().replace(day=1), _march_first().replace(day=31)))
    batch = Interval(month[0].start, month[-1].end, kpi.grain)  # the month's partitions in one query, as a backfill
    rendered = source.render(kpi.query, bind_values(kpi, batch))
    report = ExplainGuard(100_000).report(kpi, source, rendered, "2024-03")
    assert report.refusals == ()  # a range read through the index: the guard lets it run
    (orders,) = [t for t in report.accesses if t.table == "o"]
    assert (orders.access_type, orders.key) == ("range", "ix_orders_created_at")
    assert 1_000 < orders.rows < 100_000  # a month of orders every 10 minutes: 4,464
    with shop.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute("SET SESSION max_join_size = 1000")
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cursor.execute(rendered.sql, rendered.values)
        assert refused.value.args[0] == 1104  # ER_TOO_BIG_SELECT: "would examine more than MAX_JOIN_SIZE rows"
        cursor.execute("SET SESSION max_join_size = DEFAULT")
        cursor.execute(rendered.sql, rendered.values)
        assert len(cursor.fetchall()) == 31 * 2  # 31 days × 2 countries


def test_kpi_preview_on_the_guarded_source_is_refused_before_its_query_and_runs_once_indexed(
    shop: MySqlServer,
) -> None:
    """A preview's LIMIT stops the reading, not the server's scan: on a production source it is guarded as an
    export is."""
    args = ["preview", "daily_orders", "--env", "prod", "--date", "2024-03-01"]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1, refused.output
    assert "daily_orders: error: partition 2024-03-01: a full scan of orders (estimated" in refused.output
    assert "CREATE INDEX ix_orders_created_at ON orders (created_at)" in refused.output
    assert "Traceback" not in refused.output
    _run(shop, "CREATE INDEX ix_orders_created_at ON orders (created_at)")
    accepted = CliRunner().invoke(cli, [*args, "--json"])
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.output)["rows_shown"] > 0


def test_kpi_diffs_query_on_the_guarded_source_is_refused_before_it_runs(shop: MySqlServer) -> None:
    from pipeline.core.intervals import Grain, interval_containing
    from pipeline.flows.diff import summarise

    kpi = catalog.load_one((Path("queries"),), "daily_orders")
    guarded = open_source(load_environment("prod").source("default").url, explain_max_rows=100_000)
    day = interval_containing(Grain.DAY, kpi.zone, _march_first())
    with pytest.raises(FullScanRefused, match="a full scan of orders"):
        summarise(kpi, guarded, [day], ["orders"], ["day", "country", "orders"])
    _run(shop, "CREATE INDEX ix_orders_created_at ON orders (created_at)")
    (summary,) = summarise(kpi, guarded, [day], ["orders"], ["day", "country", "orders"]).values()
    assert summary.rows > 0
