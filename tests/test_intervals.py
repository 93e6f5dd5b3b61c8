"""Partitions in business time: JST days, DST days of 23 and 25 hours, hours, months."""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pipeline.core.intervals import Grain, interval_containing, intervals_between, latest_complete, parse_moment

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
    ],
)
def test_parse_moment(text: str, expected: datetime) -> None:
    assert parse_moment(text) == expected


def test_parse_moment_says_what_it_accepts() -> None:
    with pytest.raises(ValueError, match="'yesterday' is not a date; write 2024-01-31"):
        parse_moment("yesterday")


def test_a_snapshot_has_no_partition() -> None:
    with pytest.raises(ValueError, match="snapshot"):
        interval_containing(Grain.NONE, TOKYO, datetime(2024, 3, 1))
