"""A manifest is trusted no further than its format: names, types, grain, partition, files — every field checked when
it is parsed, every problem listed, nothing of a bad manifest reaching a warehouse statement (pure, table-driven)."""

from __future__ import annotations

import json
import re
from copy import deepcopy
from dataclasses import asdict, fields, replace
from typing import Any

import pytest

from pipeline.core.manifest import CSV_NULL_MARKER, MANIFEST_VERSION, Manifest, problems
from pipeline.core.totals import Total
from pipeline.errors import StoreError

SHA = "ab" * 32
VALID: dict[str, Any] = {
    "kpi": "daily_sales",
    "partition": "2024-03-01",
    "grain": "day",
    "time_column": "sales_date",
    "timezone": "Asia/Tokyo",
    "interval_start": "2024-03-01T00:00:00+09:00",
    "interval_end": "2024-03-02T00:00:00+09:00",
    "decorator": "20240301",
    "run_id": "20240302T060001123Z-1a2b3c",
    "sql_hash": "0123456789abcdef",
    "format": "parquet",
    "rows": 3,
    "bytes": 120,
    "files": [
        {"path": "daily_sales/sales_date=2024-03-01/run=r/part-00000.parquet", "rows": 3, "bytes": 120, "sha256": SHA}
    ],
    "schema": [
        {"name": "sales_date", "type": "DATE", "description": "JST day", "mode": "NULLABLE"},
        {"name": "status", "type": "STRING", "description": "", "mode": "NULLABLE"},
        {"name": "sales", "type": "NUMERIC", "description": "", "mode": "NULLABLE"},
    ],
    "cluster_by": ["status"],
    "source_timezone": "Asia/Tokyo",
    "manifest_version": MANIFEST_VERSION,
}


def changed(**changes: Any) -> bytes:
    data = deepcopy(VALID)
    for key, value in changes.items():
        path = key.split("__")
        target = data
        for step in path[:-1]:
            target = target[int(step)] if isinstance(target, list) else target[step]
        if value is DELETE:
            del target[path[-1]]
        elif isinstance(target, list):
            target[int(path[-1])] = value
        else:
            target[path[-1]] = value
    return json.dumps(data).encode()


DELETE = object()


def test_a_valid_manifest_parses_and_round_trips() -> None:
    manifest = Manifest.from_json(changed())
    assert problems(manifest) == []
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.null_marker is None


def test_the_json_is_every_field_in_declaration_order_indented_as_written_before() -> None:
    parsed = Manifest.from_json(changed())
    manifest = replace(parsed, params={"min_amount": "1000", "名前": "値"}, replaced={"status: zero dates": 2})
    assert manifest.to_json() == json.dumps(asdict(manifest), indent=2, ensure_ascii=False) + "\n"
    assert list(json.loads(manifest.to_json())) == [f.name for f in fields(Manifest)]
    assert json.loads(manifest.to_json())["files"][0] == VALID["files"][0]
    assert '"名前": "値"' in manifest.to_json()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"kpi": "Daily-Sales"}, "kpi 'Daily-Sales' is not a table name"),
        ({"kpi": "sales; DROP TABLE x"}, "is not a table name"),
        ({"schema__1__name": "status`, evil"}, "schema[1].name 'status`, evil' is not a column name"),
        ({"schema__1__name": "_PARTITIONTIME"}, "schema[1].name '_PARTITIONTIME' is not a column name"),
        ({"schema__2__name": "STATUS"}, "schema[2].name 'STATUS' appears twice"),
        ({"schema__2__type": "NUMERIC(10) OPTIONS(description='x')"}, "is not a BigQuery type"),
        ({"schema__2__type": "DECIMAL"}, "schema[2].type 'DECIMAL' is not a BigQuery type (BIGNUMERIC, BOOL,"),
        ({"schema__2__mode": "REPEATED"}, "schema[2].mode 'REPEATED' is not one of NULLABLE, REQUIRED"),
        ({"schema": []}, "schema lists no column"),
        ({"cluster_by": ["nope"]}, "cluster_by ['nope'] must name at most 4 of the schema's columns"),
        ({"grain": "fortnight"}, "grain 'fortnight' is not one of day, hour, week, month, none"),
        ({"partition": "2024-3-1"}, "partition '2024-3-1' is not a day partition"),
        ({"partition": "../../x"}, "partition '../../x' is not a day partition"),
        ({"decorator": "20240301; DELETE"}, "decorator '20240301; DELETE' is not 8 digits"),
        ({"decorator": None}, "decorator None is not 8 digits"),
        ({"time_column": "when"}, "time_column 'when' is not a column of the schema"),
        ({"time_column": "status"}, "time_column 'status' is STRING, which cannot carry days"),
        ({"interval_start": "2024-03-01T00:00:00"}, "interval_start '2024-03-01T00:00:00' is not an ISO time with"),
        ({"run_id": "r 1"}, "run_id 'r 1' is not a run id"),
        ({"format": "xlsx"}, "format 'xlsx' is not one of parquet, csv"),
        ({"null_marker": "\\N"}, "null_marker is only for CSV files"),
        ({"timezone": "Asia/Tokio"}, "timezone 'Asia/Tokio' is not an IANA time zone"),
        ({"files__0__path": "/etc/passwd"}, "files[0].path '/etc/passwd' is not a key inside the lake"),
        ({"files__0__path": "daily_sales/../other/x.parquet"}, "is not a key inside the lake"),
        ({"files__0__path": "other_kpi/x/part-00000.parquet"}, "is not a parquet file of daily_sales"),
        ({"files__0__sha256": "not-a-digest"}, "files[0].sha256 'not-a-digest' is not a SHA-256"),
        ({"files__0__rows": -1}, "files[0] rows and bytes must be counts"),
        ({"files": []}, "files lists no file"),
        ({"rows": "3"}, "rows '3' is not a count"),
    ],
)
def test_a_manifest_is_refused_naming_what_is_wrong(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        Manifest.from_json(changed(**changes))


def test_every_problem_is_listed_not_only_the_first() -> None:
    with pytest.raises(ValueError, match="kpi 'X' is not a table name") as refused:
        Manifest.from_json(changed(kpi="X", schema__0__type="DATE2", run_id=""))
    assert str(refused.value).count(";") >= 2


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"manifest_version": 5}, "manifest_version 5 is newer than this loader reads (4)"),
        ({"manifest_version": 0}, "manifest_version 0 is not supported (this version reads 1, 2, 3 and 4)"),
        ({"totals": [{"measure": "sales", "dimension": None, "value": 1.0}]}, "totals are only for a partition scored"),
        ({"totals": "x"}, "'totals' must be a list of objects"),
        ({"anomaly": {"measures": ["x"]}}, "anomaly must be an object of measures, by, seasonality"),
        (
            {"anomaly": {"measures": ["nope"], "by": None, "seasonality": [], "sensitivity": "low", "min_history": 7}},
            "anomaly.measures ['nope'] must name columns of the schema",
        ),
        ({"manifest_version": DELETE}, "manifest_version None is not supported"),
        ({"extra": 1}, "unknown manifest keys: extra"),
        ({"files": "a file"}, "'files' must be a list of objects"),
    ],
)
def test_unknown_versions_keys_and_shapes_are_refused(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        Manifest.from_json(changed(**changes))


@pytest.mark.parametrize(
    ("changes", "marker"),
    [
        ({"format": "csv", "null_marker": CSV_NULL_MARKER}, CSV_NULL_MARKER),
        # written before the marker existed: NULL was an empty unquoted field, the empty string `""`
        ({"format": "csv", "manifest_version": 1}, None),
    ],
)
def test_csv_manifests_carry_their_null_marker(changes: dict[str, Any], marker: str | None) -> None:
    files = [{**VALID["files"][0], "path": VALID["files"][0]["path"].replace(".parquet", ".csv")}]
    manifest = Manifest.from_json(changed(files=files, **changes))
    assert manifest.null_marker == marker


def test_a_csv_manifest_of_version_2_must_name_the_marker() -> None:
    files = [{**VALID["files"][0], "path": VALID["files"][0]["path"].replace(".parquet", ".csv")}]
    with pytest.raises(ValueError, match=r"null_marker None is not '\\\\N'"):
        Manifest.from_json(changed(files=files, format="csv"))


@pytest.mark.parametrize(
    ("grain", "partition", "decorator", "time_type"),
    [
        ("hour", "2024-11-03T01", "2024110305", "TIMESTAMP"),
        ("hour", "2024-11-03T01_2", "2024110306", "TIMESTAMP"),  # the repeated hour of a DST fall-back
        ("month", "2024-03", "202403", "DATETIME"),
    ],
)
def test_each_grain_has_its_partition_and_decorator_form(
    grain: str, partition: str, decorator: str, time_type: str
) -> None:
    manifest = Manifest.from_json(
        changed(grain=grain, partition=partition, decorator=decorator, schema__0__type=time_type)
    )
    assert (manifest.partition, manifest.decorator) == (partition, decorator)


def test_a_snapshot_has_no_partition_fields() -> None:
    snapshot = {
        "grain": "none",
        "partition": "snapshot",
        "time_column": None,
        "interval_start": None,
        "interval_end": None,
        "decorator": None,
    }
    assert Manifest.from_json(changed(**snapshot)).partition == "snapshot"
    with pytest.raises(ValueError, match="a snapshot has no decorator"):
        Manifest.from_json(changed(**{**snapshot, "decorator": "20240301"}))


def test_parse_turns_a_refusal_into_a_store_error_naming_the_manifest() -> None:
    with pytest.raises(StoreError, match=r"the manifest cannot be read: .*is not a BigQuery type") as refused:
        Manifest.parse(changed(schema__2__type="MONEY"), where="s3://lake/x/_manifest.json", hint="export again")
    assert refused.value.where == "s3://lake/x/_manifest.json"
    assert refused.value.hint == "export again"
    assert not refused.value.retryable


def test_a_manifest_newer_than_the_loader_is_retried_a_damaged_one_is_not() -> None:
    """An exporter deployed before its loader writes a version the loader does not know yet: the load is retried
    (the queue's contract) until the loader of its release reads it; a version that never was is not."""
    with pytest.raises(StoreError) as waiting:
        Manifest.parse(changed(manifest_version=5), where="s3://lake/k/_manifest.json", hint="re-export")
    assert waiting.value.retryable is True
    assert waiting.value.where == "s3://lake/k/_manifest.json"
    assert waiting.value.hint.startswith("it was written by a newer exporter: deploy the loader of the same release")
    with pytest.raises(StoreError) as broken:
        Manifest.parse(changed(manifest_version=0), where="s3://lake/k/_manifest.json", hint="re-export")
    assert broken.value.retryable is False
    assert broken.value.hint == "re-export"


SCORED = {"measures": [], "by": "status", "seasonality": ["weekday"], "sensitivity": "medium", "min_history": None}


def test_a_scored_partition_s_totals_are_read_back_as_written() -> None:
    totals = [{"measure": "sales", "dimension": "status=paid", "value": 12.5}]
    manifest = Manifest.from_json(changed(anomaly=SCORED, totals=totals))
    assert manifest.totals == (Total("sales", "status=paid", 12.5),)
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert Manifest.from_json(changed(manifest_version=3)).totals is None  # older manifests: not summed


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (
            {"measure": "status", "dimension": "status=paid", "value": 1.0},
            "totals[0].measure 'status' is not a numeric",
        ),
        ({"measure": "sales", "dimension": None, "value": 1.0}, "totals[0].dimension None is not 'status=<value>'"),
        ({"measure": "sales", "dimension": "plan=x", "value": 1.0}, "totals[0].dimension 'plan=x' is not"),
        ({"measure": "sales", "dimension": "status=x", "value": "1"}, "totals[0].value '1' is not a finite number"),
        ({"measure": "sales", "dimension": "status=x", "value": True}, "totals[0].value True is not a finite"),
    ],
)
def test_totals_that_no_exporter_writes_are_refused(total: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        Manifest.from_json(changed(anomaly=SCORED, totals=[total]))
