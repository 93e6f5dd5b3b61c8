"""The report's charts: a chart model drawn as inline SVG — a chart per measure, a series per dimension value,
marks, the caption under them, and the data table of the warehouse's rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeline.core.chart import MeasureChart
from pipeline.report.axes import Tick, x_ticks, y_ticks
from pipeline.report.kpi import ReportKpi
from pipeline.report.text import (
    CHAR_WIDTH,
    clean,
    coord,
    esc,
    fit,
    format_moment,
    format_number,
    format_value,
)

PALETTE = ("#2f6fb0", "#e0772e", "#3a9a5b", "#c8414b", "#8a62b8", "#8c6d4f", "#d35fb7", "#6b7280", "#b39a1b")
WIDTH = 800
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP = 58, 18, 34
LINE_HEIGHT, BAR_HEIGHT = 190, 220
MARKERS_UP_TO = 45  # lines over at most this many labels also get a dot per point
HOVER_UP_TO = 500  # labels per chart with a hover band and tooltip; beyond, the data table has the values


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
        parts.append(f'<rect x="{coord(x)}" y="{y}" width="12" height="12" rx="2" fill="{colours[name]}"/>')
        tspan = f'<tspan class="legend-note" dx="6">{esc(note)}</tspan>' if note else ""
        parts.append(f'<text class="legend-name" x="{coord(x + 17)}" y="{y + 10}">{esc(name)}{tspan}</text>')
    parts.append("</g>")
    return parts


def _axes(panel: _Panel, labels: Sequence[str], parsed_ticks: Sequence[Tick]) -> list[str]:
    out = ['<g class="grid">']
    for value in panel.ticks:
        y = coord(panel.y(value))
        zero = " zero" if value == 0 else ""
        out.append(f'<line class="gridline{zero}" x1="{panel.left}" x2="{panel.right}" y1="{y}" y2="{y}"/>')
    if panel.kind == "line":
        for tick in parsed_ticks:
            at = coord(panel.x(tick.index))
            out.append(f'<line class="gridline vertical" x1="{at}" x2="{at}" y1="{panel.top}" y2="{panel.bottom}"/>')
    out.append("</g>")
    out.append('<g class="axis y-axis">')
    for value in panel.ticks:
        out.append(
            f'<text class="y-tick" x="{panel.left - 8}" y="{coord(panel.y(value) + 4)}" text-anchor="end">'
            f"{esc(format_number(value))}</text>"
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
        text = fit(tick.text, panel.band * (_ticks_gap(parsed_ticks)) - 4) if panel.kind == "bar" else tick.text
        full = esc(labels[tick.index])
        out.append(f'<line class="tick" x1="{coord(x)}" x2="{coord(x)}" y1="{panel.bottom}" y2="{panel.bottom + 4}"/>')
        out.append(
            f'<text class="x-tick" x="{coord(x)}" y="{panel.bottom + 16}" text-anchor="{anchor}">'
            f"<title>{full}</title>{esc(text)}</text>"
        )
        if tick.context:
            out.append(
                f'<text class="x-context" x="{coord(x)}" y="{panel.bottom + 29}" text-anchor="{anchor}">'
                f"{esc(tick.context)}</text>"
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
        base = coord(panel.y(max(panel.low, min(0.0, panel.high))))
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{coord(panel.x(i))},{coord(panel.y(v))}" for i, v in run)
                first, last = coord(panel.x(run[0][0])), coord(panel.x(run[-1][0]))
                out.append(f'<polygon class="area" points="{first},{base} {points} {last},{base}" fill="{colour}"/>')
    out.append(f'<g class="series" data-series="{esc(name)}" stroke="{colour}" fill="{colour}">')
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{coord(panel.x(i))},{coord(panel.y(v))}" for i, v in run)
            out.append(f'<polyline class="line" points="{points}" fill="none"/>')
    for run in runs:
        # Dots where there are few points, and always for a point with no neighbour (a line needs two).
        if panel.count <= MARKERS_UP_TO or len(run) == 1:
            radius = "2.5" if len(run) > 1 else "3.5"
            for i, v in run:
                out.append(f'<circle class="dot" cx="{coord(panel.x(i))}" cy="{coord(panel.y(v))}" r="{radius}"/>')
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
        out.append(f'<g class="series" data-series="{esc(name)}" fill="{colours[name]}">')
        for i, value in enumerate(series[name]):
            if value is None:
                continue
            x = panel.left + panel.band * i + (panel.band - group_width) / 2 + m * width
            y = panel.y(value)
            top, height = min(y, zero), abs(zero - y)
            if height < 1:  # a zero still shows, as a hairline on the axis
                top, height = zero - 1, 1.0
            out.append(
                f'<rect class="bar" x="{coord(x + 0.5)}" y="{coord(top)}" width="{coord(max(1.0, width - 1))}" '
                f'height="{coord(height)}"/>'
            )
            if labels_fit:
                label_y = top - 5 if value >= 0 else top + height + 13
                value_labels.append(
                    f'<text class="bar-value" x="{coord(x + width / 2)}" y="{coord(label_y)}" text-anchor="middle">'
                    f"{esc(format_number(value))}</text>"
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
            f'<rect class="hit" x="{coord(x0)}" y="{panel.top}" width="{coord(x1 - x0)}" '
            f'height="{coord(panel.bottom - panel.top)}"><title>{esc(tip)}</title></rect>'
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
    names = [name for name in chart.series if any(v is not None for v in clean(chart.series[name]))]
    series = {name: clean(chart.series[name]) for name in names}
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
        f'<svg class="chart chart-{model.kind}" data-kpi="{esc(kpi.name)}" data-measures="{esc(chart.measure)}" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {panel.height}" width="{WIDTH}" '
        f'height="{panel.height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
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
        x = coord(panel.x(i))
        tip = f"{mark.x} · {mark.series}: {format_value(value)} — {mark.label}"
        if mark.expected is not None:
            low, high = sorted(mark.expected)
            tip += f" (expected {format_value(low)} to {format_value(high)})"
            out.append(
                f'<line class="expected" x1="{x}" x2="{x}" y1="{coord(panel.y(low))}" y2="{coord(panel.y(high))}"/>'
            )
        out.append(
            f'<circle class="mark" cx="{x}" cy="{coord(panel.y(value))}" r="6"><title>{esc(tip)}</title></circle>'
        )
    out.append("</g>")
    return out


def _column_note(kpi: ReportKpi, measure: str) -> str:
    description = next((c.description for c in kpi.columns if c.name == measure), "")
    return f'<p class="chart-title"><strong>{esc(measure)}</strong>' + (
        f' <span class="muted">— {esc(description)}</span></p>' if description else "</p>"
    )


def charts_html(kpi: ReportKpi) -> str:
    model = kpi.chart
    drawn = [c for c in model.charts if any(v is not None for vs in c.series.values() for v in clean(vs))]
    if not model.labels or not drawn:
        if kpi.last_loaded is None:
            why = "this KPI has never been loaded"
        elif kpi.rows == 0 and model.table.total == 0:
            why = "its loads so far returned no rows"
        else:
            why = "no values to draw"
        return (
            f'<div class="no-data" data-kpi="{esc(kpi.name)}"><strong>No rows loaded</strong>'
            f'<span class="muted"> — {esc(why)}.</span></div>\n' + _data_table(kpi)
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
        parts.append(f'<p class="chart-note">No values for {esc(", ".join(empty))}.</p>')
    parts.append(f'<p class="chart-caption">{esc(model.caption)}</p>')
    note = _marks_note(drawn)
    if note:
        parts.append(f'<p class="chart-caption marks-note">{esc(note)}</p>')
    parts.append("</div>")
    parts.append(_data_table(kpi))
    return "\n".join(parts)


def _marks_note(charts: Sequence[MeasureChart]) -> str:
    """What the rings mean, in words: ``Ringed: 3 anomalies — orders 2026-11-29 cancelled (spike: 9.0σ above
    expected), …; the line through each ring is its expected range.``"""
    marks = [(chart.measure, mark) for chart in charts for mark in chart.marks]
    if not marks:
        return ""
    named = "; ".join(f"{measure} {mark.x} {mark.series} ({mark.label})" for measure, mark in marks[:6])
    more = f"; and {len(marks) - 6} more" if len(marks) > 6 else ""
    return (
        f"Ringed: {len(marks)} anomal{'y' if len(marks) == 1 else 'ies'} found by the anomaly scoring — {named}{more}."
        " The line through each ring is the range its history expected."
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return esc("NULL" if value is None else str(value).lower())
    if isinstance(value, int | float | Decimal):
        return f'<td class="num">{esc(format_value(float(value)))}</td>'
    if isinstance(value, datetime):
        return esc(format_moment(value) if value.tzinfo else value.isoformat(sep=" "))
    return esc(value.isoformat() if hasattr(value, "isoformat") else str(value))


def _data_table(kpi: ReportKpi) -> str:
    table = kpi.chart.table
    if not table.columns:
        return ""
    shown, total = len(table.rows), table.total
    what = f"all {total:,} rows" if shown == total else f"the newest {shown:,} of {total:,} rows"
    if total <= 1:
        what = "its 1 row" if total == 1 else "no rows"
    rows = []
    for row in table.rows:
        cells = [_cell(value) for value in row]
        rows.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        f'<details class="data" data-kpi="{esc(kpi.name)}" data-total="{total}"><summary>Data: {what} in the '
        f'warehouse</summary><div class="scroll"><table><thead><tr>'
        + "".join(f"<th>{esc(name)}</th>" for name in table.columns)
        + "</tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table></div></details>"
    )
