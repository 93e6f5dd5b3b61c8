"""The `kpi` command as an analyst uses it: exit codes, exact output, JSON, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import catalog
from pipeline.cli import cli
from pipeline.core.intervals import Grain
from tests.conftest import ROOT

EXAMPLES = {"daily_sales", "hourly_orders", "large_orders", "monthly_active_buyers", "users_by_plan", "weekly_buyers"}


def test_check_passes_on_the_examples(runner: CliRunner, in_project: Path) -> None:
    result = runner.invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert result.output == "ok: 6 KPIs in 6 files, no problems\n"


def test_examples_cover_every_grain_and_a_snapshot(runner: CliRunner, in_project: Path) -> None:
    result = runner.invoke(cli, ["list", "--json"])
    assert result.exit_code == 0
    kpis = json.loads(result.output)
    assert {k["name"] for k in kpis} == EXAMPLES
    assert {k["grain"] for k in kpis} == {g.value for g in Grain}


def test_check_shows_source_line_caret_and_hint(runner: CliRunner, in_project: Path) -> None:
    result = runner.invoke(cli, ["check", "tests/corpus/header/unknown_key.sql"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "tests/corpus/header/unknown_key.sql:3:1: unknown header key 'grian' (did you mean 'grain'?)",
        "    3 | grian: day",
        "      | ^",
        "  hint: the README lists every header key; `kpi new NAME` writes them all",
        "1 problem in 1 of 1 file",
    ]


def test_check_shows_each_file_as_it_is_now(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One process, two folders with a file of the same relative path, then one of them changed: every check shows
    # the line as the file holds it (the problem's lines were once kept by relative path: a second check showed
    # another folder's line).
    for folder, grain in (("one", "day"), ("two", "hour"), ("one", "month")):
        (tmp_path / folder / "queries").mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "queries" / "a.sql").write_text(f"/*---\ngrian: {grain}\n---*/\nSELECT 1 AS x\n")
        monkeypatch.chdir(tmp_path / folder)
        result = runner.invoke(cli, ["check"])
        assert result.exit_code == 1
        assert result.output.splitlines()[1] == f"    2 | grian: {grain}"


def test_queries_folder_comes_from_kpi_queries(runner: CliRunner, tmp_path: Path, in_project: Path) -> None:
    (tmp_path / "mine.sql").write_text((ROOT / "queries" / "users_by_plan.sql").read_text())
    result = runner.invoke(cli, ["list", "--json"], env={"KPI_QUERIES": str(tmp_path)})
    assert result.exit_code == 0
    assert [k["name"] for k in json.loads(result.output)] == ["mine"]


def test_check_of_a_missing_path_is_a_usage_error(runner: CliRunner, in_project: Path) -> None:
    result = runner.invoke(cli, ["check", "nope/"])
    assert result.exit_code == 2
    assert result.output == (
        "error: no such file or folder: nope\n  hint: pass KPI files or folders, or set KPI_QUERIES\n"
    )


def test_list_shows_the_table(runner: CliRunner, in_project: Path) -> None:
    result = runner.invoke(cli, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "daily_sales" in result.output
    assert "0 6 * * * (Asia/Tokyo)" in result.output
    assert "growth-team" in result.output


def test_render_prints_bound_sql_values_and_a_pasteable_form(runner: CliRunner, in_project: Path) -> None:
    result = runner.invoke(cli, ["render", "daily_sales", "--date", "2024-03-01"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "-- daily_sales, partition 2024-03-01 (Asia/Tokyo); mysql, values bound by the driver:",
        "SELECT DATE(created_at) AS sales_date, status, COUNT(*) AS orders, SUM(amount) AS sales",
        "FROM orders",
        "WHERE created_at >= %(start)s AND created_at < %(end)s",
        "GROUP BY 1, 2",
        "-- :start = 2024-03-01 00:00:00 (datetime)",
        "-- :end = 2024-03-02 00:00:00 (datetime)",
        "-- to paste into a SQL client:",
        "SELECT DATE(created_at) AS sales_date, status, COUNT(*) AS orders, SUM(amount) AS sales",
        "FROM orders",
        "WHERE created_at >= CAST('2024-03-01 00:00:00' AS DATETIME)"
        " AND created_at < CAST('2024-03-02 00:00:00' AS DATETIME)",
        "GROUP BY 1, 2",
    ]


def test_render_json_for_duckdb(runner: CliRunner, in_project: Path) -> None:
    result = runner.invoke(cli, ["render", "hourly_orders", "--date", "2024-03-01T09", "--dialect", "duckdb", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["partition"] == "2024-03-01T09"
    assert data["values"] == {"start": "2024-03-01T09:00:00", "end": "2024-03-01T10:00:00"}
    assert "$start" in data["sql"]
    assert "STRFTIME" in data["sql"]


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["render", "daily_sale"], 2, "error: no KPI named 'daily_sale' (did you mean 'daily_sales'?)"),
        (["render", "daily_sales", "--date", "soon"], 2, "error: 'soon' is not a date; write 2024-01-31"),
        (["render", "users_by_plan", "--date", "2024-03-01"], 2, "error: users_by_plan is a snapshot (grain: none)"),
        (["render", "large_orders", "--param", "min_amount"], 2, "error: --param 'min_amount' is not NAME=VALUE"),
        (["render", "large_orders", "--param", "x=1"], 1, "large_orders: error: unknown parameter x"),
    ],
)
def test_user_mistakes_are_one_clear_message(
    runner: CliRunner, in_project: Path, args: list[str], code: int, expected: str
) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == code
    assert result.output.startswith(expected)
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_render_of_a_broken_kpi_shows_its_problems(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "broken.sql").write_bytes((ROOT / "tests/corpus/header/unknown_key.sql").read_bytes())
    result = runner.invoke(cli, ["--queries", str(tmp_path), "render", "broken"])
    assert result.exit_code == 1
    assert result.output.splitlines()[0].endswith("broken.sql:3:1: unknown header key 'grian' (did you mean 'grain'?)")
    assert "Traceback" not in result.output


def test_new_writes_a_file_that_checks_clean_for_every_grain(runner: CliRunner, tmp_path: Path) -> None:
    for grain in Grain:
        name = f"new_{grain.value}"
        result = runner.invoke(cli, ["--queries", str(tmp_path), "new", name, "--grain", grain.value])
        assert result.exit_code == 0, result.output
        text = (tmp_path / f"{name}.sql").read_text()
        assert text.startswith("/*---\n")
        for key in ("description:", "owner:", "grain:", "timezone:", "schedule:", "columns:", "checks:", "timeout:"):
            assert key in text
    check = runner.invoke(cli, ["check", str(tmp_path), "--json"])
    assert check.exit_code == 0, check.output
    assert sorted(json.loads(check.output)["kpis"]) == sorted(f"new_{g.value}" for g in Grain)


def test_new_never_overwrites_and_refuses_bad_names(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(cli, ["--queries", str(tmp_path), "new", "weekly"]).exit_code == 0
    again = runner.invoke(cli, ["--queries", str(tmp_path), "new", "weekly"])
    assert again.exit_code == 2
    assert "already exists" in again.output
    bad = runner.invoke(cli, ["--queries", str(tmp_path), "new", "Weekly-Sales"])
    assert bad.exit_code == 2
    assert bad.output.startswith("error: 'Weekly-Sales' is not a valid KPI name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weekly.sql"]


def test_every_command_has_help_with_an_example(runner: CliRunner) -> None:
    for command in ("check", "list", "render", "new"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        assert "kpi " + command in result.output


def test_quirk_policies_accept_yaml_null(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "lenient.sql").write_text(
        "/*---\ngrain: none\nzero_dates: null\ninvalid_utf8: error\n"
        "columns:\n  d: {type: DATE, zero_dates: error}\n---*/\nSELECT created_at AS d FROM orders\n"
    )
    result = runner.invoke(cli, ["check", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    kpi = catalog.load([tmp_path]).get("lenient")
    assert (kpi.zero_dates.value, kpi.invalid_utf8.value, kpi.columns[0].zero_dates) == ("null", "error", "error")


def test_folders_named_like_sql_files_and_hidden_files_are_not_kpis(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "archive.sql").mkdir()
    (tmp_path / ".drafts").mkdir()
    (tmp_path / ".drafts" / "half_done.sql").write_text("not a KPI")
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "snap.sql").write_text((ROOT / "queries" / "users_by_plan.sql").read_text())
    result = runner.invoke(cli, ["check", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kpis"] == ["snap"]
