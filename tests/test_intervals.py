"""Partitions in business time: JST days, DST days of 23 and 25 hours, hours, months — and the arithmetic of DST
gaps, fall-backs and the UTC clock, table-driven."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.core.header_rules import clock_changes
from pipeline.core.intervals import (
    Grain,
    interval_containing,
    intervals_between,
    is_repeat,
    latest_complete,
    parse_moment,
    preceding,
)

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


def test_a_jst_day_is_tokyo_midnight_to_midnight_and_binds_in_the_source_zone() -> None:
    day = interval_containing(Grain.DAY, TOKYO, datetime(2024, 3, 1, 23, 59))
    assert day.partition == "2024-03-01"
    assert day.decorator == "20240301"
    assert day.bounds_in(TOKYO) == (datetime(2024, 3, 1), datetime(2024, 3, 2))
    # A source that stores UTC sees the same JST day as 15:00 the day before to 15:00.
    assert day.bounds_in(UTC) == (datetime(2024, 2, 29, 15), datetime(2024, 3, 1, 15))


def test_an_aware_moment_is_read_in_the_kpi_zone() -> None:
    moment = datetime(2024, 3, 1, 16, 0, tzinfo=UTC)  # 01:00 on 2 March in Tokyo
    assert interval_containing(Grain.DAY, TOKYO, moment).partition == "2024-03-02"


def test_dst_days_are_23_and_25_hours_long() -> None:
    spring = interval_containing(Grain.DAY, NEW_YORK, datetime(2024, 3, 10, 12))
    autumn = interval_containing(Grain.DAY, NEW_YORK, datetime(2024, 11, 3, 12))
    assert spring.duration.total_seconds() == 23 * 3600
    assert autumn.duration.total_seconds() == 25 * 3600
    assert spring.bounds_in(NEW_YORK) == (datetime(2024, 3, 10), datetime(2024, 3, 11))


def test_hours_across_a_dst_fall_back_are_all_distinct_and_contiguous() -> None:
    hours = list(intervals_between(Grain.HOUR, NEW_YORK, datetime(2024, 11, 3, 0), datetime(2024, 11, 3, 3)))
    assert len(hours) == 5  # 00, 01 (EDT), 01 (EST), 02, 03
    assert all(a.end == b.start for a, b in itertools.pairwise(hours))
    assert [h.start.utcoffset().total_seconds() / 3600 for h in hours] == [-4, -4, -5, -5, -5]  # type: ignore[union-attr]


def test_months_and_ranges() -> None:
    february = interval_containing(Grain.MONTH, TOKYO, datetime(2024, 2, 29))
    assert (february.partition, february.decorator) == ("2024-02", "202402")
    assert february.bounds_in(TOKYO) == (datetime(2024, 2, 1), datetime(2024, 3, 1))
    days = list(intervals_between(Grain.DAY, TOKYO, datetime(2024, 2, 27), datetime(2024, 3, 2)))
    assert [d.partition for d in days] == ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"]


def test_latest_complete_partition_is_yesterday_in_tokyo_even_when_utc_is_still_yesterday() -> None:
    now = datetime(2024, 3, 1, 16, 30, tzinfo=UTC)  # 01:30 on 2 March in Tokyo
    assert latest_complete(Grain.DAY, TOKYO, now).partition == "2024-03-01"
    assert latest_complete(Grain.HOUR, TOKYO, now).partition == "2024-03-02T00"
    assert latest_complete(Grain.MONTH, TOKYO, now).partition == "2024-02"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01", datetime(2024, 3, 1)),
        ("2024-03", datetime(2024, 3, 1)),
        ("2024-03-01T05", datetime(2024, 3, 1, 5)),
        ("2024-03-01 05:30", datetime(2024, 3, 1, 5, 30)),
        ("2024-11-03T01_2", datetime(2024, 11, 3, 1, fold=1)),
    ],
)
def test_parse_moment(text: str, expected: datetime) -> None:
    assert parse_moment(text) == expected
    assert parse_moment(text).fold == expected.fold


def test_parse_moment_says_what_it_accepts() -> None:
    with pytest.raises(ValueError, match="'yesterday' is not a date; write 2024-01-31"):
        parse_moment("yesterday")


def test_a_snapshot_has_no_partition() -> None:
    with pytest.raises(ValueError, match="snapshot"):
        interval_containing(Grain.NONE, TOKYO, datetime(2024, 3, 1))


# -- DST: gaps, fall-backs and the UTC clock -----------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("zone", "first", "last", "names", "utc_starts"),
    [
        # spring forward: 02:00 never happens, the hour after 01 is 03
        (
            NEW_YORK,
            datetime(2024, 3, 10, 0),
            datetime(2024, 3, 10, 3),
            ["2024-03-10T00", "2024-03-10T01", "2024-03-10T03"],
            [5, 6, 7],
        ),
        # fall back: 01 happens twice, the repeat is named apart
        (
            NEW_YORK,
            datetime(2024, 11, 3, 0),
            datetime(2024, 11, 3, 2),
            ["2024-11-03T00", "2024-11-03T01", "2024-11-03T01_2", "2024-11-03T02"],
            [4, 5, 6, 7],
        ),
        (
            BERLIN,
            datetime(2024, 10, 27, 1),
            datetime(2024, 10, 27, 3),
            ["2024-10-27T01", "2024-10-27T02", "2024-10-27T02_2", "2024-10-27T03"],
            [23, 0, 1, 2],
        ),
        (
            TOKYO,
            datetime(2024, 11, 3, 0),
            datetime(2024, 11, 3, 2),
            ["2024-11-03T00", "2024-11-03T01", "2024-11-03T02"],
            [15, 16, 17],
        ),
    ],
)
def test_hours_are_utc_hours_named_apart_across_dst_changes(
    zone: ZoneInfo, first: datetime, last: datetime, names: list[str], utc_starts: list[int]
) -> None:
    hours = list(intervals_between(Grain.HOUR, zone, first, last))
    assert [h.partition for h in hours] == names
    assert len(set(names)) == len(names)  # a backfill of the day never writes one partition twice
    assert [h.start.astimezone(UTC).hour for h in hours] == utc_starts
    assert all(h.duration == timedelta(hours=1) for h in hours)
    assert all(a.end == b.start for a, b in itertools.pairwise(hours))
    for hour in hours:  # each name reads back as its own hour (kpi export --date, backfill batches)
        assert interval_containing(Grain.HOUR, zone, parse_moment(hour.partition)) == hour


def test_the_repeated_hour_keeps_the_wall_clock_decorator_and_distinct_utc_bounds() -> None:
    first, repeat = intervals_between(Grain.HOUR, NEW_YORK, datetime(2024, 11, 3, 1), parse_moment("2024-11-03T01_2"))
    assert (first.partition, repeat.partition) == ("2024-11-03T01", "2024-11-03T01_2")
    assert first.decorator == repeat.decorator == "2024110301"  # the wall clock's: only UTC tells them apart
    assert first.bounds_in(UTC) == (datetime(2024, 11, 3, 5), datetime(2024, 11, 3, 6))
    assert repeat.bounds_in(UTC) == (datetime(2024, 11, 3, 6), datetime(2024, 11, 3, 7))
    assert first.bounds_in(NEW_YORK) == (datetime(2024, 11, 3, 1), datetime(2024, 11, 3, 1))  # empty as wall clock
    assert (is_repeat(first.start), is_repeat(repeat.start)) == (False, True)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2024, 11, 3, 5, 30, tzinfo=UTC), "2024-11-03T00"),  # during the first 01:00
        (datetime(2024, 11, 3, 6, 30, tzinfo=UTC), "2024-11-03T01"),  # during the repeat
        (datetime(2024, 11, 3, 7, 30, tzinfo=UTC), "2024-11-03T01_2"),
        (datetime(2024, 3, 10, 7, 30, tzinfo=UTC), "2024-03-10T01"),  # 03:30 EDT: the hour before is 01 EST
    ],
)
def test_the_latest_complete_hour_around_dst_changes(now: datetime, expected: str) -> None:
    assert latest_complete(Grain.HOUR, NEW_YORK, now).partition == expected


@pytest.mark.parametrize(
    ("zone", "day", "hours", "bounds_utc"),
    [
        ("America/New_York", datetime(2024, 3, 10), 23, (datetime(2024, 3, 10, 5), datetime(2024, 3, 11, 4))),
        ("America/New_York", datetime(2024, 11, 3), 25, (datetime(2024, 11, 3, 4), datetime(2024, 11, 4, 5))),
        ("America/Santiago", datetime(2024, 9, 8), 23, (datetime(2024, 9, 8, 4), datetime(2024, 9, 9, 3))),  # no 00:00
        ("Asia/Tokyo", datetime(2024, 3, 10), 24, (datetime(2024, 3, 9, 15), datetime(2024, 3, 10, 15))),
    ],
)
def test_days_of_dst_changes_in_the_utc_clock(
    zone: str, day: datetime, hours: int, bounds_utc: tuple[datetime, ...]
) -> None:
    interval = interval_containing(Grain.DAY, ZoneInfo(zone), day + timedelta(hours=12))
    assert interval.partition == f"{day:%Y-%m-%d}"
    assert interval.duration == timedelta(hours=hours)
    assert interval.bounds_in(UTC) == bounds_utc


@pytest.mark.parametrize(
    ("zone", "since", "odd_offset", "repeats_on"),
    [
        ("Asia/Tokyo", 1970, None, None),
        ("UTC", 1970, None, None),
        ("America/New_York", 2024, None, date(2024, 11, 3)),
        ("Europe/Berlin", 2024, None, date(2024, 10, 27)),
        ("Europe/Moscow", 2010, None, date(2010, 10, 31)),
        ("Europe/Moscow", 2015, None, None),  # no change since 2014: hourly DATETIME is fine from a 2015 start
        ("Asia/Kolkata", 1970, 19800, None),
        ("Australia/Lord_Howe", 2024, 37800, date(2024, 4, 7)),  # half an hour back
    ],
)
def test_what_a_zones_clock_does_from_a_year_on(
    zone: str, since: int, odd_offset: int | None, repeats_on: date | None
) -> None:
    changes = clock_changes(zone, since)
    assert (changes.odd_offset, changes.repeats_on) == (odd_offset, repeats_on)


@pytest.mark.parametrize(
    ("partition", "expected"),
    [
        ("2024-11-03T01_2", "2024-11-03T01"),
        ("2024-11-03T02", "2024-11-03T01_2"),
        ("2024-03-10T03", "2024-03-10T01"),  # across the gap, not the same hour again
        ("2024-03-10T00", "2024-03-09T23"),
    ],
)
def test_the_partition_before_steps_back_in_utc(partition: str, expected: str) -> None:
    interval = interval_containing(Grain.HOUR, NEW_YORK, parse_moment(partition))
    assert preceding(interval, NEW_YORK).partition == expected
