"""How the CLI shows problems and errors: compiler-style lines, the offending source line, a hint.

Output is coloured on a terminal and plain when piped (rich decides; ``NO_COLOR`` is honoured). Lines are never
wrapped, so that ``path:line:col: message`` stays one line that editors and CI annotators can parse.

rich is imported when something is printed through it, not with this module: importing it costs about 30 ms of a
single-KPI command's 0.3 s budget (measured with ``python -X importtime``), and ``kpi render``'s few coloured
lines go through :func:`echo_styled` (click's styles) instead.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline.errors import KpiError, Problem, SpecError

if TYPE_CHECKING:
    from rich.console import Console


def stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """``text`` with rich's markup characters escaped, to print it through a rich console as it is."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def echo_styled(*parts: tuple[str, dict[str, Any]] | str) -> None:
    """One line on stdout from plain and styled parts (``("text", {"fg": "cyan"})``: click's style keywords):
    coloured on a terminal unless ``NO_COLOR`` is set, plain when piped — as rich prints, without importing it."""
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    text = "".join(
        part if isinstance(part, str) else click.style(part[0], **part[1]) if colour else part[0] for part in parts
    )
    click.echo(text, color=colour)


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str) -> None:
    """A table of plain cells on stdout, drawn as rich draws its default table (heavy head, bold header, italic
    title, the columns as wide as their widest cell), without importing rich: about a fifth of the CPU time of
    ``kpi backfill --dry-run``. Where rich would draw it otherwise — a table wider than the screen, whose
    columns it shrinks, or cells it would read as markup, emoji or wide characters — rich draws it."""
    lines = table_lines(headers, rows, title=title)
    if lines is None or len(lines[1]) > min(80, _screen_width()):
        from rich.table import Table

        table = Table(*headers, title=title)
        for row in rows:
            table.add_row(*row)
        stdout().print(table)
        return
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if colour:
        widths = _widths(headers, rows)
        lines[0] = click.style(title, italic=True)
        lines[2] = "┃" + "┃".join(click.style(f" {h:<{w}} ", bold=True) for h, w in zip(headers, widths, strict=True))
        lines[2] += "┃"
    click.echo("\n".join(lines), color=colour)


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str) -> list[str] | None:
    """:func:`echo_table`'s lines, uncoloured: title, top, header, rule, a line per row, bottom. None when a cell
    is not printable ASCII free of ``[`` and ``:`` (rich would read markup or emoji codes, or measure widths)."""
    if not all(_plain(text) for text in (title, *headers, *(cell for row in rows for cell in row))):
        return None
    widths = _widths(headers, rows)

    def rule(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (width + 2) for width in widths) + right

    def cells(values: Sequence[str], bar: str) -> str:
        return bar + bar.join(f" {value:<{width}} " for value, width in zip(values, widths, strict=True)) + bar

    return [
        title,
        rule("┏", "━", "┳", "┓"),
        cells(headers, "┃"),
        rule("┡", "━", "╇", "┩"),
        *(cells(row, "│") for row in rows),
        rule("└", "─", "┴", "┘"),
    ]


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(header), *(len(row[index]) for row in rows)]) for index, header in enumerate(headers)]


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable() and "[" not in text and ":" not in text


def _screen_width() -> int:
    """The width rich's console would take: ``COLUMNS``, else the first standard stream that is a terminal
    (even when stdout is piped), else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return int(columns)
    for descriptor in (0, 1, 2):
        try:
            return os.get_terminal_size(descriptor).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def _lines(path: str) -> list[str]:
    """The lines of a file a problem points into: regular files of a KPI file's size only (a problem may be about a
    link to /dev/zero). Kept per file as it is now — its absolute path, size and modification time — so that a
    process that checks again after a file changed, or from another folder (the notebook, the tests), never shows
    the lines of before."""
    from pipeline.catalog import MAX_FILE_BYTES

    file = Path(path)
    try:
        if not file.is_file():
            return []
        stat = file.stat()
        if stat.st_size > MAX_FILE_BYTES:
            return []
        return _read_lines(str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return []


@lru_cache(maxsize=64)
def _read_lines(path: str, size: int, modified: int) -> list[str]:
    """``path``'s lines (``size`` and ``modified`` are the cache's key: the file as it was read)."""
    return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()


# Control characters in a quoted source line are shown as their pictures (␀), so they reach no terminal as such.
_VISIBLE = {code: 0x2400 + code for code in range(32)} | {0x7F: 0x2421}
SHOWN_PER_FILE = 20  # problems printed per file; a file of 32,000 unknown keys must not print 128,000 lines


def print_problems(console: Console, problems: Iterable[Problem], *, per_file: int = SHOWN_PER_FILE) -> None:
    """Each problem as ``path:line:col: message``, then the source line with a caret, then the hint; at most
    ``per_file`` of one file, then how many more there are (``--json`` lists them all)."""
    shown: dict[str, int] = {}
    for problem in problems:
        path = problem.location.path
        shown[path] = shown.get(path, 0) + 1
        if shown[path] <= per_file:
            _print_problem(console, problem)
    for path, count in shown.items():
        if count > per_file:
            console.print(
                f"[bold]{escape(path)}:[/] [yellow]… and {count - per_file:,} more problem(s)[/] "
                "(`kpi check --json` lists them all)"
            )


def _print_problem(console: Console, problem: Problem) -> None:
    location = problem.location
    console.print(f"[bold]{escape(str(location))}:[/] [red]{escape(problem.message)}[/]")
    lines = _lines(location.path)
    if 0 < location.line <= len(lines):
        source = lines[location.line - 1].replace("\t", " ").translate(_VISIBLE)
        gutter = f"{location.line:>5} | "
        console.print(f"[dim]{gutter}[/]{escape(source)}")
        if location.col > 0:
            console.print(f"[dim]{' ' * (len(gutter) - 2)}| [/]{' ' * (location.col - 1)}[red]^[/]")
    if problem.hint:
        console.print(f"  [cyan]hint:[/] {escape(problem.hint)}")


def print_error(error: KpiError) -> None:
    """A user-facing error on stderr: where, what, hint — no traceback."""
    console = stderr()
    if isinstance(error, SpecError):
        print_problems(console, error.problems)
        return
    where = f"[bold]{escape(error.where)}:[/] " if error.where else ""
    console.print(f"{where}[red]error:[/] {escape(error.message)}")
    if error.hint:
        console.print(f"  [cyan]hint:[/] {escape(error.hint)}")


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
