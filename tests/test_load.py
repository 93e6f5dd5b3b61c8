"""The loader into the embedded DuckDB warehouse: each committed partition exactly once, verified, audited."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.manifest import Manifest
from pipeline.errors import LoadError
from pipeline.export import export
from pipeline.lambdas.loader import handler as loader_handler
from pipeline.load import load_manifest, newest_manifest, split_manifest_url
from pipeline.load.events import announced_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore, open_store
from pipeline.warehouses import open_warehouse
from tests.exporting import days, duckdb_orders, make_kpi

HEADER = """
grain: day
time_column: day
timezone: Asia/Tokyo
description: Orders per JST day
columns:
  day:    {type: DATE, description: JST day}
  status: {type: STRING, description: Status}
  orders: {type: INT64, description: Orders}
  sales:  {type: NUMERIC, description: Sales}
"""
SQL = """
SELECT DATE(created_at) AS day, status, COUNT(*) AS orders, SUM(amount) AS sales
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1, 2
"""


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return duckdb_orders(
        tmp_path / "shop.duckdb",
        "('2024-03-01 10:00', 'paid', 10.50)",
        "('2024-03-01 11:00', 'paid', 1.25)",
        "('2024-03-01 12:00', 'refunded', 3.00)",
        "('2024-03-02 09:00', 'paid', 7.00)",
    )


def rows(warehouse: str, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(warehouse, read_only=True) as db:
        return db.execute(sql).fetchall()


def run(
    shop: str,
    tmp_path: Path,
    header: str = HEADER,
    sql: str = SQL,
    first: str = "2024-03-01",
    count: int = 1,
    run_id: str | None = None,
) -> list[Manifest]:
    kpi = make_kpi(tmp_path / "q", "daily", header, sql)
    store = LocalStore(tmp_path / "lake")
    return export(kpi, days(first, count), source=open_source(shop), store=store, run_id=run_id)


def key_of(manifest: Manifest) -> str:
    return f"daily/day={manifest.partition}/run={manifest.run_id}/_manifest.json"


def test_partitions_load_with_exact_values_descriptions_and_an_audit_row(shop: str, tmp_path: Path) -> None:
    committed = run(shop, tmp_path, count=2, run_id="20240302T000000000Z-aaaaaa")
    store, warehouse_file = LocalStore(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    warehouse = open_warehouse(warehouse_file)
    for manifest in committed:
        _, result = load_manifest(store, key_of(manifest), warehouse)
        assert result.loaded
    assert rows(warehouse_file, "SELECT * FROM daily ORDER BY day, status") == [
        (date(2024, 3, 1), "paid", 2, Decimal("11.750000000")),
        (date(2024, 3, 1), "refunded", 1, Decimal("3.000000000")),
        (date(2024, 3, 2), "paid", 1, Decimal("7.000000000")),
    ]
    audit = rows(warehouse_file, "SELECT kpi, partition, run_id, rows FROM _kpi_loads ORDER BY partition")
    assert audit == [
        ("daily", "2024-03-01", "20240302T000000000Z-aaaaaa", 2),
        ("daily", "2024-03-02", "20240302T000000000Z-aaaaaa", 1),
    ]
    comments = rows(warehouse_file, "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'daily'")
    assert ("orders", "Orders") in comments
    assert rows(warehouse_file, "SELECT comment FROM duckdb_tables() WHERE table_name = 'daily'") == [
        ("Orders per JST day",)
    ]


def test_the_same_manifest_three_times_gives_the_same_rows(shop: str, tmp_path: Path) -> None:
    (manifest,) = run(shop, tmp_path)
    store, warehouse_file = LocalStore(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    outcomes = [load_manifest(store, key_of(manifest), open_warehouse(warehouse_file))[1] for _ in range(3)]
    assert [o.loaded for o in outcomes] == [True, False, False]
    assert "is already loaded" in outcomes[1].reason
    forced = load_manifest(store, key_of(manifest), open_warehouse(warehouse_file), force=True)[1]
    assert forced.loaded
    assert rows(warehouse_file, "SELECT COUNT(*), SUM(orders) FROM daily") == [(2, 3)]
    assert rows(warehouse_file, "SELECT COUNT(*) FROM _kpi_loads") == [(2,)]


def test_an_older_run_after_a_newer_one_changes_nothing_and_says_so(shop: str, tmp_path: Path) -> None:
    (old,) = run(shop, tmp_path, run_id="20240302T000000000Z-old000")
    (new,) = run(shop, tmp_path, sql=SQL.replace("COUNT(*)", "COUNT(*) * 10"), run_id="20240303T000000000Z-new000")
    store, warehouse_file = LocalStore(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    assert load_manifest(store, key_of(new), open_warehouse(warehouse_file))[1].loaded
    result = load_manifest(store, key_of(old), open_warehouse(warehouse_file))[1]
    assert not result.loaded
    assert "is older than run 20240303T000000000Z-new000" in result.reason
    assert rows(warehouse_file, "SELECT SUM(orders) FROM daily") == [(30,)]


def test_a_file_that_does_not_match_its_manifest_is_refused_and_the_partition_kept(shop: str, tmp_path: Path) -> None:
    (good,) = run(shop, tmp_path, run_id="20240302T000000000Z-good00")
    (bad,) = run(shop, tmp_path, run_id="20240303T000000000Z-bad000")
    store, warehouse_file = LocalStore(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    load_manifest(store, key_of(good), open_warehouse(warehouse_file))
    part = tmp_path / "lake" / bad.files[0].path
    part.write_bytes(part.read_bytes()[:-8] + b"PAR1PAR1")
    with pytest.raises(LoadError, match="does not match its manifest") as caught:
        load_manifest(store, key_of(bad), open_warehouse(warehouse_file))
    assert "export the partition again" in caught.value.hint
    assert rows(warehouse_file, "SELECT SUM(orders) FROM daily") == [(3,)]
    assert rows(warehouse_file, "SELECT run_id FROM _kpi_loads") == [("20240302T000000000Z-good00",)]


def test_a_row_count_that_differs_from_the_manifest_is_refused(shop: str, tmp_path: Path) -> None:
    (manifest,) = run(shop, tmp_path)
    store, warehouse_file = LocalStore(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    data = json.loads(store.get_bytes(key_of(manifest)))
    data["files"][0]["rows"] = 5
    data["rows"] = 5
    store.put_bytes(key_of(manifest), json.dumps(data).encode())
    with pytest.raises(LoadError, match="holds 2 rows, the manifest says 5"):
        load_manifest(store, key_of(manifest), open_warehouse(warehouse_file))
    assert rows(warehouse_file, "SELECT COUNT(*) FROM _kpi_loads") == [(0,)]
    retried = run(shop, tmp_path)[0]  # a new export loads cleanly after the failure
    assert load_manifest(store, key_of(retried), open_warehouse(warehouse_file))[1].loaded


def test_a_new_column_is_added_and_reported_a_removed_or_retyped_one_stops_the_load(shop: str, tmp_path: Path) -> None:
    store, warehouse_file = LocalStore(tmp_path / "lake"), str(tmp_path / "wh.duckdb")
    (v1,) = run(shop, tmp_path, run_id="20240302T000000000Z-v10000")
    load_manifest(store, key_of(v1), open_warehouse(warehouse_file))

    wider = HEADER + "  avg_sale: {type: NUMERIC, description: Average}\n"
    (v2,) = run(
        shop,
        tmp_path,
        wider,
        SQL.replace("SUM(amount) AS sales", "SUM(amount) AS sales, MAX(amount) AS avg_sale"),
        run_id="20240303T000000000Z-v20000",
    )
    _, added = load_manifest(store, key_of(v2), open_warehouse(warehouse_file))
    assert added.loaded
    assert added.added_columns == ("avg_sale",)
    assert rows(warehouse_file, "SELECT avg_sale FROM daily WHERE status = 'refunded'") == [(Decimal("3.000000000"),)]

    narrower = HEADER.replace("  sales:  {type: NUMERIC, description: Sales}\n", "")
    (v3,) = run(
        shop, tmp_path, narrower, SQL.replace(", SUM(amount) AS sales", ""), run_id="20240304T000000000Z-v30000"
    )
    with pytest.raises(LoadError) as removed:
        load_manifest(store, key_of(v3), open_warehouse(warehouse_file))
    assert "column 'sales' is in the table but no longer exported" in str(removed.value)
    assert "column 'avg_sale' is in the table but no longer exported" in str(removed.value)

    retyped = wider.replace("orders: {type: INT64", "orders: {type: FLOAT64")
    (v4,) = run(
        shop,
        tmp_path,
        retyped,
        SQL.replace("SUM(amount) AS sales", "SUM(amount) AS sales, MAX(amount) AS avg_sale"),
        run_id="20240305T000000000Z-v40000",
    )
    with pytest.raises(LoadError, match="column 'orders' is INT64 in the table but FLOAT64 in the export"):
        load_manifest(store, key_of(v4), open_warehouse(warehouse_file))
    assert rows(warehouse_file, "SELECT run_id FROM _kpi_loads ORDER BY run_id DESC LIMIT 1") == [
        ("20240303T000000000Z-v20000",)
    ]


def test_kpi_load_by_name_and_by_manifest_url(shop: str, tmp_path: Path) -> None:
    first = run(shop, tmp_path, run_id="20240302T000000000Z-first0")[0]
    newest = run(shop, tmp_path, run_id="20240303T000000000Z-newest")[0]
    store = LocalStore(tmp_path / "lake")
    kpi_key = newest_manifest(store, make_kpi(tmp_path / "q", "daily", HEADER, SQL), days("2024-03-01", 1)[0])
    assert kpi_key == key_of(newest)
    assert split_manifest_url(str(tmp_path / "lake" / key_of(first))) == (str(tmp_path / "lake"), key_of(first))

    base = ["--queries", str(tmp_path / "q"), "load"]
    options = ["--lake", str(tmp_path / "lake"), "--warehouse", str(tmp_path / "wh.duckdb")]
    by_name = CliRunner().invoke(cli, [*base, "daily", "--date", "2024-03-01", *options, "--json"])
    assert by_name.exit_code == 0, by_name.output
    assert json.loads(by_name.output)["run_id"] == "20240303T000000000Z-newest"
    by_url = CliRunner().invoke(cli, [*base, str(tmp_path / "lake" / key_of(first)), *options])
    assert by_url.exit_code == 0, by_url.output
    assert "skipped" in by_url.output
    assert "is older than run 20240303T000000000Z-newest" in by_url.output
    missing = CliRunner().invoke(cli, [*base, "daily", "--date", "2024-02-01", *options])
    assert missing.exit_code == 1
    assert "no committed run of daily/day=2024-02-01" in missing.output
    assert "Traceback" not in missing.output


def test_a_manifest_from_s3_loads_through_a_temporary_file(shop: str, tmp_path: Path, s3_bucket: str) -> None:
    kpi = make_kpi(tmp_path / "q", "daily", HEADER, SQL)
    lake = f"s3://{s3_bucket}/lake"
    (manifest,) = export(kpi, days("2024-03-01", 1), source=open_source(shop), store=open_store(lake), run_id="r1")
    _, result = load_manifest(open_store(lake), key_of(manifest), open_warehouse(str(tmp_path / "wh.duckdb")))
    assert result.loaded
    assert rows(str(tmp_path / "wh.duckdb"), "SELECT SUM(orders) FROM daily") == [(3,)]


def test_s3_notifications_through_sqs_load_each_manifest_once(
    shop: str, tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName=f"manifests-{s3_bucket}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=s3_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": "_manifest.json"}]}},
                }
            ]
        },
    )
    kpi = make_kpi(tmp_path / "q", "daily", HEADER, SQL)
    lake = f"s3://{s3_bucket}/kpi lake"  # a space: S3 events URL-encode keys
    export(kpi, days("2024-03-01", 2), source=open_source(shop), store=open_store(lake), run_id="r1")

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    bodies = [m["Body"] for m in messages]
    event = {"Records": [{"eventSource": "aws:sqs", "body": body} for body in bodies]}
    assert sorted(announced_manifests(event)) == [
        f"s3://{s3_bucket}/kpi lake/daily/day=2024-03-01/run=r1/_manifest.json",
        f"s3://{s3_bucket}/kpi lake/daily/day=2024-03-02/run=r1/_manifest.json",
    ]
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    outcomes = [loader_handler(event) for _ in range(3)]  # at-least-once delivery: the same event three times
    assert [[m["loaded"] for m in o["manifests"]] for o in outcomes] == [[True, True], [False, False], [False, False]]
    assert rows(str(tmp_path / "wh.duckdb"), "SELECT COUNT(*), SUM(orders) FROM daily") == [(3, 4)]
    assert rows(str(tmp_path / "wh.duckdb"), "SELECT COUNT(*) FROM _kpi_loads") == [(2,)]


def test_events_other_than_new_manifests_are_ignored() -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    part = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "k/day%3D1/run%3Dr/part-00000.parquet"}},
    }
    removed = {
        "eventSource": "aws:s3",
        "eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "k/d/run=r/_manifest.json"}},
    }
    created = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:CompleteMultipartUpload",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "lake/k/day%3D2024-03-01/run%3Dr/_manifest.json"}},
    }
    event = {"Records": [part, removed, created, created, {"eventSource": "aws:sqs", "body": json.dumps(test_event)}]}
    assert announced_manifests(event) == ["s3://b/lake/k/day=2024-03-01/run=r/_manifest.json"]
    assert announced_manifests(test_event) == []


def test_kpi_dashboard_prints_a_looker_studio_linking_api_url(in_project: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboard", "daily_sales", "--warehouse", "bigquery://acme-analytics/kpi"])
    assert result.exit_code == 0, result.output
    url = urlsplit(result.output.strip())
    assert (url.scheme, url.netloc, url.path) == ("https", "lookerstudio.google.com", "/reporting/create")
    query = parse_qs(url.query)
    assert query["ds.ds0.connector"] == ["bigQuery"]
    assert query["ds.ds0.type"] == ["TABLE"]
    assert (query["ds.ds0.projectId"], query["ds.ds0.datasetId"]) == (["acme-analytics"], ["kpi"])
    assert query["ds.ds0.tableId"] == ["daily_sales"]
    assert query["c.reportName"] == ["Orders and sales per JST day and status"]
    local = CliRunner().invoke(cli, ["dashboard", "daily_sales", "--warehouse", "duckdb:///tmp/w.duckdb"])
    assert local.exit_code == 2
    assert "Looker Studio reads BigQuery" in local.output


def test_bignumeric_is_kept_exact_as_decimal_text_in_duckdb(tmp_path: Path) -> None:
    source = tmp_path / "wide.duckdb"
    with duckdb.connect(str(source)) as db:
        db.execute(
            "CREATE TABLE w AS SELECT 1 AS id, CAST('1234567890123456789012345678.0123456789' AS DECIMAL(38,10)) AS v"
        )
    header = "grain: none\ncolumns:\n  id: {type: INT64}\n  v: {type: BIGNUMERIC}"
    kpi = make_kpi(tmp_path / "q", "wide", header, "SELECT id, v FROM w")
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, [], source=open_source(f"duckdb:///{source}"), store=store)
    key = f"wide/snapshot/run={manifest.run_id}/_manifest.json"
    assert load_manifest(store, key, open_warehouse(str(tmp_path / "wh.duckdb")))[1].loaded
    ((text,),) = rows(str(tmp_path / "wh.duckdb"), "SELECT v FROM wide")
    assert Decimal(str(text)) == Decimal("1234567890123456789012345678.0123456789")
