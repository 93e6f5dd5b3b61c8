"""What only BigQuery has: the jobs it receives, its partitioning, its transactions, its failures, its credentials.

The rules both warehouses share (exactly once, ordering, refusals, drift) run on the emulator in test_load.py,
races and failures in test_load_concurrency.py. Jobs are recorded as sent by :class:`tests.bigquery.BigQueryBridge`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.cli import cli
from pipeline.core.intervals import interval_containing
from pipeline.core.lake import manifest_key
from pipeline.core.plan import plan_backfill
from pipeline.errors import LoadError
from pipeline.export import export
from pipeline.lambdas.loader import handler as loader_handler
from pipeline.load import load_manifest, load_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore, open_store
from pipeline.warehouses import open_warehouse
from pipeline.warehouses.bigquery import BigQueryWarehouse, make_client, parse_bigquery_url
from tests.bigquery import PROJECT, BigQueryBridge, SentJob, as_before_lock_tables_per_kpi
from tests.exporting import days, make_kpi
from tests.loading import HEADER, SQL, bigquery_target, key_of, run, shop_source

# Infrastructure (loads into the BigQuery emulator): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return shop_source(tmp_path)


def test_a_batch_is_staging_load_jobs_with_an_explicit_schema_then_one_transaction(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    """No load or copy job ever writes the KPI's table: its rows change by DML inside one transaction, which
    does not count toward BigQuery's table-modification limit."""
    committed = run(shop, tmp_path, count=2, run_id="20240302T000000000Z-aaaaaa")
    store = LocalStore(tmp_path / "lake")
    loaded = load_manifests(store, [key_of(m) for m in committed], BigQueryWarehouse(bq_url, client=bq_client))
    assert [r.loaded for _, r in loaded] == [True, True]

    loads = [job for job in bq_client.jobs if job.kind == "load"]
    assert len(loads) == 2
    assert all("._kpi_staging_daily_20240302t000000000z-aaaaaa_" in job.destination for job in loads)
    assert bq_client.loads_into(f"{PROJECT}.{bq_dataset}.daily") == []
    load = loads[0].configuration["load"]
    assert load["writeDisposition"] == "WRITE_APPEND"
    assert load["createDisposition"] == "CREATE_NEVER"
    assert load["sourceFormat"] == "PARQUET"
    assert load["maxBadRecords"] == 0
    assert "autodetect" not in load
    assert [(f["name"], f["type"], f["mode"], f["description"]) for f in load["schema"]["fields"]] == [
        ("day", "DATE", "NULLABLE", "JST day"),
        ("status", "STRING", "NULLABLE", "Status"),
        ("orders", "INT64", "NULLABLE", "Orders"),
        ("sales", "NUMERIC", "NULLABLE", "Sales"),
    ]
    assert loads[0].configuration["labels"] == {"kpi": "daily", "run": "20240302t000000000z-aaaaaa"}
    (script,) = bq_client.transactions()
    assert "$" not in script
    assert "WRITE_TRUNCATE" not in script
    assert f"DELETE FROM `{PROJECT}.{bq_dataset}.daily` WHERE (`day` >= DATE '2024-03-01' AND `day` < DATE" in script
    assert " OR (`day` >= DATE '2024-03-02' AND `day` < DATE '2024-03-03')" in script
    queries = [job for job in bq_client.jobs if job.kind == "query"]
    assert len(queries) == 2  # the audit read that planned the batch, and the transaction

    table = bq_client.get_table(f"{PROJECT}.{bq_dataset}.daily")
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "day")
    assert table.clustering_fields == ["status"]
    assert table.description == "Orders per JST day"
    tables = [t.table_id for t in bq_client.list_tables(f"{PROJECT}.{bq_dataset}")]
    assert sorted(tables) == ["_kpi_loads", "_kpi_lock_daily", "daily"]  # the staging table is gone


def test_the_first_load_of_a_kpi_makes_its_own_lock_table_and_takes_its_row_in_the_one_script(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    """A new KPI's lock table is made with its table, before the script: no script fails for want of it."""
    (manifest,) = run(shop, tmp_path, run_id="20240302T000000000Z-aaaaaa")
    warehouse = BigQueryWarehouse(bq_url, client=bq_client)
    assert load_manifest(LocalStore(tmp_path / "lake"), key_of(manifest), warehouse)[1].loaded
    lock = f"{PROJECT}.{bq_dataset}._kpi_lock_daily"
    (script,) = bq_client.transactions()
    statements = script.split(";\n")
    assert statements[0].startswith(f"INSERT INTO `{lock}` (kpi, run_id, locked_at) SELECT 'daily', ''")
    assert statements[1:3] == [
        "BEGIN TRANSACTION",
        f"UPDATE `{lock}` SET run_id = '20240302T000000000Z-aaaaaa', locked_at = CURRENT_TIMESTAMP() "
        "WHERE kpi = 'daily'",
    ]
    assert "_kpi_lock`" not in script  # the shared lock table of old is not named
    table = bq_client.get_table(lock)
    assert table.description.startswith("kpi-pipeline's lock of the KPI daily: one row, updated by each of its")
    assert [(f.name, f.field_type) for f in table.schema] == [
        ("kpi", "STRING"),
        ("run_id", "STRING"),
        ("locked_at", "TIMESTAMP"),
    ]
    target = bigquery_target(bq_url, bq_client)
    assert target.rows(f"SELECT kpi, run_id FROM `{lock}`") == [("daily", "20240302T000000000Z-aaaaaa")]


def test_a_kpi_loaded_when_the_lock_was_shared_gets_its_own_lock_table_and_loads(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    """A dataset made by the loader before each KPI had its lock table: the KPI's table and ``_kpi_loads`` exist,
    the shared ``_kpi_lock`` holds its row. The script's first statement finds no ``_kpi_lock_daily``: it is made
    and the script sent once more; the shared table is left as it was, unused."""
    old, new = "20240302T000000000Z-old000", "20240303T000000000Z-new000"
    store, warehouse = LocalStore(tmp_path / "lake"), BigQueryWarehouse(bq_url, client=bq_client)
    (first,) = run(shop, tmp_path, run_id=old)
    load_manifest(store, key_of(first), warehouse)
    shared = as_before_lock_tables_per_kpi(bq_client, f"{PROJECT}.{bq_dataset}", "daily", old)
    (second,) = run(shop, tmp_path, sql=SQL.replace("COUNT(*)", "COUNT(*) * 10"), run_id=new)
    before = len(bq_client.transactions())
    assert load_manifest(store, key_of(second), warehouse)[1].loaded
    sent = bq_client.transactions()[before:]
    assert len(sent) == 2  # refused for the missing lock table (before its transaction began), then committed
    job_id = re.compile(r"kpi_daily_\w+?_[0-9a-f]{32}")
    assert job_id.sub("…", sent[0]) == job_id.sub("…", sent[1])  # the same script, but the job id it audits
    assert sent[0].startswith(f"INSERT INTO `{PROJECT}.{bq_dataset}._kpi_lock_daily` (kpi, run_id, locked_at)")
    target = bigquery_target(bq_url, bq_client)
    assert target.rows("SELECT status, orders FROM {daily} ORDER BY status") == [("paid", 20), ("refunded", 10)]
    assert target.rows("SELECT run_id FROM {audit} ORDER BY run_id") == [(old,), (new,)]
    lock = f"{PROJECT}.{bq_dataset}._kpi_lock_daily"
    assert target.rows(f"SELECT kpi, run_id FROM `{lock}`") == [("daily", new)]
    assert target.rows(f"SELECT kpi, run_id FROM `{shared}`") == [("daily", old)]  # untouched
    tables = [t.table_id for t in bq_client.list_tables(f"{PROJECT}.{bq_dataset}")]
    assert sorted(tables) == ["_kpi_loads", "_kpi_lock", "_kpi_lock_daily", "daily"]


def test_a_partition_of_several_files_is_one_load_job_per_file_into_one_staging_table(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    (manifest,) = run(shop, tmp_path, files_per_row=True)
    assert len(manifest.files) == 2
    load_manifest(LocalStore(tmp_path / "lake"), key_of(manifest), BigQueryWarehouse(bq_url, client=bq_client))
    first, second = (job.destination for job in bq_client.jobs if job.kind == "load")
    assert first == second
    assert "_kpi_staging_daily_" in first
    assert len(bq_client.transactions()) == 1
    target = bigquery_target(bq_url, bq_client)
    assert target.rows("SELECT status, orders FROM {daily} ORDER BY status") == [("paid", 2), ("refunded", 1)]
    tables = [t.table_id for t in bq_client.list_tables(f"{PROJECT}.{bq_dataset}")]
    assert not [name for name in tables if name.startswith("_kpi_staging")]


def test_a_failed_load_job_leaves_the_partition_and_the_audit_unchanged_and_a_retry_succeeds(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    (old,) = run(shop, tmp_path, run_id="20240302T000000000Z-old000")
    (new,) = run(shop, tmp_path, sql=SQL.replace("COUNT(*)", "COUNT(*) * 10"), run_id="20240303T000000000Z-new000")
    store, warehouse = LocalStore(tmp_path / "lake"), BigQueryWarehouse(bq_url, client=bq_client)
    load_manifest(store, key_of(old), warehouse)
    bq_client.fail_next_load()
    with pytest.raises(LoadError, match="BigQuery refused the load: Backend error") as failed:
        load_manifest(store, key_of(new), warehouse)
    assert failed.value.retryable
    assert "the tables are unchanged" in failed.value.hint
    target = bigquery_target(bq_url, bq_client)
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(3,)]
    assert target.rows("SELECT run_id FROM {audit}") == [("20240302T000000000Z-old000",)]
    tables = [t.table_id for t in bq_client.list_tables(f"{PROJECT}.{bq_dataset}")]
    assert not [name for name in tables if name.startswith("_kpi_staging")]
    assert load_manifest(store, key_of(new), warehouse)[1].loaded
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(30,)]


HOURLY = """
grain: hour
time_column: hour
timezone: Asia/Tokyo
columns:
  hour:   {type: DATETIME, description: JST hour}
  orders: {type: INT64}
"""
HOURLY_SQL = """
SELECT CAST(DATE_FORMAT(created_at, '%Y-%m-%d %H:00:00') AS DATETIME) AS hour, COUNT(*) AS orders
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1
"""
MONTHLY = """
grain: month
time_column: month
timezone: Asia/Tokyo
columns:
  month:  {type: DATE, description: First day of the JST month}
  orders: {type: INT64}
"""
MONTHLY_SQL = """
SELECT CAST(DATE_FORMAT(created_at, '%Y-%m-01') AS DATE) AS month, COUNT(*) AS orders
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1
"""


def export_and_load(
    tmp_path: Path, shop: str, name: str, header: str, sql: str, moment: str, url: str, client: Any
) -> str:
    """Export the partition of ``name`` containing ``moment`` and load it; its partition name."""
    kpi = make_kpi(tmp_path / "q", name, header, sql)
    interval = interval_containing(kpi.grain, kpi.zone, datetime.fromisoformat(moment))
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, [interval], source=open_source(shop), store=store)
    key = f"{name}/{manifest.time_column}={manifest.partition}/run={manifest.run_id}/_manifest.json"
    load_manifest(store, key, BigQueryWarehouse(url, client=client))
    return manifest.partition


def test_hour_and_month_grains_partition_the_table_at_their_grain(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    hour = export_and_load(tmp_path, shop, "hourly", HOURLY, HOURLY_SQL, "2024-03-01T11:30", bq_url, bq_client)
    month = export_and_load(tmp_path, shop, "monthly", MONTHLY, MONTHLY_SQL, "2024-03-15T00:00", bq_url, bq_client)
    assert (hour, month) == ("2024-03-01T11", "2024-03")
    for name, grain in (("hourly", "HOUR"), ("monthly", "MONTH")):
        partitioning = bq_client.get_table(f"{PROJECT}.{bq_dataset}.{name}").time_partitioning
        assert (partitioning.type_, partitioning.field) == (grain, name.removesuffix("ly"))
    target = bigquery_target(bq_url, bq_client)
    assert target.rows(f"SELECT orders FROM `{PROJECT}.{bq_dataset}.hourly`") == [(1,)]
    assert target.rows(f"SELECT month, orders FROM `{PROJECT}.{bq_dataset}.monthly`") == [(date(2024, 3, 1), 4)]


HOURLY_TIMESTAMP = HOURLY.replace("hour:   {type: DATETIME, description: JST hour}", "hour:   {type: TIMESTAMP}")


def test_a_japan_hour_and_day_of_a_timestamp_column_load_by_their_utc_range(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    """BigQuery partitions TIMESTAMP columns by UTC time; the loader replaces rows by the partition's range in
    UTC, never through a decorator, so the JST hour 2024-03-01T11 (02:00 UTC) and a JST day (15:00 to 15:00 UTC,
    two BigQuery day partitions) load like any other — and `kpi check` accepts the headers (make_kpi checks)."""
    hour = export_and_load(
        tmp_path, shop, "hourly", HOURLY_TIMESTAMP, HOURLY_SQL, "2024-03-01T11:30", bq_url, bq_client
    )
    assert hour == "2024-03-01T11"
    target = bigquery_target(bq_url, bq_client)
    assert target.rows(f"SELECT hour, orders FROM `{PROJECT}.{bq_dataset}.hourly`") == [
        (datetime(2024, 3, 1, 2, tzinfo=UTC), 1)
    ]
    (script,) = bq_client.transactions()
    assert "`hour` >= TIMESTAMP '2024-03-01 02:00:00.000000+00' AND `hour` < TIMESTAMP '2024-03-01 03:00:00" in script

    header = HEADER.replace("day:    {type: DATE, description: JST day}", "day:    {type: TIMESTAMP}")
    sql = SQL.replace("DATE(created_at) AS day", "MIN(created_at) AS day").replace("GROUP BY 1, 2", "GROUP BY 2")
    kpi = make_kpi(tmp_path / "q", "daily", header, sql)
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, days("2024-03-01", 1), source=open_source(shop), store=store)
    assert load_manifest(store, key_of(manifest), BigQueryWarehouse(bq_url, client=bq_client))[1].loaded
    assert target.rows("SELECT day, status, orders FROM {daily} ORDER BY status") == [
        (datetime(2024, 3, 1, 1, tzinfo=UTC), "paid", 2),
        (datetime(2024, 3, 1, 3, tzinfo=UTC), "refunded", 1),
    ]
    assert bq_client.loads_into(f"{PROJECT}.{bq_dataset}.daily") == []


def test_s3_events_load_a_snapshot_into_bigquery_through_the_loader_lambda(
    tmp_path: Path, s3_bucket: str, bq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end without the bridge: a snapshot replaces the whole table, which the emulator does itself."""
    shop = shop_source(tmp_path)
    header = "grain: none\ndescription: Orders by status\ncolumns:\n  status: {type: STRING}\n  orders: {type: INT64}"
    kpi = make_kpi(tmp_path / "q", "by_status", header, "SELECT status, COUNT(*) AS orders FROM orders GROUP BY 1")
    lake = f"s3://{s3_bucket}/lake"
    export(kpi, [], source=open_source(shop), store=open_store(lake), run_id="20240302T000000000Z-first0")
    export(kpi, [], source=open_source(shop), store=open_store(lake), run_id="20240303T000000000Z-again0")
    keys = sorted(o.key for o in open_store(lake).list("") if o.key.endswith("_manifest.json"))
    records = [
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": s3_bucket}, "object": {"key": f"lake/{key}"}},
        }
        for key in reversed(keys)  # out of order: the newer run first
    ]
    monkeypatch.setenv("KPI_WAREHOUSE", bq_url)
    outcome = loader_handler({"Records": records})
    assert [(m["run_id"], m["loaded"]) for m in outcome["manifests"]] == [
        ("20240303T000000000Z-again0", True),
        ("20240302T000000000Z-first0", False),
    ]
    where = parse_bigquery_url(bq_url)
    client = make_client(where)
    table = client.get_table(where.table("by_status"))
    assert (table.description, table.time_partitioning) == ("Orders by status", None)
    found = client.query(f"SELECT status, orders FROM `{where.table('by_status')}` ORDER BY status").result()
    assert [tuple(row.values()) for row in found] == [("paid", 3), ("refunded", 1)]


def test_kpi_load_into_bigquery_from_the_command_line(shop: str, tmp_path: Path, bq_url: str) -> None:
    header = "grain: none\ncolumns:\n  status: {type: STRING}\n  sales: {type: NUMERIC}"
    make_kpi(tmp_path / "q", "sales", header, "SELECT status, SUM(amount) AS sales FROM orders GROUP BY 1")
    options = ["--queries", str(tmp_path / "q")]
    lake = ["--lake", str(tmp_path / "lake")]
    env = {"KPI_SOURCE": shop, "KPI_WAREHOUSE": bq_url}
    exported = CliRunner().invoke(cli, [*options, "export", "sales", *lake], env=env)
    assert exported.exit_code == 0, exported.output
    loaded = CliRunner().invoke(cli, [*options, "load", "sales", *lake, "--json"], env=env)
    assert loaded.exit_code == 0, loaded.output
    outcome = json.loads(loaded.output)
    assert (outcome["loaded"], outcome["rows"]) == (True, 2)
    where = parse_bigquery_url(bq_url)
    client = make_client(where)
    found = client.query(f"SELECT status, sales FROM `{where.table('sales')}` ORDER BY 1").result()
    assert [tuple(row.values()) for row in found] == [("paid", Decimal("18.75")), ("refunded", Decimal("3"))]
    audit = client.query(f"SELECT job_id, `rows` FROM `{where.table('_kpi_loads')}`").result()
    assert [tuple(row.values()) for row in audit] == [(outcome["job_id"], 2)]


def service_account_key() -> dict[str, str]:
    """A well-formed service-account key (a fresh RSA key; it signs nothing here, so no Google server is asked)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "type": "service_account",
        "project_id": "acme-analytics",
        "private_key_id": "0123456789abcdef",
        "private_key": pem.decode(),
        "client_email": "kpi-loader@acme-analytics.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_a_service_account_key_from_secrets_manager_authenticates_the_client(aws_env: object) -> None:
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="bq-key", SecretString=json.dumps(service_account_key()))["ARN"]
    client = make_client(parse_bigquery_url(f"bigquery://acme-analytics/kpi?secret={arn}&location=asia-northeast1"))
    assert client.project == "acme-analytics"
    assert client.location == "asia-northeast1"
    assert client._credentials.service_account_email == "kpi-loader@acme-analytics.iam.gserviceaccount.com"

    not_a_key = secrets.create_secret(Name="not-a-key", SecretString=json.dumps({"user": "x"}))["ARN"]
    with pytest.raises(LoadError, match="is not a service-account key") as wrong:
        make_client(parse_bigquery_url(f"bigquery://acme-analytics/kpi?secret={not_a_key}"))
    assert "JSON key file" in wrong.value.hint
    with pytest.raises(LoadError, match="cannot read the BigQuery key secret"):
        make_client(parse_bigquery_url("bigquery://acme-analytics/kpi?secret=arn:aws:secretsmanager:x:1:secret:gone"))


def test_without_credentials_the_loader_says_how_to_provide_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-config.json"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never ask a metadata server: nothing leaves loopback
    with pytest.raises(LoadError, match="no Google credentials found") as missing:
        make_client(parse_bigquery_url("bigquery://acme-analytics/kpi"))
    assert "Workload Identity Federation" in missing.value.hint
    assert "?secret=ARN" in missing.value.hint


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("bigquery://acme-analytics", "it names no project and dataset"),
        ("bigquery://acme-analytics/kpi/extra", "it names no project and dataset"),
        ("bigquery://acme-analytics/kpi?locaton=US", "unknown parameter locaton"),
    ],
)
def test_a_wrong_bigquery_url_is_refused_with_its_form(url: str, problem: str) -> None:
    with pytest.raises(LoadError, match=problem) as refused:
        open_warehouse(url)
    assert "bigquery://PROJECT/DATASET" in refused.value.hint


def test_the_bigquery_loader_runs_without_pyarrow_pandas_or_duckdb(shop: str, tmp_path: Path, bq_url: str) -> None:
    """The loader Lambda's package holds none of them (its size budget): a whole load, with them made
    unimportable, must still work."""
    header = "grain: none\ncolumns:\n  status: {type: STRING}\n  orders: {type: INT64}"
    kpi = make_kpi(tmp_path / "q", "light", header, "SELECT status, COUNT(*) AS orders FROM orders GROUP BY 1")
    (manifest,) = export(kpi, [], source=open_source(shop), store=LocalStore(tmp_path / "lake"))
    script = f"""
import sys
for name in ("pyarrow", "pandas", "duckdb", "numpy"):
    sys.modules[name] = None  # import raises ImportError, as in a package without them
from pipeline.load import load_manifest
from pipeline.stores import LocalStore
from pipeline.warehouses import open_warehouse
lake, key = LocalStore({str(tmp_path / "lake")!r}), {f"light/snapshot/run={manifest.run_id}/_manifest.json"!r}
_, result = load_manifest(lake, key, open_warehouse({bq_url!r}))
print(result.loaded, result.record.rows)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "2"]


def backfill_hours(
    tmp_path: Path, shop: str, days_count: int, client: BigQueryBridge, url: str, *, real: int | None = None
) -> list[list[SentJob]]:
    """A backfill of ``days_count`` JST days of the hourly KPI, as ``kpi backfill`` runs it: planned in batches
    (one calendar day of hours each), each batch exported by one query and loaded as one batch. The first
    ``real`` batches run on the emulator (all by default), the others through the bridge's ``dry`` jobs. Returns
    the jobs each batch sent."""
    kpi = make_kpi(tmp_path / "q", "hourly", HOURLY, HOURLY_SQL)
    first = datetime(2024, 3, 1, tzinfo=kpi.zone)
    requested = [interval_containing(kpi.grain, kpi.zone, first + timedelta(hours=n)) for n in range(24 * days_count)]
    plan = plan_backfill(kpi, requested, {}, now=first + timedelta(days=days_count + 1))
    store, warehouse = LocalStore(tmp_path / "lake"), BigQueryWarehouse(url, client=client)
    sent = []
    for index, batch in enumerate(plan.batches):
        client.dry = real is not None and index >= real
        manifests = export(kpi, batch, source=open_source(shop), store=store)
        keys = [manifest_key(kpi, interval, m.run_id) for interval, m in zip(batch, manifests, strict=True)]
        before = len(client.jobs)
        assert all(result.loaded for _, result in load_manifests(store, keys, warehouse))
        sent.append(client.jobs[before:])
    client.dry = False
    return sent


DAYS = 62  # two months of hours: the README's figure
REAL = 2  # batches run on the emulator (1.5 s per load job there: all 62 would take ~40 minutes)


def without_run_label(configuration: dict[str, Any]) -> dict[str, Any]:
    """A job's configuration but the label naming its batch's run (``labels.run``), which differs per batch."""
    labels = {k: v for k, v in configuration.get("labels", {}).items() if k != "run"}
    return {**configuration, "labels": labels}


def test_an_hourly_backfill_of_two_months_costs_the_jobs_the_readme_states_none_into_the_kpi_table(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, bq_dataset: str
) -> None:
    """The README's bound, counted as the client sends the jobs: per batch (a JST day of hours) one audit query,
    one load job per file into the batch's staging table and one transaction script; no load or copy job into
    the KPI's table (DML does not count toward BigQuery's table-modification limit). 62 days: 62 × (1 + 24 + 1) =
    1,612 jobs, 62 transactions. The first batches run on the emulator; the rest send the same jobs — the same
    kinds, in the same order, with the same configurations — answered by the bridge (tests/bigquery.py)."""
    batches = backfill_hours(tmp_path, shop, DAYS, bq_client, bq_url, real=REAL)
    assert len(batches) == DAYS
    shape = [[(job.kind, without_run_label(job.configuration)) for job in jobs] for jobs in batches]
    assert all(jobs == shape[0] for jobs in shape)  # every batch, real or dry, sends the same jobs but its run's label
    assert [kind for kind, _ in shape[0]] == ["query", *["load"] * 24, "query"]
    loads = [job for job in bq_client.jobs if job.kind == "load"]
    assert bq_client.loads_into(f"{PROJECT}.{bq_dataset}.hourly") == []
    assert len(loads) == DAYS * 24
    assert all("._kpi_staging_hourly_" in job.destination for job in loads)
    assert len({job.destination for job in loads}) == DAYS  # one staging table per batch, 24 load jobs each
    assert len(bq_client.transactions()) == DAYS
    assert len(bq_client.jobs) == 1_612  # the README's figure: 62 × (1 + 24 + 1)
    target = bigquery_target(bq_url, bq_client)  # what the real batches loaded: the shop's orders of 1-2 March
    assert target.rows(f"SELECT SUM(orders) FROM `{PROJECT}.{bq_dataset}.hourly`") == [(4,)]
    assert target.rows("SELECT COUNT(*), COUNT(DISTINCT job_id) FROM {audit}") == [(REAL * 24, REAL)]
