"""Which partitions ``--start``/``--end`` mean (pipeline.core.selection): the end includes all of the day or
month it names, whatever the KPI's grain, and a partition's own name still names that partition."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from pipeline import catalog
from pipeline.core.selection import end_moment, moment, requested_intervals
from pipeline.core.spec import Kpi
from pipeline.flows.read import partition_range

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 7, 12)


def example(name: str) -> Kpi:
    return catalog.load_one((ROOT / "queries",), name)


def names(kpi: Kpi, start: str, end: str) -> list[str]:
    asked = requested_intervals(kpi, now=NOW, start=moment(start), end=end_moment(end))
    return [i.partition for i in asked]


def test_a_day_as_the_end_of_an_hourly_range_includes_all_of_its_hours() -> None:
    hours = names(example("hourly_orders"), "2024-03-01", "2024-03-02")
    assert len(hours) == 48  # the README's `--start 2024-03-01 --end 2024-03-07` is a week of hours
    assert (hours[0], hours[-1]) == ("2024-03-01T00", "2024-03-02T23")


def test_a_month_as_the_end_of_a_daily_range_includes_all_of_its_days() -> None:
    days = names(example("daily_sales"), "2024-02", "2024-02")
    assert (days[0], days[-1], len(days)) == ("2024-02-01", "2024-02-29", 29)  # a leap year's February
    december = names(example("daily_sales"), "2024-12-30", "2024-12")
    assert december == ["2024-12-30", "2024-12-31"]  # the month turns the year


@pytest.mark.parametrize(
    ("kpi", "first", "last"),
    [
        ("hourly_orders", "2024-03-01T05", "2024-03-01T07"),
        ("daily_sales", "2024-03-01", "2024-03-03"),
        ("weekly_buyers", "2024-03-04", "2024-03-18"),  # weeks are named by their first day (Monday)
        ("monthly_active_buyers", "2024-01", "2024-03"),
    ],
)
def test_a_partitions_own_name_as_the_end_names_that_partition(kpi: str, first: str, last: str) -> None:
    chosen = names(example(kpi), first, last)
    assert (chosen[0], chosen[-1]) == (first, last)  # what the backfill planner's events send the exporter


def test_an_hour_or_a_full_time_is_the_moment_it_names() -> None:
    assert end_moment("2024-03-07T05") == datetime(2024, 3, 7, 5)
    assert end_moment("2024-03-07T05:30") == datetime(2024, 3, 7, 5, 30)
    assert end_moment("2024-03-07") == datetime(2024, 3, 7, 23, 59, 59, 999999)
    assert end_moment(None) is None


def test_the_notebook_reads_a_range_the_same_way() -> None:
    kpi = example("hourly_orders")
    first, end = partition_range(kpi, "2024-03-01", date(2024, 3, 2))
    assert first is not None
    assert end is not None
    assert (first.isoformat(), end.isoformat()) == ("2024-03-01T00:00:00+09:00", "2024-03-03T00:00:00+09:00")
