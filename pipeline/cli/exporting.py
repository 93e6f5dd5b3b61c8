"""``kpi export``: one KPI's partitions from the source into the lake, committed by manifests."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from pipeline import interrupts, settings
from pipeline.cli.app import cli
from pipeline.cli.arguments import END_HELP, allow_options, env_option, param_pairs
from pipeline.cli.output import print_json, stderr, stdout


@cli.command()
@click.argument("name")
@click.option("--date", "date_text", help="The partition containing this moment (default: the latest complete).")
@click.option("--start", "start_text", help="First partition of a range (one query for the whole range).")
@click.option("--end", "end_text", help=END_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Value of a declared parameter.")
@click.option("--run-id", help="Reuse a run id: a retry returns the committed run instead of writing again.")
@allow_options
@env_option
@click.option("--source", help="Source URL instead of the environment's (env: KPI_SOURCE).")
@click.option("--lake", help="Lake URL or folder instead of the environment's (env: KPI_LAKE).")
@click.option("--json", "as_json", is_flag=True, help="Print the committed partitions as JSON.")
@click.pass_obj
def export(
    queries: Path,
    name: str,
    date_text: str | None,
    start_text: str | None,
    end_text: str | None,
    params: tuple[str, ...],
    run_id: str | None,
    allow_incomplete: bool,
    allow_before_start: bool,
    env_name: str | None,
    source: str | None,
    lake: str | None,
    as_json: bool,
) -> None:
    """Export a KPI from its source into the lake: files first, the manifest last.

    \b
    Examples:
      kpi export daily_sales --date 2024-03-01
      kpi export daily_sales --start 2024-03-01 --end 2024-03-31
      KPI_SOURCE=mysql://kpi@db:3306/shop KPI_LAKE=s3://lake/kpi kpi export users_by_plan
    """
    from pipeline.core.lake import MANIFEST_NAME  # the exporter's imports (pyarrow…) only for this command
    from pipeline.core.selection import end_moment, moment
    from pipeline.export.request import ExportRequest, run_export

    request = ExportRequest(
        name,
        moment(date_text),
        moment(start_text),
        end_moment(end_text),
        run_id,
        param_pairs(params),
        allow_incomplete=allow_incomplete,
        allow_before_start=allow_before_start,
    )
    environment = settings.load_environment(env_name).overridden(source=source, lake=lake)
    try:
        with interrupts.handled():
            manifests = run_export(request, queries=queries, environment=environment)
    except interrupts.Interrupted as stop:
        stderr().print(
            f"[yellow]{stop}[/]: nothing was committed; the query was cancelled and the run's files removed",
            highlight=False,
        )
        raise
    if as_json:
        print_json([m.summary() for m in manifests])
        return
    table = Table("partition", "rows", "bytes", "files", "seconds", "run", title=f"{name} → {environment.lake}")
    for m in manifests:
        table.add_row(m.partition, f"{m.rows:,}", f"{m.bytes:,}", str(len(m.files)), f"{m.seconds:.2f}", m.run_id)
    console = stdout()
    console.print(table)
    for m in manifests:
        for what, count in m.replaced.items():
            console.print(f"[yellow]note:[/] {m.partition}: {what}: {count:,} value(s) loaded as NULL")
    console.print(f"[green]committed[/] {len(manifests)} partition(s); each run folder ends with {MANIFEST_NAME}")
