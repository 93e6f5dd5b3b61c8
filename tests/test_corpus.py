"""One broken KPI file per rule: `kpi check` reports exactly the expected problems, at the right place.

The corpus lives in ``tests/corpus``; each file breaks one rule of the KPI file format (``header/``) or of the
SQL gate (``sql/``). Messages are asserted in full because they are the product's interface to analysts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from tests.conftest import CORPUS

# file → [(line, col, rule, message)], in the order `kpi check` reports them
HEADER = {
    "missing_header.sql": [(1, 1, "missing-header", "file does not start with a `/*---` header")],
    "unterminated_header.sql": [(1, 1, "unterminated-header", "header opened with `/*---` is never closed")],
    "not_utf8.sql": [(2, 17, "not-utf8", "file is not UTF-8: byte 0xe9 cannot be decoded")],
    "yaml_syntax.sql": [(3, 19, "yaml-syntax", "header is not valid YAML: mapping values are not allowed here")],
    "header_not_mapping.sql": [
        (2, 1, "header-not-mapping", "the header must be a YAML mapping of `key: value` lines, found a list")
    ],
    "duplicate_key.sql": [(4, 1, "duplicate-key", "key 'grain' appears twice in the header")],
    "unknown_key.sql": [(3, 1, "unknown-key", "unknown header key 'grian' (did you mean 'grain'?)")],
    "wrong_type.sql": [(3, 11, "wrong-type", "'lookback' must be a whole number, found a text ('two')")],
    "invalid_grain.sql": [(2, 8, "invalid-value", "'grain' is 'daily' (did you mean 'day'?)")],
    "missing_time_column.sql": [(2, 1, "missing-time-column", "grain 'day' needs a `time_column`")],
    "invalid_name.sql": [(2, 7, "invalid-name", "'Daily-Sales' is not a valid KPI name")],
    "Invalid-File-Name.sql": [
        (1, 1, "invalid-name", "the file name 'Invalid-File-Name' is not a valid KPI name, and the header sets none")
    ],
    "invalid_cron.sql": [(3, 11, "invalid-cron", "'0 25 * * *' is not a valid cron expression: Bad hour")],
    "invalid_timezone.sql": [
        (3, 11, "invalid-timezone", "unknown time zone 'Asia/Tokio' (did you mean 'Asia/Tokyo'?)")
    ],
    "invalid_date.sql": [(3, 8, "invalid-date", "'start' is not a date: '2024-02-30'")],
    "invalid_duration.sql": [
        (
            3,
            25,
            "invalid-duration",
            "'26 hours' is not a duration; write a number and a unit (s, m, h, d, w), e.g. 30m, 26h, 1h30m",
        )
    ],
    "timeout_too_long.sql": [(3, 10, "out-of-range", "timeout 20m is longer than 15m")],
    "missing_columns.sql": [(2, 1, "missing-columns", "the header has no `columns`")],
    "invalid_type.sql": [(5, 18, "invalid-type", "'INTEGER' is not a type allowed here (did you mean INT64?)")],
    "invalid_column_name.sql": [
        (6, 3, "invalid-column-name", "'_PARTITIONTIME' is not a valid column name"),
        (6, 3, "missing-column", "column '_PARTITIONTIME' is declared but the query does not return it"),
    ],
    "time_column_type.sql": [
        (3, 14, "invalid-type", "time_column 'sales_date' is DATE, which cannot carry partitions of grain 'hour'")
    ],
    "unknown_check_column.sql": [
        (
            4,
            14,
            "unknown-column",
            "'sales_dt' in checks.not_null is not a declared column (did you mean 'sales_date'?)",
        )
    ],
    "chart_by.sql": [
        (4, 22, "chart-measure", "'status' in chart.measures is not a numeric column"),
        (5, 7, "chart-by", "'orders' in chart.by is not a dimension"),
    ],
    "undeclared_param.sql": [(10, 17, "undeclared-param", "placeholder :country is not declared in params")],
    "unused_param.sql": [(4, 3, "unused-param", "parameter 'country' is declared but the SQL never uses :country")],
    "reserved_param.sql": [(4, 3, "invalid-param", "parameter 'start' is set by the interval")],
    "invalid_param_default.sql": [
        (4, 37, "invalid-value", "default of parameter 'limit_yen': 'lots' is not a valid INT64")
    ],
    "missing_interval.sql": [
        (
            7,
            1,
            "missing-interval",
            "an incremental KPI (grain: day) must filter on :start and :end; missing :end",
        )
    ],
    "snapshot_interval.sql": [
        (6, 58, "snapshot-interval", ":end used in a snapshot KPI (grain: none), which has no interval")
    ],
    "undeclared_column.sql": [
        (7, 60, "undeclared-column", "result column 'sales' is not declared in columns (did you mean 'sales_date'?)")
    ],
    "missing_column.sql": [
        (
            6,
            3,
            "missing-column",
            "column 'sales' is declared but the query does not return it (did you mean 'sales_date'?)",
        )
    ],
    "lookback_snapshot.sql": [(3, 11, "lookback-snapshot", "`lookback` has no meaning for a snapshot (grain: none)")],
    "time_column_snapshot.sql": [(3, 1, "time-column-snapshot", "a snapshot (grain: none) has no time_column")],
    "missing_type.sql": [(4, 3, "missing-type", "column 'n' has no type")],
    "duplicate_column.sql": [
        (5, 3, "duplicate-column", "column 'Orders' is declared twice: 'orders' differs only in case")
    ],
    "cluster_by_type.sql": [(3, 14, "invalid-type", "BigQuery cannot cluster on FLOAT64 column 'ratio'")],
    "csv_bytes.sql": [(3, 9, "csv-bytes", "CSV files cannot carry BYTES column avatar")],
    "hour_offset.sql": [
        (
            3,
            11,
            "hour-offset",
            "hourly partitions need a zone whose UTC offset is whole hours; Asia/Kolkata is UTC+05:30",
        )
    ],
    "time_column_repeated_hour.sql": [
        (
            5,
            14,
            "time-column-repeated-hour",
            "time_column 'order_hour' is a DATETIME in America/New_York, whose clocks go back an hour (on "
            "2024-11-03): BigQuery would keep both of its hours in one partition",
        )
    ],
    "nul_byte.sql": [(3, 21, "yaml-character", "the header holds a NUL byte, which YAML does not allow")],
    "yaml_alias.sql": [
        (3, 8, "yaml-alias", "YAML anchors (&name) are not allowed in a header"),
        (4, 14, "yaml-alias", "YAML aliases (*name) are not allowed in a header"),
    ],
    "yaml_too_deep.sql": [(3, 22, "yaml-too-deep", "the header nests mappings and lists more than 16 deep")],
}

_NOT_SELECT = "only a SELECT query is allowed, found {}"
SQL = {
    "syntax_error.sql": [
        (6, 20, "sql-syntax", "cannot parse the SQL near 'WHERE': Expected table name but got 'WHERE'")
    ],
    "empty.sql": [(6, 1, "sql-empty", "no SQL after the header")],
    "insert.sql": [(6, 1, "sql-not-select", _NOT_SELECT.format("INSERT"))],
    "update.sql": [(6, 1, "sql-not-select", _NOT_SELECT.format("UPDATE"))],
    "delete.sql": [(6, 1, "sql-not-select", _NOT_SELECT.format("DELETE"))],
    "create_table.sql": [(6, 1, "sql-not-select", _NOT_SELECT.format("CREATE"))],
    "drop_table.sql": [(6, 1, "sql-not-select", _NOT_SELECT.format("DROP"))],
    "set.sql": [(6, 1, "sql-not-select", _NOT_SELECT.format("SET"))],
    "call.sql": [(6, 1, "sql-not-select", _NOT_SELECT.format("CALL"))],
    "select_into_var.sql": [
        (6, 8, "sql-unnamed-column", "result column 1 (`COUNT(*)`) has no name"),
        (6, 17, "sql-into", "`SELECT … INTO` writes to variables or files"),
    ],
    "select_into_outfile.sql": [(6, 28, "sql-into", "`SELECT … INTO` writes to variables or files")],
    "for_update.sql": [(6, 28, "sql-locking-read", "`FOR UPDATE` locks rows on the production database")],
    "lock_in_share_mode.sql": [
        (6, 28, "sql-locking-read", "`LOCK IN SHARE MODE` locks rows on the production database")
    ],
    "several_statements.sql": [
        (7, 1, "sql-multiple-statements", "more than one statement: a KPI is exactly one query")
    ],
    "sleep.sql": [(6, 34, "sql-forbidden-function", "function SLEEP() is not allowed: it stalls the database server")],
    "benchmark.sql": [
        (6, 8, "sql-forbidden-function", "function BENCHMARK() is not allowed: it stalls the database server")
    ],
    "load_file.sql": [
        (
            6,
            15,
            "sql-forbidden-function",
            "function LOAD_FILE() is not allowed: it reads files on the database server",
        )
    ],
    "get_lock.sql": [
        (
            6,
            8,
            "sql-forbidden-function",
            "function GET_LOCK() is not allowed: it takes or inspects advisory locks that other sessions wait on",
        )
    ],
    "lambda_async.sql": [
        (
            6,
            14,
            "sql-forbidden-function",
            "function LAMBDA_ASYNC() is not allowed: it calls AWS services from Aurora (side effects and cost)",
        )
    ],
    "executable_comment.sql": [
        (
            6,
            15,
            "sql-executable-comment",
            "MySQL executes `/*! … */` comments as SQL, so the gate cannot check them",
        )
    ],
    "assignment.sql": [(6, 11, "sql-assignment", "`:=` assigns a user variable, a side effect the gate refuses")],
    "select_star.sql": [
        (
            6,
            8,
            "sql-select-star",
            "`*` in the outermost SELECT: the result's columns would change whenever the table does",
        )
    ],
    "unnamed_column.sql": [(6, 8, "sql-unnamed-column", "result column 1 (`COUNT(*)`) has no name")],
    "duplicate_output_column.sql": [(6, 16, "sql-duplicate-column", "result column 'n' appears twice")],
    "too_deep.sql": [(6, 72, "sql-too-deep", "the SQL nests parentheses more than 64 deep")],
    "nul_byte.sql": [(6, 16, "sql-character", "the SQL holds a NUL byte")],
    "too_deep_case.sql": [(6, 1, "sql-too-deep", "the SQL nests too deeply to be checked")],
}

CASES = [("header", name, expected) for name, expected in HEADER.items()] + [
    ("sql", name, expected) for name, expected in SQL.items()
]


def _check_json(runner: CliRunner, path: Path) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(cli, ["check", str(path), "--json"])
    return result.exit_code, json.loads(result.output)


@pytest.mark.parametrize(("folder", "name", "expected"), CASES, ids=[f"{f}/{n}" for f, n, _ in CASES])
def test_broken_file_reports_exactly_its_problems(
    runner: CliRunner, in_project: Path, folder: str, name: str, expected: list[tuple[int, int, str, str]]
) -> None:
    path = CORPUS / folder / name
    code, report = _check_json(runner, path)
    assert code == 1
    assert report["ok"] is False
    problems = report["problems"]
    assert isinstance(problems, list)
    assert [(p["line"], p["col"], p["rule"], p["message"]) for p in problems] == expected
    assert all(p["hint"] for p in problems), "every problem says how to fix it"
    assert all(p["path"] == f"tests/corpus/{folder}/{name}" for p in problems)


@pytest.mark.parametrize(("folder", "name", "expected"), CASES, ids=[f"{f}/{n}" for f, n, _ in CASES])
def test_human_output_is_path_line_col_message_without_traceback(
    runner: CliRunner, in_project: Path, folder: str, name: str, expected: list[tuple[int, int, str, str]]
) -> None:
    result = runner.invoke(cli, ["check", f"tests/corpus/{folder}/{name}"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    for line, col, _, message in expected:
        assert f"tests/corpus/{folder}/{name}:{line}:{col}: {message}" in lines
    assert lines[-1].endswith("in 1 of 1 file")


def test_every_rule_of_the_format_has_a_corpus_file() -> None:
    files = {p.name for p in (CORPUS / "header").glob("*.sql")} | {p.name for p in (CORPUS / "sql").glob("*.sql")}
    assert files == set(HEADER) | set(SQL), "each corpus file needs its expectation here, and vice versa"


def test_two_files_claiming_one_name_are_reported_on_the_second(runner: CliRunner, in_project: Path) -> None:
    code, report = _check_json(runner, CORPUS / "duplicate")
    assert code == 1
    assert report["kpis"] == []
    assert [(p["path"], p["line"], p["rule"], p["message"]) for p in report["problems"]] == [
        (
            "tests/corpus/duplicate/sales_copy.sql",
            2,
            "duplicate-name",
            "KPI name 'daily_sales' is already used by tests/corpus/duplicate/daily_sales.sql",
        )
    ]


def test_all_problems_of_one_file_are_reported_not_only_the_first(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "many.sql"
    path.write_text(
        "/*---\ngrian: day\ntimezone: Asia/Tokio\nschedule: '61 * * * *'\ntime_column: d\n"
        "columns:\n  d: {type: DATE}\n  n: {type: INTEGER}\n---*/\n"
        "SELECT DATE(created_at) AS d, COUNT(*) AS n FROM orders WHERE created_at >= :start AND created_at < :end\n"
    )
    code, report = _check_json(runner, path)
    assert code == 1
    assert [p["rule"] for p in report["problems"]] == [
        "unknown-key",
        "invalid-timezone",
        "invalid-cron",
        "invalid-type",
    ]
