"""``kpi schema pull``, ``kpi lineage`` and ``kpi impact``: what the sources hold and which KPIs read what."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from pipeline import catalog, settings
from pipeline.cli.app import cli
from pipeline.cli.arguments import env_option
from pipeline.cli.output import print_json, stderr, stdout


@cli.group()
def schema() -> None:
    """Schema snapshots of the sources (schemas/<source>.json), for `kpi check` without a database.

    \b
    Examples:
      kpi schema pull                      # the local environment's sources
      kpi schema pull --env production     # commit the result: CI checks KPIs against it
    """


@schema.command(name="pull")
@env_option
@click.option("--source", "sources", multiple=True, metavar="NAME", help="Only this source (repeatable).")
@click.pass_obj
def pull_command(queries: Path, env_name: str | None, sources: tuple[str, ...]) -> None:
    """Read each source's information_schema and write schemas/<source>.json (no row of data is read)."""
    from pipeline.schemas import pull, schemas_folder, write

    environment = settings.load_environment(env_name)
    console = stdout()
    for pulled in pull(environment, sources):
        path = write(schemas_folder(queries), pulled)
        columns = sum(len(t.columns) for t in pulled.tables.values())
        console.print(
            f"[green]wrote[/] {escape(catalog.display_path(path))}: {len(pulled.tables)} tables, {columns} columns "
            f"from {escape(pulled.pulled_from)}"
        )


@cli.command(name="lineage")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
@click.pass_obj
def lineage_command(queries: Path, name: str, as_json: bool) -> None:
    """For each result column of a KPI, the source table.columns it is computed from.

    \b
    Examples:
      kpi lineage large_orders
      kpi lineage daily_sales --json
    """
    from pipeline.core.lineage import kpi_lineage
    from pipeline.schemas import read_snapshots, schemas_folder

    kpi = catalog.load_one((queries,), name)
    found = kpi_lineage(kpi, read_snapshots(schemas_folder(queries)).get(kpi.source))
    if as_json:
        print_json({"kpi": kpi.name, "source": kpi.source, **found.to_dict()})
        return
    console = stdout()
    width = max(len(column) for column in found.columns) if found.columns else 0
    for column, sources in found.columns.items():
        shown = ", ".join(sources) if sources else "(no column: counted or constant)"
        console.print(f"{escape(column):<{width}}  ← {escape(shown)}")
    console.print(f"[dim]reads: {escape(', '.join(found.reads))}[/]")


@cli.command(name="impact")
@click.argument("target", metavar="TABLE[.COLUMN]")
@click.option("--json", "as_json", is_flag=True, help="Print the KPIs as JSON.")
@click.pass_obj
def impact_command(queries: Path, target: str, as_json: bool) -> None:
    """Every KPI that reads a table or a column (in its SELECT list, WHERE, JOIN or GROUP BY).

    For the application team's migration pull requests: which KPIs a rename or a drop breaks.

    \b
    Examples:
      kpi impact orders.amount
      kpi impact users --json
    """
    from pipeline.core.lineage import impacted, kpi_lineage, unknown_target
    from pipeline.schemas import read_snapshots, schemas_folder

    found = catalog.load((queries,))
    snapshots = read_snapshots(schemas_folder(queries))
    hits = impacted((kpi_lineage(k, snapshots.get(k.source)) for k in found.kpis.values()), target)
    unknown = unknown_target(target, snapshots.values())
    if as_json:
        print_json({"target": target, "kpis": [{"name": n, "reads": r} for n, r in hits.items()], "unknown": unknown})
    else:
        console = stdout()
        if unknown:
            stderr().print(f"[yellow]note:[/] {escape(unknown)}")
        for kpi, reads in hits.items():
            console.print(f"{escape(kpi)}  {escape(found.kpis[kpi].path)}  reads {escape(', '.join(reads))}")
        one = len(hits) == 1
        console.print(f"{len(hits)} KPI{'' if one else 's'} read{'s' if one else ''} {escape(target)}")
