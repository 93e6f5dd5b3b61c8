"""Schema snapshots, schema-aware `kpi check`, lineage and impact — on the real MariaDB.

A database with the demo shop's tables is pulled into a snapshot (`kpi schema pull`); a KPI with a misspelt
column or table is then caught offline from the snapshot and live from the server (`kpi check --env ci`), with
its position and the closest real name.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.lineage import kpi_lineage
from pipeline.core.parse import parse_kpi
from pipeline.core.schema import from_text
from pipeline.core.schemacheck import check_against
from pipeline.core.spec import Kpi
from tests.conftest import ROOT, MySqlServer, demo_schema_statements

LARGE_ORDERS = (ROOT / "queries" / "large_orders.sql").read_text(encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, mysql_db: MySqlServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder: the example KPIs, a kpi.toml whose `ci` environment is a MariaDB database with the demo
    shop's tables (plus an index and a view), and no snapshot yet."""
    with mysql_db.connect() as connection, connection.cursor() as cursor:
        for statement in demo_schema_statements():
            cursor.execute(statement)
        cursor.execute("CREATE INDEX orders_created ON orders (created_at, status)")
        cursor.execute("CREATE VIEW paid_orders AS SELECT id, amount FROM orders WHERE status = 'paid'")
    shutil.copytree(ROOT / "queries", tmp_path / "queries")
    password = f":{mysql_db.password}" if mysql_db.password else ""
    url = f"mysql://{mysql_db.user}{password}@{mysql_db.host}:{mysql_db.port}/{mysql_db.database}"
    (tmp_path / "kpi.toml").write_text(f'[environments.ci.sources]\ndefault = "{url}"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KPI_QUERIES", raising=False)
    monkeypatch.delenv("KPI_ENV", raising=False)
    return tmp_path


def _pull(runner: CliRunner, database: str) -> dict[str, object]:
    result = runner.invoke(cli, ["schema", "pull", "--env", "ci"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote schemas/default.json: 3 tables, 12 columns from mysql://")
    return json.loads(Path("schemas/default.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_pull_writes_a_stable_diff_friendly_snapshot(runner: CliRunner, project: Path, mysql_db: MySqlServer) -> None:
    snapshot = _pull(runner, mysql_db.database)
    first = Path("schemas/default.json").read_text(encoding="utf-8")
    assert snapshot["dialect"] == "mysql"
    assert snapshot["database"] == mysql_db.database
    tables = snapshot["tables"]
    assert isinstance(tables, dict)
    assert list(tables) == ["orders", "paid_orders", "users"]
    assert tables["orders"]["columns"] == {
        "id": {"type": "bigint", "nullable": False},
        "user_id": {"type": "bigint", "nullable": False},
        "status": {"type": "varchar(16)", "nullable": False},
        "amount": {"type": "decimal(12,2)", "nullable": False},
        "created_at": {"type": "datetime", "nullable": False},
    }
    assert tables["orders"]["indexes"] == {
        "PRIMARY": {"columns": ["id"], "unique": True},
        "orders_created": {"columns": ["created_at", "status"], "unique": False},
    }
    assert list(tables["paid_orders"]["columns"]) == ["id", "amount"]
    assert '        "id": {"type": "bigint", "nullable": false},\n' in first  # one column per line
    _pull(runner, mysql_db.database)
    assert Path("schemas/default.json").read_text(encoding="utf-8") == first  # pulling again changes nothing


def _misspell(old: str, new: str) -> None:
    Path("queries/large_orders.sql").write_text(LARGE_ORDERS.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize("live", [False, True], ids=["offline-snapshot", "live"])
def test_check_catches_a_misspelt_column_and_table(
    runner: CliRunner, project: Path, mysql_db: MySqlServer, live: bool
) -> None:
    _pull(runner, mysql_db.database)
    text = LARGE_ORDERS.replace("JOIN users AS u", "JOIN user AS u").replace("SUM(o.amount)", "SUM(o.amout)")
    Path("queries/large_orders.sql").write_text(text, encoding="utf-8")
    if live:
        shutil.rmtree("schemas")
    result = runner.invoke(cli, ["check", *(["--env", "ci"] if live else [])])
    assert result.exit_code == 1, result.output
    origin = "schemas/default.json" if not live else "the live source mysql://"
    lines = result.output.splitlines()
    assert lines[0] == (
        "queries/large_orders.sql:20:85: column 'amout' does not exist in table 'orders' (did you mean 'amount'?)"
    )
    assert lines[1] == (
        "   20 | SELECT DATE(o.created_at) AS order_date, u.country, COUNT(*) AS large_orders, SUM(o.amout) AS amount"
    )
    assert lines[2] == "      | " + " " * 84 + "^"
    assert lines[3].startswith(f"  hint: the columns of orders: id, user_id, status, amount, created_at ({origin}")
    assert lines[4] == (
        f"queries/large_orders.sql:22:6: table 'user' does not exist in {mysql_db.database} (did you mean 'users'?)"
    )
    assert lines[-1] == "2 problems in 1 of 6 files"


def test_check_compares_declared_types_with_the_source_types(
    runner: CliRunner, project: Path, mysql_db: MySqlServer
) -> None:
    _pull(runner, mysql_db.database)
    _misspell("SELECT DATE(o.created_at) AS order_date", "SELECT o.created_at AS order_date")
    result = runner.invoke(cli, ["check", "--json"])
    assert result.exit_code == 1, result.output
    (problem,) = json.loads(result.output)["problems"]
    assert (problem["rule"], problem["line"], problem["col"], problem["kpi"]) == ("column-type", 20, 8, "large_orders")
    assert problem["message"] == (
        "column 'order_date' is declared DATE, but the source's column types make it DATETIME, "
        "which cannot be loaded as DATE without changing values"
    )
    assert problem["hint"].startswith("declare DATETIME (wall clock) or TIMESTAMP")


def test_check_warns_about_personal_data(runner: CliRunner, project: Path, mysql_db: MySqlServer) -> None:
    _pull(runner, mysql_db.database)
    Path("masking").mkdir()
    (Path("masking") / f"{mysql_db.database}.yaml").write_text(
        (ROOT / "masking" / "shop.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    _misspell("COUNT(*) AS large_orders", "COUNT(DISTINCT u.email) AS large_orders")
    result = runner.invoke(cli, ["check", "--json"])
    assert result.exit_code == 0, result.output  # a warning, not a failure
    (warning,) = json.loads(result.output)["warnings"]
    assert (warning["rule"], warning["line"], warning["col"]) == ("personal-data", 20, 68)  # at u.email
    assert warning["message"] == "reads personal data: users.email (masked by the clone's rules in masking/)"
    shown = runner.invoke(cli, ["check"])
    assert "warning: reads personal data: users.email" in shown.output


def test_check_reports_which_sources_went_unchecked(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(cli, ["check", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["schemas"], report["unchecked_sources"]) == ({}, ["default"])


def test_the_committed_demo_snapshot_checks_the_examples(runner: CliRunner, in_project: Path) -> None:
    result = runner.invoke(cli, ["check", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["schemas"] == {"default": "schemas/default.json"}


EXPECTED_LINEAGE = {
    "daily_sales": {
        "sales_date": ["orders.created_at"],
        "status": ["orders.status"],
        "orders": [],
        "sales": ["orders.amount"],
    },
    "hourly_orders": {"order_hour": ["orders.created_at"], "orders": [], "buyers": ["orders.user_id"]},
    "large_orders": {
        "order_date": ["orders.created_at"],
        "country": ["users.country"],
        "large_orders": [],
        "amount": ["orders.amount"],
    },
    "monthly_active_buyers": {
        "month": ["orders.created_at"],
        "active_buyers": ["orders.user_id"],
        "sales": ["orders.amount"],
    },
    "users_by_plan": {"country": ["users.country"], "plan": ["users.plan"], "users": []},
    "weekly_buyers": {"week": ["orders.created_at"], "buyers": ["orders.user_id"], "orders": []},
}


def test_lineage_of_the_examples(runner: CliRunner, in_project: Path) -> None:
    for name, columns in EXPECTED_LINEAGE.items():
        result = runner.invoke(cli, ["lineage", name, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["columns"] == columns, name
    listed = json.loads(runner.invoke(cli, ["list", "--json"]).output)
    assert {k["name"]: k["lineage"]["columns"] for k in listed} == EXPECTED_LINEAGE
    shown = runner.invoke(cli, ["lineage", "large_orders"])
    assert shown.output.splitlines() == [
        "order_date    ← orders.created_at",
        "country       ← users.country",
        "large_orders  ← (no column: counted or constant)",
        "amount        ← orders.amount",
        "reads: orders.amount, orders.created_at, orders.status, orders.user_id, users.country, users.id",
    ]


def test_the_report_shows_the_lineage_of_each_example(in_project: Path, tmp_path: Path) -> None:
    """The demo's report, built from an empty warehouse: each KPI section's lineage table is kpi lineage's."""
    import re
    from datetime import UTC, datetime

    from pipeline import catalog
    from pipeline.demo.report_data import build_report
    from pipeline.schemas import read_snapshots

    kpis = list(catalog.load((ROOT / "queries",)).kpis.values())
    page = build_report(
        kpis, tmp_path / "wh.duckdb", now=datetime(2024, 6, 1, tzinfo=UTC), schemas=read_snapshots(ROOT / "schemas")
    )
    shown = {}
    for section in page.split('<section class="kpi" id="kpi-')[1:]:
        name = section.split('"', 1)[0]
        table = section[section.index('<table class="lineage">') : section.index("</table>", section.index("lineage"))]
        shown[name] = {
            column: re.findall(r"<code>([^<]+)</code>", sources)
            for column, sources in re.findall(r"<tr><td><code>([^<]+)</code></td><td>(.*?)</td></tr>", table)
        }
    assert shown == EXPECTED_LINEAGE
    large = page[page.index('id="kpi-large_orders"') :]
    assert (
        '<tr><td><code>large_orders</code></td><td><span class="muted">no column: counted or constant</span>' in large
    )
    assert (
        '<p class="reads muted">The query reads <code>orders.amount</code>, <code>orders.created_at</code>, '
        "<code>orders.status</code>, <code>orders.user_id</code>, <code>users.country</code>, <code>users.id</code>."
        "</p>"
    ) in large


def test_impact_lists_every_kpi_that_reads_a_table_or_column(runner: CliRunner, in_project: Path) -> None:
    def impact(target: str) -> dict[str, list[str]]:
        result = runner.invoke(cli, ["impact", target, "--json"])
        assert result.exit_code == 0, result.output
        return {k["name"]: k["reads"] for k in json.loads(result.output)["kpis"]}

    # status is read in WHERE only by large_orders, monthly_active_buyers and weekly_buyers: impact counts it
    assert impact("orders.status") == {
        "daily_sales": ["orders.status"],
        "large_orders": ["orders.status"],
        "monthly_active_buyers": ["orders.status"],
        "weekly_buyers": ["orders.status"],
    }
    assert impact("users") == {
        "large_orders": ["users.country", "users.id"],
        "users_by_plan": ["users.country", "users.plan"],
    }
    assert impact("users.email") == {}
    misspelt = runner.invoke(cli, ["impact", "orders.amout", "--json"])
    assert json.loads(misspelt.output)["unknown"] == "table 'orders' has no column 'amout' (did you mean 'amount'?)"
    assert json.loads(runner.invoke(cli, ["impact", "order", "--json"]).output)["unknown"] == (
        "no table 'order' in the schema snapshots (did you mean 'orders'?)"
    )
    assert list(impact("orders")) == [
        "daily_sales",
        "hourly_orders",
        "large_orders",
        "monthly_active_buyers",
        "weekly_buyers",
    ]
    shown = runner.invoke(cli, ["impact", "users.id"])
    assert shown.output.splitlines() == [
        "large_orders  queries/large_orders.sql  reads users.id",
        "1 KPI reads users.id",
    ]


def _readme_console(command: str) -> list[str]:
    """The lines the README shows after ``$ command``, up to the next prompt or the end of the block."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = readme[readme.index("### Checked against the database") :]
    after = readme[readme.index(f"$ {command}\n") + len(command) + 3 :]
    block = after[: after.index("```")]
    return block.split("\n$ ")[0].rstrip("\n").splitlines()


def test_readme_shows_real_output(runner: CliRunner, in_project: Path, tmp_path: Path) -> None:
    for command in ("kpi lineage large_orders", "kpi impact orders.user_id"):
        result = runner.invoke(cli, command.split()[1:])
        assert result.output.splitlines() == _readme_console(command), command
    shutil.copytree(ROOT / "queries", tmp_path / "queries")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    (tmp_path / "queries" / "large_orders.sql").write_text(LARGE_ORDERS.replace("SUM(o.amount)", "SUM(o.amout)"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        result = runner.invoke(cli, ["check"])
    assert result.exit_code == 1
    assert result.output.splitlines() == _readme_console("kpi check")[: len(result.output.splitlines())]
    assert result.output.splitlines()[-1] == "1 problem in 1 of 6 files"


DEMO = from_text("schemas/default.json", (ROOT / "schemas" / "default.json").read_text(encoding="utf-8"))

# Valid MySQL over the demo shop, with the lineage of each result column: no schema problem may be reported.
VALID = {
    "SELECT DATE_ADD(created_at, INTERVAL 1 DAY) AS d, TIMESTAMPDIFF(DAY, created_at, NOW()) AS age FROM orders": {
        "d": ["orders.created_at"],
        "age": ["orders.created_at"],
    },
    "WITH paid AS (SELECT user_id, amount FROM orders WHERE status = 'paid') SELECT u.country AS country, "
    "SUM(p.amount) AS s FROM paid p JOIN users u ON u.id = p.user_id GROUP BY u.country": {
        "country": ["users.country"],
        "s": ["orders.amount"],
    },
    "WITH t AS (SELECT * FROM orders) SELECT t.status AS status, COUNT(*) AS n FROM t GROUP BY t.status": {
        "status": ["orders.status"],
        "n": [],
    },
    "SELECT status AS st, COUNT(*) AS n FROM orders GROUP BY st HAVING n > 1 ORDER BY n DESC": {
        "st": ["orders.status"],
        "n": [],
    },
    "SELECT x.s AS s FROM (SELECT status AS s FROM orders) AS x": {"s": ["orders.status"]},
    "SELECT u.id AS id, (SELECT COUNT(*) FROM orders o WHERE o.user_id = u.id) AS n FROM users u": {
        "id": ["users.id"],
        "n": [],
    },
    "SELECT id AS id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND status = 'paid')": {
        "id": ["users.id"]
    },
    "SELECT o.status AS s FROM orders o WHERE o.user_id IN (SELECT id FROM users WHERE country = 'JP')": {
        "s": ["orders.status"]
    },
    "SELECT status AS s FROM orders UNION ALL SELECT plan AS s FROM users": {"s": ["orders.status", "users.plan"]},
    "SELECT o.id AS id, ROW_NUMBER() OVER (PARTITION BY o.user_id ORDER BY o.created_at) AS rn FROM orders o": {
        "id": ["orders.id"],
        "rn": ["orders.created_at", "orders.user_id"],
    },
    "SELECT o.id AS id FROM orders o JOIN users u USING (id)": {"id": ["orders.id"]},
    "SELECT Status AS s, `amount` AS a FROM `orders`": {"s": ["orders.status"], "a": ["orders.amount"]},
    "SELECT demo.orders.id AS id FROM demo.orders": {"id": ["orders.id"]},
    "SELECT id AS id FROM otherdb.things": {"id": ["things.id"]},  # another database: not in the snapshot
    "SELECT CASE WHEN amount > 100 THEN 'big' ELSE 'small' END AS size, COUNT(*) AS n FROM orders GROUP BY size": {
        "size": ["orders.amount"],
        "n": [],
    },
    "SELECT d.day AS day FROM (SELECT DATE(created_at) AS day FROM orders) d WHERE d.day > '2024-01-01'": {
        "day": ["orders.created_at"]
    },
    "SELECT TRUE AS t, NULL AS n, JSON_EXTRACT('{}', '$.a') AS j FROM users": {"t": [], "n": [], "j": []},
}


def _kpi(sql: str) -> Kpi:
    import sqlglot
    from sqlglot import exp

    query = sqlglot.parse_one(sql, read="mysql")
    assert isinstance(query, exp.Query)
    names = query.named_selects
    header = "/*---\ngrain: none\ncolumns:\n" + "".join(f"  {n}: {{type: STRING}}\n" for n in names) + "---*/\n"
    kpi, problems = parse_kpi("k.sql", (header + sql).encode(), "k")
    assert kpi is not None, problems
    return kpi


@pytest.mark.parametrize("sql", list(VALID), ids=[sql[:50] for sql in VALID])
def test_valid_queries_have_no_schema_problem_and_exact_lineage(sql: str) -> None:
    kpi = _kpi(sql)
    assert check_against(kpi, DEMO).problems == []
    assert kpi_lineage(kpi, DEMO).columns == VALID[sql]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT statuz AS s FROM orders", "column 'statuz' does not exist in orders (did you mean 'status'?)"),
        (
            "SELECT o.id AS id FROM orders o WHERE EXISTS "
            "(SELECT 1 FROM users u WHERE u.id = o.user_id AND u.plann = 'x')",
            "column 'plann' does not exist in table 'users' (did you mean 'plan'?)",
        ),
        (
            "SELECT x.s AS s FROM (SELECT status AS s FROM orders) AS x WHERE x.st = 1",
            "'x' has no column 'st' (did you mean 's'?)",
        ),
        (
            "SELECT created_at AS c FROM orders o JOIN users u ON u.id = o.user_id",
            "column 'created_at' is in o and u: MySQL refuses it as ambiguous",
        ),
        ("SELECT z.id AS id FROM orders o", "'z.id': no table or alias 'z' in this query"),
        ("SELECT id AS id FROM Orders", "table 'Orders' does not exist in demo (did you mean 'orders'?)"),
    ],
)
def test_wrong_names_are_reported(sql: str, message: str) -> None:
    (problem,) = check_against(_kpi(sql), DEMO).problems
    assert problem.message == message


def test_check_on_the_demo_snapshot_names_a_function_the_demo_cannot_run(
    runner: CliRunner, in_project: Path, tmp_path: Path
) -> None:
    shutil.copytree(ROOT / "queries", tmp_path / "queries")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    sql = LARGE_ORDERS.replace("COUNT(*) AS large_orders", "COUNT(SEC_TO_TIME(o.id)) AS large_orders")
    (tmp_path / "queries" / "large_orders.sql").write_text(sql, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        result = runner.invoke(cli, ["check", "--json"])
    assert result.exit_code == 0, result.output  # valid MySQL: production runs it, only the demo cannot
    (warning,) = json.loads(result.output)["warnings"]
    assert (warning["rule"], warning["line"], warning["col"]) == ("demo-unsupported", 20, 59)
    assert warning["message"].startswith("SEC_TO_TIME() as the query calls it does not run on the embedded DuckDB")


def test_results_are_cached_and_a_changed_snapshot_is_checked_again(
    runner: CliRunner, in_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "queries", tmp_path / "queries")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    monkeypatch.setenv("KPI_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli, ["check"]).exit_code == 0
    cached = tmp_path / "cache" / "kpi-schema-check.pickle"
    written = cached.stat().st_mtime_ns
    again = runner.invoke(cli, ["check"])
    assert (again.exit_code, again.output) == (0, "ok: 6 KPIs in 6 files, no problems\n")
    assert cached.stat().st_mtime_ns == written  # every result came from the cache: nothing new to write
    snapshot = Path("schemas/default.json")
    snapshot.write_text(snapshot.read_text().replace('"amount"', '"total"'), encoding="utf-8")  # a migration
    changed = runner.invoke(cli, ["check", "--json"])
    assert changed.exit_code == 1
    problems = json.loads(changed.output)["problems"]
    assert {p["kpi"] for p in problems} == {"daily_sales", "large_orders", "monthly_active_buyers"}
    assert {p["message"] for p in problems} == {
        "column 'amount' does not exist in orders",
        "column 'amount' does not exist in table 'orders'",
    }


@pytest.mark.parametrize(
    ("select", "declared"),
    [
        ("ROUND(SUM(amount)) AS x", "NUMERIC"),  # sqlglot: DOUBLE; MySQL: DECIMAL
        ("FLOOR(amount) AS x", "INT64"),  # sqlglot: DECIMAL(12,2); MySQL: no decimal places
        ("AVG(amount) AS x", "NUMERIC"),
        ("amount * 1.1 AS x", "NUMERIC"),
        ("1.5 AS x", "NUMERIC"),
        ("TRUE AS x", "INT64"),  # sqlglot: BOOLEAN; MySQL: 1
        ("COUNT(*) / 2 AS x", "NUMERIC"),
        ("IF(amount > 0, amount, 0) AS x", "NUMERIC"),
    ],
)
def test_types_sqlglot_cannot_tell_are_left_to_the_preview(select: str, declared: str) -> None:
    sql = f"SELECT {select} FROM orders"
    kpi, problems = parse_kpi(
        "k.sql", f"/*---\ngrain: none\ncolumns:\n  x: {{type: {declared}}}\n---*/\n{sql}".encode(), "k"
    )
    assert kpi is not None, problems
    assert check_against(kpi, DEMO).problems == []


@pytest.mark.parametrize(
    ("select", "declared", "source"),
    [
        ("created_at AS x", "DATE", "DATETIME"),  # the demo's TIMESTAMP is naive: MySQL's DATETIME
        ("CAST(amount AS CHAR) AS x", "NUMERIC", "CHAR"),
        ("COUNT(*) AS x", "DATE", "BIGINT"),
        ("DATE_FORMAT(created_at, '%Y-%m-01') AS x", "DATE", "TEXT"),
        ("MAX(DATE(created_at)) AS x", "DATETIME", "DATE"),
        ("SUM(amount) AS x", "INT64", "DECIMAL(12,2)"),
    ],
)
def test_types_sqlglot_can_tell_are_judged(select: str, declared: str, source: str) -> None:
    sql = f"SELECT {select} FROM orders"
    kpi, problems = parse_kpi(
        "k.sql", f"/*---\ngrain: none\ncolumns:\n  x: {{type: {declared}}}\n---*/\n{sql}".encode(), "k"
    )
    assert kpi is not None, problems
    (problem,) = check_against(kpi, DEMO).problems
    assert problem.rule == "column-type"
    assert problem.message.startswith(
        f"column 'x' is declared {declared}, but the source's column types make it {source}"
    )


def test_the_cache_belongs_to_the_installed_duckdb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The demo binder's warnings come from DuckDB's binder: a DuckDB upgraded in place (1.5 → 2.0) must miss."""
    import importlib.machinery
    import importlib.util

    from pipeline import schema_cache

    schema_cache._owner.cache_clear()
    before = schema_cache._owner()
    other = tmp_path / "duckdb" / "__init__.py"
    other.parent.mkdir()
    other.write_text("")
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_file_location("duckdb", other) if name == "duckdb" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    schema_cache._owner.cache_clear()
    try:
        assert schema_cache._owner() != before
    finally:
        monkeypatch.undo()
        schema_cache._owner.cache_clear()
    assert schema_cache._owner() == before
