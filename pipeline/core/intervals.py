"""Partitions in business time: which interval a KPI run covers, and how that interval is named.

Boundaries are computed in the KPI's ``timezone`` (a JST day is [00:00, 24:00) Tokyo time, not a UTC day —
the complaint of SQLMesh#3972), then expressed as naive wall-clock times in ``source_timezone`` because that
is what the source's DATETIME columns mean. DST is handled by ``zoneinfo``: a day in a DST zone can be 23 or
25 hours long, and an hour that does not exist locally is never produced.

Hours are cut on UTC hour boundaries, so the hour a DST fall-back repeats is two partitions. They are named
apart: the first keeps the wall-clock name (``2024-11-03T01``), the repeat has ``_2`` (``2024-11-03T01_2``), which
:func:`parse_moment` reads back as the second occurrence (``fold=1``). Their :attr:`Interval.decorator` is the
wall-clock one, the same for both: only a TIMESTAMP column, which BigQuery partitions by UTC hour, can hold the two
apart (its decorator is computed in UTC), and ``kpi check`` refuses hourly KPIs whose DATETIME clock repeats an hour.

Weeks run from local midnight of their first day (Monday, or Sunday with ``week_start: sunday``) for seven
calendar days — 167 or 169 hours across a DST change — and are named by that first day (``2024-01-29``). In
BigQuery a week is the DAY partition of its first day: the time column holds that date (:mod:`pipeline.export.split`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Grain(StrEnum):
    """How finely a KPI is partitioned; ``none`` is a whole-table snapshot."""

    DAY = "day"
    HOUR = "hour"
    WEEK = "week"
    MONTH = "month"
    NONE = "none"


class WeekStart(StrEnum):
    """The first day of a week partition (header key ``week_start``)."""

    MONDAY = "monday"
    SUNDAY = "sunday"

    @property
    def weekday(self) -> int:
        """As :meth:`date.weekday` numbers it: Monday 0 … Sunday 6."""
        return 0 if self is WeekStart.MONDAY else 6


# grain → (partition name, BigQuery partition decorator), as strftime formats of the interval's local start
REPEATED_HOUR = "_2"  # suffix of the partition name of the hour a DST fall-back repeats
_FORMATS = {
    Grain.DAY: ("%Y-%m-%d", "%Y%m%d"),
    Grain.HOUR: ("%Y-%m-%dT%H", "%Y%m%d%H"),
    Grain.MONTH: ("%Y-%m", "%Y%m"),
    Grain.WEEK: ("%Y-%m-%d", "%Y%m%d"),  # named by the week's first day; BigQuery's DAY partition of that day
}


@dataclass(frozen=True)
class Interval:
    """One partition: ``[start, end)`` as aware datetimes in the KPI's timezone.

    Python compares and subtracts two datetimes that share a tzinfo by wall clock, ignoring DST offsets;
    intervals therefore order and measure themselves on UTC instants.
    """

    start: datetime
    end: datetime
    grain: Grain
    first_weekday: int = 0  # weeks only: the weekday they start on (Monday 0, Sunday 6)

    def __lt__(self, other: Interval) -> bool:
        return self.start.astimezone(UTC) < other.start.astimezone(UTC)

    def __le__(self, other: Interval) -> bool:
        return self.start.astimezone(UTC) <= other.start.astimezone(UTC)

    @property
    def duration(self) -> timedelta:
        """Real elapsed time: 23 or 25 hours for the day of a DST change."""
        return self.end.astimezone(UTC) - self.start.astimezone(UTC)

    @property
    def partition(self) -> str:
        """The partition's name in the lake path and in reports: ``2024-01-31``, ``2024-01-31T05``, ``2024-01``,
        ``2024-01-29`` (a week, by its first day); ``2024-11-03T01_2`` for the second of two hours that share a
        wall-clock name (a DST fall-back)."""
        name = self.start.strftime(_FORMATS[self.grain][0])
        return name + REPEATED_HOUR if self.grain is Grain.HOUR and is_repeat(self.start) else name

    @property
    def decorator(self) -> str:
        """BigQuery's partition decorator suffix: ``20240131``, ``2024013105``, ``202401``."""
        return self.start.strftime(_FORMATS[self.grain][1])

    def bounds_in(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The boundaries as naive wall-clock datetimes in ``zone`` (what `:start` and `:end` are bound to)."""
        return (
            self.start.astimezone(zone).replace(tzinfo=None),
            self.end.astimezone(zone).replace(tzinfo=None),
        )


def interval_containing(grain: Grain, zone: ZoneInfo, moment: datetime, first_weekday: int = 0) -> Interval:
    """The partition that contains ``moment`` (naive moments are read in ``zone``); ``first_weekday`` is the day
    weeks start on (:attr:`WeekStart.weekday`) and matters only to weeks."""
    if grain is Grain.NONE:
        raise ValueError("a snapshot KPI (grain: none) has no partitions")
    local = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)
    if grain is Grain.HOUR:
        # Step in UTC so that the repeated hour of a DST fall-back is two partitions, not one.
        utc = local.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return Interval(utc.astimezone(zone), (utc + timedelta(hours=1)).astimezone(zone), grain)
    if grain is Grain.MONTH:
        first = local.date().replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return Interval(_midnight(first, zone), _midnight(following, zone), grain)
    if grain is Grain.WEEK:
        first = local.date() - timedelta(days=(local.date().weekday() - first_weekday) % 7)
        return Interval(_midnight(first, zone), _midnight(first + timedelta(days=7), zone), grain, first_weekday)
    day = local.date()
    return Interval(_midnight(day, zone), _midnight(day + timedelta(days=1), zone), grain)


def latest_complete(grain: Grain, zone: ZoneInfo, now: datetime, first_weekday: int = 0) -> Interval:
    """The newest partition that has fully ended at ``now``: yesterday for a daily KPI, last week for a weekly."""
    return preceding(interval_containing(grain, zone, now, first_weekday), zone)


def preceding(interval: Interval, zone: ZoneInfo) -> Interval:
    """The partition just before ``interval``. Stepped back in UTC: an aware datetime minus a timedelta is
    wall-clock arithmetic, which across a DST change lands in the wrong hour (from the repeated hour, in the one
    before it; from the hour after a gap, in the same hour again)."""
    moment = interval.start.astimezone(UTC) - timedelta(microseconds=1)
    return interval_containing(interval.grain, zone, moment, interval.first_weekday)


def intervals_between(
    grain: Grain, zone: ZoneInfo, first: datetime, last: datetime, first_weekday: int = 0
) -> Iterator[Interval]:
    """Every partition from the one containing ``first`` to the one containing ``last``, both included."""
    interval = interval_containing(grain, zone, first, first_weekday)
    stop = interval_containing(grain, zone, last, first_weekday)
    while interval <= stop:
        yield interval
        interval = interval_containing(grain, zone, interval.end, first_weekday)


def is_repeat(moment: datetime) -> bool:
    """Whether the aware ``moment`` is a wall-clock time's second occurrence (the hour a fall-back repeats)."""
    return moment.fold == 1 and moment.replace(fold=0).utcoffset() != moment.utcoffset()


def parse_moment(text: str) -> datetime:
    """Read ``2024-01-31``, ``2024-01``, ``2024-01-31T05`` (``2024-11-03T01_2``: the repeated hour of a fall-back,
    as ``fold=1``) or a full ISO datetime as a naive datetime."""
    value = text.strip()
    try:
        if len(value) == 7 and value[4] == "-":
            return datetime.combine(date.fromisoformat(value + "-01"), time())
        if len(value) == 13 + len(REPEATED_HOUR) and value.endswith(REPEATED_HOUR) and value[10] in "T ":
            return datetime.fromisoformat(value.removesuffix(REPEATED_HOUR) + ":00").replace(fold=1)
        if len(value) == 13 and value[10] in "T ":
            value += ":00"
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a date; write 2024-01-31 (or 2024-01 for a month, 2024-01-31T05 for an hour)"
        ) from None


def week_start_sql(column: str, first_weekday: int) -> str:
    """MySQL (and, through sqlglot, DuckDB) for the first day of ``column``'s week: days since a known Monday
    (1970-01-05) or Sunday (1970-01-04) modulo 7, since WEEKDAY/DAYOFWEEK number days differently in each."""
    epoch = "1970-01-05" if first_weekday == 0 else "1970-01-04"
    return f"CAST(DATE_SUB(DATE({column}), INTERVAL MOD(DATEDIFF({column}, '{epoch}'), 7) DAY) AS DATE)"


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # Midnight may not exist on a DST change day in a few zones (e.g. America/Santiago); fold=0 then gives
    # the wall time before the gap, which normalising through UTC moves to the first instant that exists.
    local = datetime.combine(day, time(), tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone)
