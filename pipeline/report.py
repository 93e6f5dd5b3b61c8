"""The KPI report: one self-contained HTML file with charts per KPI, its description, owner, columns and freshness.

What the charts show is decided by the pure chart model (:mod:`pipeline.core.chart`: a series per dimension value,
each measure its own chart, every partition on the time axis, zero-based y axes, the KPI's zone named); this module
only draws that model, and writes the model's caption under the charts so the reader is told what they see.

Why static, inline SVG drawn here rather than a charting library — decided on evidence (measured on this machine,
December 2026, a 60-day line of one series; the script is in the README's "The report" section):

* plotly 7.1 draws in the browser with JavaScript only: a self-contained file embeds plotly.js, 4.8 MB per page,
  and shows no chart where scripts are off (mail clients, locked-down browsers, print to PDF);
* matplotlib 3.11 writes SVG offline (18 kB) but brings numpy and ~80 MB of packages, turns text into paths (not
  searchable, not selectable), and is not byte-for-byte deterministic without extra settings (ids, dates);
* pygal 3.1 writes SVG (33 kB) that loads its tooltip script from a CDN by default (the page's policy forbids it)
  and changes ids on each render;
* none of them knows the partitions' calendar (ticks on Mondays, month starts, the KPI's zone) — that logic stays
  ours either way, and it is the part that must be right. So the drawing stays here, pure and deterministic.

The file needs nothing else:

* nothing to run — the file opens from a ``file://`` URL, from an artifact store, from a shared drive;
* nothing to fetch — no CDN, web font or script is loaded (the page's Content-Security-Policy forbids it), so it
  works offline, behind a proxy, and still looks the same in a year, when a CDN URL may be gone;
* it survives being an email attachment or a CI artifact: one file, no folder of assets beside it;
* the charts are there with JavaScript disabled, because the SVG is in the HTML. The only script is a tiny optional
  one that measures the drawn charts and writes the result into a hidden ``<pre id="render-check">`` for the
  headless-browser acceptance test; the page needs none of it.

The output is deterministic — the same input gives the same bytes — so a report can be diffed, cached or
attached to a pull request without churn. This module is pure: it takes values and returns a string; the caller
reads the warehouse and writes the file. The charts drawn are marked ``<svg class="chart" data-kpi="NAME"
data-measures="MEASURE">``, each drawn series ``class="series"``, each marked point ``class="mark"``; an empty
KPI gets a ``class="no-data"`` message instead of a chart; the data table is ``<details class="data"
data-total="N">``. Not part of any Lambda package: only ``kpi demo`` imports it.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from pipeline.core.chart import ChartModel, MeasureChart

__all__ = [
    "Column",
    "ReportKpi",
    "Tick",
    "format_number",
    "format_value",
    "freshness_class",
    "render_report",
    "x_ticks",
    "y_ticks",
]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class ReportKpi:
    name: str
    description: str
    owner: str
    grain: str
    time_column: str | None
    columns: tuple[Column, ...]
    chart: ChartModel
    freshness: str  # e.g. "fresh", "stale (warn)", "stale (error)", "never loaded"
    last_partition: str | None
    last_loaded: datetime | None
    rows: int


# ---------------------------------------------------------------------------------------------------------------
# Numbers

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def _significant(value: float, digits: int) -> str:
    """A positive number with at most ``digits`` significant digits, no exponent, no trailing zeros."""
    exponent = math.floor(math.log10(value))
    decimals = max(0, digits - 1 - exponent)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_number(value: float) -> str:
    """Compact, for axis ticks and chart labels: ``0``, ``999``, ``1.5k``, ``12k``, ``3.4M``, ``1.23B``, ``0.25``.

    Three significant digits at most; k, M, B (billion), T. Beyond 1000T an exponent (``1.2e+15``).
    """
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    rounded = float(f"{abs(value):.3g}")  # 999,950 → 1,000,000, so that it reads 1M and not 1000k
    if rounded >= 1e15:
        return sign + f"{rounded:.2g}"
    for scale, suffix in _SUFFIXES:
        if rounded >= scale:
            return sign + _significant(rounded / scale, 3) + suffix
    return sign + _significant(rounded, 3)


def format_value(value: float | None) -> str:
    """Exact-ish, for tables and tooltips: ``30,123,456``, ``1,234.5``, ``0.0123``; ``—`` for no data."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return ("-" if value < 0 else "") + _significant(abs(value), 3)


def _clean(values: Sequence[float | None]) -> list[float | None]:
    """NaN and infinities are gaps, like None: a chart can't place them."""
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


# ---------------------------------------------------------------------------------------------------------------
# Axes

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


# ---------------------------------------------------------------------------------------------------------------
# SVG

PALETTE = ("#2f6fb0", "#e0772e", "#3a9a5b", "#c8414b", "#8a62b8", "#8c6d4f", "#d35fb7", "#6b7280", "#b39a1b")
WIDTH = 800
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP = 58, 18, 34
LINE_HEIGHT, BAR_HEIGHT = 190, 220
CHAR_WIDTH = 6.4  # a rough width of one 11px character, for fitting labels
MARKERS_UP_TO = 45  # lines over at most this many labels also get a dot per point
HOVER_UP_TO = 500  # labels per chart with a hover band and tooltip; beyond, the data table has the values


def _n(value: float) -> str:
    """A coordinate: one decimal, no "-0", no trailing ".0" — the same bytes on every platform."""
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _fit(text: str, width: float) -> str:
    room = max(1, int(width / CHAR_WIDTH))
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"


LEGEND_ROW = 18


class _Panel:
    """One chart: a y scale for a group of measures over all the KPI's labels, below a legend of ``rows`` rows."""

    def __init__(self, kind: str, count: int, values: list[float], include_zero: bool, legend_rows: int) -> None:
        self.kind = kind
        self.count = count
        extra = LEGEND_ROW * (legend_rows - 1)
        self.height = (BAR_HEIGHT if kind == "bar" else LINE_HEIGHT) + extra
        self.bottom_margin = 30 if kind == "bar" else 38
        self.top = MARGIN_TOP + extra
        self.bottom = self.height - self.bottom_margin
        self.left = MARGIN_LEFT
        self.right = WIDTH - MARGIN_RIGHT
        self.ticks = y_ticks(min(values), max(values), include_zero=include_zero)
        self.low, self.high = self.ticks[0], self.ticks[-1]
        self.band = (self.right - self.left) / max(1, count)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.low) / (self.high - self.low) * (self.bottom - self.top)

    def x(self, index: int) -> float:
        if self.kind == "bar":
            return self.left + self.band * (index + 0.5)
        if self.count == 1:
            return (self.left + self.right) / 2
        return self.left + index * (self.right - self.left) / (self.count - 1)


def _legend_places(measures: Sequence[str], notes: Mapping[str, str]) -> list[tuple[float, int]]:
    """Where each legend entry starts (x, row): left to right, wrapping onto a new row at the chart's edge."""
    places: list[tuple[float, int]] = []
    x, row = float(MARGIN_LEFT), 0
    for name in measures:
        note = notes.get(name, "")
        width = 17 + CHAR_WIDTH * 1.1 * len(name) + (6 + CHAR_WIDTH * len(note) if note else 0)
        if x > MARGIN_LEFT and x + width > WIDTH - MARGIN_RIGHT:
            x, row = float(MARGIN_LEFT), row + 1
        places.append((x, row))
        x += width + 22
    return places


def _legend(
    measures: Sequence[str], colours: Mapping[str, str], notes: Mapping[str, str], places: Sequence[tuple[float, int]]
) -> list[str]:
    parts = ['<g class="legend">']
    for name, (x, row) in zip(measures, places, strict=True):
        note = notes.get(name, "")
        y = 9 + LEGEND_ROW * row
        parts.append(f'<rect x="{_n(x)}" y="{y}" width="12" height="12" rx="2" fill="{colours[name]}"/>')
        tspan = f'<tspan class="legend-note" dx="6">{_e(note)}</tspan>' if note else ""
        parts.append(f'<text class="legend-name" x="{_n(x + 17)}" y="{y + 10}">{_e(name)}{tspan}</text>')
    parts.append("</g>")
    return parts


def _axes(panel: _Panel, labels: Sequence[str], parsed_ticks: Sequence[Tick]) -> list[str]:
    out = ['<g class="grid">']
    for value in panel.ticks:
        y = _n(panel.y(value))
        zero = " zero" if value == 0 else ""
        out.append(f'<line class="gridline{zero}" x1="{panel.left}" x2="{panel.right}" y1="{y}" y2="{y}"/>')
    if panel.kind == "line":
        for tick in parsed_ticks:
            at = _n(panel.x(tick.index))
            out.append(f'<line class="gridline vertical" x1="{at}" x2="{at}" y1="{panel.top}" y2="{panel.bottom}"/>')
    out.append("</g>")
    out.append('<g class="axis y-axis">')
    for value in panel.ticks:
        out.append(
            f'<text class="y-tick" x="{panel.left - 8}" y="{_n(panel.y(value) + 4)}" text-anchor="end">'
            f"{_e(format_number(value))}</text>"
        )
    out.append("</g>")
    out.append('<g class="axis x-axis">')
    out.append(
        f'<line class="axis-line" x1="{panel.left}" x2="{panel.right}" y1="{panel.bottom}" y2="{panel.bottom}"/>'
    )
    for tick in parsed_ticks:
        x = panel.x(tick.index)
        anchor = "middle"
        if panel.kind == "line" and panel.count > 1:  # keep the outermost labels inside the chart
            width = CHAR_WIDTH * max(len(tick.text), len(tick.context))
            if x - width / 2 < panel.left - MARGIN_LEFT + 4:
                anchor = "start"
            elif x + width / 2 > WIDTH - 2:
                anchor = "end"
        text = _fit(tick.text, panel.band * (_ticks_gap(parsed_ticks)) - 4) if panel.kind == "bar" else tick.text
        full = _e(labels[tick.index])
        out.append(f'<line class="tick" x1="{_n(x)}" x2="{_n(x)}" y1="{panel.bottom}" y2="{panel.bottom + 4}"/>')
        out.append(
            f'<text class="x-tick" x="{_n(x)}" y="{panel.bottom + 16}" text-anchor="{anchor}">'
            f"<title>{full}</title>{_e(text)}</text>"
        )
        if tick.context:
            out.append(
                f'<text class="x-context" x="{_n(x)}" y="{panel.bottom + 29}" text-anchor="{anchor}">'
                f"{_e(tick.context)}</text>"
            )
    out.append("</g>")
    return out


def _ticks_gap(ticks: Sequence[Tick]) -> int:
    """Labels between two ticks (1 when every label has one)."""
    if len(ticks) < 2:
        return 1
    return ticks[1].index - ticks[0].index


def _line_series(panel: _Panel, name: str, values: Sequence[float | None], colour: str, area: bool) -> list[str]:
    runs: list[list[tuple[int, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((i, value))
    runs = [run for run in runs if run]
    out: list[str] = []
    if area:
        base = _n(panel.y(max(panel.low, min(0.0, panel.high))))
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{_n(panel.x(i))},{_n(panel.y(v))}" for i, v in run)
                first, last = _n(panel.x(run[0][0])), _n(panel.x(run[-1][0]))
                out.append(f'<polygon class="area" points="{first},{base} {points} {last},{base}" fill="{colour}"/>')
    out.append(f'<g class="series" data-series="{_e(name)}" stroke="{colour}" fill="{colour}">')
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{_n(panel.x(i))},{_n(panel.y(v))}" for i, v in run)
            out.append(f'<polyline class="line" points="{points}" fill="none"/>')
    for run in runs:
        # Dots where there are few points, and always for a point with no neighbour (a line needs two).
        if panel.count <= MARKERS_UP_TO or len(run) == 1:
            radius = "2.5" if len(run) > 1 else "3.5"
            for i, v in run:
                out.append(f'<circle class="dot" cx="{_n(panel.x(i))}" cy="{_n(panel.y(v))}" r="{radius}"/>')
    out.append("</g>")
    return out


def _bar_series(
    panel: _Panel, measures: Sequence[str], series: Mapping[str, Sequence[float | None]], colours: Mapping[str, str]
) -> list[str]:
    out: list[str] = []
    group_width = panel.band * 0.72
    width = group_width / len(measures)
    zero = panel.y(max(panel.low, min(0.0, panel.high)))
    labels_fit = len(measures) == 1 and panel.count <= 24
    value_labels: list[str] = []
    for m, name in enumerate(measures):
        out.append(f'<g class="series" data-series="{_e(name)}" fill="{colours[name]}">')
        for i, value in enumerate(series[name]):
            if value is None:
                continue
            x = panel.left + panel.band * i + (panel.band - group_width) / 2 + m * width
            y = panel.y(value)
            top, height = min(y, zero), abs(zero - y)
            if height < 1:  # a zero still shows, as a hairline on the axis
                top, height = zero - 1, 1.0
            out.append(
                f'<rect class="bar" x="{_n(x + 0.5)}" y="{_n(top)}" width="{_n(max(1.0, width - 1))}" '
                f'height="{_n(height)}"/>'
            )
            if labels_fit:
                label_y = top - 5 if value >= 0 else top + height + 13
                value_labels.append(
                    f'<text class="bar-value" x="{_n(x + width / 2)}" y="{_n(label_y)}" text-anchor="middle">'
                    f"{_e(format_number(value))}</text>"
                )
        out.append("</g>")
    return out + value_labels


def _hover(
    panel: _Panel, labels: Sequence[str], measures: Sequence[str], series: Mapping[str, Sequence[float | None]]
) -> list[str]:
    """Transparent columns with a tooltip of every measure's value at that label (no script needed)."""
    if panel.count > HOVER_UP_TO:
        return []
    out = ['<g class="hover">']
    for i, label in enumerate(labels):
        if panel.kind == "bar" or panel.count == 1:
            x0, x1 = panel.left + panel.band * i, panel.left + panel.band * (i + 1)
            if panel.count == 1:
                x0, x1 = panel.left, panel.right
        else:
            step = (panel.right - panel.left) / (panel.count - 1)
            x0, x1 = max(panel.left, panel.x(i) - step / 2), min(panel.right, panel.x(i) + step / 2)
        tip = "\n".join([label, *(f"{name}: {format_value(series[name][i])}" for name in measures)])
        out.append(
            f'<rect class="hit" x="{_n(x0)}" y="{panel.top}" width="{_n(x1 - x0)}" '
            f'height="{_n(panel.bottom - panel.top)}"><title>{_e(tip)}</title></rect>'
        )
    out.append("</g>")
    return out


def _latest(values: Sequence[float | None], labels: Sequence[str]) -> str:
    for value, label in zip(reversed(values), reversed(labels), strict=True):
        if value is not None:
            return f"latest {format_number(value)} ({label})"
    return ""


def _panel_svg(kpi: ReportKpi, chart: MeasureChart, colours: Mapping[str, str]) -> str:
    model = kpi.chart
    labels = model.labels
    names = [name for name in chart.series if any(v is not None for v in _clean(chart.series[name]))]
    series = {name: _clean(chart.series[name]) for name in names}
    values = [v for name in names for v in series[name] if v is not None]
    values += [bound for mark in chart.marks if mark.expected for bound in mark.expected]
    latest = {name: _latest(series[name], labels) for name in names} if model.kind == "line" else {}
    places = _legend_places(names, latest)
    legend_rows = 1 + max(row for _, row in places)
    panel = _Panel(model.kind, len(labels), values, True, legend_rows)  # the y-axis rule: from zero
    plot_width = panel.right - panel.left
    if model.kind == "bar":
        longest = max(len(label) for label in labels)
        per_label = max(1, math.ceil((min(longest, 14) * CHAR_WIDTH + 8) / panel.band))
        ticks = [Tick(i, labels[i], "") for i in range(0, len(labels), per_label)]
    else:
        ticks = x_ticks(labels, max(2, int(plot_width // 78)))
    split = f" by {model.by}" if model.by else ""
    over = f" per {kpi.grain} ({model.zone})" if model.kind == "line" else ""
    title = f"{kpi.name}: {chart.measure}{split}{over}"
    out = [
        f'<svg class="chart chart-{model.kind}" data-kpi="{_e(kpi.name)}" data-measures="{_e(chart.measure)}" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {panel.height}" width="{WIDTH}" '
        f'height="{panel.height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    out += _legend(names, colours, latest, places)
    out += _axes(panel, labels, ticks)
    if model.kind == "bar":
        out += _bar_series(panel, names, series, colours)
    else:
        area = len(names) == 1 and panel.low <= 0 <= panel.high
        for name in names:
            out += _line_series(panel, name, series[name], colours[name], area)
    out += _marks(panel, labels, chart, series)
    out += _hover(panel, labels, names, series)
    out.append("</svg>")
    return "\n".join(out)


def _marks(
    panel: _Panel, labels: Sequence[str], chart: MeasureChart, series: Mapping[str, Sequence[float | None]]
) -> list[str]:
    """A ring around each marked point (with its label as tooltip) and, when given, its expected range."""
    if not chart.marks:
        return []
    index = {label: i for i, label in enumerate(labels)}
    out = ['<g class="marks">']
    for mark in chart.marks:
        i = index.get(mark.x)
        value = series[mark.series][i] if i is not None and mark.series in series else None
        if i is None or value is None:
            continue
        x = _n(panel.x(i))
        tip = f"{mark.x} · {mark.series}: {format_value(value)} — {mark.label}"
        if mark.expected is not None:
            low, high = sorted(mark.expected)
            tip += f" (expected {format_value(low)} to {format_value(high)})"
            out.append(f'<line class="expected" x1="{x}" x2="{x}" y1="{_n(panel.y(low))}" y2="{_n(panel.y(high))}"/>')
        out.append(f'<circle class="mark" cx="{x}" cy="{_n(panel.y(value))}" r="6"><title>{_e(tip)}</title></circle>')
    out.append("</g>")
    return out


def _column_note(kpi: ReportKpi, measure: str) -> str:
    description = next((c.description for c in kpi.columns if c.name == measure), "")
    return f'<p class="chart-title"><strong>{_e(measure)}</strong>' + (
        f' <span class="muted">— {_e(description)}</span></p>' if description else "</p>"
    )


def _charts_html(kpi: ReportKpi) -> str:
    model = kpi.chart
    drawn = [c for c in model.charts if any(v is not None for vs in c.series.values() for v in _clean(vs))]
    if not model.labels or not drawn:
        if kpi.last_loaded is None:
            why = "this KPI has never been loaded"
        elif kpi.rows == 0 and model.table.total == 0:
            why = "its loads so far returned no rows"
        else:
            why = "no values to draw"
        return (
            f'<div class="no-data" data-kpi="{_e(kpi.name)}"><strong>No rows loaded</strong>'
            f'<span class="muted"> — {_e(why)}.</span></div>\n' + _data_table(kpi)
        )
    names: list[str] = []
    for chart in drawn:
        names += [name for name in chart.series if name not in names]
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}  # one colour per value, every chart
    parts = ['<div class="charts">']
    for chart in drawn:
        parts.append(_column_note(kpi, chart.measure))
        parts.append(_panel_svg(kpi, chart, colours))
    empty = [c.measure for c in model.charts if c not in drawn]
    if empty:
        parts.append(f'<p class="chart-note">No values for {_e(", ".join(empty))}.</p>')
    parts.append(f'<p class="chart-caption">{_e(model.caption)}</p>')
    parts.append("</div>")
    parts.append(_data_table(kpi))
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _e("NULL" if value is None else str(value).lower())
    if isinstance(value, int | float | Decimal):
        return f'<td class="num">{_e(format_value(float(value)))}</td>'
    if isinstance(value, datetime):
        return _e(_when(value) if value.tzinfo else value.isoformat(sep=" "))
    return _e(value.isoformat() if hasattr(value, "isoformat") else str(value))


def _data_table(kpi: ReportKpi) -> str:
    table = kpi.chart.table
    if not table.columns:
        return ""
    shown, total = len(table.rows), table.total
    what = f"all {total:,} rows" if shown == total else f"the newest {shown:,} of {total:,} rows"
    if total == 1:
        what = "its 1 row"
    rows = []
    for row in table.rows:
        cells = [_cell(value) for value in row]
        rows.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        f'<details class="data" data-kpi="{_e(kpi.name)}" data-total="{total}"><summary>Data: {what} in the '
        f'warehouse</summary><div class="scroll"><table><thead><tr>'
        + "".join(f"<th>{_e(name)}</th>" for name in table.columns)
        + "</tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table></div></details>"
    )


# ---------------------------------------------------------------------------------------------------------------
# The page


def freshness_class(freshness: str) -> str:
    """The badge's colour: ok (fresh), warn, bad (stale, error), never (never loaded), none (anything else)."""
    level = freshness.lower()
    if "error" in level:
        return "bad"
    if "warn" in level:
        return "warn"
    if level.startswith("stale"):
        return "bad"
    if level.startswith("never"):
        return "never"
    if level.startswith("fresh"):
        return "ok"
    return "none"


def _when(moment: datetime | None) -> str:
    """A moment as its zone shows it, the zone named: ``2026-12-03 09:14:00 JST (Asia/Tokyo)``, ``… UTC``."""
    if moment is None:
        return "never"
    offset = moment.utcoffset()
    text = moment.replace(tzinfo=None, microsecond=0).isoformat(sep=" ")
    if offset is None:
        return text
    key = getattr(moment.tzinfo, "key", None)
    abbreviation = moment.tzname()
    if key and key != "UTC":
        return f"{text} {abbreviation} ({key})" if abbreviation and abbreviation != key else f"{text} ({key})"
    if offset == timedelta(0):
        return text + " UTC"
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text} {sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _anchors(names: Iterable[str]) -> list[str]:
    used: set[str] = set()
    anchors = []
    for name in names:
        base = "kpi-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "unnamed")
        anchor, n = base, 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        anchors.append(anchor)
    return anchors


_UNKNOWN = "unknown"


def _badge(freshness: str, text: str | None = None) -> str:
    shown = text if text is not None else freshness or _UNKNOWN
    return f'<span class="badge {freshness_class(freshness)}">{_e(shown)}</span>'


def _section(kpi: ReportKpi, anchor: str) -> str:
    description = (
        f'<p class="description">{_e(kpi.description)}</p>'
        if kpi.description.strip()
        else '<p class="description muted">No description.</p>'
    )
    no_partition = f'<span class="muted">{"none" if kpi.time_column else "— (snapshot)"}</span>'
    meta = [
        ("Owner", _e(kpi.owner) if kpi.owner else '<span class="muted">—</span>'),
        ("Grain", _e(kpi.grain or "—")),
        ("Time column", f"<code>{_e(kpi.time_column)}</code>" if kpi.time_column else "— (snapshot)"),
        ("Last partition", _e(kpi.last_partition) if kpi.last_partition else no_partition),
        ("Rows in last partition" if kpi.time_column else "Rows", _e(f"{kpi.rows:,}")),
        ("Last loaded", _e(_when(kpi.last_loaded))),
    ]
    columns = "\n".join(
        f"<tr><td><code>{_e(c.name)}</code>"
        + (' <span class="tag">time</span>' if kpi.time_column and c.name == kpi.time_column else "")
        + f"</td><td><code>{_e(c.type)}</code></td><td>{_e(c.description)}</td></tr>"
        for c in kpi.columns
    )
    columns_table = (
        '<table class="columns"><thead><tr><th>Column</th><th>Type</th><th>Description</th></tr></thead>'
        f"<tbody>\n{columns}\n</tbody></table>"
        if kpi.columns
        else '<p class="muted">No columns declared.</p>'
    )
    return "\n".join(
        [
            f'<section class="kpi" id="{anchor}">',
            f'<header class="kpi-head"><h2>{_e(kpi.name)}</h2>{_badge(kpi.freshness)}</header>',
            description,
            '<dl class="meta">'
            + "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in meta)
            + "</dl>",
            _charts_html(kpi),
            "<h3>Columns</h3>",
            columns_table,
            "</section>",
        ]
    )


CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d8dee4; --soft: #f6f8fa; --accent: #2f6fb0; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: #eef1f4; color: var(--ink); line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
    "Liberation Sans", sans-serif; }
main { max-width: 900px; margin: 0 auto; padding: 28px 20px 48px; }
.page-head h1 { margin: 0 0 4px; font-size: 26px; line-height: 1.25; }
.page-head p { margin: 0; color: var(--muted); }
.summary { display: flex; flex-wrap: wrap; gap: 8px; margin: 14px 0 0; padding: 0; list-style: none; }
.card, .kpi, .toc { background: #fff; border: 1px solid var(--line); border-radius: 10px; }
.toc { margin: 22px 0; padding: 14px 20px; }
.toc h2 { margin: 0 0 6px; font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.toc ol { margin: 0; padding-left: 22px; }
.toc li { margin: 5px 0; }
.toc a { font-weight: 600; }
.toc .muted { font-size: 13px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.kpi { margin: 22px 0; padding: 20px 22px 22px; break-inside: avoid; }
.kpi-head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.kpi-head h2 { margin: 0; font-size: 21px; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas,
  "DejaVu Sans Mono", monospace; }
.description { margin: 8px 0 12px; white-space: pre-line; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 12.5px; font-weight: 600;
  border: 1px solid transparent; white-space: nowrap; }
.badge.ok { background: #dcf5e3; color: #17603a; border-color: #a8dfb9; }
.badge.warn { background: #fff3cd; color: #7a5200; border-color: #f0d58a; }
.badge.bad { background: #fde2e1; color: #a3262c; border-color: #f4b3b0; }
.badge.never { background: #fff; color: #a3262c; border-color: #f4b3b0; border-style: dashed; }
.badge.none { background: var(--soft); color: var(--muted); border-color: var(--line); }
.meta { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 8px 18px; margin: 0 0 16px;
  padding: 10px 14px; background: var(--soft); border-radius: 8px; }
@media (max-width: 560px) { .meta { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.meta dt { font-size: 11.5px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
.meta dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.charts { margin: 6px 0 4px; overflow-x: auto; }
.chart-note { margin: 0 0 4px; font-size: 13px; color: var(--muted); }
.chart-title { margin: 10px 0 0; font-size: 14px; }
.chart-caption { margin: 2px 0 10px; font-size: 13px; color: var(--muted); }
.chart .mark { fill: none; stroke: #c8414b; stroke-width: 2.5; pointer-events: all; }
.chart .expected { stroke: #c8414b; stroke-width: 6; stroke-opacity: .25; stroke-linecap: round; }
svg.chart { display: block; width: 100%; min-width: 600px; max-width: 800px; height: auto; margin: 4px 0 10px; }
.chart text { font-size: 11px; fill: #57606a; font-variant-numeric: tabular-nums; }
.chart .legend-name { font-size: 12.5px; font-weight: 600; fill: var(--ink); }
.chart .legend-note { font-size: 11.5px; font-weight: 400; fill: var(--muted); }
.chart .x-context { fill: var(--ink); font-weight: 600; }
.chart .bar-value { fill: var(--ink); }
.chart .gridline { stroke: #e6eaef; stroke-width: 1; }
.chart .gridline.vertical { stroke: #f0f2f5; }
.chart .gridline.zero, .chart .axis-line { stroke: #8c959f; stroke-width: 1; }
.chart .tick { stroke: #8c959f; }
.chart .series { stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.chart .series .dot { stroke: #fff; stroke-width: 1; }
.chart .bar { stroke: none; }
.chart .area { opacity: .09; stroke: none; }
.chart .hit { fill: #57606a; fill-opacity: 0; pointer-events: all; }
.chart .hit:hover { fill-opacity: .07; }
.no-data { margin: 4px 0 12px; padding: 22px; text-align: center; border: 1px dashed #c4ccd4; border-radius: 8px;
  background: var(--soft); }
details.data { margin: 0 0 8px; font-size: 13.5px; }
details.data summary { cursor: pointer; color: var(--accent); }
.scroll { max-height: 320px; overflow: auto; margin-top: 6px; border: 1px solid var(--line); border-radius: 6px; }
.scroll table { margin: 0; border: 0; }
.scroll th { position: sticky; top: 0; background: var(--soft); }
h3 { margin: 18px 0 6px; font-size: 15px; }
table { width: 100%; border-collapse: collapse; font-size: 13.5px; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); background: var(--soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.columns td:first-child { white-space: nowrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: .92em; }
.tag { font-size: 11px; padding: 0 6px; border-radius: 4px; background: #e7eefb; color: var(--accent); }
footer { margin-top: 28px; font-size: 13px; color: var(--muted); text-align: center; }
@media print {
  body { background: #fff; }
  .kpi, .toc { border: 0; padding: 0; }
  details.data, .hover { display: none; }
}
"""

# Measures every drawn chart in the browser and writes the result as JSON into <pre id="render-check"> (hidden),
# for the headless acceptance test. Listens for Content-Security-Policy violations too (an external load, a
# blocked style). The page needs none of it: the charts are SVG in the HTML.
RENDER_CHECK = """
(function () {
  "use strict";
  var violations = [];
  document.addEventListener("securitypolicyviolation", function (event) {
    violations.push(event.effectiveDirective + " " + (event.blockedURI || "inline"));
  });
  function box(element) {
    var r = element.getBoundingClientRect();
    return { width: r.width, height: r.height };
  }
  function measure() {
    var charts = [];
    document.querySelectorAll("svg.chart").forEach(function (svg) {
      var series = [];
      svg.querySelectorAll(".series").forEach(function (group) {
        var length = 0, shapes = 0;
        group.querySelectorAll("polyline, path, line, circle, rect").forEach(function (shape) {
          var b = shape.getBBox();
          if (b.width > 0 || b.height > 0) { shapes += 1; length += shape.getTotalLength(); }
        });
        var b = group.getBBox();
        series.push({ name: group.getAttribute("data-series"), length: length, shapes: shapes,
                      width: b.width, height: b.height, screen: box(group) });
      });
      var size = box(svg);
      charts.push({ kpi: svg.getAttribute("data-kpi"), measures: svg.getAttribute("data-measures"),
                    width: size.width, height: size.height, series: series,
                    marks: svg.querySelectorAll(".mark").length });
    });
    var tables = [];
    document.querySelectorAll("details.data").forEach(function (element) {
      tables.push({ kpi: element.getAttribute("data-kpi"), total: Number(element.getAttribute("data-total")),
                    rows: element.querySelectorAll("tbody tr").length,
                    summary: element.querySelector("summary").textContent.trim() });
    });
    var empty = [];
    document.querySelectorAll(".no-data").forEach(function (element) {
      var size = box(element);
      empty.push({ kpi: element.getAttribute("data-kpi"), text: element.textContent.trim(),
                   width: size.width, height: size.height });
    });
    var root = document.documentElement;
    var styled = getComputedStyle(root).getPropertyValue("--accent").trim() !== "";
    document.getElementById("render-check").textContent = JSON.stringify({
      charts: charts, empty: empty, tables: tables, violations: violations, styled: styled,
      page: { width: root.scrollWidth, height: root.scrollHeight }
    });
  }
  window.addEventListener("load", measure);
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Nothing may be loaded: no script, style, font or image but the inline ones named by their hashes.
CSP = (
    f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(RENDER_CHECK)}; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def _summary(kpis: Sequence[ReportKpi]) -> str:
    counts: dict[str, int] = {}
    for kpi in kpis:
        counts[kpi.freshness] = counts.get(kpi.freshness, 0) + 1
    order = {"ok": 0, "warn": 1, "bad": 2, "never": 3, "none": 4}
    items = sorted(counts.items(), key=lambda item: (order[freshness_class(item[0])], item[0]))
    return (
        '<ul class="summary">'
        + "".join(f"<li>{_badge(freshness, f'{count} {freshness or _UNKNOWN}')}</li>" for freshness, count in items)
        + "</ul>"
    )


def render_report(kpis: Sequence[ReportKpi], *, title: str, generated_at: datetime, note: str = "") -> str:
    """The whole report as one HTML document (UTF-8 text; write it with ``encoding="utf-8"``).

    ``note`` is a line under the title, e.g. the clock freshness was judged by when it is not ``generated_at``.
    """
    anchors = _anchors(kpi.name for kpi in kpis)
    toc = "\n".join(
        f'<li><a href="#{anchor}">{_e(kpi.name)}</a> {_badge(kpi.freshness)}'
        + (f' <span class="muted">{_e(kpi.description.splitlines()[0])}</span>' if kpi.description.strip() else "")
        + "</li>"
        for kpi, anchor in zip(kpis, anchors, strict=True)
    )
    count = f"{len(kpis)} KPI" + ("" if len(kpis) == 1 else "s")
    body = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light">',
        f'<meta name="generator" content="kpi-pipeline report, {_e(_when(generated_at))}">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style>",
        f"<script>{RENDER_CHECK}</script>",
        "</head>",
        "<body>",
        "<main>",
        '<header class="page-head">',
        f"<h1>{_e(title)}</h1>",
        f"<p>Generated {_e(_when(generated_at))} · {_e(count)}</p>",
        f'<p class="page-note">{_e(note)}</p>' if note else "",
        _summary(kpis) if kpis else "",
        "</header>",
        '<nav class="toc"><h2>Contents</h2>',
        f"<ol>\n{toc}\n</ol>" if kpis else '<p class="muted">No KPIs.</p>',
        "</nav>",
        *(_section(kpi, anchor) for kpi, anchor in zip(kpis, anchors, strict=True)),
        "<footer>kpi-pipeline · a static page: no server, no network; hover a chart for values.</footer>",
        "</main>",
        '<pre id="render-check" hidden></pre>',
        "</body>",
        "</html>",
    ]
    return "\n".join(part for part in body if part) + "\n"
