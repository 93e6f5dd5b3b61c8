"""Which partitions a command means: ``--date D``, ``--start S --end E`` (both included), or the latest complete;
and which of them a run may write."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from pipeline.core.intervals import Interval, interval_containing, intervals_between, latest_complete, parse_moment
from pipeline.core.plan import before_start
from pipeline.core.spec import Kpi
from pipeline.errors import UsageError

_INSTANT = timedelta(microseconds=1)  # the smallest step of a datetime: a day's last instant is midnight's less it


def moment(text: str | None) -> datetime | None:
    """A ``--date``/``--start``/``--end`` value (or an event's) as a naive moment; a UsageError saying the forms."""
    if text is None:
        return None
    try:
        return parse_moment(str(text))
    except ValueError as error:
        raise UsageError(str(error)) from None


def end_moment(text: str | None) -> datetime | None:
    """An ``--end`` value (or an event's ``end``) as the last moment it names, so that a range includes the whole
    of its last day or month: ``2024-03-07`` is that day's last instant — on an hourly KPI the range ends with
    ``2024-03-07T23``, not ``T00`` — and ``2024-03`` the month's last (a daily KPI's range then ends on the 31st).
    An hour, or a full time, is the moment it names. A partition's own name still names that partition, whatever
    the grain (a week is named by its first day, and that day lies in it)."""
    start = moment(text)
    if start is None:
        return None
    value = str(text).strip()
    if len(value) == 10:  # a day
        return start + timedelta(days=1) - _INSTANT
    if len(value) == 7:  # a month
        following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        return datetime.combine(following, time()) - _INSTANT
    return start


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
        return [interval_containing(kpi.grain, kpi.zone, date, kpi.first_weekday)]
    if start or end:
        if not (start and end):
            raise UsageError("--start and --end go together", hint="e.g. --start 2024-03-01 --end 2024-03-31")
        if end < start:
            raise UsageError(f"--end {end:%Y-%m-%d %H:%M} is before --start {start:%Y-%m-%d %H:%M}")
        return list(intervals_between(kpi.grain, kpi.zone, start, end, kpi.first_weekday))
    return [latest_complete(kpi.grain, kpi.zone, now, kpi.first_weekday)]


def refuse_unsafe(
    kpi: Kpi,
    intervals: Sequence[Interval],
    *,
    now: datetime,
    allow_incomplete: bool = False,
    allow_before_start: bool = False,
) -> None:
    """Refuse, naming each, the partitions a run must not write unless the operator says so.

    A partition **not over yet** holds partial rows (none at all in the future), yet once loaded it counts as the
    newest data: ``kpi status`` would call the KPI fresh for as long as the future lasts. A partition **before the
    header's ``start``** is one the analyst declared meaningless. ``--allow-incomplete`` / ``--allow-before-start``
    (``allow_*``) let a run write them all the same."""
    unfinished = [] if allow_incomplete else [i for i in intervals if i.end > now]
    early = [] if allow_before_start else [i for i in intervals if before_start(kpi, i)]
    if not unfinished and not early:
        return
    reasons, hints = [], []
    if unfinished:
        first = unfinished[0]
        reasons.append(
            f"{_span(unfinished)} {'is' if len(unfinished) == 1 else 'are'} not over yet (it is "
            f"{now.astimezone(kpi.zone):%Y-%m-%d %H:%M} {kpi.timezone} now; {first.partition} ends "
            f"{first.end:%Y-%m-%d %H:%M}): loaded, a partition with partial or no rows would count as the newest data"
        )
        latest = latest_complete(kpi.grain, kpi.zone, now, kpi.first_weekday).partition
        hints.append(f"the latest complete partition is {latest}; --allow-incomplete loads one that is not over")
    if early:
        reasons.append(
            f"{_span(early)} {'is' if len(early) == 1 else 'are'} before the header's start ({kpi.start}), "
            "the earliest partition the KPI is defined for"
        )
        hints.append("change `start:` in the header if it is wrong, or pass --allow-before-start")
    raise UsageError(
        f"refusing to run {kpi.name}: " + "; ".join(reasons),
        where=kpi.path,
        hint="; ".join(hints),
    )


def _span(intervals: Sequence[Interval]) -> str:
    if len(intervals) == 1:
        return intervals[0].partition
    return f"{len(intervals)} partitions ({intervals[0].partition} … {intervals[-1].partition})"
