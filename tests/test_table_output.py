"""The CLI's table drawn without rich (:func:`pipeline.cli.output.echo_table`) must be the table rich draws.

``kpi backfill --dry-run`` prints its batches without importing rich (a fifth of the dry run's CPU time), so its
table is compared here, line for line, with what rich itself prints for the same cells — the real library, at
the width of a pipe (80) — and a table rich would draw otherwise (too wide, markup, emoji codes, wide
characters) must be left to rich.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from pipeline.cli.output import echo_table, table_lines

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
