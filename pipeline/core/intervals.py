"""Partitions in business time: which interval a KPI run covers, and how that interval is named.

Boundaries are computed in the KPI's ``timezone`` (a JST day is [00:00, 24:00) Tokyo time, not a UTC day —
the complaint of SQLMesh#3972), then expressed as naive wall-clock times in ``source_timezone`` because that
is what the source's DATETIME columns mean. DST is handled by ``zoneinfo``: a day in a DST zone can be 23 or
25 hours long, and an hour that does not exist locally is never produced.
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
    MONTH = "month"
    NONE = "none"


# grain → (partition name, BigQuery partition decorator), as strftime formats of the interval's local start
_FORMATS = {
    Grain.DAY: ("%Y-%m-%d", "%Y%m%d"),
    Grain.HOUR: ("%Y-%m-%dT%H", "%Y%m%d%H"),
    Grain.MONTH: ("%Y-%m", "%Y%m"),
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
        """The partition's name in the lake path and in reports: ``2024-01-31``, ``2024-01-31T05``, ``2024-01``."""
        return self.start.strftime(_FORMATS[self.grain][0])

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


def interval_containing(grain: Grain, zone: ZoneInfo, moment: datetime) -> Interval:
    """The partition that contains ``moment`` (naive moments are read in ``zone``)."""
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
    day = local.date()
    return Interval(_midnight(day, zone), _midnight(day + timedelta(days=1), zone), grain)


def latest_complete(grain: Grain, zone: ZoneInfo, now: datetime) -> Interval:
    """The newest partition that has fully ended at ``now``: yesterday for a daily KPI."""
    current = interval_containing(grain, zone, now)
    return interval_containing(grain, zone, current.start - timedelta(microseconds=1))


def intervals_between(grain: Grain, zone: ZoneInfo, first: datetime, last: datetime) -> Iterator[Interval]:
    """Every partition from the one containing ``first`` to the one containing ``last``, both included."""
    interval = interval_containing(grain, zone, first)
    stop = interval_containing(grain, zone, last)
    while interval <= stop:
        yield interval
        interval = interval_containing(grain, zone, interval.end)


def parse_moment(text: str) -> datetime:
    """Read ``2024-01-31``, ``2024-01``, ``2024-01-31T05`` or a full ISO datetime as a naive datetime."""
    value = text.strip()
    try:
        if len(value) == 7 and value[4] == "-":
            return datetime.combine(date.fromisoformat(value + "-01"), time())
        if len(value) == 13 and value[10] in "T ":
            value += ":00"
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a date; write 2024-01-31 (or 2024-01 for a month, 2024-01-31T05 for an hour)"
        ) from None


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # Midnight may not exist on a DST change day in a few zones (e.g. America/Santiago); fold=0 then gives
    # the wall time before the gap, which normalising through UTC moves to the first instant that exists.
    local = datetime.combine(day, time(), tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone)
