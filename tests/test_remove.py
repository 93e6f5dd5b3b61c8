"""kpi remove: loaded partitions taken out of the warehouse in one transaction and audited, on DuckDB and on
BigQuery (the emulator); what "never older" means afterwards; the command's questions, no-ops and mistakes."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from google.api_core import exceptions as google_errors

from pipeline import catalog
from pipeline.cli import cli
from pipeline.core.types import BqType
from pipeline.errors import LoadError
from pipeline.flows.removal import plan_removal, remove
from pipeline.load import load_manifest
from pipeline.stores import LocalStore
from pipeline.warehouses import open_warehouse
from pipeline.warehouses.base import REMOVED, Removal
from tests.bigquery import BigQueryBridge
from tests.exporting import days
from tests.loading import SQL, Target, bigquery_target, duckdb_target, key_of, run, shop_source

OLD, NEW = "20240302T000000000Z-old000", "20240303T000000000Z-new000"


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return shop_source(tmp_path)


@pytest.fixture(params=["duckdb", "bigquery"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "duckdb":
        return duckdb_target(tmp_path / "wh.duckdb")
    return bigquery_target(request.getfixturevalue("bq_url"), request.getfixturevalue("bq_client"))


def test_a_removed_partition_is_gone_audited_and_takes_a_load_of_any_run_again(
    shop: str, tmp_path: Path, target: Target
) -> None:
    store = LocalStore(tmp_path / "lake")
    old = run(shop, tmp_path, count=2, run_id=OLD)
    (new,) = run(shop, tmp_path, sql=SQL.replace("COUNT(*)", "COUNT(*) * 10"), run_id=NEW)
    for manifest in [*old, new]:
        assert load_manifest(store, key_of(manifest), target.open())[1].loaded
    kpi = catalog.load_one((tmp_path / "q",), "daily")

    warehouse = target.open()
    plan = plan_removal(kpi, warehouse, days("2024-03-01", 1) + days("2024-03-05", 1))
    assert (plan.partitions, plan.rows, plan.not_loaded) == (["2024-03-01"], 2, ("2024-03-05",))
    (record,) = remove(plan, warehouse)
    assert (record.partition, record.run_id, record.rows, record.sql_hash) == ("2024-03-01", NEW, 2, "")
    assert target.rows("SELECT day, status, orders FROM {daily} ORDER BY day") == [(date(2024, 3, 2), "paid", 1)]
    audit = target.rows('SELECT "partition", run_id, job_id FROM {audit} ORDER BY loaded_at')
    assert [(p, r, j.startswith(REMOVED)) for p, r, j in audit] == [
        ("2024-03-01", OLD, False),
        ("2024-03-02", OLD, False),
        ("2024-03-01", NEW, False),
        ("2024-03-01", NEW, True),
    ]
    assert {p: r.run_id for p, r in target.open().loads("daily").items()} == {"2024-03-02": OLD}

    again = load_manifest(store, key_of(old[0]), target.open())[1]  # the older run: accepted after a removal
    assert again.loaded, again.reason
    assert target.rows("SELECT SUM(orders), SUM(sales) FROM {daily} WHERE day = '2024-03-01'") == [
        (3, Decimal("14.75"))
    ]
    assert load_manifest(store, key_of(new), target.open())[1].loaded  # newer than the one now loaded
    refused = load_manifest(store, key_of(old[0]), target.open())[1]  # and "never older" holds again
    assert not refused.loaded
    assert f"is older than run {NEW}" in refused.reason

    nothing = plan_removal(kpi, target.open(), days("2024-03-05", 3))
    assert (nothing.removals, nothing.not_loaded) == ((), ("2024-03-05", "2024-03-06", "2024-03-07"))
    assert remove(nothing, target.open()) == []

    everything = plan_removal(kpi, target.open(), None)
    assert (everything.partitions, everything.whole_table) == (["2024-03-01", "2024-03-02"], True)
    assert len(remove(everything, target.open())) == 2
    assert target.rows("SELECT COUNT(*) FROM {daily}") == [(0,)]
    assert target.open().loads("daily") == {}


def test_a_late_event_of_the_removed_run_does_not_undo_the_removal(shop: str, tmp_path: Path, target: Target) -> None:
    """S3 may deliver a manifest's event late or twice: after `kpi remove`, the removed run's own manifest is
    skipped, saying why, until --force; the run before it (to undo a wrong load) and a new export still load."""
    store = LocalStore(tmp_path / "lake")
    (old,) = run(shop, tmp_path, run_id=OLD)
    (new,) = run(shop, tmp_path, sql=SQL.replace("COUNT(*)", "COUNT(*) * 10"), run_id=NEW)
    for manifest in (old, new):
        assert load_manifest(store, key_of(manifest), target.open())[1].loaded
    kpi = catalog.load_one((tmp_path / "q",), "daily")
    warehouse = target.open()
    remove(plan_removal(kpi, warehouse, days("2024-03-01", 1)), warehouse)

    late = load_manifest(store, key_of(new), target.open())[1]
    assert not late.loaded
    assert late.reason.startswith(f"run {NEW} was removed by `kpi remove` at ")
    assert late.reason.endswith("; load it again with --force")
    assert target.rows("SELECT COUNT(*) FROM {daily}") == [(0,)]
    forced = load_manifest(store, key_of(new), target.open(), force=True)[1]
    assert forced.loaded, forced.reason
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(30,)]  # the *10 run, loaded on purpose

    warehouse = target.open()
    remove(plan_removal(kpi, warehouse, days("2024-03-01", 1)), warehouse)
    before = load_manifest(store, key_of(old), target.open())[1]  # the run before the removed one: accepted
    assert before.loaded, before.reason
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(3,)]


def test_bigquerys_script_refuses_the_removed_run_even_when_planned_before_the_removal(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    """The plan is made before the transaction on BigQuery: a plan that still wants the removed run (made before
    its removal committed) meets the same rule in the script, as ``kpi-superseded`` — which makes the loader plan
    again and skip it. The script is sent as the loader would, with the removed run; it stops at that check."""
    from pipeline.warehouses.bigquery import parse_bigquery_url
    from pipeline.warehouses.bigquery_sql import Tables, batch_script, superseded_error

    target = bigquery_target(bq_url, bq_client)
    store = LocalStore(tmp_path / "lake")
    (new,) = run(shop, tmp_path, run_id=NEW)
    assert load_manifest(store, key_of(new), target.open())[1].loaded
    warehouse = target.open()
    remove(plan_removal(catalog.load_one((tmp_path / "q",), "daily"), warehouse, days("2024-03-01", 1)), warehouse)
    where = parse_bigquery_url(bq_url)
    tables = Tables(where.project, where.dataset, "daily", "_kpi_staging_daily_never_made")
    with pytest.raises(google_errors.GoogleAPICallError, match="kpi-superseded: 2024-03-01 ") as refused:
        bq_client.query(batch_script(tables, [new], force=False, job_id="kpi_test_stale_plan")).result()
    found = superseded_error(str(refused.value))
    assert found is not None
    assert (found[0], found[1].rstrip(";")) == ("2024-03-01", NEW)  # the emulator quotes the statement's end
    assert target.rows("SELECT COUNT(*) FROM {daily}") == [(0,)]


def test_a_removal_that_fails_half_way_removes_nothing(shop: str, tmp_path: Path, target: Target) -> None:
    """One transaction: the second DELETE fails (no such column) after the first ran; both partitions stay."""
    store = LocalStore(tmp_path / "lake")
    for manifest in run(shop, tmp_path, count=2, run_id=OLD):
        load_manifest(store, key_of(manifest), target.open())
    kpi = catalog.load_one((tmp_path / "q",), "daily")
    warehouse = target.open()
    plan = plan_removal(kpi, warehouse, days("2024-03-01", 2))
    first, second = plan.removals
    broken = Removal(second.load, ("no_such_column", BqType.DATE, date(2024, 3, 2), date(2024, 3, 3)))
    with pytest.raises(LoadError) as caught:
        warehouse.remove("daily", [first, broken])
    assert "nothing was removed" in caught.value.hint
    assert "no_such_column" in caught.value.message
    assert target.rows("SELECT COUNT(*) FROM {daily}") == [(3,)]
    assert target.rows("SELECT COUNT(*) FROM {audit}") == [(2,)]
    assert sorted(target.open().loads("daily")) == ["2024-03-01", "2024-03-02"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shop = shop_source(tmp_path)
    run(shop, tmp_path, count=2, run_id=OLD)  # writes q/daily.sql, and the lake that test_kpi_remove_on_bigquery loads
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_QUERIES", str(tmp_path / "q"))
    monkeypatch.setenv("KPI_SOURCE", shop)
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("KPI_ENV", raising=False)
    return tmp_path


def test_kpi_remove_shows_asks_removes_and_status_follows(project: Path) -> None:
    told = CliRunner().invoke(cli, ["run", "daily", "--date", "2099-05-01", "--allow-incomplete"])
    assert told.exit_code == 0, told.output
    assert CliRunner().invoke(cli, ["run", "daily", "--start", "2024-03-01", "--end", "2024-03-02"]).exit_code == 0
    status = CliRunner().invoke(cli, ["status", "daily"])
    assert "`kpi remove daily --date 2099-05-01` removes them" in status.output

    declined = CliRunner().invoke(cli, ["remove", "daily", "--date", "2099-05-01"], input="n\n")
    assert declined.exit_code == 1
    # load times in the KPI's zone, as `kpi status` shows them beside its partitions
    warehouse = open_warehouse(str(project / "wh.duckdb"), read_only=True)
    try:
        loaded_at = warehouse.loads("daily")["2099-05-01"].loaded_at
    finally:
        warehouse.close()
    assert "loaded (Asia/Tokyo)" in declined.output
    assert f"{loaded_at.astimezone(ZoneInfo('Asia/Tokyo')):%Y-%m-%d %H:%M}" in declined.output
    assert "Remove 1 partition(s), 0 rows, of daily? [y/N]: n\nAborted!" in declined.output
    assert (
        "2099-05-01"
        in json.loads(CliRunner().invoke(cli, ["status", "daily", "--json"]).output)["kpis"][0]["future_partitions"]
    )

    removed = CliRunner().invoke(cli, ["remove", "daily", "--date", "2099-05-01"], input="y\n")
    assert removed.exit_code == 0, removed.output
    assert "│ 2099-05-01 │" in removed.output
    assert removed.output.endswith(
        "removed 1 partition(s) of daily, 0 rows; recorded in _kpi_loads: `kpi status` no longer counts them and "
        "their next load is accepted, whatever its run\n"
    )
    line = json.loads(CliRunner().invoke(cli, ["status", "daily", "--json"]).output)["kpis"][0]
    assert (line["partition"], line["future_partitions"], line["partitions_loaded"]) == ("2024-03-02", [], 2)

    twice = CliRunner().invoke(cli, ["remove", "daily", "--date", "2099-05-01"])
    assert twice.exit_code == 0
    assert twice.output == (
        "nothing to remove: 1 partition(s) of daily asked for are not loaded (2099-05-01); `kpi status daily` "
        "shows what is\n"
    )

    as_json = CliRunner().invoke(
        cli, ["remove", "daily", "--start", "2024-03-01", "--end", "2024-03-03", "--yes", "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    assert [(r["partition"], r["rows"]) for r in document["removed"]] == [("2024-03-01", 2), ("2024-03-02", 1)]
    assert (document["rows"], document["not_loaded"], document["whole_table"]) == (3, ["2024-03-03"], False)
    backfill = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-02", "--json"])
    assert json.loads(backfill.output)["kpis"][0]["partitions"] == 2  # removed: a backfill runs them again


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--date", "2024-13-01"], "'2024-13-01' is not a date; write 2024-01-31"),
        (["--start", "2024-03-05", "--end", "2024-03-01"], "--end 2024-03-01 23:59 is before --start 2024-03-05 00:00"),
        (["--start", "2024-03-05"], "--start and --end go together"),
        ([], "which partitions of daily? none given"),
        (["--all", "--date", "2024-03-01"], "which partitions of daily? give dates or --all, not both"),
        (["--all", "--json"], "--json prints no question: add --yes"),
        (["--date", "2024-03-01", "--env", "nowhere"], "nowhere"),
    ],
)
def test_kpi_remove_refuses_what_cannot_work_in_one_message(project: Path, arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["remove", "daily", *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_kpi_remove_on_bigquery_is_one_dml_transaction(
    project: Path, bq_url: str, bq_client: BigQueryBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI against the emulator: the removal is one DML script, sent to BigQuery as it is."""
    target = bigquery_target(bq_url, bq_client)
    store = LocalStore(project / "lake")
    for day in ("2024-03-01", "2024-03-02"):
        load_manifest(store, f"daily/day={day}/run={OLD}/_manifest.json", target.open())
    loads_before = _load_jobs(bq_client)
    assert loads_before >= 2  # the two loads above staged their files: the emulator lists load jobs
    monkeypatch.setenv("KPI_WAREHOUSE", bq_url)
    result = CliRunner().invoke(cli, ["remove", "daily", "--date", "2024-03-01", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["removed"] == [{"partition": "2024-03-01", "run_id": OLD, "rows": 2}]
    assert _load_jobs(bq_client) == loads_before  # DML only: no load or copy job (the CLI has its own client)
    assert target.rows("SELECT day, orders FROM {daily}") == [(date(2024, 3, 2), 1)]
    ((audited,),) = target.rows("SELECT job_id FROM {audit} WHERE STARTS_WITH(job_id, 'removed:')")
    (job,) = [j for j in bq_client.list_jobs(max_results=100) if j.job_id.startswith(audited.removeprefix(REMOVED))]
    statements = job.query.split(";\n")
    assert statements[0].startswith("INSERT INTO `kpi-test.")
    assert "._kpi_lock_daily` (kpi, run_id, locked_at)" in statements[0]  # the KPI's own lock table
    assert statements[1] == "BEGIN TRANSACTION"
    assert statements[2].startswith("UPDATE `kpi-test.")
    assert "._kpi_lock_daily` SET" in statements[2]  # the lock row: a load of the KPI in flight conflicts with it
    assert [s.split(" ", 2)[:2] for s in statements[3:]] == [
        ["SELECT", "ERROR(CONCAT('kpi-changed:"],  # loaded again since planned
        ["SELECT", "ERROR('kpi-changed:"],  # a planned load gone
        ["DELETE", "FROM"],
        ["INSERT", "INTO"],
        ["COMMIT", "TRANSACTION;"],
    ]
    assert "WHERE `day` >= DATE '2024-03-01' AND `day` < DATE '2024-03-02';" in job.query
    assert "CURRENT_TIMESTAMP())" in job.query  # the removal's time by BigQuery's clock, not this machine's
    assert job.query.endswith("COMMIT TRANSACTION;")
    status = CliRunner().invoke(cli, ["status", "daily", "--json"])
    assert json.loads(status.output)["kpis"][0]["partitions_loaded"] == 1
    all_of_it = CliRunner().invoke(cli, ["remove", "daily", "--all", "--yes"])
    assert all_of_it.exit_code == 0, all_of_it.output
    assert target.rows("SELECT COUNT(*) FROM {daily}") == [(0,)]


def test_a_snapshot_is_removed_whole_and_takes_no_dates(project: Path) -> None:
    from tests.exporting import make_kpi

    header = "grain: none\ncolumns:\n  status: {type: STRING}\n  orders: {type: INT64}"
    make_kpi(project / "q", "by_status", header, "SELECT status, COUNT(*) AS orders FROM orders GROUP BY 1")
    assert CliRunner().invoke(cli, ["run", "by_status"]).exit_code == 0
    dated = CliRunner().invoke(cli, ["remove", "by_status", "--date", "2024-03-01"])
    assert dated.exit_code == 2
    assert "by_status is a snapshot (grain: none): it has no partitions\n  hint: use --all" in dated.output
    removed = CliRunner().invoke(cli, ["remove", "by_status", "--all", "--yes"])
    assert removed.exit_code == 0, removed.output
    assert "removed 1 partition(s) of by_status, 2 rows; its table is empty; recorded in _kpi_loads" in removed.output
    line = json.loads(CliRunner().invoke(cli, ["status", "by_status", "--json"]).output)["kpis"][0]
    assert (line["partition"], line["freshness"]) == (None, "never loaded")
    assert CliRunner().invoke(cli, ["run", "by_status"]).exit_code == 0  # and it loads again
    line = json.loads(CliRunner().invoke(cli, ["status", "by_status", "--json"]).output)["kpis"][0]
    assert (line["partition"], line["rows"]) == ("snapshot", 2)


def _load_jobs(client: BigQueryBridge) -> int:
    """Load and copy jobs the emulator knows of, whoever sent them."""
    return sum(1 for job in client.list_jobs(max_results=1000) if job.job_type in ("load", "copy"))


def test_the_warehouses_query_of_current_loads_is_the_python_rule() -> None:
    """``current_loads_sql`` (what both warehouses run, one row per partition leaving the warehouse) gives what
    ``current_loads`` gives over every audit row: 400 random histories of loads and removals, ties of time
    included (either of two equal rows will do), run on DuckDB."""
    import random
    from datetime import UTC, datetime, timedelta

    import duckdb

    from pipeline.warehouses.base import AUDIT_TABLE, LoadRecord, current_loads, current_loads_sql

    chance = random.Random(20261203)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    columns = "kpi, partition, run_id, sql_hash, rows, bytes, job_id, timezone('UTC', loaded_at)"
    connection = duckdb.connect()  # one in-memory database for all histories: a new one each costs more
    connection.execute(
        f"CREATE TABLE {AUDIT_TABLE} (kpi VARCHAR, partition VARCHAR, run_id VARCHAR, sql_hash VARCHAR, "
        "rows BIGINT, bytes BIGINT, job_id VARCHAR, loaded_at TIMESTAMPTZ)"
    )
    for _ in range(400):
        rows = [
            LoadRecord(
                chance.choice(["daily", "other"]),
                chance.choice(["2024-03-01", "2024-03-02", "2024-03-03"]),
                f"2024030{chance.randint(1, 6)}T000000000Z-run000",
                "hash",
                chance.randint(0, 9),
                0,
                (REMOVED if chance.random() < 0.3 else "") + f"job{chance.randint(0, 99)}",
                start + timedelta(minutes=chance.randint(0, 12)),
            )
            for _ in range(chance.randint(0, 12))
        ]
        connection.execute(f"DELETE FROM {AUDIT_TABLE}")
        if rows:  # one statement: DuckDB's executemany runs one INSERT per row
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
            connection.execute(
                f"INSERT INTO {AUDIT_TABLE} VALUES {values}", [v for r in rows for v in r.__dict__.values()]
            )
        chosen = connection.execute(current_loads_sql(columns, AUDIT_TABLE, "$kpi"), {"kpi": "daily"}).fetchall()
        found = {r[1]: (r[2], r[7].replace(tzinfo=UTC)) for r in chosen}  # equal (run, time): either row will do
        expected = current_loads(r for r in rows if r.kpi == "daily")
        assert found == {p: (r.run_id, r.loaded_at) for p, r in expected.items()}, rows
