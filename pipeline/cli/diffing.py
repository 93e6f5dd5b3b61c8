"""``kpi diff``: the base and head versions of a KPI's SQL over its last partitions (:mod:`pipeline.flows.diff`)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from pipeline import catalog, settings
from pipeline.cli.app import EXIT_CHANGED, Failed, cli
from pipeline.cli.arguments import clock, env_option, now_option
from pipeline.cli.output import print_json, stdout
from pipeline.core.valuediff import NO_CHANGE, ValueDiff, delta_text, markdown
from pipeline.flows.diff import diff_kpi


@cli.command()
@click.argument("name")
@click.option("--base", "base_ref", default="HEAD", show_default=True, help="Git ref of the version to compare with.")
@click.option("--partitions", default=7, show_default=True, help="How many of the newest complete partitions.")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print one pull-request comment (GitHub Markdown).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@env_option
@now_option
@click.pass_obj
def diff(
    queries: Path,
    name: str,
    base_ref: str,
    partitions: int,
    as_markdown: bool,
    as_json: bool,
    env_name: str | None,
    now_text: str | None,
) -> None:
    """Run the KPI's SQL at --base and as it is now over its last partitions (one read-only query each) and show
    per partition the change in rows and in each measure's sum, and the columns added, removed or retyped.

    Exits 0 when nothing changed, 3 when values or columns did.

    \b
    Examples:
      kpi diff daily_sales --base origin/main --partitions 14
      kpi diff daily_sales --base origin/main --markdown > diff.md
    """
    head = catalog.load_one((queries,), name)
    environment = settings.load_environment(env_name)
    found, _ = diff_kpi(head, base_ref, environment, partitions=partitions, now=clock(now_text))
    if found is None:
        message = f"{name} is new: {head.path} does not exist at {base_ref}, nothing to compare"
        if as_json:
            print_json({"kpi": name, "base": base_ref, "new": True})
        else:
            click.echo(f"### `kpi diff {name}`\n\n{message}.\n" if as_markdown else message)
        return
    if as_json:
        print_json(found.to_dict())
    elif as_markdown:
        click.echo(markdown(found), nl=False)
    else:
        _print(found)
    if found.changed:
        raise Failed("values changed", code=EXIT_CHANGED)


def _print(found: ValueDiff) -> None:
    console = stdout()
    if not found.changed:
        console.print(
            f"{found.kpi} against {found.base_ref}: {NO_CHANGE} over the last {len(found.partitions)} partitions"
        )
        return
    for change in found.columns:
        console.print(f"columns: {escape(str(change))}")
    table = Table("partition", "rows", *found.measures, "rows changed", title=None, expand=False)
    for delta in found.partitions:
        if not delta.changed:
            continue
        cells = [delta_text(*delta.measures[m]) if m in delta.measures else "=" for m in found.measures]
        table.add_row(delta.partition, delta_text(*delta.rows), *cells, str(delta.rows_changed))
    changed = sum(1 for p in found.partitions if p.changed)
    console.print(f"{found.kpi} against {found.base_ref}: {changed} of {len(found.partitions)} partitions changed")
    console.print(table)
