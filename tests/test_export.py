"""The exporter with the embedded DuckDB source, S3 on moto's server, CSV files, the CLI and the Lambda handler."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.batch import BatchIndex
from pipeline.core.spec import FileFormat
from pipeline.errors import ExportError, SourceError, SpecError, StoreError, UsageError
from pipeline.export import ChecksFailed, FileOptions, export
from pipeline.lambdas.exporter import handler
from pipeline.sources import open_source
from pipeline.stores import LocalStore, S3Store, open_store
from tests.aws import refuse_upload_part
from tests.exporting import days, duckdb_orders, keys, make_kpi, read_partition

SALES_HEADER = """
grain: day
time_column: day
timezone: Asia/Tokyo
format: {format}
columns:
  day:     {{type: DATE, description: JST day}}
  status:  {{type: STRING, description: Status}}
  orders:  {{type: INT64, description: Orders}}
  sales:   {{type: NUMERIC, description: Sales}}
  last_at: {{type: DATETIME, description: Last order}}
"""
SALES_SQL = """
SELECT DATE(created_at) AS day, status, COUNT(*) AS orders, SUM(amount) AS sales, MAX(created_at) AS last_at
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1, 2 ORDER BY 1, 2
"""


@pytest.fixture
def shop(tmp_path: Path) -> str:
    """A DuckDB source with a few orders, some with text that CSV must quote."""
    url = duckdb_orders(
        tmp_path / "shop.duckdb",
        "('2024-03-01 10:00:00', 'paid', 1000.10)",
        "('2024-03-01 11:30:00', 'paid', 0.05)",
        "('2024-03-02 09:00:00', 'said \"no\", then\nleft', 12.00)",
    )
    with duckdb.connect(url.removeprefix("duckdb:///")) as db:
        db.execute(
            "CREATE TABLE big AS SELECT range AS id, md5(range::VARCHAR) || sha256(range::VARCHAR) AS pad"
            " FROM range(400000)"
        )
    return url


def test_the_embedded_duckdb_source_exports_exact_values(shop: str, tmp_path: Path) -> None:
    kpi = make_kpi(tmp_path / "q", "sales", SALES_HEADER.format(format="parquet"), SALES_SQL)
    store = LocalStore(tmp_path / "lake")
    (march1,) = export(kpi, days("2024-03-01", 1), source=open_source(shop), store=store)
    assert read_partition(store, march1).to_pylist() == [
        {
            "day": date(2024, 3, 1),
            "status": "paid",
            "orders": 2,
            "sales": Decimal("1000.150000000"),
            "last_at": datetime(2024, 3, 1, 11, 30),
        }
    ]


def test_csv_files_follow_rfc_4180_with_a_header_row(shop: str, tmp_path: Path) -> None:
    kpi = make_kpi(tmp_path / "q", "sales", SALES_HEADER.format(format="csv"), SALES_SQL)
    store = LocalStore(tmp_path / "lake")
    (march2,) = export(kpi, days("2024-03-02", 1), source=open_source(shop), store=store, run_id="r")
    assert march2.files[0].path == "sales/day=2024-03-02/run=r/part-00000.csv"
    text = store.get_bytes(march2.files[0].path).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["day", "status", "orders", "sales", "last_at"]
    assert rows[1][:3] == ["2024-03-02", 'said "no", then\nleft', "1"]
    assert Decimal(rows[1][3]) == Decimal("12")
    assert march2.format == "csv"


def test_files_are_split_by_size_and_each_is_listed_in_the_manifest(shop: str, tmp_path: Path) -> None:
    header = "grain: none\ncolumns:\n  id: {type: INT64}\n  pad: {type: STRING}"
    kpi = make_kpi(tmp_path / "q", "big", header, "SELECT id, pad FROM big")
    store = LocalStore(tmp_path / "lake")
    options = FileOptions(max_file_bytes=4 << 20, row_group_rows=50_000)
    (manifest,) = export(kpi, [], source=open_source(shop), store=store, files=options)
    assert len(manifest.files) >= 3
    assert sum(f.rows for f in manifest.files) == manifest.rows == 400_000
    assert [f.path.rsplit("/", 1)[1] for f in manifest.files][:2] == ["part-00000.parquet", "part-00001.parquet"]
    table = read_partition(store, manifest)
    assert table.column("id").to_pylist()[:3] == [0, 1, 2]
    assert table.num_rows == 400_000


def test_an_export_to_s3_commits_the_manifest_after_the_parts(shop: str, tmp_path: Path, s3_bucket: str) -> None:
    header = "grain: none\ncolumns:\n  id: {type: INT64}\n  pad: {type: STRING}"
    kpi = make_kpi(tmp_path / "q", "big", header, "SELECT id, pad FROM big")
    store = open_store(f"s3://{s3_bucket}/lake")
    (manifest,) = export(kpi, [], source=open_source(shop), store=store, run_id="r1")
    assert keys(store) == [
        "big/_batches/run=r1/snapshot/_batch.json",  # written last: the loader's notification
        "big/snapshot/run=r1/_manifest.json",
        "big/snapshot/run=r1/part-00000.parquet",
    ]
    index = json.loads(store.get_bytes("big/_batches/run=r1/snapshot/_batch.json"))
    assert index == {
        "kpi": "big",
        "run_id": "r1",
        "manifests": ["big/snapshot/run=r1/_manifest.json"],
        "batch_version": 1,
    }
    assert read_partition(store, manifest).num_rows == 400_000
    stored = json.loads(store.get_bytes("big/snapshot/run=r1/_manifest.json"))
    assert stored["rows"] == 400_000
    assert stored["schema"][1] == {
        "name": "pad",
        "type": "STRING",
        "description": "",
        "mode": "NULLABLE",
    }


def test_an_s3_error_mid_upload_leaves_no_manifest_parts_or_uploads(shop: str, tmp_path: Path, s3_bucket: str) -> None:
    header = "grain: none\ncolumns:\n  id: {type: INT64}\n  pad: {type: STRING}"
    kpi = make_kpi(tmp_path / "q", "big", header, "SELECT id, pad FROM big")
    store = S3Store(s3_bucket, "lake", part_size=5 << 20)
    refuse_upload_part(store.client, nth=2)
    with pytest.raises(StoreError, match="access denied") as caught:
        export(kpi, [], source=open_source(shop), store=store)
    assert "big/snapshot/run=" in caught.value.where
    assert keys(store) == []
    assert boto3.client("s3").list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_kpi_export_on_the_command_line(shop: str, tmp_path: Path) -> None:
    make_kpi(tmp_path / "q", "sales", SALES_HEADER.format(format="parquet"), SALES_SQL)
    lake = tmp_path / "lake"
    base = ["--queries", str(tmp_path / "q"), "export", "sales", "--source", shop, "--lake", str(lake)]
    result = CliRunner().invoke(cli, [*base, "--start", "2024-03-01", "--end", "2024-03-03", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [(p["partition"], p["rows"]) for p in summary] == [("2024-03-01", 1), ("2024-03-02", 1), ("2024-03-03", 0)]

    table = CliRunner().invoke(cli, [*base, "--date", "2024-03-01"])
    assert table.exit_code == 0
    assert "2024-03-01" in table.output
    assert "committed 1 partition" in table.output

    wrong = CliRunner().invoke(cli, [*base, "--date", "yesterday-ish"])
    assert wrong.exit_code == 2
    assert "Traceback" not in wrong.output

    missing = CliRunner().invoke(cli, [*base[:-4], "--source", "duckdb:///nowhere.duckdb", "--lake", str(lake)])
    assert missing.exit_code == 1
    assert "does not exist" in missing.output
    assert "Traceback" not in missing.output


def test_the_lambda_handler_parses_the_event_and_returns_json(
    shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_kpi(tmp_path / "q", "sales", SALES_HEADER.format(format="parquet"), SALES_SQL)
    monkeypatch.setenv("KPI_QUERIES", str(tmp_path / "q"))
    monkeypatch.setenv("KPI_SOURCE", shop)
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    result = handler({"kpi": "sales", "date": "2024-03-01", "run_id": "step-1"})
    assert result["kpi"] == "sales"
    assert [(p["partition"], p["rows"], p["run_id"]) for p in result["partitions"]] == [("2024-03-01", 1, "step-1")]
    json.dumps(result)  # serialisable for Step Functions

    with pytest.raises(UsageError):
        handler({"kpi": "sales", "day": "2024-03-01"})
    logged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert logged["error"] == "UsageError"
    assert "unknown keys day" in logged["message"]


def test_csv_refuses_bytes_columns_in_kpi_check_and_before_writing(shop: str, tmp_path: Path) -> None:
    header = "grain: none\nformat: csv\ncolumns:\n  raw: {type: BYTES}"
    with pytest.raises(SpecError) as refused:
        make_kpi(tmp_path / "q", "blobs", header, "SELECT CAST('ab' AS BINARY) AS raw")
    assert [p.rule for p in refused.value.problems] == ["csv-bytes"]
    kpi = make_kpi(
        tmp_path / "q", "blobs", header.replace("format: csv", "format: parquet"), "SELECT CAST('ab' AS BINARY) AS raw"
    )
    store = LocalStore(tmp_path / "lake")
    with pytest.raises(ExportError, match=r"CSV cannot carry BYTES columns \(raw\)"):  # CSV asked for by the caller
        export(kpi, [], source=open_source(shop), store=store, files=FileOptions(format=FileFormat.CSV))
    assert keys(store) == []


TYPES_HEADER = """
grain: none
format: {format}
columns:
  label:   {{type: STRING}}
  doc:     {{type: JSON}}
  n:       {{type: INT64}}
  amount:  {{type: NUMERIC}}
  big:     {{type: BIGNUMERIC}}
  ratio:   {{type: FLOAT64}}
  flag:    {{type: BOOL}}
  day:     {{type: DATE}}
  at:      {{type: DATETIME}}
  instant: {{type: TIMESTAMP}}
  clock:   {{type: TIME}}
"""
TYPES_SQL = """
SELECT label, doc, n, amount, big, ratio, flag, day, at, instant, clock FROM (
  SELECT 1 AS k, 'x' AS label, '{"a": [1, "b"]}' AS doc, 7 AS n, CAST(12.5 AS DECIMAL(12, 2)) AS amount,
    CAST('1234567890123456789012345678.0123456789' AS DECIMAL(38, 10)) AS big, 0.25 AS ratio, TRUE AS flag,
    DATE '2024-03-01' AS day, TIMESTAMP '2024-03-01 10:30:00' AS at, TIMESTAMP '2024-03-01 10:30:00' AS instant,
    TIME '23:59:59.5' AS clock
  UNION ALL SELECT 2, '', '""', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  UNION ALL SELECT 3, NULL, NULL, 0, 0, 0, 0, FALSE, DATE '2024-03-02', NULL, NULL, TIME '00:00:00'
  UNION ALL SELECT 4, 'said "no", then\nleft', 'null', -1, -0.01, -1, -1.5, NULL, NULL, NULL, NULL, NULL
) AS t ORDER BY k
"""


def _read_csv_as_written(data: bytes, schema: pa.Schema, marker: str) -> pa.Table:
    """A CSV file read by the convention its manifest records: ``marker`` unquoted is NULL, any quoted text is a
    value — the empty string too (what BigQuery's ``null_marker`` and DuckDB's ``nullstr`` do)."""
    as_text = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_decimal256(f.type) else f for f in schema])
    options = pacsv.ConvertOptions(
        column_types=as_text, null_values=[marker], strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    table = pacsv.read_csv(io.BytesIO(data), convert_options=options)  # Arrow's CSV reader has no decimal256:
    return table.cast(schema)  # BIGNUMERIC is read as its text, then cast exactly


def test_csv_keeps_null_and_the_empty_string_apart_for_every_type(shop: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    parquet_kpi = make_kpi(tmp_path / "p", "types", TYPES_HEADER.format(format="parquet"), TYPES_SQL)
    csv_kpi = make_kpi(tmp_path / "c", "types", TYPES_HEADER.format(format="csv"), TYPES_SQL)
    (parquet,) = export(parquet_kpi, [], source=open_source(shop), store=store, run_id="p")
    (csv_manifest,) = export(csv_kpi, [], source=open_source(shop), store=store, run_id="c")
    assert (parquet.null_marker, csv_manifest.null_marker) == (None, "\\N")  # the convention, for the loader
    assert (
        json.loads(store.get_bytes(csv_manifest.files[0].path.rsplit("/", 1)[0] + "/_manifest.json"))["null_marker"]
        == "\\N"
    )

    expected = read_partition(store, parquet)
    data = store.get_bytes(csv_manifest.files[0].path)
    lines = data.decode().splitlines()
    assert lines[2] == '"","""""",\\N,\\N,\\N,\\N,\\N,\\N,\\N,\\N,\\N'  # '' and '""' quoted, NULL as \N
    assert lines[3].startswith("\\N,\\N,0,")
    assert (
        _read_csv_as_written(data, expected.schema, csv_manifest.null_marker or "").to_pylist() == expected.to_pylist()
    )

    path = tmp_path / "lake" / csv_manifest.files[0].path
    columns = {f.name: f.type for f in csv_manifest.schema}
    duck_types = {
        "STRING": "VARCHAR",
        "JSON": "VARCHAR",
        "INT64": "BIGINT",
        "NUMERIC": "DECIMAL(38,9)",
        "BIGNUMERIC": "VARCHAR",
        "FLOAT64": "DOUBLE",
        "BOOL": "BOOLEAN",
        "DATE": "DATE",
        "DATETIME": "TIMESTAMP",
        "TIMESTAMP": "TIMESTAMPTZ",
        "TIME": "TIME",
    }
    spec = ", ".join(f"'{name}': '{duck_types[kind]}'" for name, kind in columns.items())
    with duckdb.connect() as db:  # DuckDB's own CSV reader agrees on NULL and ''
        db.execute("SET TimeZone = 'UTC'")
        rows = db.execute(
            f"SELECT label, doc, n, big FROM read_csv('{path}', header = true, nullstr = '\\N', "
            f"allow_quoted_nulls = false, columns = {{{spec}}})"
        ).fetchall()
    assert rows == [
        ("x", '{"a": [1, "b"]}', 7, "1234567890123456789012345678.01234567890000000000000000000000000000"),
        ("", '""', None, None),
        (None, None, 0, "0E-38"),
        ('said "no", then\nleft', "null", -1, "-1.00000000000000000000000000000000000000"),
    ]


def test_a_csv_string_that_is_the_null_marker_stops_the_export_naming_the_row(shop: str, tmp_path: Path) -> None:
    header = "grain: none\nformat: csv\ncolumns:\n  k: {type: INT64}\n  label: {type: STRING}"
    sql = r"SELECT k, label FROM (SELECT 1 AS k, 'a' AS label UNION ALL SELECT 2, '\\N') AS t ORDER BY k"  # MySQL: \N
    kpi = make_kpi(tmp_path / "q", "marker", header, sql)
    store = LocalStore(tmp_path / "lake")
    with pytest.raises(ExportError, match=r"column 'label', row 2: the value '\\\\N' is how CSV files here write NULL"):
        export(kpi, [], source=open_source(shop), store=store)
    assert keys(store) == []
    (parquet,) = export(  # Parquet has no such limit
        kpi, [], source=open_source(shop), store=store, files=FileOptions(format=FileFormat.PARQUET)
    )
    assert read_partition(store, parquet).column("label").to_pylist() == ["a", "\\N"]


def test_a_retry_of_a_run_whose_manifest_was_damaged_says_so(shop: str, tmp_path: Path) -> None:
    kpi = make_kpi(tmp_path / "q", "sales", SALES_HEADER.format(format="parquet"), SALES_SQL)
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, days("2024-03-01", 1), source=open_source(shop), store=store, run_id="r")
    key = "sales/day=2024-03-01/run=r/_manifest.json"
    store.put_bytes(key, b'{"manifest_version": 99}')
    with pytest.raises(StoreError, match="cannot be read") as caught:
        export(kpi, days("2024-03-01", 1), source=open_source(shop), store=store, run_id="r")
    assert caught.value.where.endswith(key)
    assert manifest.rows == 1


def test_a_duckdb_query_is_interrupted_at_the_kpi_timeout(shop: str, tmp_path: Path) -> None:
    header = "grain: none\ntimeout: 1s\ncolumns:\n  n: {type: INT64}"
    sql = "SELECT COUNT(*) AS n FROM big AS a, big AS b WHERE a.id + b.id < 0"
    kpi = make_kpi(tmp_path / "q", "slow", header, sql)
    store = LocalStore(tmp_path / "lake")
    with pytest.raises(SourceError, match="longer than the KPI's timeout"):
        export(kpi, [], source=open_source(shop), store=store)
    assert keys(store) == []


def test_a_partition_failing_a_check_fails_alone_and_the_lambda_names_it(
    shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One query, three partitions, one of them empty under `min_rows: 1`: the other two are committed (the batch
    index names them; its S3 event loads them), the empty one leaves no file, and the execution fails naming only it."""
    make_kpi(tmp_path / "q", "sales", SALES_HEADER.format(format="parquet") + "checks: {min_rows: 1}", SALES_SQL)
    monkeypatch.setenv("KPI_QUERIES", str(tmp_path / "q"))
    monkeypatch.setenv("KPI_SOURCE", shop)
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    event = {"kpi": "sales", "start": "2024-03-01", "end": "2024-03-03", "run_id": "step-1"}
    with pytest.raises(ChecksFailed) as caught:
        handler(event)
    error = caught.value
    assert error.failures == {"2024-03-03": ["min_rows: 0 row(s), at least 1 expected"]}
    assert [(m.partition, m.rows) for m in error.committed] == [("2024-03-01", 1), ("2024-03-02", 1)]
    assert error.message == (
        "checks failed on 1 of 3 partitions, which were not committed; the other 2 were (2024-03-01, 2024-03-02):\n"
        "  - 2024-03-03: min_rows: 0 row(s), at least 1 expected"
    )
    assert error.of("2024-03-03").message == (
        "checks failed, the partition was not committed:\n  - min_rows: 0 row(s), at least 1 expected"
    )
    assert not error.retryable  # Step Functions fails the execution at once, with this message
    store = LocalStore(tmp_path / "lake")
    assert keys(store) == [
        "sales/_batches/run=step-1/2024-03-01/_batch.json",  # names the two committed partitions
        "sales/day=2024-03-01/run=step-1/_manifest.json",
        "sales/day=2024-03-01/run=step-1/part-00000.parquet",
        "sales/day=2024-03-02/run=step-1/_manifest.json",
        "sales/day=2024-03-02/run=step-1/part-00000.parquet",
    ]
    batch = BatchIndex.parse(store.get_bytes("sales/_batches/run=step-1/2024-03-01/_batch.json"), where="test")
    assert batch.manifests == (
        "sales/day=2024-03-01/run=step-1/_manifest.json",
        "sales/day=2024-03-02/run=step-1/_manifest.json",
    )
    logged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (logged["error"], logged["failed"]) == ("ChecksFailed", ["2024-03-03"])
    assert [p["partition"] for p in logged["committed"]] == ["2024-03-01", "2024-03-02"]

    with duckdb.connect(shop.removeprefix("duckdb:///")) as db:  # the data is fixed; the same input runs again
        db.execute("INSERT INTO orders VALUES ('2024-03-03 08:00:00', 'paid', 5.00)")
    before = store.get_bytes("sales/day=2024-03-01/run=step-1/_manifest.json")
    again = handler(event)
    assert [(p["partition"], p["rows"]) for p in again["partitions"]] == [
        ("2024-03-01", 1),
        ("2024-03-02", 1),
        ("2024-03-03", 1),
    ]
    assert store.get_bytes("sales/day=2024-03-01/run=step-1/_manifest.json") == before  # committed: never rewritten
