"""``kpi demo``: the whole pipeline on the embedded default, from nothing to a report, in one command.

Generates the demo shop (a DuckDB file, regenerated only when its day has passed), exports and loads every
enabled example KPI over the last :data:`DAYS` days through the same runner as ``kpi backfill`` — partitions
already loaded from the same SQL are skipped, so a second ``make demo`` is quick — and writes a static HTML
report of what the warehouse holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.core.chart import Mark
from pipeline.core.intervals import intervals_between
from pipeline.core.plan import plan_backfill
from pipeline.core.schema import SourceSchema
from pipeline.core.spec import Kpi
from pipeline.demo.generate import demo_is_current, generate_demo_source
from pipeline.demo.report_data import build_report
from pipeline.errors import UsageError
from pipeline.flows.anomalies import stored_anomalies
from pipeline.flows.run import Job
from pipeline.flows.runner import Outcome, Runner
from pipeline.settings import Environment, redact
from pipeline.sources.duckdb import duckdb_path
from pipeline.warehouses import Warehouse
from pipeline.warehouses.duckdb import warehouse_path

DAYS = 60  # of the demo shop's 90, loaded into the warehouse
DEMO_ZONE = ZoneInfo("Asia/Tokyo")  # the demo shop's clock: its DATETIMEs are JST wall-clock times
REPORT_NAME = "report.html"


SHOP_CLOCK_NOTE = (
    "Freshness is judged at {clock} (Asia/Tokyo), the demo shop's clock: its generated orders end there, at the "
    "end of yesterday, so data up to then is as fresh as the shop can be."
)


def shop_clock(today: date) -> datetime:
    """The moment the demo shop's data ends (its orders stop at the end of yesterday, JST): the report's clock.

    Freshness is judged against it, not against the wall clock: with the wall clock an hourly KPI would be
    hours "old" right after ``kpi demo`` only because the shop sells nothing today.
    """
    return datetime.combine(today, time(), DEMO_ZONE)


@dataclass(frozen=True)
class DemoResult:
    outcomes: list[Outcome]
    report: Path
    generated: bool  # False: the demo shop of today existed already


def demo_jobs(kpis: Sequence[Kpi], runner: Runner, today: date, now: datetime) -> list[Job]:
    """Every KPI's partitions over the last DAYS days before ``today`` that are not loaded yet from the same SQL,
    as planned at ``now``."""
    jobs = []
    first = datetime.combine(today - timedelta(days=DAYS), time())
    last = datetime.combine(today - timedelta(days=1), time(23))
    for kpi in kpis:
        if not kpi.incremental:
            jobs.append(Job(kpi))
            continue
        requested = list(intervals_between(kpi.grain, kpi.zone, first, last, kpi.first_weekday))
        loaded = {p: r.sql_hash for p, r in runner.warehouse.loads(kpi.name).items()}
        plan = plan_backfill(kpi, requested, loaded, now=now.astimezone(kpi.zone))  # the current month is left out
        jobs += [Job(kpi, batch) for batch in plan.batches]
    runner.warehouse.close()
    return jobs


def anomaly_marks(warehouse: Warehouse, kpis: Sequence[Kpi], today: date) -> dict[str, list[tuple[str, Mark]]]:
    """The anomalies stored for the demo's days, as marks on the report's charts: at the partition, on the line of
    the dimension value (or the measure's own line), labelled, with the expected range."""
    first, last = (today - timedelta(days=DAYS)).isoformat(), f"{today.isoformat()}T99"
    marks: dict[str, list[tuple[str, Mark]]] = {}
    for kpi in kpis:
        for anomaly in stored_anomalies(warehouse, kpi, first, last):
            series = anomaly.dimension.split("=", 1)[1] if anomaly.dimension else anomaly.measure
            mark = Mark(anomaly.partition, series, anomaly.label, (anomaly.low, anomaly.high))
            marks.setdefault(kpi.name, []).append((anomaly.measure, mark))
    return marks


def run_demo(
    kpis: Sequence[Kpi],
    environment: Environment,
    *,
    run: Callable[[Runner, list[Job]], list[Outcome]],
    today: date | None = None,
    now: datetime | None = None,
    schemas: Mapping[str, SourceSchema] | None = None,
) -> DemoResult:
    """``run`` executes the jobs (the CLI passes its progress bar); ``schemas``, the sources' snapshots, resolve
    the report's lineage. ``now`` (default: the wall clock) is the moment the demo runs at — its shop's day is
    ``now``'s in Japan unless ``today`` says otherwise: ``kpi demo --now`` replays a day's demo, data and all."""
    source = environment.source("default").url
    if not source.startswith("duckdb://"):
        raise UsageError(
            f"the demo writes its own DuckDB shop, but the '{environment.name}' environment's source is "
            f"{redact(source)}",
            hint="run `kpi demo` without KPI_SOURCE, or with --env pointing at an embedded environment",
        )
    now = now or datetime.now(UTC)
    today = today or now.astimezone(DEMO_ZONE).date()
    shop = duckdb_path(source)
    generated = not demo_is_current(shop, today=today)
    if generated:
        generate_demo_source(shop, today=today)
    runner = Runner(environment)
    outcomes = run(runner, demo_jobs(kpis, runner, today, now))
    marks = anomaly_marks(runner.warehouse, kpis, today)
    runner.warehouse.close()
    report = warehouse_path(environment.warehouse).parent / REPORT_NAME
    html = build_report(
        kpis,
        warehouse_path(environment.warehouse),
        now=shop_clock(today),
        generated_at=datetime.now(UTC),
        note=SHOP_CLOCK_NOTE.format(clock=shop_clock(today).strftime("%Y-%m-%d %H:%M %Z")),
        marks=marks,
        schemas=schemas,
    )
    report.write_text(html, encoding="utf-8")
    return DemoResult(outcomes, report, generated)
