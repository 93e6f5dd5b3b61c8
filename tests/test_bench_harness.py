"""The benchmarks' shared harness (bench/_harness.py): sizes, the result record, tables, the scratch folder.

The benchmarks themselves run under `make bench` (minutes, real servers); what they print through the harness
is pinned here, with one real table of bench/backfill_bench.py as it appears in its report.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import backfill_bench
from bench._harness import (
    MeasuredRun,
    RowsRun,
    compile_bytecode,
    figures,
    finish,
    in_scratch,
    markdown_table,
    parse_rows,
    size_label,
    times,
)
from bench._rss import Measured
from bench.export_bench import Source


@pytest.mark.parametrize(
    ("text", "rows"),
    [("2000000", 2_000_000), ("2_000_000", 2_000_000), ("2m", 2_000_000), ("2.5M", 2_500_000), ("500k", 500_000)],
)
def test_sizes_are_read_the_way_people_type_them(text: str, rows: int) -> None:
    assert parse_rows(text) == rows


@pytest.mark.parametrize(
    ("text", "message"),
    [("lots", "not a row count: 'lots' (e.g. 50m)"), ("0", "a row count must be at least 1")],
)
def test_a_size_that_is_not_one_is_an_argparse_error(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_rows(text, "50m")


@pytest.mark.parametrize(("rows", "label"), [(50_000_000, "50m"), (2_500_000, "2500k"), (1234, "1234")])
def test_size_labels(rows: int, label: str) -> None:
    assert size_label(rows) == label


@dataclass
class Run(RowsRun):
    contestant: str
    rows: int
    measured: Measured | None = None
    error: str | None = None


def test_the_result_record_gives_the_figures_or_holes() -> None:
    done = Run("kpi", 2_000_000, Measured(0, 4.0, 164_864, 3.5))
    assert (done.ok, done.seconds, done.peak_rss_mib, done.cpu_seconds, done.rows_per_second) == (
        True,
        4.0,
        161.0,
        3.5,
        500_000.0,
    )
    assert figures(Measured(0, 4.0, 164_864, 3.5)) == "peak RSS 161 MB, CPU 3.50 s"
    failed = Run("kpi", 10, Measured(1, 1.0, 1024, 0.5), error="exit 1")
    missing = Run("kpi", 10)
    assert (failed.ok, missing.ok, missing.rows_per_second) == (False, False, 0.0)
    assert all(math.isnan(v) for v in (missing.seconds, missing.peak_rss_mib, missing.cpu_seconds))
    assert isinstance(done, MeasuredRun)


def test_tables_and_ratios() -> None:
    assert (times(1.2345), times(None)) == ("1.23×", "—")
    assert markdown_table(["contestant", "rows/s>"], [["kpi", "460,000"], ["pandas", "43,000"]]) == [
        "| contestant | rows/s |",
        "|---|--:|",
        "| kpi | 460,000 |",
        "| pandas | 43,000 |",
    ]
    with pytest.raises(ValueError, match="a row of 1 cells in a table of 2 columns"):
        markdown_table(["a", "b"], [["only one"]])


def test_the_backfill_table_reads_as_before() -> None:
    seen = backfill_bench.Statements(12, 12, (("SET", 84),))
    results = [
        backfill_bench.Result("kpi backfill", Measured(0, 10.0, 204_800, 6.0), seen=seen, sent=12, partitions=365),
        backfill_bench.Result(
            "a loop of kpi export",
            Measured(0, 95.0, 102_400, 80.0),
            seen=backfill_bench.Statements(365),
            partitions=365,
        ),
        backfill_bench.Result("broken", error="exit 1"),
    ]
    assert backfill_bench.table(results) == [
        "| contestant | partitions | queries planned | server's general log | seconds | peak RSS MB | CPU s "
        "| × backfill |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
        "| kpi backfill | 365 | 12 | 12 SELECT + 12 EXPLAIN | 10.00 | 200 | 6.00 | 1.00× |",
        "| a loop of kpi export | 365 | ? | 365 SELECT + 0 EXPLAIN | 95.00 | 100 | 80.00 | 9.50× |",
        "| broken | — | — | — | exit 1 | — | — | — |",
    ]


def test_the_backfill_target_is_judged_on_data_queries_not_on_explains() -> None:
    """An EXPLAIN counts as a SELECT in MariaDB's Com_select; the target (≤ 13 source queries for 365 days) is
    about the queries that read the source's rows, so 12 SELECTs and 12 EXPLAINs meet it and 14 SELECTs do not."""
    source = Source.parse(backfill_bench.DEFAULT_SOURCE)
    config = backfill_bench.Config(source=source, days=365, keep=False, regenerate=False)

    def backfill(selects: int, explains: int) -> backfill_bench.Result:
        seen = backfill_bench.Statements(selects, explains)
        return backfill_bench.Result("kpi backfill", Measured(0, 10.0, 1024, 6.0), seen=seen, sent=12)

    assert backfill_bench.target_line(config, backfill(12, 12)) == (
        "- met: ≤ 13 source queries for 365 days: 12 data queries in the server's general log (and 12 EXPLAINs, "
        "which read no rows; 12 planned by `kpi backfill --dry-run`)"
    )
    assert backfill_bench.target_line(config, backfill(14, 0)).startswith("- **NOT met**: ≤ 13 source queries")


@pytest.mark.parametrize(
    ("sql", "keyword"),
    [
        ("SELECT DATE(created_at) AS sales_date FROM orders", "SELECT"),
        ("  /* kpi daily_sales */\n  select 1", "SELECT"),
        ("-- a comment\nWITH t AS (SELECT 1) SELECT * FROM t", "WITH"),
        ("(SELECT 1) UNION (SELECT 2)", "SELECT"),
        ("EXPLAIN FORMAT=JSON SELECT 1", "EXPLAIN"),
        ("SET SESSION time_zone = '+09:00'", "SET"),
        ("START TRANSACTION READ ONLY", "START"),
        ("/* only a comment */", ""),
    ],
)
def test_statements_are_told_apart_by_their_first_keyword(sql: str, keyword: str) -> None:
    assert backfill_bench.first_keyword(sql) == keyword


def test_the_general_logs_statements_are_counted_by_kind() -> None:
    logged = [
        "SET SESSION time_zone = '+09:00'",
        "START TRANSACTION READ ONLY",
        "EXPLAIN FORMAT=JSON SELECT DATE(created_at) FROM orders WHERE created_at >= '2024-01-01'",
        "ROLLBACK",
        "SET SESSION time_zone = '+09:00'",
        "SELECT DATE(created_at) FROM orders WHERE created_at >= '2024-01-01'",
        "WITH d AS (SELECT 1) SELECT * FROM d",
    ]
    seen = backfill_bench.statement_kinds(logged)
    assert seen == backfill_bench.Statements(2, 1, (("SET", 2), ("ROLLBACK", 1), ("START", 1)))
    assert (str(seen), seen.other_text()) == ("2 SELECT + 1 EXPLAIN", "2 SET, 1 ROLLBACK, 1 START")
    assert backfill_bench.Statements().other_text() == "none"


def test_the_scratch_folder_is_kept_only_when_asked_or_when_the_run_went_wrong(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[Path] = []

    def run(status: int) -> Callable[[Path], int]:
        def body(scratch: Path) -> int:
            seen.append(scratch)
            (scratch / "log").write_text("evidence")
            return status

        return body

    assert in_scratch("kpi-test-", False, run(0)) == 0
    assert not seen[-1].exists()
    assert in_scratch("kpi-test-", False, run(1)) == 1
    assert (seen[-1] / "log").read_text() == "evidence"
    assert capsys.readouterr().out == f"kept {seen[-1]}\n"
    assert (finish(0.0, []), finish(0.0, ["kpi lost 3 rows"])) == (0, 1)
    assert "The benchmark itself went wrong (exit 1):\n  kpi lost 3 rows" in capsys.readouterr().out


def test_the_export_benchmarks_kpi_files_parse_and_may_scan_their_whole_table() -> None:
    """Both KPI files bench/export_bench.py writes read every row of a table of millions: without
    ``allow_full_scan`` the exporter's EXPLAIN guard refuses them before a row is read (it did, unnoticed until
    `make bench` ran: every kpi export of the run failed)."""
    from bench.export_bench import AGGREGATE_KPI, AGGREGATE_SELECT, COLUMNS, ROW_KPI
    from pipeline.core.parse import parse_kpi

    rows = ROW_KPI.format(name="bench_rows_2m", rows=2_000_000, columns=COLUMNS, table="bench_rows_2m")
    aggregate = AGGREGATE_KPI.format(
        name="bench_agg_20m", rows=20_000_000, select=AGGREGATE_SELECT.format(table="bench_rows_20m")
    )
    for name, text in (("bench_rows_2m", rows), ("bench_agg_20m", aggregate)):
        kpi, problems = parse_kpi(f"{name}.sql", text.encode(), name)
        assert problems == []
        assert kpi is not None
        assert kpi.allow_full_scan
        assert kpi.grain.value == "none"


def test_the_load_benchmarks_bigquery_child_imports_its_bridge_without_pyarrow() -> None:
    """The BigQuery child of bench/load_bench.py runs the loader as the Lambda does, with pyarrow, pandas, NumPy
    and DuckDB unimportable, and imports the test bridge there: a module-level ``import pyarrow`` in
    tests/bigquery.py (added for the bridge's ``coalesce`` mode) failed both of its runs in `make bench`. The
    child's own imports, after its own halt, in a fresh interpreter as the child is. (DuckDB is loaded already,
    by bench/load_bench.py itself, before the halt: only a later import of it would fail.)"""
    child = (
        "import sys\n"
        "from bench.load_bench import halt_lambda_absent_imports\n"
        "halt_lambda_absent_imports()\n"
        "from google.api_core.client_options import ClientOptions\n"
        "from google.auth.credentials import AnonymousCredentials\n"
        "from pipeline.load import load_manifest, split_manifest_url\n"
        "from pipeline.stores import open_store\n"
        "from pipeline.warehouses.bigquery import BigQueryWarehouse\n"
        "from tests.bigquery import PROJECT, BigQueryBridge\n"
        "try:\n"
        "    import pyarrow\n"
        "except ModuleNotFoundError as error:\n"
        "    print(error)\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in sys.argv[1:] and sys.modules[name]))\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", child, "pyarrow", "pandas", "numpy"], cwd=root, capture_output=True, text=True
    )
    assert done.stderr == ""
    assert done.stdout.splitlines() == ["import of pyarrow halted; None in sys.modules", "[]"]


def test_the_measured_installations_bytecode_is_written_even_when_python_is_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog benchmark times start-up: a shell with PYTHONDONTWRITEBYTECODE must not make every measured
    run compile the package again. The interpreter is the console script's (its first line)."""
    script = tmp_path / "kpi"
    script.write_text(f"#!{sys.executable}\nimport sys\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    source = Path(__file__).resolve().parent.parent / "pipeline" / "catalog.py"
    cached = Path(importlib.util.cache_from_source(str(source)))
    cached.unlink(missing_ok=True)  # a cache, rebuilt by any import: the next line must write it
    assert Path(compile_bytecode(script)) == source.parent
    assert cached.is_file()
