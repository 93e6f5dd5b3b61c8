"""The notebook API: `pipeline.read` from both warehouses with every type kept, `pipeline.preview` as a DataFrame,
and pandas kept out of `import pipeline` and of every Lambda handler."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pipeline
import pipeline.lambdas
from pipeline.errors import UsageError
from pipeline.export import export
from pipeline.load import load_manifest
from pipeline.notebook import PreviewWarning
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses import Warehouse, open_warehouse
from tests.conftest import ROOT, MySqlServer
from tests.exporting import days, make_kpi
from tests.loading import loaded_snapshot

EVENTS = (
    "CREATE TABLE events (id INT, created_at DATETIME(6), ts TIMESTAMP(6) NULL, amount DECIMAL(12,2),"
    " wide DECIMAL(38,10), n INT, flag TINYINT(1), note VARCHAR(16))",
    "SET time_zone = '+09:00'",
    "INSERT INTO events VALUES"
    " (1, '2024-03-01 09:30:00.123456', '2024-03-01 09:30:00.123456', 0.10, 1.5, 1, 1, 'first'),"
    " (2, '2024-03-02 00:00:00', '2024-03-02 00:00:00', 9999999999.99,"
    " '9999999999999999999999999999.9999999999', NULL, 0, NULL),"
    " (3, '2024-03-03 23:59:59.999999', NULL, -9999999999.99, '-0.0000000001', -7, NULL, '漢字')",
)
HEADER = """
grain: day
time_column: day
timezone: Asia/Tokyo
columns:
  day:    {type: DATE}
  at:     {type: DATETIME}
  ts:     {type: TIMESTAMP}
  amount: {type: NUMERIC}
  wide:   {type: BIGNUMERIC}
  n:      {type: INT64}
  flag:   {type: BOOL}
  note:   {type: STRING}
"""
SQL = """
SELECT DATE(created_at) AS day, created_at AS at, ts, amount, wide, n, flag, note
FROM events WHERE created_at >= :start AND created_at < :end ORDER BY id
"""


def mysql_url(db: MySqlServer) -> str:
    return f"mysql://{db.user}@{db.host}:{db.port}/{db.database}"


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """`read` from both warehouses: the DuckDB file, and BigQuery (the emulator)."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'wh.duckdb'}"
    url: str = request.getfixturevalue("bq_url")
    return url


def loaded(db: MySqlServer, tmp_path: Path, warehouse_url: str, request: pytest.FixtureRequest) -> Path:
    """The KPI `events` exported from MariaDB for 2024-03-01…03 (JST) and loaded; returns the queries folder."""
    with db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        for statement in EVENTS:
            cursor.execute(statement)
    queries = tmp_path / "q"
    header, sql = HEADER, SQL
    if warehouse_url.startswith("bigquery://"):  # the emulator cannot create a BIGNUMERIC column
        header, sql = header.replace("  wide:   {type: BIGNUMERIC}\n", ""), sql.replace(" wide,", "")
    kpi = make_kpi(queries, "events", header, sql)
    store = LocalStore(tmp_path / "lake")
    manifests = export(kpi, days("2024-03-01", 3), source=open_source(mysql_url(db)), store=store)
    warehouse: Warehouse
    if warehouse_url.startswith("bigquery://"):
        from pipeline.warehouses.bigquery import BigQueryWarehouse

        warehouse = BigQueryWarehouse(warehouse_url, client=request.getfixturevalue("bq_client"))
    else:
        warehouse = open_warehouse(warehouse_url)
    for manifest in manifests:
        key = f"events/day={manifest.partition}/run={manifest.run_id}/_manifest.json"
        assert load_manifest(store, key, warehouse)[1].loaded
    warehouse.close()
    return queries


@pytest.mark.mysql
def test_read_keeps_every_type_exact_and_filters_to_the_partitions_asked_for(
    mysql_db: MySqlServer, tmp_path: Path, warehouse_url: str, request: pytest.FixtureRequest
) -> None:
    queries = loaded(mysql_db, tmp_path, warehouse_url, request)
    frame = pipeline.read("events", "2024-03-02", date(2024, 3, 3), queries=queries, warehouse=warehouse_url)

    wide = "wide" in frame.columns
    assert wide == warehouse_url.startswith("duckdb://")
    assert list(frame.columns) == ["day", "at", "ts", "amount", *(["wide"] if wide else []), "n", "flag", "note"]
    dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items()}
    assert dtypes == {
        "day": "date32[day][pyarrow]",
        "at": "datetime64[us]",
        "ts": "datetime64[us, UTC]",
        "amount": "object",
        **({"wide": "object"} if wide else {}),
        "n": "Int64",
        "flag": "boolean",
        "note": "str" if pd.__version__ >= "3" else "object",
    }
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert [row["day"] for row in rows] == [date(2024, 3, 2), date(2024, 3, 3)]
    second, third = rows
    assert second["at"] == pd.Timestamp(datetime(2024, 3, 2))
    assert second["ts"] == pd.Timestamp(datetime(2024, 3, 1, 15, tzinfo=UTC))  # 00:00 JST
    assert third["at"] == pd.Timestamp(datetime(2024, 3, 3, 23, 59, 59, 999999))  # naive, microseconds kept
    assert third["ts"] is None
    assert isinstance(second["amount"], Decimal)
    assert (second["amount"], third["amount"]) == (Decimal("9999999999.99"), Decimal("-9999999999.99"))
    if wide:  # BIGNUMERIC: 76 digits, kept as exact text by DuckDB, read back exactly
        assert second["wide"] == Decimal("9999999999999999999999999999.9999999999")
        assert third["wide"] == Decimal("-0.0000000001")
    assert frame["amount"].sum() == Decimal("0.00")  # exact: a float sum would not be 0
    assert (second["n"], third["n"]) == (None, -7)
    assert (second["flag"], third["flag"]) == (False, None)
    assert (second["note"], third["note"]) == (None, "漢字")

    everything = pipeline.read("events", queries=queries, warehouse=warehouse_url)
    assert [d.isoformat() for d in everything["day"]] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert everything["at"].iloc[0] == pd.Timestamp("2024-03-01 09:30:00.123456")
    assert everything["ts"].iloc[0] == pd.Timestamp("2024-03-01 00:30:00.123456", tz="UTC")
    assert len(pipeline.read("events", start="2024-03-03", queries=queries, warehouse=warehouse_url)) == 1
    assert len(pipeline.read("events", end="2024-03-01", queries=queries, warehouse=warehouse_url)) == 1
    assert len(pipeline.read("events", "2024-03", "2024-03-31", queries=queries, warehouse=warehouse_url)) == 3
    assert pipeline.read("events", "2024-04-01", queries=queries, warehouse=warehouse_url).empty


def test_read_says_what_to_do_when_nothing_was_loaded_or_the_dates_do_not_apply(tmp_path: Path) -> None:
    queries = tmp_path / "q"
    make_kpi(queries, "events", HEADER, SQL)
    make_kpi(queries, "snap", "grain: none\ncolumns:\n  n: {type: INT64}", "SELECT 1 AS n")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    with pytest.raises(UsageError, match="has no table events: nothing was loaded yet") as caught:
        pipeline.read("events", queries=queries, warehouse=warehouse)
    assert "kpi run events" in caught.value.hint
    assert not (tmp_path / "wh.duckdb").exists()  # reading never creates the warehouse
    with pytest.raises(UsageError, match="is a snapshot"):
        pipeline.read("snap", "2024-03-01", queries=queries, warehouse=warehouse)
    with pytest.raises(UsageError, match="is before start"):
        pipeline.read("events", "2024-03-02", "2024-03-01", queries=queries, warehouse=warehouse)


def test_read_a_snapshot_from_the_embedded_warehouse(tmp_path: Path) -> None:
    queries, warehouse = loaded_snapshot(tmp_path)  # `by_plan` exported from a DuckDB shop and loaded
    frame = pipeline.read("by_plan", queries=queries, warehouse=str(warehouse))
    assert sorted(frame.itertuples(index=False, name=None)) == [("free", 3), ("paid", 5)]
    assert str(frame["users"].dtype) == "Int64"


@pytest.mark.mysql
def test_preview_as_a_dataframe_with_the_types_report_and_a_warning_when_the_export_would_stop(
    mysql_db: MySqlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mysql_db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        for statement in EVENTS:
            cursor.execute(statement)
    make_kpi(tmp_path / "q", "events", HEADER, SQL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_SOURCE", mysql_url(mysql_db))
    monkeypatch.setenv("KPI_WAREHOUSE", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    monkeypatch.setenv("KPI_QUERIES", str(tmp_path / "q"))
    monkeypatch.delenv("KPI_ENV", raising=False)

    frame = pipeline.preview("events", date="2024-03-02", limit=5)
    assert len(frame) == 1
    assert frame["amount"].iloc[0] == Decimal("9999999999.99")
    assert str(frame["day"].dtype) == "date32[day][pyarrow]"
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame.attrs["partition"] == "2024-03-02"
    assert frame.attrs["ok"] is True
    assert frame.attrs["written"] is False
    amount = next(c for c in frame.attrs["columns"] if c["name"] == "amount")
    assert (amount["source_type"], amount["arrow_type"], amount["declared"]) == (
        "DECIMAL(12,2)",
        "decimal128(38, 9)",
        "NUMERIC",
    )
    assert not (tmp_path / "lake").exists()
    assert not (tmp_path / "wh.duckdb").exists()

    make_kpi(tmp_path / "q", "events", HEADER.replace("amount: {type: NUMERIC}", "amount: {type: INT64}"), SQL)
    with pytest.warns(PreviewWarning, match=r"amount: DECIMAL\(12,2\) has 2 decimal places.*declare NUMERIC"):
        frame = pipeline.preview("events", "2024-03-01")
    assert frame["amount"].tolist() == ["0.10"]  # the source's own value: the export could not convert it
    assert frame.attrs["ok"] is False


def test_neither_import_pipeline_nor_a_lambda_handler_imports_pandas() -> None:
    handlers = [f"pipeline.lambdas.{m.name}" for m in pkgutil.iter_modules(pipeline.lambdas.__path__)]
    assert "pipeline.lambdas.exporter" in handlers
    assert "pipeline.lambdas.loader" in handlers
    modules = ["pipeline", *handlers, "pipeline.notebook", "pipeline.cli", "pipeline.cli.preview"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'pandas' not in sys.modules, name\n"
        "import pipeline\n"
        "assert callable(pipeline.read) and callable(pipeline.preview)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_the_package_functions_are_the_notebook_api() -> None:
    import inspect

    import pipeline.notebook

    read: Any = inspect.signature(pipeline.read)
    assert list(read.parameters)[:4] == ["name", "start", "end", "env"]
    shown: Any = inspect.signature(pipeline.preview)
    assert list(shown.parameters)[:4] == ["name", "date", "limit", "env"]
    assert shown.parameters["limit"].default == 20
    assert callable(pipeline.preview)  # still the function after pipeline.notebook was imported
