"""Hostile and broken input: every case gets one clear message (asserted in full) and a non-zero exit, never a
traceback, and no secret in what is printed.

The KPI file format's own rules (a NUL byte in a header, anchors and aliases, nesting) have their files in
``tests/corpus``; here are the cases around them: kpi.toml, source and warehouse URLs, links in ``queries/``,
files too large to read, output without bound, and the commands' own arguments.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from tests.exporting import DAILY, DAILY_SQL, make_kpi

SECRET = "hunter2-do-not-print"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with one valid KPI over a DuckDB shop; each case breaks one thing around it."""
    with duckdb.connect(str(tmp_path / "shop.duckdb")) as db:
        db.execute("CREATE TABLE orders AS SELECT TIMESTAMP '2024-03-01 10:00' AS created_at")
    make_kpi(tmp_path / "queries", "daily", DAILY, DAILY_SQL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_SOURCE", "duckdb://shop.duckdb")
    monkeypatch.setenv("KPI_LAKE", "lake")
    monkeypatch.setenv("KPI_WAREHOUSE", "duckdb://wh.duckdb")
    for name in ("KPI_QUERIES", "KPI_ENV", "KPI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name in [key for key in os.environ if key.startswith("KPI_SUSPEND_")]:
        monkeypatch.delenv(name)
    return tmp_path


@dataclass
class Case:
    args: list[str]
    output: str  # the whole output, exactly
    code: int = 2
    files: dict[str, bytes | str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] = lambda _: None


def _links(root: Path) -> None:
    queries = root / "queries"
    (queries / "loop").symlink_to(".")
    (queries / "gone.sql").symlink_to("/nonexistent/gone.sql")
    (queries / "a.sql").symlink_to("b.sql")
    (queries / "b.sql").symlink_to("a.sql")
    (queries / "zero.sql").symlink_to("/dev/zero")
    (root / "shared").mkdir()
    (queries / "shared").symlink_to("../shared")


def _occupied(root: Path) -> None:
    (root / "occupied").write_text("a file, not a folder")


def _file_in_the_way(root: Path) -> None:
    _occupied(root)
    assert CliRunner().invoke(cli, ["export", "daily", "--date", "2024-03-01"]).exit_code == 0


CASES = {
    "kpi.toml: sources given as a string (holding a password)": Case(
        ["status"],
        "error: kpi.toml [environments.local]: sources must be a table of named sources, found a string\n"
        '  hint: write [environments.local.sources] and under it default = "mysql://kpi_reader@host:3306/shop"\n',
        files={"kpi.toml": f'[environments.local]\nsources = "mysql://kpi:{SECRET}@db:3306/shop"\n'},
    ),
    "kpi.toml: parallel = true": Case(
        ["status"],
        "error: kpi.toml [environments.local]: source 'default' must be a URL or {url = …, parallel = N ≥ 1}\n"
        '  hint: e.g. default = { url = "mysql://kpi_reader@host:3306/shop?secret=ARN", parallel = 2 }\n',
        files={
            "kpi.toml": '[environments.local.sources]\ndefault = { url = "duckdb://shop.duckdb", parallel = true }\n'
        },
    ),
    "kpi.toml: arrays nested 100,000 deep": Case(
        ["status"],
        "error: cannot read kpi.toml: arrays or tables nest too deeply\n  hint: flatten the TOML\n",
        files={"kpi.toml": "x = " + "[" * 100_000 + "]" * 100_000 + "\n"},
    ),
    "kpi.toml: two megabytes": Case(
        ["status"],
        "error: kpi.toml is larger than 1024 KiB\n"
        "  hint: kpi.toml holds environments and the ops modules' tables: a few kilobytes\n",
        files={"kpi.toml": "# padding\n" * 200_000},
    ),
    "kpi.toml: not UTF-8": Case(
        ["status"],
        "error: cannot read kpi.toml: it is not UTF-8 (byte 0xe9 at offset 14)\n  hint: save the file as UTF-8\n",
        files={"kpi.toml": b'[environments.\xe9t\xe9]\nlake = "x"\n'},
    ),
    "kpi.toml: a source URL with a broken [IPv6] host": Case(
        ["status"],
        "error: kpi.toml [environments.local]: a URL cannot be read (a malformed [IPv6] address?)\n"
        "  hint: e.g. mysql://kpi_reader@[::1]:3306/db\n",
        files={"kpi.toml": '[environments.local.sources]\ndefault = "mysql://kpi@[::1/shop"\n'},
    ),
    "a source URL whose port is not a number": Case(
        ["export", "daily", "--date", "2024-03-01"],
        "error: the source URL's port 'abc' is not a number from 1 to 65535\n  hint: use mysql://user@host:3306/db\n",
        code=1,
        env={"KPI_SOURCE": f"mysql://kpi:{SECRET}@db:abc/shop"},
    ),
    "a source URL whose port is out of range": Case(
        ["export", "daily", "--date", "2024-03-01"],
        "error: the source URL's port '99999' is not a number from 1 to 65535\n  hint: use mysql://user@host:3306/db\n",
        code=1,
        env={"KPI_SOURCE": f"mysql://kpi:{SECRET}@db:99999/shop"},
    ),
    "a source URL whose port is 0": Case(
        ["export", "daily", "--date", "2024-03-01"],
        "error: the source URL's port '0' is not a number from 1 to 65535\n  hint: use mysql://user@host:3306/db\n",
        code=1,
        env={"KPI_SOURCE": f"mysql://kpi:{SECRET}@db:0/shop"},
    ),
    "a source URL of an unknown scheme": Case(
        ["export", "daily", "--date", "2024-03-01"],
        "error: unknown source URL scheme 'postgres'\n"
        "  hint: use mysql://user@host:3306/db or duckdb:///path/to/file.duckdb\n",
        code=1,
        env={"KPI_SOURCE": f"postgres://kpi:{SECRET}@db/shop"},
    ),
    "a DuckDB warehouse whose folder cannot be created": Case(
        ["load", "daily", "--date", "2024-03-01"],
        "error: cannot create the folder occupied for the DuckDB warehouse: a file is in the way\n"
        "  hint: point KPI_WAREHOUSE (or the environment's warehouse) at a folder you may write\n",
        code=1,
        env={"KPI_WAREHOUSE": "duckdb://occupied/wh.duckdb"},
        setup=_file_in_the_way,
    ),
    "links in queries/: a loop, a dangling link, a folder link, a link to a device": Case(
        ["check"],
        "queries/a.sql: symlink loop: a.sql → b.sql leads back to where it started\n"
        "  hint: point the link at a file or a folder outside the loop, or delete it\n"
        "queries/b.sql: symlink loop: b.sql → a.sql leads back to where it started\n"
        "  hint: point the link at a file or a folder outside the loop, or delete it\n"
        "queries/gone.sql: broken symlink: it points to /nonexistent/gone.sql, which does not exist\n"
        "  hint: point the link at the KPI file, or delete the link\n"
        "queries/loop: symlink loop: loop → . leads back to where it started\n"
        "  hint: point the link at a file or a folder outside the loop, or delete it\n"
        "queries/shared: shared is a symlink to a folder (../shared): KPI files in it would be neither checked nor "
        "deployed\n"
        "  hint: move the KPI files into the queries folder, or link them one by one\n"
        "queries/zero.sql: not a regular file (it points to /dev/zero): a device, socket or pipe cannot be a KPI "
        "file\n"
        "  hint: replace it by the KPI file, or delete it\n"
        "6 problems in 6 of 7 files\n",
        code=1,
        setup=_links,
    ),
    "a KPI file of two megabytes": Case(
        ["check"],
        "queries/huge.sql: the file is larger than 1024 KiB, the most a KPI file may be\n"
        "  hint: a KPI is one header and one query: move data into a table of the source database\n"
        "1 problem in 1 of 2 files\n",
        code=1,
        files={"queries/huge.sql": "/*---\ngrain: none\n---*/\nSELECT 1 AS n\n" + "-- padding\n" * 200_000},
    ),
    "kpi demo with a DuckDB warehouse whose folder cannot be created": Case(
        ["demo", "--json"],
        "error: cannot open the DuckDB warehouse occupied/wh.duckdb for the report: IO Error: Cannot open file "
        '"<root>/occupied/wh.duckdb": Not a directory\n'
        "  hint: point KPI_WAREHOUSE (or the environment's warehouse) at a folder you may write\n",
        code=1,
        env={"KPI_WAREHOUSE": "duckdb://occupied/wh.duckdb", "KPI_SOURCE": "duckdb://.kpi/demo.duckdb"},
        setup=_occupied,
    ),
    "kpi load of a manifest that does not exist": Case(
        ["load", "lake/daily/day=2024-03-01/run=20240302T060001123Z-1a2b3c/_manifest.json"],
        "error: no manifest at lake/daily/day=2024-03-01/run=20240302T060001123Z-1a2b3c/_manifest.json: the file "
        "does not exist\n"
        "  hint: check the path; `kpi load daily --date 2024-03-01` loads the partition's newest committed run\n",
        code=1,
    ),
    "kpi --env NAME before the command, without kpi.toml": Case(
        ["--env", "production", "status"],
        "error: no kpi.toml to read the environment 'production' from\n"
        "  hint: create kpi.toml at the repository root (see the README), or leave out --env\n",
    ),
    "a date that does not exist": Case(
        ["run", "daily", "--date", "2024-02-30"],
        "error: '2024-02-30' is not a date; write 2024-01-31 (or 2024-01 for a month, 2024-01-31T05 for an hour)\n",
    ),
    "kpi demo with a MySQL KPI_SOURCE holding a password": Case(
        ["demo"],
        "error: the demo writes its own DuckDB shop, but the 'local' environment's source is "
        "mysql://kpi@db:3306/shop\n"
        "  hint: run `kpi demo` without KPI_SOURCE, or with --env pointing at an embedded environment\n",
        env={"KPI_SOURCE": f"mysql://kpi:{SECRET}@db:3306/shop"},
    ),
    "a header indented with a tab": Case(
        ["check", "queries/tabbed.sql"],
        "queries/tabbed.sql:4:1: header is not valid YAML: found character '\\t' that cannot start any token\n"
        "    4 |  n: INT64\n"
        "      | ^\n"
        '  hint: quote values that start with * & ! or %: schedule: "0 6 * * *"; indent with spaces, not tabs\n'
        "1 problem in 1 of 1 file\n",
        code=1,
        files={"queries/tabbed.sql": "/*---\ngrain: none\ncolumns:\n\tn: INT64\n---*/\nSELECT 1 AS n\n"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_gets_one_clear_message(
    name: str, project: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    case = CASES[name]
    for path, content in case.files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (project / path).write_bytes(content)
        else:
            (project / path).write_text(content, encoding="utf-8")
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    case.setup(project)
    result = runner.invoke(cli, case.args)
    assert (result.exit_code, result.output) == (case.code, case.output.replace("<root>", str(project.resolve())))
    assert result.exception is None or isinstance(result.exception, SystemExit), "a traceback"
    assert SECRET not in result.output


def test_an_alias_bomb_is_refused_at_once(project: Path, runner: CliRunner) -> None:
    """460 bytes of nested aliases took 4.5 minutes and 15 GB to read before anchors were refused."""
    lines = ["/*---", "grain: none", 'a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (project / "queries" / "bomb.sql").write_text("\n".join([*lines, "---*/", "SELECT 1 AS n"]) + "\n")
    started = time.monotonic()
    result = runner.invoke(cli, ["check", "queries/bomb.sql", "--json"])
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    assert (problems[0]["line"], problems[0]["col"], problems[0]["message"]) == (
        3,
        5,
        "YAML anchors (&name) are not allowed in a header",
    )
    assert {p["rule"] for p in problems} == {"yaml-alias"}
    assert len(problems) == 9 + 8 * 9  # every anchor and every alias, each at its place


def test_kpi_check_caps_the_problems_it_prints_per_file(project: Path, runner: CliRunner) -> None:
    keys = "\n".join(f"k{i}: 1" for i in range(3_000))  # the file had 32,000: the same cap, 10× the time
    header = f"grain: none\ncolumns:\n  n: INT64\n{keys}"
    (project / "queries" / "many.sql").write_text(f"/*---\n{header}\n---*/\nSELECT 1 AS n\n")
    shown = runner.invoke(cli, ["check"])
    assert shown.exit_code == 1
    lines = shown.output.splitlines()
    assert len(lines) == 20 * 4 + 2  # each problem: its line, the quoted source, the caret, the hint
    assert lines[-2:] == [
        "queries/many.sql: … and 2,980 more problem(s) (`kpi check --json` lists them all)",
        "3000 problems in 1 of 2 files",
    ]
    assert len(json.loads(runner.invoke(cli, ["check", "--json"]).output)["problems"]) == 3_000


def test_kpi_suspend_calendar_needs_no_account_settings(project: Path, runner: CliRunner) -> None:
    """It touches no AWS, so the account allow-list the other suspend commands insist on is not asked for."""
    result = runner.invoke(cli, ["suspend", "calendar", "--now", "2026-11-23T08:00", "--days", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["holiday"] == "Labor Thanksgiving Day"
    refused = runner.invoke(cli, ["suspend", "plan", "--action", "suspend"])
    assert refused.exit_code == 1
    assert "no account allow-list" in refused.output


@pytest.mark.parametrize(
    "args",
    [
        ["run", "daily", "--date", "2024-03-01"],
        ["run", "daily", "--date", "2024-03-01", "--json"],
        ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-02"],
        ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-02", "--dry-run"],
        ["export", "daily", "--date", "2024-03-01"],
        ["preview", "daily", "--date", "2024-03-01"],
        ["status"],
        ["demo"],
    ],
    ids=lambda args: " ".join(args),
)
def test_no_command_prints_the_sources_password(
    args: list[str], project: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    """A source URL with a password (allowed in KPI_SOURCE, never in kpi.toml) whose server refuses connections."""
    monkeypatch.setenv("KPI_SOURCE", f"mysql://kpi:{SECRET}@127.0.0.1:1/shop")
    result = runner.invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), "a traceback"
    assert SECRET not in result.output
    if args[0] in ("run", "backfill") and "--dry-run" not in args:
        assert result.exit_code == 1
        assert "mysql://kpi@127.0.0.1:1/shop" in result.output  # the source is named, without its password
