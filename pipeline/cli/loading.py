"""``kpi load``: a committed partition into the warehouse, exactly once."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from pipeline import settings
from pipeline.cli.app import cli
from pipeline.cli.arguments import env_option
from pipeline.cli.output import print_json, stdout


@cli.command()
@click.argument("target")
@click.option("--date", "date_text", help="With a KPI name: the partition containing this moment.")
@env_option
@click.option("--lake", help="With a KPI name: the lake instead of the environment's (env: KPI_LAKE).")
@click.option("--warehouse", help="Warehouse URL instead of the environment's (env: KPI_WAREHOUSE).")
@click.option("--force", is_flag=True, help="Load again even when this run is already loaded.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def load(
    queries: Path,
    target: str,
    date_text: str | None,
    env_name: str | None,
    lake: str | None,
    warehouse: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Load a committed partition into the warehouse: TARGET is a manifest URL or a KPI name.

    \b
    Examples:
      kpi load daily_sales --date 2024-03-01
      kpi load s3://lake/v1/daily_sales/sales_date=2024-03-01/run=20240302T060001123Z-1a2b3c/_manifest.json
    """
    from pipeline.load.request import run_load  # pyarrow and DuckDB only for this command

    manifest, result = run_load(
        target,
        date=date_text,
        queries=queries,
        environment=settings.load_environment(env_name).overridden(lake=lake, warehouse=warehouse),
        force=force,
    )
    if as_json:
        print_json(
            {
                "kpi": manifest.kpi,
                "partition": manifest.partition,
                "run_id": manifest.run_id,
                "loaded": result.loaded,
                "reason": result.reason,
                "rows": manifest.rows,
                "added_columns": list(result.added_columns),
                "job_id": result.record.job_id if result.record else None,
                "anomalies": [anomaly.to_json() for anomaly in result.anomalies],
                "scoring_error": result.scoring_error or None,
            }
        )
        return
    console = stdout()
    mark = "[green]loaded[/]" if result.loaded else "[yellow]skipped[/]"
    console.print(f"{mark} {manifest.kpi} {manifest.partition} (run {manifest.run_id}): {result.reason}")
    for name in result.added_columns:
        console.print(f"[yellow]note:[/] new column '{name}' added to {manifest.kpi}")
    for anomaly in result.anomalies:
        console.print(f"[red]anomaly:[/] {escape(anomaly.finding)}", highlight=False)
    if result.scoring_error:
        console.print(f"[yellow]warning:[/] {result.scoring_error}; the partition is loaded", highlight=False)


@cli.command()
@click.argument("name")
@env_option
@click.option("--warehouse", help="bigquery://PROJECT/DATASET instead of the environment's (env: KPI_WAREHOUSE).")
@click.pass_obj
def dashboard(queries: Path, name: str, env_name: str | None, warehouse: str | None) -> None:
    """Print a Looker Studio link that opens a new report on the KPI's BigQuery table.

    \b
    Example:
      KPI_WAREHOUSE=bigquery://acme-analytics/kpi kpi dashboard daily_sales
    """
    from pipeline import catalog
    from pipeline.flows.dashboard import report_url

    environment = settings.load_environment(env_name).overridden(warehouse=warehouse)
    click.echo(report_url(catalog.load_one((queries,), name), environment.warehouse))
