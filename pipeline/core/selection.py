"""Which partitions a command means: ``--date D``, ``--start S --end E`` (both included), or the latest complete."""

from __future__ import annotations

from datetime import datetime

from pipeline.core.intervals import Interval, interval_containing, intervals_between, latest_complete, parse_moment
from pipeline.core.spec import Kpi
from pipeline.errors import UsageError


def moment(text: str | None) -> datetime | None:
    """A ``--date``/``--start``/``--end`` value (or an event's) as a naive moment; a UsageError saying the forms."""
    if text is None:
        return None
    try:
        return parse_moment(str(text))
    except ValueError as error:
        raise UsageError(str(error)) from None


def requested_intervals(
    kpi: Kpi,
    *,
    now: datetime,
    date: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Interval]:
    """The partitions asked for, in order; empty for a snapshot KPI. Naive moments are read in the KPI's zone."""
    if not kpi.incremental:
        if date or start or end:
            raise UsageError(f"{kpi.name} is a snapshot (grain: none): it has no partitions", hint="drop the dates")
        return []
    if date and (start or end):
        raise UsageError("give either --date or --start/--end, not both")
    if date:
        return [interval_containing(kpi.grain, kpi.zone, date)]
    if start or end:
        if not (start and end):
            raise UsageError("--start and --end go together", hint="e.g. --start 2024-03-01 --end 2024-03-31")
        if end < start:
            raise UsageError(f"--end {end:%Y-%m-%d %H:%M} is before --start {start:%Y-%m-%d %H:%M}")
        return list(intervals_between(kpi.grain, kpi.zone, start, end))
    return [latest_complete(kpi.grain, kpi.zone, now)]
