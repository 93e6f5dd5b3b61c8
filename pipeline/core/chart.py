"""What a KPI's report chart shows, computed from the warehouse's rows: pure values, no I/O, no drawing.

The rules that make a chart tell the truth, each decided here so that the renderer only draws:

* **By dimension, never a silent sum.** A KPI's columns that are neither the time column nor numeric are its
  dimensions. The chart draws one series per value of one dimension (the header's ``chart.by``, else the first
  dimension declared): the ``top`` largest by the first charted measure over the charted range, the rest summed
  into one series named ``other (N values)``. Any further dimension is summed over, and the caption says so.
* **Each measure its own chart** (small multiples on the same time axis): orders (~500) and sales (~30M JPY) never
  share an axis, and no two measures overlap into one line.
* **A true time axis.** The x axis holds every partition from the first to the last loaded one, one step per
  partition, so a partition that was never loaded is a gap, not a jump that hides it. A loaded partition in which a
  dimension value has no row is a real zero for that value (sums and counts). Partitions that have not begun at
  ``now`` are left out (a mistyped ``--date`` loads them; ``kpi status`` reports them), so nothing sits in the future.
* **One y-axis rule:** every y axis starts at zero (:data:`Y_AXIS_RULE`) — the measures are sums and counts, so the
  height of a point is its size and a 2 % move looks like 2 %.
* **Times in the KPI's zone, named.** Partition labels are the KPI's own (its ``timezone``), and the caption names
  the zone and its abbreviation (``Asia/Tokyo, JST``).
* **Every row reaches the data table**: :class:`Table` holds the warehouse rows themselves (newest first), up to
  :data:`TABLE_ROWS`, with the true total beside them.

Per-point marks (:class:`Mark`) are where other features (anomaly detection) point at a value: a measure's
:class:`MeasureChart` carries them and the renderer draws each one at its partition on its series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeline.core.chart_rules import dimension_columns, measure_columns
from pipeline.core.freshness import split_future
from pipeline.core.intervals import interval_containing, intervals_between, parse_moment
from pipeline.core.spec import Kpi

__all__ = [
    "TABLE_ROWS",
    "Y_AXIS_RULE",
    "ChartModel",
    "Mark",
    "MeasureChart",
    "Table",
    "add_marks",
    "build_chart",
    "partition_label",
    "series_name",
]

Y_AXIS_RULE = "Every y axis starts at zero: the measures are sums and counts, so a point's height is its size."
TABLE_ROWS = 5_000  # rows written into the page's data table; the count beside it is always the warehouse's
OTHER = "other"
NULL_LABEL = "(null)"


@dataclass(frozen=True)
class Mark:
    """A marked point: at partition ``x`` on ``series``, with a short ``label`` (e.g. "anomaly: 3.1σ above").

    ``expected`` is an optional (low, high) range drawn beside the point.
    """

    x: str
    series: str
    label: str
    expected: tuple[float, float] | None = None


@dataclass(frozen=True)
class MeasureChart:
    """One measure's chart: a series per dimension value (or one, named after the measure), one value per label
    (None: the partition is not loaded)."""

    measure: str
    series: Mapping[str, tuple[float | None, ...]]
    marks: tuple[Mark, ...] = ()


@dataclass(frozen=True)
class Table:
    """The rows of the data table, newest first; ``total`` is how many the warehouse holds."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    total: int


@dataclass(frozen=True)
class ChartModel:
    kind: str  # "line" (over partitions) or "bar" (a snapshot's categories)
    labels: tuple[str, ...]  # x positions: every partition first → last, or the categories
    charts: tuple[MeasureChart, ...]  # one per measure, in the header's order
    caption: str  # what the charts show, written under them
    table: Table = field(default_factory=lambda: Table((), (), 0))
    by: str | None = None
    zone: str | None = None  # e.g. "Asia/Tokyo, JST" for a time axis

    def __post_init__(self) -> None:
        if self.kind not in ("line", "bar"):
            raise ValueError(f"chart kind must be 'line' or 'bar', not {self.kind!r}")
        for chart in self.charts:
            for name, values in chart.series.items():
                if len(values) != len(self.labels):
                    raise ValueError(
                        f"series {name!r} of {chart.measure!r} has {len(values)} values for {len(self.labels)} "
                        "labels (one per label)"
                    )


def add_marks(model: ChartModel, measure: str, marks: Iterable[Mark], *, strict: bool = True) -> ChartModel:
    """The model with ``marks`` added to ``measure``'s chart.

    A mark must name a drawn label and series: ``strict`` raises otherwise; ``strict=False`` leaves such marks out
    (a partition outside the charted range, a value summed into "other"), for callers that mark what they found.
    """
    new = tuple(marks)
    charts = []
    found = False
    for chart in model.charts:
        if chart.measure == measure:
            found = True
            kept = []
            for mark in new:
                if mark.x in model.labels and mark.series in chart.series:
                    kept.append(mark)
                elif strict:
                    raise ValueError(f"mark {mark!r} is not on a drawn point of {measure!r}")
            chart = replace(chart, marks=chart.marks + tuple(kept))
        charts.append(chart)
    if not found and strict:
        raise ValueError(f"{measure!r} is not a charted measure ({', '.join(c.measure for c in model.charts)})")
    return replace(model, charts=tuple(charts))


def series_name(model: ChartModel, measure: str, value: Any = None) -> str | None:
    """The drawn series of ``measure`` for a row whose ``by`` column holds ``value`` (ignored when the chart is not
    split): the value itself, the measure's name for an unsplit chart, or None — not drawn on its own line."""
    chart = next((c for c in model.charts if c.measure == measure), None)
    if chart is None:
        return None
    name = measure if model.by is None else _key(value)
    return name if name in chart.series else None


def partition_label(kpi: Kpi, value: Any) -> str:
    """The partition a time-column value falls in, named as the lake and ``kpi status`` name it."""
    if isinstance(value, datetime):
        moment = value  # naive: a wall-clock time in the KPI's zone; aware (TIMESTAMP): converted to it
    else:
        moment = parse_moment(value.isoformat() if hasattr(value, "isoformat") else str(value))  # a date
    return interval_containing(kpi.grain, kpi.zone, moment, kpi.first_weekday).partition


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value) if isinstance(value, int | float | Decimal) else None
    return number if number is not None and math.isfinite(number) else None


def _key(value: Any) -> str:
    return NULL_LABEL if value is None else str(value)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def build_chart(
    kpi: Kpi, rows: Sequence[Mapping[str, Any]], loaded: Iterable[str], now: datetime, *, table_rows: int = TABLE_ROWS
) -> ChartModel:
    """The chart of ``kpi`` from its warehouse ``rows`` (column → value) and its loaded partitions (the audit)."""
    settings = kpi.chart
    measures = settings.measures or measure_columns(kpi.columns, kpi.time_column)
    dimensions = dimension_columns(kpi.columns, kpi.time_column)
    by = settings.by or (dimensions[0] if dimensions else None)
    summed_over = [d for d in dimensions if d != by]
    time_column = kpi.time_column if kpi.incremental else None

    labelled: list[tuple[str, Mapping[str, Any]]] = []
    begun: set[str] = set()  # partitions loaded (or holding rows) that have begun at `now`
    if time_column is not None:
        begun.update(split_future(kpi, set(loaded), now)[0])
        for row in rows:
            label = partition_label(kpi, row[time_column])
            if split_future(kpi, [label], now)[0]:
                labelled.append((label, row))
                begun.add(label)
        labels = _every_partition(kpi, begun)
    else:
        labelled = [("", row) for row in rows]
        labels = []
    kept = [row for _, row in labelled]
    table = _table(kpi, kept, time_column, table_rows)

    groups = _ranked(labelled, by, measures[0] if measures else None)
    shown, rest = groups[: settings.top], groups[settings.top :]
    if len(rest) == 1:  # "other (1 value)" would hide a name for nothing
        shown, rest = groups, []
    names = shown + ([f"{OTHER} ({_plural(len(rest), 'value')})"] if rest else [])
    series_of = {value: value for value in shown} | (dict.fromkeys(rest, names[-1]) if rest else {})

    if time_column is None:
        categories = tuple(names) if by is not None else ("all rows",)
        charts = tuple(
            MeasureChart(measure, {measure: _bar_values(labelled, by, series_of, measure, categories)})
            for measure in measures
        )
        return ChartModel(
            "bar",
            categories if kept else (),
            charts if kept else (),
            _caption(kpi, by, groups, shown, rest, measures, summed_over, None),
            table,
            by,
        )
    zone = _zone_name(kpi, labels)
    charts = tuple(
        MeasureChart(measure, _line_values(labelled, labels, begun, by, series_of, names, measure))
        for measure in measures
    )
    return ChartModel(
        "line",
        tuple(labels),
        charts if labels else (),
        _caption(kpi, by, groups, shown, rest, measures, summed_over, zone, labels),
        table,
        by,
        zone,
    )


def _every_partition(kpi: Kpi, partitions: set[str]) -> list[str]:
    if not partitions:
        return []
    weekday = kpi.first_weekday
    ordered = sorted(partitions, key=lambda p: interval_containing(kpi.grain, kpi.zone, parse_moment(p), weekday))
    first = interval_containing(kpi.grain, kpi.zone, parse_moment(ordered[0]), weekday)
    last = interval_containing(kpi.grain, kpi.zone, parse_moment(ordered[-1]), weekday)
    return [i.partition for i in intervals_between(kpi.grain, kpi.zone, first.start, last.start, weekday)]


def _zone_name(kpi: Kpi, labels: Sequence[str]) -> str:
    """``Asia/Tokyo, JST``; ``America/New_York, EST/EDT`` when the axis spans a clock change."""
    names: list[str] = []
    for label in labels:
        name = interval_containing(kpi.grain, kpi.zone, parse_moment(label), kpi.first_weekday).start.tzname()
        if name and name != kpi.timezone and name not in names:
            names.append(name)
    return f"{kpi.timezone}, {'/'.join(names)}" if names else kpi.timezone


def _ranked(labelled: Sequence[tuple[str, Mapping[str, Any]]], by: str | None, measure: str | None) -> list[str]:
    """The values of ``by``, largest total of ``measure`` first (ties by name), so top N is "by size"."""
    if by is None:
        return []
    totals: dict[str, float] = {}
    for _, row in labelled:
        value = _number(row.get(measure)) if measure else None
        totals[_key(row[by])] = totals.get(_key(row[by]), 0.0) + abs(value or 0.0)
    return sorted(totals, key=lambda name: (-totals[name], name))


def _line_values(
    labelled: Sequence[tuple[str, Mapping[str, Any]]],
    labels: Sequence[str],
    present: set[str],
    by: str | None,
    series_of: Mapping[str, str],
    names: Sequence[str],
    measure: str,
) -> dict[str, tuple[float | None, ...]]:
    sums: dict[tuple[str, str], float] = {}
    seen: set[tuple[str, str]] = set()  # cells with a row, even if its value is NULL
    for label, row in labelled:
        name = series_of[_key(row[by])] if by is not None else measure
        seen.add((name, label))
        value = _number(row.get(measure))
        if value is not None:
            sums[(name, label)] = sums.get((name, label), 0.0) + value
    out: dict[str, tuple[float | None, ...]] = {}
    for name in names if by is not None else [measure]:
        values: list[float | None] = []
        for label in labels:
            if (name, label) in sums:
                values.append(sums[(name, label)])
            elif (name, label) in seen:
                values.append(None)  # rows whose measure is NULL: nothing to draw
            else:
                values.append(0.0 if label in present else None)  # loaded without a row: zero; not loaded: gap
        out[name] = tuple(values)
    return out


def _bar_values(
    labelled: Sequence[tuple[str, Mapping[str, Any]]],
    by: str | None,
    series_of: Mapping[str, str],
    measure: str,
    categories: Sequence[str],
) -> tuple[float | None, ...]:
    sums: dict[str, float] = {}
    for _, row in labelled:
        name = series_of[_key(row[by])] if by is not None else categories[0]
        value = _number(row.get(measure))
        sums[name] = sums.get(name, 0.0) + (value or 0.0)
    return tuple(sums.get(name, 0.0) for name in categories)


def _table(kpi: Kpi, rows: Sequence[Mapping[str, Any]], time_column: str | None, limit: int) -> Table:
    """Newest partition first, then by every column's text: the same rows give the same table, whatever order the
    warehouse returned them in."""
    columns = tuple(c.name for c in kpi.columns)
    ordered = sorted(rows, key=lambda row: tuple(_key(row.get(c)) for c in columns))
    if time_column is not None:
        ordered.sort(key=lambda row: str(row[time_column]), reverse=True)  # stable: the order above within a time
    return Table(columns, tuple(tuple(row.get(c) for c in columns) for row in ordered[:limit]), len(rows))


def _caption(
    kpi: Kpi,
    by: str | None,
    groups: Sequence[str],
    shown: Sequence[str],
    rest: Sequence[str],
    measures: Sequence[str],
    summed_over: Sequence[str],
    zone: str | None,
    labels: Sequence[str] = (),
) -> str:
    parts: list[str] = []
    noun = "line" if kpi.incremental else "bar"
    if by is None:
        parts.append("Each point is the sum of its partition's rows." if kpi.incremental else "")
    elif rest:
        parts.append(
            f"One {noun} per {by}: the top {len(shown)} of {len(groups)} by {measures[0]}, "
            f"the other {len(rest)} summed as '{OTHER}'."
        )
    else:
        parts.append(f"One {noun} per {by} ({_plural(len(groups), 'value')}).")
    if summed_over:
        parts.append(f"Summed over {', '.join(summed_over)}.")
    parts.append("Each measure has its own chart.")
    if kpi.incremental and labels:
        parts.append(
            f"Time axis: {_plural(len(labels), kpi.grain.value)} in {zone}, {labels[0]} to {labels[-1]}, one step "
            "per partition; a gap is a partition not loaded."
        )
    parts.append(Y_AXIS_RULE)
    return " ".join(p for p in parts if p)
