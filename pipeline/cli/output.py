"""How the CLI shows problems and errors: compiler-style lines, the offending source line, a hint.

Output is coloured on a terminal and plain when piped (rich decides; ``NO_COLOR`` is honoured). Lines are never
wrapped, so that ``path:line:col: message`` stays one line that editors and CI annotators can parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from pipeline.errors import KpiError, Problem, SpecError


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@lru_cache(maxsize=64)
def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def print_problems(console: Console, problems: Iterable[Problem]) -> None:
    """Each problem as ``path:line:col: message``, then the source line with a caret, then the hint."""
    for problem in problems:
        location = problem.location
        console.print(f"[bold]{escape(str(location))}:[/] [red]{escape(problem.message)}[/]")
        lines = _lines(location.path)
        if 0 < location.line <= len(lines):
            source = lines[location.line - 1].replace("\t", " ")
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
