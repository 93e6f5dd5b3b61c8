"""``kpi anomalies``: score a KPI's loaded partitions over a range on demand, store the scores, list the anomalies."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from pipeline import settings
from pipeline.cli.app import cli
from pipeline.cli.arguments import clock, env_option, now_option
from pipeline.cli.output import print_json, stdout
from pipeline.errors import UsageError


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option} '{text}' is not a date", hint=f"write it as 2026-05-01: {option} 2026-05-01"
        ) from None


@cli.command()
@click.argument("name")
@click.option("--from", "first_text", metavar="DAY", help="First day scored (default: 30 days before --to).")
@click.option("--to", "last_text", metavar="DAY", help="Last day scored (default: the newest loaded partition's).")
@env_option
@click.option("--warehouse", help="Warehouse URL instead of the environment's (env: KPI_WAREHOUSE).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@now_option
@click.pass_obj
def anomalies(
    queries: Path,
    name: str,
    first_text: str | None,
    last_text: str | None,
    env_name: str | None,
    warehouse: str | None,
    as_json: bool,
    now_text: str | None,
) -> None:
    """Score the KPI's loaded partitions from --from to --to against their history and list the anomalies.

    The scores are stored in the warehouse's _kpi_anomalies (newest wins), as a load stores them.

    \b
    Examples:
      kpi anomalies daily_sales
      kpi anomalies daily_sales --from 2026-04-25 --to 2026-05-10 --json
    """
    from pipeline import catalog
    from pipeline.flows.anomalies import score_range
    from pipeline.warehouses import open_warehouse

    kpi = catalog.load_one((queries,), name)
    first, last = _day(first_text, "--from"), _day(last_text, "--to")
    environment = settings.load_environment(env_name).overridden(warehouse=warehouse)
    store = open_warehouse(environment.warehouse)
    try:
        found = score_range(store, kpi, first, last, now=clock(now_text))
    finally:
        store.close()
    if as_json:
        print_json(
            {
                "kpi": found.kpi,
                "from": found.first,
                "to": found.last,
                "partitions_scored": len({s.partition for s in found.scores}),
                "partitions_loaded": len(found.partitions),
                "anomalies": [a.to_json() for a in found.anomalies],
            }
        )
        return
    console = stdout()
    scored = len({s.partition for s in found.scores})
    console.print(
        f"{found.kpi}: {scored} of {len(found.partitions)} loaded partition(s) from {found.first} to {found.last} "
        f"scored ({kpi.timezone}), {len(found.anomalies)} anomal{'y' if len(found.anomalies) == 1 else 'ies'}",
        highlight=False,
    )
    if len(found.partitions) > scored:
        console.print(
            f"[yellow]note:[/] {len(found.partitions) - scored} partition(s) have too little history before them "
            "to be scored (anomaly.min_history)",
            highlight=False,
        )
    for anomaly in found.anomalies:
        what = anomaly.measure + (f" [{anomaly.dimension}]" if anomaly.dimension else "")
        console.print(
            f"  {anomaly.partition}  {what}  {anomaly.actual:,.0f}, expected {anomaly.low:,.0f} to "
            f"{anomaly.high:,.0f}: {anomaly.label}",
            markup=False,
            highlight=False,
        )
