"""Planning a run: which partitions of a KPI are due or were asked for, which a run may write, and the jobs.

One implementation for every caller that runs "what is due" or "these dates": ``kpi run`` (then the runner
exports and loads each job), ``kpi export`` and the exporter Lambda (:mod:`pipeline.export.request`, one KPI).
Pure: the moment is passed in (``now``), so a test — or an operator reproducing a scheduled run — decides it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pipeline.core.intervals import Interval
from pipeline.core.lake import partition_name
from pipeline.core.plan import batches, due_intervals
from pipeline.core.selection import refuse_unsafe, requested_intervals
from pipeline.core.spec import Kpi

__all__ = ["Asked", "Job", "intervals_to_run", "plan_run"]


@dataclass(frozen=True)
class Asked:
    """What a run was asked for. Dates are naive moments, read in each KPI's zone; without any, what is due —
    the latest complete partition and the header's ``lookback`` before it (``due``), or the latest alone
    (``due=False``: ``kpi export`` without dates). Partitions not over yet, or before the header's ``start``,
    are refused unless allowed."""

    date: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    due: bool = True
    allow_incomplete: bool = False
    allow_before_start: bool = False

    @property
    def dated(self) -> bool:
        return bool(self.date or self.start or self.end)


@dataclass(frozen=True)
class Job:
    """One source query: a KPI and a batch of contiguous partitions (none for a snapshot)."""

    kpi: Kpi
    intervals: tuple[Interval, ...] = ()

    @property
    def partitions(self) -> list[str]:
        return [i.partition for i in self.intervals] or [partition_name(None)]


def intervals_to_run(kpi: Kpi, asked: Asked, now: datetime) -> list[Interval]:
    """The partitions of ``kpi`` a run writes at ``now`` (in order; empty for a snapshot, or when nothing is due
    yet because the header's start is in the future). A :class:`~pipeline.errors.UsageError` names those a run
    must not write unless ``asked`` allows them."""
    if asked.due and not asked.dated:
        return due_intervals(kpi, now)
    chosen = requested_intervals(kpi, now=now, date=asked.date, start=asked.start, end=asked.end)
    refuse_unsafe(
        kpi, chosen, now=now, allow_incomplete=asked.allow_incomplete, allow_before_start=asked.allow_before_start
    )
    return chosen


def plan_run(kpis: Iterable[Kpi], asked: Asked, now: datetime) -> list[Job]:
    """The source queries of a run: per KPI, its partitions in batches (one query each, see
    :func:`~pipeline.core.plan.batches`), or one job for a snapshot; a KPI with nothing due has none."""
    jobs: list[Job] = []
    for kpi in kpis:
        chosen = intervals_to_run(kpi, asked, now.astimezone(kpi.zone))
        if not kpi.incremental:
            jobs.append(Job(kpi))
        elif chosen:
            jobs += [Job(kpi, batch) for batch in batches(chosen)]
    return jobs
