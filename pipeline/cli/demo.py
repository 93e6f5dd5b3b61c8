"""``kpi demo``: the README's first command — the whole flow on the embedded default, and a report to open."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline import interrupts, settings
from pipeline.cli.app import cli
from pipeline.cli.arguments import clock, env_option, now_option
from pipeline.cli.output import stdout
from pipeline.cli.running import chosen_kpis, report, run_with_progress


@cli.command()
@env_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@now_option
@click.pass_obj
def demo(queries: Path, env_name: str | None, as_json: bool, now_text: str | None) -> None:
    """Generate the demo shop, export and load every example KPI over the last 60 days, write a report.

    Everything stays under .kpi/ (git-ignored): the shop (a DuckDB file, 90 days of users and orders), the
    lake folder, the DuckDB warehouse and report.html. Run again, it loads only what is missing.

    \b
    Example:
      kpi demo && open .kpi/report.html
    """
    from pipeline.demo.flow import DAYS, run_demo
    from pipeline.flows.run import Job
    from pipeline.flows.runner import Outcome, Runner, summarize
    from pipeline.schemas import read_snapshots, schemas_folder

    environment = settings.load_environment(env_name)
    planned = 0

    def run(runner: Runner, jobs: list[Job]) -> list[Outcome]:
        nonlocal planned
        planned = sum(len(job.partitions) for job in jobs)
        return run_with_progress(runner, jobs, quiet=as_json)

    with interrupts.handled():  # a signal stops the demo cleanly: see pipeline.interrupts
        result = run_demo(
            chosen_kpis(queries, ()),
            environment,
            run=run,
            now=clock(now_text) if now_text else None,
            schemas=read_snapshots(schemas_folder(queries)),
        )
    if not as_json:
        console = stdout()
        shop = "generated" if result.generated else "up to date"
        console.print(f"demo shop {environment.source('default').url}: {shop}; last {DAYS} days exported and loaded")
    try:
        report(summarize(result.outcomes), title=f"kpi demo ({environment.label})", as_json=as_json, planned=planned)
    finally:
        if not as_json:
            stdout().print(f"report: [bold]{result.report}[/] (open it in a browser; it needs no server)")
