"""``kpi preview``: a KPI's first rows and each column's types, run like the exporter runs it, writing nothing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline import settings
from pipeline.cli.app import Failed, cli
from pipeline.cli.arguments import env_option, param_pairs
from pipeline.cli.output import print_json, stdout

if TYPE_CHECKING:
    from pipeline.flows.preview import Preview


@cli.command()
@click.argument("name")
@click.option("--date", "date_text", help="The partition containing this moment (default: the latest complete).")
@click.option("--limit", type=click.IntRange(0, 10_000), default=20, show_default=True, help="Rows to fetch, at most.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Value of a declared parameter.")
@env_option
@click.option("--source", help="Source URL instead of the environment's (env: KPI_SOURCE).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows, the column types and the findings as JSON.")
@click.pass_context
def preview(
    ctx: click.Context,
    name: str,
    date_text: str | None,
    limit: int,
    params: tuple[str, ...],
    env_name: str | None,
    source: str | None,
    as_json: bool,
) -> None:
    """Run a KPI for one partition and show its first rows and how each column lands in the warehouse.

    The query runs as the exporter runs it (read-only transaction, the KPI's timeout) and stops after --limit
    rows; nothing is written to the lake or the warehouse. Exit 1 when the export or the load would stop.

    \b
    Examples:
      kpi preview daily_sales --date 2024-03-01
      kpi preview users_by_plan --limit 5 --env production
      kpi preview daily_sales --json | jq '.columns'
    """
    from pipeline.core.selection import moment
    from pipeline.flows.preview import run_preview  # the exporter's imports (pyarrow…) only for this command

    queries: Path = ctx.obj
    environment = settings.load_environment(env_name).overridden(source=source)
    result = run_preview(
        name, queries=queries, environment=environment, date=moment(date_text), limit=limit, params=param_pairs(params)
    )
    if as_json:
        print_json(result.to_dict())
    else:
        _show(result)
    if not result.ok:
        raise Failed("preview failed")


def _show(result: Preview) -> None:
    from pipeline.flows.preview import Severity, rows_for_display

    console = _console()
    where = f"partition {result.partition} ({result.timezone})" if result.partition != "snapshot" else "snapshot"
    count = f"first {result.rows.num_rows} rows (more exist)" if result.more else f"{result.rows.num_rows} row(s)"
    console.print(
        f"[bold]{result.kpi}[/], {where}, from {result.source}: {count} in {result.seconds:.2f} s "
        "[dim]— a preview: nothing was written[/]"
    )
    rows = Table(*result.rows.column_names)
    for values in rows_for_display(result.rows):
        rows.add_row(*(Text("NULL", style="dim") if v is None else Text(v) for v in values))
    console.print(rows)

    source = "MySQL" if result.dialect == "mysql" else "DuckDB"
    console.print(Text(f"how each column lands in {result.warehouse or 'the warehouse'}:"))
    types = Table(
        "column", f"{source} result", "Arrow (lake)", f"{result.warehouse_kind or 'warehouse'} table", "declared", ""
    )
    for column in result.columns:
        mark = Text(column.mark, style="red" if column.mark == "✗" else "yellow")
        cells = (column.name, column.source_type, column.arrow_type, column.warehouse_type, column.declared)
        types.add_row(*(Text(c or "—") for c in cells), mark)
    console.print(types)

    for finding in result.findings:
        stop = finding.severity is Severity.STOP
        console.print(
            f"{'[red]✗[/]' if stop else '[yellow]![/]'} [bold]{finding.column}[/]: ", Text(finding.message), sep=""
        )
        if finding.fix:
            console.print("  [cyan]fix:[/] " if stop else "  ", Text(finding.fix, style="" if stop else "dim"), sep="")
    for note in result.notes:
        console.print(Text(f"note: {note}", style="dim"))
    stops = sum(f.severity is Severity.STOP for f in result.findings)
    if stops:
        console.print(f"[red]the export or the load would stop[/] ({stops} problem(s) above)")


def _console() -> Console:
    """Tables at their natural width when piped (a file or a CI log is not 80 columns wide); fitted on a terminal."""
    console = stdout()
    if not console.is_terminal:
        console.width = 10_000
    return console
