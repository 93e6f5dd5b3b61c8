"""Which partitions a run or a backfill covers, and how they are grouped into source queries.

A backfill of an incremental KPI must not scan the OLTP source once per day: partitions are grouped into batches
of contiguous partitions, cut at calendar boundaries (a month of days, a day of hours, a quarter of weeks — by the
quarter of each week's first day —, a year of months), and
each batch is one query whose rows the exporter splits into per-partition files. 365 days are 12 or 13 queries.

Resuming is decided here too: a partition already loaded from the same SQL (its ``sql_hash`` in the audit
table) is skipped unless forced, so a backfill killed half-way and run again does only what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from pipeline.core.intervals import Grain, Interval, interval_containing, latest_complete, preceding
from pipeline.core.spec import Kpi

Batch = tuple[Interval, ...]


def due_intervals(kpi: Kpi, now: datetime) -> list[Interval]:
    """What a scheduled run of ``kpi`` refreshes at ``now``: the latest complete partition and the ``lookback``
    ones before it (late rows land in partitions already loaded), never before the header's ``start``."""
    if not kpi.incremental:
        return []
    latest = latest_complete(kpi.grain, kpi.zone, now, kpi.first_weekday)
    due = [latest]
    for _ in range(kpi.lookback):
        due.insert(0, preceding(due[0], kpi.zone))
    return [interval for interval in due if not before_start(kpi, interval)]


def before_start(kpi: Kpi, interval: Interval) -> bool:
    """Whether the partition ends before the first one the header's ``start`` allows."""
    if kpi.start is None:
        return False
    first = kpi.start if isinstance(kpi.start, datetime) else datetime.combine(kpi.start, time())
    return interval < interval_containing(kpi.grain, kpi.zone, first, kpi.first_weekday)


def batch_key(interval: Interval) -> date | int | tuple[int, int]:
    """The calendar unit a batch may not cross: the month of a day, the day of an hour, the quarter of a week's
    first day, the year of a month."""
    if interval.grain is Grain.DAY:
        return interval.start.date().replace(day=1)
    if interval.grain is Grain.HOUR:
        return interval.start.date()
    if interval.grain is Grain.WEEK:
        return interval.start.year, (interval.start.month - 1) // 3
    return interval.start.year


def batches(intervals: Sequence[Interval]) -> list[Batch]:
    """Contiguous runs of ``intervals`` (in order), each within one calendar unit of :func:`batch_key`."""
    grouped: list[list[Interval]] = []
    for interval in intervals:
        last = grouped[-1][-1] if grouped else None
        if last is not None and last.end == interval.start and batch_key(last) == batch_key(interval):
            grouped[-1].append(interval)
        else:
            grouped.append([interval])
    return [tuple(group) for group in grouped]


@dataclass(frozen=True)
class BackfillPlan:
    kpi: str
    batches: tuple[Batch, ...]  # what to export and load, one source query each
    done: tuple[str, ...]  # partitions already loaded from the same SQL: skipped
    before_start: tuple[str, ...]  # partitions before the header's `start`: never run
    incomplete: tuple[str, ...] = ()  # partitions not over yet: left for `kpi run` (a backfill would mark them done)

    @property
    def partitions(self) -> int:
        return sum(len(batch) for batch in self.batches)


def plan_backfill(
    kpi: Kpi, requested: Sequence[Interval], loaded: Mapping[str, str], *, now: datetime, force: bool = False
) -> BackfillPlan:
    """``loaded`` maps each partition already in the warehouse to the ``sql_hash`` it was loaded from. Partitions
    that have not ended at ``now`` are left out: loaded half-full, they would count as done on the next resume."""
    early = [i for i in requested if before_start(kpi, i)]
    open_ = [i for i in requested if i.end > now]
    wanted = [i for i in requested if not before_start(kpi, i) and i.end <= now]
    done = [] if force else [i for i in wanted if loaded.get(i.partition) == kpi.sql_hash]
    todo = [i for i in wanted if i not in done]
    return BackfillPlan(
        kpi.name,
        tuple(batches(todo)),
        tuple(i.partition for i in done),
        tuple(i.partition for i in early),
        tuple(i.partition for i in open_),
    )
