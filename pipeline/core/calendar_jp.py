"""The Japanese business calendar as anomaly scoring sees it: which kind of day a partition falls on.

A day is one of: a holiday season (New Year 12-29…01-03, Golden Week 04-29…05-06, Obon 08-13…08-16 — the weeks
shops and offices behave unlike any weekday, whether or not each day is a public holiday), a public holiday of
the ``holidays`` package's JP calendar (substitute and citizens' holidays included), or a plain weekday. Beside
that, the month's end from the 25th (the usual Japanese payday) to its last day lifts spending and invoicing.

Which of these count is the KPI's ``anomaly.seasonality``: without ``jp_holiday`` holidays and seasons are their
weekdays, without ``weekday`` every ordinary day is alike, without ``month_end`` paydays are ordinary. Pure: the
holidays are the ``holidays`` package's JP calendar, written into :mod:`pipeline.core.jp_holiday_table` (1949–2099,
the package's range) by ``make jp-holidays`` and read a year at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SEASONS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "new_year": ((12, 29), (1, 3)),
    "golden_week": ((4, 29), (5, 6)),
    "obon": ((8, 13), (8, 16)),
}
PAYDAY = 25  # month_end: from this day of the month to its last
SEASONALITY = ("weekday", "jp_holiday", "month_end")  # hourly KPIs always add the hour of the day


@dataclass(frozen=True)
class DayKind:
    """What kind of day ``day`` is for scoring: ``kind`` is a season's name, ``holiday`` or a weekday's name;
    ``key`` narrows a season to its calendar day (``new_year:01-01``), so that New Year's Eve is compared with the
    last New Year's Eve; ``month_end`` marks the payday-to-month-end days. Without ``weekday`` seasonality every
    ordinary day's kind is ``day``."""

    kind: str
    key: str
    month_end: bool

    @property
    def ordinary(self) -> bool:
        """Neither a holiday nor in a season: what the level of a series is measured on."""
        return self.kind != "holiday" and self.kind not in SEASONS


def season_of(day: date) -> str | None:
    """The holiday season ``day`` belongs to, or None."""
    here = (day.month, day.day)
    for name, (first, last) in SEASONS.items():
        inside = first <= here <= last if first <= last else here >= first or here <= last
        if inside:
            return name
    return None


@cache
def _jp_holidays(year: int) -> frozenset[date]:
    """``year``'s public holidays from the table generated from the ``holidays`` package (empty outside the years
    its JP calendar covers, as the package's is): importing the package cost more than the rest of a scored load
    in a fresh process (:mod:`infra.jp_holidays` says what was measured and how the table is kept equal to it)."""
    from pipeline.core.jp_holiday_table import BY_YEAR  # only when a day is classed: a manifest's reader needs none

    return frozenset(date(year, int(word[:2]), int(word[2:])) for word in BY_YEAR.get(year, "").split())


def is_jp_holiday(day: date) -> bool:
    return day in _jp_holidays(day.year)


@cache
def day_kind(day: date, seasonality: frozenset[str]) -> DayKind:
    """The kind of ``day`` under the KPI's seasonality (names of :data:`SEASONALITY`); cached, as a warm loader
    classes the same few hundred days on every load."""
    month_end = "month_end" in seasonality and day.day >= PAYDAY
    if "jp_holiday" in seasonality:
        season = season_of(day)
        if season is not None:
            return DayKind(season, f"{season}:{day:%m-%d}", month_end)
        if is_jp_holiday(day):
            return DayKind("holiday", "holiday", month_end)
    weekday = WEEKDAYS[day.weekday()] if "weekday" in seasonality else "day"
    return DayKind(weekday, weekday, month_end)
