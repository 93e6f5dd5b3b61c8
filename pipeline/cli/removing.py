"""``kpi remove``: take loaded partitions (or a whole KPI) out of the warehouse, audited — the undo of a wrong load."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from pipeline import catalog, interrupts, settings
from pipeline.cli.app import cli
from pipeline.cli.arguments import END_HELP, env_option
from pipeline.cli.output import print_json, stderr, stdout
from pipeline.errors import UsageError

if TYPE_CHECKING:
    from pipeline.flows.removal import RemovalPlan

_SHOWN = 50  # partitions listed before the table says how many more


@cli.command()
@click.argument("name")
@click.option("--date", "date_text", help="The partition containing this moment.")
@click.option("--start", "start_text", help="First partition of a range (with --end).")
@click.option("--end", "end_text", help=END_HELP)
@click.option("--all", "everything", is_flag=True, help="Every row of the KPI's table, and each loaded partition.")
@env_option
@click.option("--yes", is_flag=True, help="Do not ask before removing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON (needs --yes).")
@click.pass_obj
def remove(
    queries: Path,
    name: str,
    date_text: str | None,
    start_text: str | None,
    end_text: str | None,
    everything: bool,
    env_name: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Remove loaded partitions of a KPI from the warehouse and record each removal in `_kpi_loads`.

    Shows the partitions and rows it will delete and asks first (unless --yes); deletes them in one transaction.
    Afterwards `kpi status` does not count them, a backfill runs them again, and their next load is accepted
    whatever its run. The lake keeps its files.

    \b
    Examples:
      kpi remove daily_sales --date 2027-05-01          # a partition loaded by a mistyped --date
      kpi remove daily_sales --start 2024-03-01 --end 2024-03-31 --env production
      kpi remove users_by_plan --all --yes              # a snapshot, or a whole KPI
    """
    from pipeline.core.selection import end_moment, moment, requested_intervals
    from pipeline.flows.removal import plan_removal, remove
    from pipeline.warehouses import open_warehouse

    environment = settings.load_environment(env_name)
    kpi = catalog.load_one((queries,), name)
    dated = bool(date_text or start_text or end_text)
    if dated == everything:
        raise UsageError(
            f"which partitions of {kpi.name}? " + ("give dates or --all, not both" if dated else "none given"),
            where=kpi.name,
            hint=f"kpi remove {kpi.name} --date D | --start A --end B | --all",
        )
    if not kpi.incremental and dated:
        raise UsageError(
            f"{kpi.name} is a snapshot (grain: none): it has no partitions", where=kpi.name, hint="use --all"
        )
    if as_json and not yes:
        raise UsageError("--json prints no question: add --yes", hint=f"kpi remove {kpi.name} … --yes --json")
    intervals = None
    if dated:
        now = datetime.now(kpi.zone)
        intervals = requested_intervals(
            kpi, now=now, date=moment(date_text), start=moment(start_text), end=end_moment(end_text)
        )
    warehouse = open_warehouse(environment.warehouse)
    try:
        plan = plan_removal(kpi, warehouse, intervals)
        if not as_json:
            _show(plan, title=f"kpi remove {kpi.name} ({environment.label})")
        if plan.removals and not yes:
            click.confirm(f"Remove {len(plan.removals):,} partition(s), {plan.rows:,} rows, of {kpi.name}?", abort=True)
        try:
            with interrupts.handled():  # a stop cancels the removal's statement or BigQuery job: it rolls back
                removed = remove(plan, warehouse)
        except interrupts.Interrupted as stop:
            stderr().print(
                f"[yellow]{stop}[/]: nothing was removed (the removal's transaction was cancelled and rolled back)",
                highlight=False,
            )
            raise
    finally:
        warehouse.close()
    if as_json:
        print_json(
            {
                "kpi": kpi.name,
                "removed": [{"partition": r.partition, "run_id": r.run_id, "rows": r.rows} for r in removed],
                "rows": sum(r.rows for r in removed),
                "not_loaded": list(plan.not_loaded),
                "whole_table": plan.whole_table,
            }
        )
    elif removed:
        stdout().print(
            f"removed {len(removed):,} partition(s) of {kpi.name}, {plan.rows:,} rows"
            + ("; its table is empty" if plan.whole_table else "")
            + "; recorded in _kpi_loads: `kpi status` no longer counts them and their next load is accepted, "
            "whatever its run",
            highlight=False,
        )


def _show(plan: RemovalPlan, *, title: str) -> None:
    """The partitions the removal deletes (run, rows, when loaded), or why there is nothing to do."""
    console = stdout()
    name = plan.kpi.name
    if plan.removals:
        zone = plan.kpi.zone  # load times in the KPI's zone, as `kpi status` shows them beside its partitions
        table = Table("partition", "run", "rows", f"loaded ({plan.kpi.timezone})", title=title)
        for removal in plan.removals[:_SHOWN]:
            load = removal.load
            loaded = load.loaded_at.astimezone(zone)
            table.add_row(load.partition, load.run_id, f"{load.rows:,}", f"{loaded:%Y-%m-%d %H:%M}")
        console.print(table)
        if len(plan.removals) > _SHOWN:
            console.print(f"… and {len(plan.removals) - _SHOWN:,} more partition(s)", highlight=False)
    if plan.not_loaded:
        more = len(plan.not_loaded) - 5
        shown = ", ".join(plan.not_loaded[:5]) + (f" and {more:,} more" if more > 0 else "")
        console.print(
            f"{'nothing to remove: ' if not plan.removals else ''}{len(plan.not_loaded):,} partition(s) of {name} "
            f"asked for are not loaded ({shown}); `kpi status {name}` shows what is",
            highlight=False,
        )
    elif not plan.removals:
        console.print(f"nothing to remove: no partition of {name} is loaded", highlight=False)
