"""The KPI report: one self-contained HTML file with a chart per KPI, its description, owner, columns and freshness.

Why static, inline SVG drawn here in Python rather than a JavaScript charting library or a dashboard server:

* nothing to run — the file opens from a ``file://`` URL, from an artifact store, from a shared drive;
* nothing to fetch — no CDN, web font or script is loaded (the page's Content-Security-Policy forbids it), so it
  works offline, behind a proxy, and still looks the same in a year, when a CDN URL may be gone;
* it survives being an email attachment or a CI artifact: one file, no folder of assets beside it;
* the charts are there with JavaScript disabled (mail clients, locked-down browsers, print to PDF), because the
  SVG is in the HTML. The only script is a tiny optional one that measures the drawn charts and writes the result
  into a hidden ``<pre id="render-check">`` for the headless-browser acceptance test; the page needs none of it.

Measures of very different size (orders ~500 a day, sales ~30,000,000 JPY) are drawn as small multiples — one
short chart per group of comparable measures, each with its own y axis in real units — rather than normalised or
on two y axes; ``group_measures`` says why.

The output is deterministic — the same input gives the same bytes — so a report can be diffed, cached or
attached to a pull request without churn. This module is pure: it takes values and returns a string; the caller
reads the warehouse and writes the file. The charts drawn are marked ``<svg class="chart" data-kpi="NAME">``,
each drawn measure ``class="series"``; an empty KPI gets a ``class="no-data"`` message instead of a chart.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

__all__ = [
    "Chart",
    "Column",
    "ReportKpi",
    "Tick",
    "format_number",
    "format_value",
    "freshness_class",
    "group_measures",
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
class Chart:
    kind: str  # "line" (time series) or "bar" (snapshot categories)
    labels: tuple[str, ...]  # x labels in order: "2024-03-01", "2024-03-01T09", "2024-03", or categories
    series: Mapping[str, Sequence[float | None]]  # measure name → one value per label (None = no data)

    def __post_init__(self) -> None:
        if self.kind not in ("line", "bar"):
            raise ValueError(f"chart kind must be 'line' or 'bar', not {self.kind!r}")
        for measure, values in self.series.items():
            if len(values) != len(self.labels):
                raise ValueError(
                    f"measure {measure!r} has {len(values)} values for {len(self.labels)} labels (one per label)"
                )


@dataclass(frozen=True)
class ReportKpi:
    name: str
    description: str
    owner: str
    grain: str
    time_column: str | None
    columns: tuple[Column, ...]
    chart: Chart
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
# Which measures share a chart

SCALE_RATIO = 5.0


def group_measures(series: Mapping[str, Sequence[float | None]]) -> list[list[str]]:
    """Measures drawn together: those within a factor of ``SCALE_RATIO`` of each other in size share one chart.

    A dashboard reader compares a line with the axis beside it. Two measures of very different size on one axis
    (orders ~500 and sales ~30,000,000 JPY) flatten the small one into the baseline; a second y axis invites
    comparing the heights of lines that mean nothing together; normalising (index = 100, or 0–1) throws away the
    numbers that people quote. So each KPI gets *small multiples*: one short chart per group of comparable
    measures, stacked on the same x axis, each with its own y axis in real units. Measures of similar size
    (paid and refunded orders) stay together, so they can be compared where comparing makes sense.

    Size is the largest absolute value. Measures that are all zero fit anywhere (they join the first group);
    measures with no values at all are not drawn, and are left out here.
    """
    groups: list[list[str]] = []
    sizes: list[list[float]] = []
    for name, raw in series.items():
        values = [v for v in _clean(raw) if v is not None]
        if not values:
            continue
        size = max(abs(v) for v in values)
        for group, group_sizes in zip(groups, sizes, strict=True):
            nonzero = [s for s in [*group_sizes, size] if s > 0]
            if not nonzero or max(nonzero) <= SCALE_RATIO * min(nonzero):
                group.append(name)
                group_sizes.append(size)
                break
        else:
            groups.append([name])
            sizes.append([size])
    return groups


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


def _starts_at_zero(kind: str, values: Sequence[float]) -> bool:
    """Bars always stand on zero. Lines do when zero costs less than half the height (it keeps sizes honest);
    a measure that moves in a narrow band far from zero gets an axis around its data, or it would look flat."""
    if kind == "bar":
        return True
    low, high = min(values), max(values)
    if low >= 0:
        return low <= high / 2
    if high <= 0:
        return high >= low / 2
    return True


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


def _panel_svg(
    kpi: ReportKpi,
    measures: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    colours: Mapping[str, str],
) -> str:
    chart = kpi.chart
    labels = chart.labels
    values = [v for name in measures for v in series[name] if v is not None]
    latest = {name: _latest(series[name], labels) for name in measures} if chart.kind == "line" else {}
    places = _legend_places(measures, latest)
    legend_rows = 1 + max(row for _, row in places)
    panel = _Panel(chart.kind, len(labels), values, _starts_at_zero(chart.kind, values), legend_rows)
    plot_width = panel.right - panel.left
    if chart.kind == "bar":
        longest = max(len(label) for label in labels)
        per_label = max(1, math.ceil((min(longest, 14) * CHAR_WIDTH + 8) / panel.band))
        ticks = [Tick(i, labels[i], "") for i in range(0, len(labels), per_label)]
    else:
        ticks = x_ticks(labels, max(2, int(plot_width // 78)))
    what = " and ".join(measures)
    by = "by category" if chart.kind == "bar" else f"by {kpi.grain}" if kpi.grain else "over time"
    out = [
        f'<svg class="chart chart-{chart.kind}" data-kpi="{_e(kpi.name)}" data-measures="{_e(",".join(measures))}" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {panel.height}" width="{WIDTH}" '
        f'height="{panel.height}" role="img" aria-label="{_e(f"{kpi.name}: {what} {by}")}">',
        f"<title>{_e(f'{kpi.name}: {what} {by}')}</title>",
    ]
    out += _legend(measures, colours, latest, places)
    out += _axes(panel, labels, ticks)
    if chart.kind == "bar":
        out += _bar_series(panel, measures, series, colours)
    else:
        area = len(measures) == 1 and panel.low <= 0 <= panel.high
        for name in measures:
            out += _line_series(panel, name, series[name], colours[name], area)
    out += _hover(panel, labels, measures, series)
    out.append("</svg>")
    return "\n".join(out)


def _charts_html(kpi: ReportKpi) -> str:
    chart = kpi.chart
    series = {name: _clean(values) for name, values in chart.series.items()}
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    groups = group_measures(series) if chart.labels else []
    if not groups:
        if kpi.last_loaded is None:
            why = "this KPI has never been loaded"
        elif kpi.rows == 0:
            why = "its loads so far returned no rows"
        else:
            why = "no values to draw"
        return (
            f'<div class="no-data" data-kpi="{_e(kpi.name)}"><strong>No rows loaded</strong>'
            f'<span class="muted"> — {_e(why)}.</span></div>'
        )
    parts = ['<div class="charts">']
    if len(groups) > 1:
        parts.append(
            '<p class="chart-note">The measures differ in size, so each has its own chart and y axis '
            "(same time axis).</p>"
        )
    parts += [_panel_svg(kpi, group, series, colours) for group in groups]
    empty = [name for name in series if not any(v is not None for v in series[name])]
    if empty:
        parts.append(f'<p class="chart-note">No values for {_e(", ".join(empty))}.</p>')
    parts.append("</div>")
    parts.append(_data_table(chart.labels, series, chart.kind))
    return "\n".join(parts)


def _data_table(labels: Sequence[str], series: Mapping[str, Sequence[float | None]], kind: str) -> str:
    head = "Category" if kind == "bar" else "Partition"
    rows = [
        "<tr><td>"
        + _e(label)
        + "</td>"
        + "".join(f'<td class="num">{_e(format_value(series[name][i]))}</td>' for name in series)
        + "</tr>"
        for i, label in enumerate(labels)
    ]
    return (
        f'<details class="data"><summary>Data ({len(labels)} {"rows" if len(labels) != 1 else "row"})</summary>'
        f'<div class="scroll"><table><thead><tr><th>{head}</th>'
        + "".join(f'<th class="num">{_e(name)}</th>' for name in series)
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
    if moment is None:
        return "never"
    offset = moment.utcoffset()
    text = moment.replace(tzinfo=None, microsecond=0).isoformat(sep=" ")
    if offset is None:
        return text
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
        ("Rows", _e(f"{kpi.rows:,}")),
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
                    width: size.width, height: size.height, series: series });
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
      charts: charts, empty: empty, violations: violations, styled: styled,
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


def render_report(kpis: Sequence[ReportKpi], *, title: str, generated_at: datetime) -> str:
    """The whole report as one HTML document (UTF-8 text; write it with ``encoding="utf-8"``)."""
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
