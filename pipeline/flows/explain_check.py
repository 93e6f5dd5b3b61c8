"""``kpi check --explain``: the production EXPLAIN guard over every KPI on its environment's MySQL sources, for the
bound values the scheduler would send (the due partitions, as one batch) or a backfill would (each batch of a
range) — EXPLAIN only, no row of data read. KPIs on other sources (the embedded DuckDB demo) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pipeline.core.intervals import Interval
from pipeline.core.plan import batches, due_intervals
from pipeline.core.render import bind_values
from pipeline.core.selection import end_moment, moment, requested_intervals
from pipeline.core.spec import Kpi
from pipeline.settings import Environment
from pipeline.sources import open_source
from pipeline.sources.explain import ExplainGuard, ExplainReport, span


@dataclass(frozen=True)
class ExplainRun:
    reports: list[ExplainReport]
    skipped: list[str]  # KPIs whose source is not MySQL
    max_rows: int

    @property
    def refused(self) -> list[ExplainReport]:
        return [report for report in self.reports if report.refusals]


def explain_kpis(
    kpis: Sequence[Kpi],
    environment: Environment,
    *,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
) -> ExplainRun:
    """One report per source query: per KPI, the scheduled run's partitions (or each backfill batch of
    ``start``…``end``), or the snapshot."""
    reports: list[ExplainReport] = []
    skipped: list[str] = []
    guard = ExplainGuard(environment.explain_max_rows)
    for kpi in kpis:
        source = open_source(environment.source(kpi.source, kpi=kpi.name).url)
        if getattr(source, "dialect", "") != "mysql":
            skipped.append(kpi.name)
            continue
        for group in _query_groups(kpi, start, end, now or datetime.now(kpi.zone)):
            whole = Interval(group[0].start, group[-1].end, kpi.grain) if group else None
            rendered = source.render(kpi.query, bind_values(kpi, whole))
            reports.append(guard.report(kpi, source, rendered, span(list(group) or [None])))
    return ExplainRun(reports, skipped, guard.max_rows)


def _query_groups(kpi: Kpi, start: str | None, end: str | None, now: datetime) -> list[tuple[Interval, ...]]:
    if not kpi.incremental:
        return [()]
    if start or end:
        if not (start and end):
            from pipeline.errors import UsageError

            raise UsageError("--start and --end go together", hint="e.g. --start 2024-01-01 --end 2024-12-31")
        wanted = requested_intervals(kpi, now=now, start=moment(start), end=end_moment(end))
        return batches(wanted)
    return batches(due_intervals(kpi, now)) or batches(requested_intervals(kpi, now=now))
