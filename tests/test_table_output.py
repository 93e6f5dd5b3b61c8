"""The CLI's table drawn without rich (:func:`pipeline.cli.output.echo_table`) must be the table rich draws.

``kpi backfill --dry-run`` prints its batches without importing rich (a fifth of the dry run's CPU time), so its
table is compared here, line for line, with what rich itself prints for the same cells — the real library, at
the width of a pipe (80) — and a table rich would draw otherwise (too wide, markup, emoji codes, wide
characters) must be left to rich.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console
from rich.table import Table

from pipeline.cli.output import echo_table, table_lines
from tests.conftest import ROOT

HEADERS = ["#", "first", "last", "partitions"]
TITLE = "batches (one source query each)"


def _rich(headers: list[str], rows: list[list[str]], title: str, width: int = 80) -> str:
    out = io.StringIO()
    table = Table(*headers, title=title)
    for row in rows:
        table.add_row(*row)
    Console(file=out, width=width, highlight=False, soft_wrap=True, color_system=None).print(table)
    return out.getvalue()


CASES = {
    "a year of days": [[str(n), f"2024-{n:02d}-01", f"2024-{n:02d}-28", "28"] for n in range(1, 13)],
    "hours": [["1", "2024-03-01T00", "2024-03-01T23", "24"], ["2", "2024-03-02T00", "2024-03-02T05", "6"]],
    "months, a wide number": [["1000", "2024-01", "2024-12", "12"]],
    "no batch": [],
}


@pytest.mark.parametrize("rows", list(CASES.values()), ids=list(CASES))
def test_the_table_is_the_one_rich_draws(rows: list[list[str]]) -> None:
    lines = table_lines(HEADERS, rows, title=TITLE)
    assert lines is not None
    assert "\n".join(lines) + "\n" == _rich(HEADERS, rows, TITLE)


def test_a_title_wider_than_the_table_is_the_one_rich_draws() -> None:
    lines = table_lines(["n"], [["1"]], title=TITLE)
    assert lines is not None
    assert "\n".join(lines) + "\n" == _rich(["n"], [["1"]], TITLE)


@pytest.mark.parametrize("cell", ["[red]x[/]", ":smile:", "日本", "tab\there", ""])
def test_cells_rich_would_read_otherwise_are_left_to_rich(cell: str) -> None:
    expected = None if cell else ["t", "┏━━━┓", "┃ h ┃", "┡━━━┩", "│   │", "└───┘"]
    assert table_lines(["h"], [[cell]], title="t") == expected


def test_a_table_wider_than_the_screen_is_drawn_by_rich(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = CASES["hours"]
    monkeypatch.setenv("COLUMNS", "30")  # rich shrinks the columns and cuts the cells: …
    echo_table(HEADERS, rows, title=TITLE)
    narrow = capsys.readouterr().out
    assert narrow == _rich(HEADERS, rows, TITLE, width=30)
    assert "…" in narrow
    monkeypatch.setenv("COLUMNS", "200")  # wider than a pipe's 80: drawn here, as rich would at 80
    echo_table(HEADERS, rows, title=TITLE)
    assert capsys.readouterr().out == _rich(HEADERS, rows, TITLE)


def _on_a_terminal(code: str, env: dict[str, str]) -> str:
    """What ``code`` prints with a real terminal (a pseudo-terminal) as its stdout; line ends as written."""
    primary, secondary = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], stdout=secondary, stderr=subprocess.PIPE, env=env, cwd=ROOT, check=False
        )
        os.close(secondary)
        assert done.returncode == 0, done.stderr
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other side is closed and everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_on_a_terminal_the_header_is_bold_and_the_title_italic_unless_no_color() -> None:
    rows = CASES["hours"]
    code = f"from pipeline.cli.output import echo_table; echo_table({HEADERS!r}, {rows!r}, title={TITLE!r})"
    env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "COLUMNS")}
    coloured = _on_a_terminal(code, env)
    assert f"\x1b[3m{TITLE}\x1b[0m" in coloured
    assert "┃\x1b[1m first         \x1b[0m┃" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == _rich(HEADERS, rows, TITLE)
    assert _on_a_terminal(code, {**env, "NO_COLOR": "1"}) == _rich(HEADERS, rows, TITLE)
