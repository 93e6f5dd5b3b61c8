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
from pipeline.errors import LoadError
from pipeline.export import export
from pipeline.lambdas.loader import handler as loader_handler
from pipeline.load import load_manifest, newest_manifest, split_manifest_url
from pipeline.load.events import announced, announced_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore, open_store
from pipeline.warehouses import open_warehouse
from tests.exporting import days, make_kpi
from tests.loading import HEADER, SQL, Target, bigquery_target, duckdb_target, key_of, run, shop_source


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return shop_source(tmp_path)


@pytest.fixture(params=["duckdb", "bigquery"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """Each loader rule on both warehouses: the DuckDB file and BigQuery (the emulator, bridged for decorators)."""
    if request.param == "duckdb":
        return duckdb_target(tmp_path / "wh.duckdb")
    return bigquery_target(request.getfixturevalue("bq_url"), request.getfixturevalue("bq_client"))


def rows(warehouse: str, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(warehouse) as db:  # the warehouse's own configuration: it may still be open here
        return db.execute(sql).fetchall()


def test_partitions_load_with_exact_values_descriptions_and_an_audit_row(
    shop: str, tmp_path: Path, target: Target
) -> None:
    committed = run(shop, tmp_path, count=2, run_id="20240302T000000000Z-aaaaaa")
    store, warehouse = LocalStore(tmp_path / "lake"), target.open()
    for manifest in committed:
        _, result = load_manifest(store, key_of(manifest), warehouse)
        assert result.loaded
    assert target.rows("SELECT * FROM {daily} ORDER BY day, status") == [
        (date(2024, 3, 1), "paid", 2, Decimal("11.75")),
        (date(2024, 3, 1), "refunded", 1, Decimal("3")),
        (date(2024, 3, 2), "paid", 1, Decimal("7")),
    ]
    audit = target.rows('SELECT kpi, "partition", run_id, "rows" FROM {audit} ORDER BY "partition"')
    assert audit == [
        ("daily", "2024-03-01", "20240302T000000000Z-aaaaaa", 2),
        ("daily", "2024-03-02", "20240302T000000000Z-aaaaaa", 1),
    ]
    newest = target.open().loads("daily")
    assert {p: (r.run_id, r.rows) for p, r in newest.items()} == {
        "2024-03-01": ("20240302T000000000Z-aaaaaa", 2),
        "2024-03-02": ("20240302T000000000Z-aaaaaa", 1),
    }
    assert target.open().loads("nothing_loaded") == {}
    description, columns = target.describe("daily")
    assert description == "Orders per JST day"
    assert columns == {"day": "JST day", "status": "Status", "orders": "Orders", "sales": "Sales"}


def test_the_same_manifest_three_times_gives_the_same_rows(shop: str, tmp_path: Path, target: Target) -> None:
    (manifest,) = run(shop, tmp_path)
    store = LocalStore(tmp_path / "lake")
    outcomes = [load_manifest(store, key_of(manifest), target.open())[1] for _ in range(3)]
    assert [o.loaded for o in outcomes] == [True, False, False]
    assert "is already loaded" in outcomes[1].reason
    forced = load_manifest(store, key_of(manifest), target.open(), force=True)[1]
    assert forced.loaded
    assert target.rows("SELECT COUNT(*), SUM(orders) FROM {daily}") == [(2, 3)]
    assert target.rows("SELECT COUNT(*) FROM {audit}") == [(2,)]


def test_an_older_run_after_a_newer_one_changes_nothing_and_says_so(shop: str, tmp_path: Path, target: Target) -> None:
    (old,) = run(shop, tmp_path, run_id="20240302T000000000Z-old000")
    (new,) = run(shop, tmp_path, sql=SQL.replace("COUNT(*)", "COUNT(*) * 10"), run_id="20240303T000000000Z-new000")
    store = LocalStore(tmp_path / "lake")
    assert load_manifest(store, key_of(new), target.open())[1].loaded
    result = load_manifest(store, key_of(old), target.open())[1]
    assert not result.loaded
    assert "is older than run 20240303T000000000Z-new000" in result.reason
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(30,)]


def test_a_file_that_does_not_match_its_manifest_is_refused_and_the_partition_kept(
    shop: str, tmp_path: Path, target: Target
) -> None:
    (good,) = run(shop, tmp_path, run_id="20240302T000000000Z-good00")
    (bad,) = run(shop, tmp_path, run_id="20240303T000000000Z-bad000")
    store = LocalStore(tmp_path / "lake")
    load_manifest(store, key_of(good), target.open())
    part = tmp_path / "lake" / bad.files[0].path
    part.write_bytes(part.read_bytes()[:-8] + b"PAR1PAR1")
    with pytest.raises(LoadError, match="does not match its manifest") as caught:
        load_manifest(store, key_of(bad), target.open())
    assert "export the partition again" in caught.value.hint
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(3,)]
    assert target.rows("SELECT run_id FROM {audit}") == [("20240302T000000000Z-good00",)]


def test_a_row_count_that_differs_from_the_manifest_is_refused(shop: str, tmp_path: Path, target: Target) -> None:
    (good,) = run(shop, tmp_path, run_id="20240302T000000000Z-good00")
    (manifest,) = run(shop, tmp_path, sql=SQL.replace("COUNT(*)", "COUNT(*) * 10"))
    store = LocalStore(tmp_path / "lake")
    load_manifest(store, key_of(good), target.open())
    data = json.loads(store.get_bytes(key_of(manifest)))
    data["files"][0]["rows"] = 5
    data["rows"] = 5
    store.put_bytes(key_of(manifest), json.dumps(data).encode())
    with pytest.raises(LoadError, match="holds 2 rows, the manifest says 5"):
        load_manifest(store, key_of(manifest), target.open())
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(3,)]
    assert target.rows("SELECT COUNT(*) FROM {audit}") == [(1,)]
    retried = run(shop, tmp_path)[0]  # a new export loads cleanly after the failure
    assert load_manifest(store, key_of(retried), target.open())[1].loaded


def test_a_load_that_fails_half_way_leaves_the_partition_as_it_was(shop: str, tmp_path: Path, target: Target) -> None:
    """Two files, the second damaged after the commit: the first must not reach the table either."""
    (good,) = run(shop, tmp_path, run_id="20240302T000000000Z-good00")
    (split,) = run(shop, tmp_path, sql=SQL.replace("COUNT(*)", "COUNT(*) * 10"), files_per_row=True)
    assert len(split.files) == 2
    store = LocalStore(tmp_path / "lake")
    load_manifest(store, key_of(good), target.open())
    last = tmp_path / "lake" / split.files[-1].path
    intact = last.read_bytes()
    last.write_bytes(intact[:-1] + b"?")
    with pytest.raises(LoadError, match="does not match its manifest"):
        load_manifest(store, key_of(split), target.open())
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(3,)]
    last.write_bytes(intact)
    assert load_manifest(store, key_of(split), target.open())[1].loaded
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(30,)]


def test_a_new_column_is_added_and_reported_a_removed_or_retyped_one_stops_the_load(
    shop: str, tmp_path: Path, target: Target
) -> None:
    store = LocalStore(tmp_path / "lake")
    (v1,) = run(shop, tmp_path, run_id="20240302T000000000Z-v10000")
    load_manifest(store, key_of(v1), target.open())

    wider = HEADER + "  avg_sale: {type: NUMERIC, description: Average}\n"
    (v2,) = run(
        shop,
        tmp_path,
        wider,
        SQL.replace("SUM(amount) AS sales", "SUM(amount) AS sales, MAX(amount) AS avg_sale"),
        run_id="20240303T000000000Z-v20000",
    )
    _, added = load_manifest(store, key_of(v2), target.open())
    assert added.loaded
    assert added.added_columns == ("avg_sale",)
    assert target.rows("SELECT avg_sale FROM {daily} WHERE status = 'refunded'") == [(Decimal("3"),)]
    assert target.describe("daily")[1]["avg_sale"] == "Average"

    narrower = HEADER.replace("  sales:  {type: NUMERIC, description: Sales}\n", "")
    (v3,) = run(
        shop, tmp_path, narrower, SQL.replace(", SUM(amount) AS sales", ""), run_id="20240304T000000000Z-v30000"
    )
    with pytest.raises(LoadError) as removed:
        load_manifest(store, key_of(v3), target.open())
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
        load_manifest(store, key_of(v4), target.open())
    assert target.rows("SELECT run_id FROM {audit} ORDER BY run_id DESC LIMIT 1") == [("20240303T000000000Z-v20000",)]


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


def test_s3_notifications_through_sqs_load_each_batch_once(
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
                    "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": "_batch.json"}]}},  # as deployed
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
    assert announced(event) == [f"s3://{s3_bucket}/kpi lake/daily/_batches/run=r1/2024-03-01/_batch.json"]
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    outcomes = [loader_handler(event) for _ in range(3)]  # at-least-once delivery: the same event three times
    assert [[m["loaded"] for m in o["manifests"]] for o in outcomes] == [[True, True], [False, False], [False, False]]
    assert [m["manifest"] for m in outcomes[0]["manifests"]] == [
        f"s3://{s3_bucket}/kpi lake/daily/day=2024-03-01/run=r1/_manifest.json",
        f"s3://{s3_bucket}/kpi lake/daily/day=2024-03-02/run=r1/_manifest.json",
    ]
    assert rows(str(tmp_path / "wh.duckdb"), "SELECT COUNT(*), SUM(orders) FROM daily") == [(3, 4)]
    # one batch, one transaction: both audit rows carry the same job id
    assert rows(str(tmp_path / "wh.duckdb"), "SELECT COUNT(*), COUNT(DISTINCT job_id) FROM _kpi_loads") == [(2, 1)]


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
    batch = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "lake/k/_batches/run%3Dr/2024-03-01/_batch.json"}},
    }
    test_record = {"eventSource": "aws:sqs", "body": json.dumps(test_event)}
    event = {"Records": [part, removed, created, created, batch, test_record]}
    assert announced(event) == [
        "s3://b/lake/k/day=2024-03-01/run=r/_manifest.json",
        "s3://b/lake/k/_batches/run=r/2024-03-01/_batch.json",
    ]
    assert announced_manifests(event) == ["s3://b/lake/k/day=2024-03-01/run=r/_manifest.json"]
    assert announced(test_event) == []
    assert split_manifest_url("s3://b/lake/k/_batches/run=r/2024-03-01/_batch.json") == (
        "s3://b/lake",
        "k/_batches/run=r/2024-03-01/_batch.json",
    )


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
