"""``kpi check --explain``: print what the production EXPLAIN guard found (:mod:`pipeline.flows.explain_check`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from pipeline import settings
from pipeline.cli.output import stdout
from pipeline.core.spec import Kpi
from pipeline.flows.explain_check import ExplainRun, explain_kpis


def run_explain(kpis: Sequence[Kpi], env_name: str | None, start: str | None, end: str | None) -> ExplainRun:
    environment = settings.load_environment(env_name)
    return explain_kpis(kpis, environment, start=start, end=end)


def explain_json(run: ExplainRun) -> dict[str, Any]:
    return {
        "max_rows": run.max_rows,
        "reports": [r.to_dict() for r in run.reports],
        "skipped": run.skipped,
        "refused": len(run.refused),
    }


def print_explain(run: ExplainRun) -> None:
    console, max_rows = stdout(), run.max_rows
    table = Table("KPI", "partitions", "table", "access", "est. rows", "verdict", title=None, expand=False)
    for report in run.reports:
        refused = {r.table for r in report.refusals}
        for access in report.accesses:
            verdict = "[red]refused[/]" if access.full_scan and access.rows > max_rows and refused else "ok"
            key = f" ({access.key})" if access.key else ""
            table.add_row(
                report.kpi, report.partition, access.table, f"{access.access_type}{key}", f"{access.rows:,}", verdict
            )
    if run.reports:
        console.print(table)
    for report in run.refused:
        for refusal in report.refusals:
            console.print(f"[red]{escape(report.kpi)}[/]: {escape(refusal.message)}")
            console.print(f"  hint: {escape(refusal.hint)}")
    if run.skipped:
        console.print(f"[dim]not on a MySQL source, not explained: {', '.join(run.skipped)}[/]")
    seconds = sum(r.seconds for r in run.reports)
    if run.refused:
        console.print(
            f"[red]refused:[/] {len(run.refused)} of {len(run.reports)} queries would full-scan a table over the limit "
            f"of {max_rows:,} rows ({seconds:.2f}s of EXPLAIN)"
        )
    else:
        console.print(
            f"[green]ok:[/] {len(run.reports)} EXPLAIN(s), no full scan over {max_rows:,} rows ({seconds:.2f}s)"
        )
