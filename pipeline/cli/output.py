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
from collections.abc import Iterable
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


@lru_cache(maxsize=64)
def _lines(path: str) -> list[str]:
    """The lines of a file a problem points into: regular files of a KPI file's size only (a problem may be about a
    link to /dev/zero)."""
    from pipeline.catalog import MAX_FILE_BYTES

    file = Path(path)
    try:
        if not file.is_file() or file.stat().st_size > MAX_FILE_BYTES:
            return []
        return file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


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
