"""Generated KPI series with the Japanese business calendar's effects and injected anomalies of known dates.

Shared by ``bench/anomaly_bench.py`` (the README's table) and ``tests/test_anomaly_measured.py`` (which asserts
it). Seeded: the same series on every machine.

*Daily* (2025-01-01 … 2026-12-31, sales in yen): a level of ¥1M growing 10 % a year; weekdays ×0.97 (Tue) to
×1.25 (Sat); public holidays ×1.2 (like a Sunday); Golden Week ×1.45, Obon ×1.3, New Year from ×0.55 (Jan 1) to
×1.5 (Jan 2, the first sale); the 25th to the month's end ×1.12 (payday); log-normal noise of 4 %. 2026 is scored
(2025 is its history) with 12 injected anomalies: spikes, drops (three of them on a holiday or in a season), a
two-week outage-like dip and a lasting level shift.

*Hourly* (2026-03-02 … 2026-05-24, orders per hour): a daily profile from ~20 orders at 4:00 to ~260 at 21:00,
weekends and holidays with a later, higher profile (holidays and Golden Week like Sundays ×1.05), payday ×1.1,
noise 6 %. The last 8 weeks are scored (Golden Week in them) with 8 injected anomalies, a 3-hour outage among them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pipeline.core.calendar_jp import PAYDAY, is_jp_holiday, season_of


@dataclass(frozen=True)
class Injected:
    """An anomaly put into a series: ``first`` partition, ``factor`` applied, for ``length`` partitions; it is
    *found* when the detector flags one of its first ``found_within`` partitions, and flags in the ``covers``
    partitions from ``first`` belong to it (a level shift keeps differing until the level has followed)."""

    first: str
    factor: float
    length: int = 1
    found_within: int = 1
    covers: int = 1
    what: str = "spike"


@dataclass(frozen=True)
class Generated:
    grain: str
    values: dict[str, float]  # partition → value
    scored: tuple[str, ...]  # the partitions evaluated
    injected: tuple[Injected, ...]
    holidays: frozenset[str]  # scored partitions on a holiday, in a season or at month-end (the plain method's traps)


WEEKDAY = (1.0, 0.97, 0.98, 1.0, 1.08, 1.25, 1.2)
SEASON = {"golden_week": 1.45, "obon": 1.3}
NEW_YEAR = {"12-29": 1.25, "12-30": 1.3, "12-31": 0.8, "01-01": 0.55, "01-02": 1.5, "01-03": 1.35}

DAILY_ANOMALIES = (
    Injected("2026-02-17", 1.5, what="spike"),
    Injected("2026-03-12", 0.6, what="drop"),
    Injected("2026-03-20", 0.72, what="drop on a holiday (Vernal Equinox Day)"),
    Injected("2026-05-04", 0.7, what="drop in Golden Week"),
    Injected("2026-06-10", 1.3, what="spike"),
    Injected("2026-07-06", 0.8, length=14, found_within=7, covers=28, what="two-week dip"),
    Injected("2026-08-14", 0.72, what="drop in Obon"),
    Injected("2026-09-08", 0.75, what="drop"),
    Injected("2026-09-28", 1.25, length=95, found_within=7, covers=21, what="lasting level shift"),
    Injected("2026-10-27", 1.35, what="spike at month-end"),
    Injected("2026-11-23", 1.4, what="spike on a holiday (Labour Thanksgiving)"),
    Injected("2026-12-31", 0.65, what="drop on New Year's Eve"),
)


def daily(seed: int = 17) -> Generated:
    rng = random.Random(seed)
    first, last = date(2024, 11, 1), date(2026, 12, 31)
    values: dict[str, float] = {}
    special: set[str] = set()
    day = first
    while day <= last:
        values[day.isoformat()] = _daily_value(day, (day - first).days, rng)
        if day.year == 2026 and (season_of(day) or is_jp_holiday(day) or day.day >= PAYDAY):
            special.add(day.isoformat())
        day += timedelta(days=1)
    _inject(values, DAILY_ANOMALIES)
    scored = tuple(p for p in values if p >= "2026-01-01")
    return Generated("day", values, scored, DAILY_ANOMALIES, frozenset(special))


def _daily_value(day: date, age: int, rng: random.Random) -> float:
    season = season_of(day)
    if season == "new_year":
        effect = NEW_YEAR[f"{day:%m-%d}"]
    elif season is not None:
        effect = SEASON[season]
    elif is_jp_holiday(day):
        effect = 1.2
    else:
        effect = WEEKDAY[day.weekday()]
    if day.day >= PAYDAY:
        effect *= 1.12
    return round(1_000_000 * (1 + 0.1 * age / 365) * effect * math.exp(rng.gauss(0, 0.04)))


HOURLY_ANOMALIES = (
    Injected("2026-04-02T11", 1.8, what="spike"),
    Injected("2026-04-09T20", 0.5, what="drop"),
    Injected("2026-04-15T14", 0.3, length=3, found_within=3, covers=3, what="3-hour outage"),
    Injected("2026-04-22T03", 2.5, what="night spike"),
    Injected("2026-04-29T13", 0.5, what="drop on a holiday (Showa Day)"),
    Injected("2026-05-04T21", 1.8, what="spike in Golden Week"),
    Injected("2026-05-13T09", 0.45, what="drop"),
    Injected("2026-05-20T22", 1.9, what="spike"),
)
# orders per hour of an ordinary weekday, and of a weekend day or holiday
WORKDAY_HOURS = (40, 25, 18, 15, 15, 20, 40, 80, 120, 140, 150, 170, 200, 180, 150, 140, 150, 170, 200, 230, 250,
                 260, 200, 100)  # fmt: skip
OFF_HOURS = (60, 40, 25, 18, 15, 15, 20, 35, 70, 130, 190, 230, 250, 240, 230, 220, 220, 230, 250, 270, 280, 270,
             220, 120)  # fmt: skip


def hourly(seed: int = 17) -> Generated:
    rng = random.Random(seed)
    first, last = datetime(2026, 3, 2), datetime(2026, 5, 24, 23)
    values: dict[str, float] = {}
    special: set[str] = set()
    moment = first
    while moment <= last:
        day = moment.date()
        off = day.weekday() >= 5 or is_jp_holiday(day) or season_of(day) is not None
        base = (OFF_HOURS if off else WORKDAY_HOURS)[moment.hour]
        effect = 1.05 if (is_jp_holiday(day) or season_of(day)) else 1.0
        effect *= 1.1 if day.day >= PAYDAY else 1.0
        partition = f"{moment:%Y-%m-%dT%H}"
        values[partition] = round(base * effect * math.exp(rng.gauss(0, 0.06)))
        if day >= date(2026, 3, 30) and (season_of(day) or is_jp_holiday(day) or day.day >= PAYDAY):
            special.add(partition)
        moment += timedelta(hours=1)
    _inject(values, HOURLY_ANOMALIES)
    scored = tuple(p for p in values if p >= "2026-03-30")
    return Generated("hour", values, scored, HOURLY_ANOMALIES, frozenset(special))


def _inject(values: dict[str, float], anomalies: Sequence[Injected]) -> None:
    order = sorted(values)
    for anomaly in anomalies:
        start = order.index(anomaly.first)
        for partition in order[start : start + anomaly.length]:
            values[partition] = round(values[partition] * anomaly.factor)


@dataclass(frozen=True)
class Evaluation:
    """Recall and false positives of one method's flags on a generated series."""

    found: tuple[Injected, ...]
    missed: tuple[Injected, ...]
    false_positives: tuple[str, ...]
    on_holidays: int  # false positives on a holiday, in a season or at month-end

    @property
    def recall(self) -> float:
        return len(self.found) / (len(self.found) + len(self.missed))


def evaluate(series: Generated, flagged: Sequence[str]) -> Evaluation:
    order = sorted(series.values)
    flags = set(flagged) & set(series.scored)
    found: list[Injected] = []
    missed: list[Injected] = []
    covered: set[str] = set()
    for anomaly in series.injected:
        start = order.index(anomaly.first)
        covered.update(order[start : start + max(anomaly.covers, anomaly.length)])
        (found if flags & set(order[start : start + anomaly.found_within]) else missed).append(anomaly)
    wrong = tuple(sorted(flags - covered))
    return Evaluation(tuple(found), tuple(missed), wrong, sum(1 for p in wrong if p in series.holidays))
