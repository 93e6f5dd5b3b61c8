"""The report's axes: calendar ticks along partitions (Mondays, month starts, round hours) and round y ticks."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HOUR = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2})(?::00(?::00)?)?$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Tick:
    index: int  # position among the labels
    text: str  # the main line under the axis: "Mar 4", "09:00", "Mar", a category
    context: str  # a second line where the context changes (the year, the day), else ""


def _parse_moments(labels: Sequence[str]) -> tuple[str, list[datetime]] | None:
    """All labels as hours, days or months (the partition formats), or None when they are something else."""
    for grain, pattern in (("hour", _HOUR), ("day", _DAY), ("month", _MONTH)):
        moments: list[datetime] = []
        for label in labels:
            found = pattern.match(label)
            if found is None:
                break
            parts = [int(p) for p in found.groups()]
            try:
                day = parts[2] if len(parts) > 2 else 1
                hour = parts[3] if len(parts) > 3 else 0
                moments.append(datetime(parts[0], parts[1], day, hour))
            except ValueError:
                break
        else:
            return grain, moments
    return None


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


# Tick steps per label grain, finest first; each keeps the ticks on natural boundaries (midnight, Mondays,
# the first of a month, quarters, years) so that they read as a calendar, not as every n-th label.
_STEPS: dict[str, tuple[tuple[str, int], ...]] = {
    "hour": (("hour", 1), ("hour", 2), ("hour", 3), ("hour", 6), ("hour", 12), ("day", 1), ("day", 2), ("week", 1)),
    "day": (("day", 1), ("day", 2), ("week", 1), ("week", 2)),
    "month": (),
}
_MONTH_STEPS = tuple(("month", n) for n in (1, 2, 3, 6, 12, 24, 60, 120))


def _on_step(moment: datetime, unit: str, every: int) -> bool:
    ordinal = moment.toordinal()  # ordinal 1 (0001-01-01) is a Monday
    if unit == "hour":
        return moment.hour % every == 0
    if unit in ("day", "week"):
        days = every * (7 if unit == "week" else 1)
        return moment.hour == 0 and (ordinal - 1) % days == 0
    return moment.hour == 0 and moment.day == 1 and _month_index(moment) % every == 0


def _time_tick(moment: datetime, previous: datetime | None, unit: str, every: int) -> tuple[str, str]:
    day = f"{MONTHS[moment.month - 1]} {moment.day}"
    new_year = previous is None or previous.year != moment.year
    if unit == "hour":
        new_day = previous is None or previous.date() != moment.date()
        context = (f"{day} {moment.year}" if previous is None else day) if new_day else ""
        return f"{moment.hour:02d}:00", context
    if unit in ("day", "week"):
        return day, str(moment.year) if new_year else ""
    if every >= 12:
        return str(moment.year), ""
    return MONTHS[moment.month - 1], str(moment.year) if new_year else ""


def x_ticks(labels: Sequence[str], max_ticks: int) -> list[Tick]:
    """At most ``max_ticks`` labelled positions along the x axis, on calendar boundaries where labels are times.

    Sixty days get a tick per Monday, three days of hours one every 12 hours, two years of months one per
    quarter; the year (or, for hours, the day) is shown under the first tick and where it changes. Labels that
    are not times (snapshot categories) are thinned to every n-th one.
    """
    count = len(labels)
    if count == 0:
        return []
    max_ticks = max(1, max_ticks)
    parsed = _parse_moments(labels)
    if parsed is not None:
        grain, moments = parsed
        for unit, every in _STEPS[grain] + _MONTH_STEPS:
            chosen = [i for i, moment in enumerate(moments) if _on_step(moment, unit, every)]
            if 1 <= len(chosen) <= max_ticks:
                ticks: list[Tick] = []
                previous: datetime | None = None
                for i in chosen:
                    text, context = _time_tick(moments[i], previous, unit, every)
                    ticks.append(Tick(i, text, context))
                    previous = moments[i]
                return ticks
    step = math.ceil(count / max_ticks)
    return [Tick(i, labels[i], "") for i in range(0, count, step)]


def _nice_step(span: float, target: int) -> float:
    rough = span / max(1, target)
    magnitude = 10.0 ** math.floor(math.log10(rough))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if multiple * magnitude >= rough * (1 - 1e-9):
            return multiple * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def y_ticks(low: float, high: float, *, include_zero: bool, target: int = 4) -> list[float]:
    """Round tick values covering [low, high]: 0, 250k, 500k, … Zero is included when asked or when in range."""
    if include_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    if high == low:  # a constant: show it against zero, or zero against one
        low, high = min(low, 0.0), max(high, 0.0)
        if high == low:
            high = 1.0
    step = _nice_step(high - low, target)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]
