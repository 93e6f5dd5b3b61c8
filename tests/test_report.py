"""The static HTML report: numbers, axes, escaping, determinism, and — in headless Chromium — that every chart drew.

The browser test keeps a full-page screenshot at ``tests/artifacts/report.png`` (git-ignored) to look at.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.core.chart import ChartModel, Mark, MeasureChart, Table, add_marks
from pipeline.report import (
    Column,
    Lineage,
    ReportKpi,
    Tick,
    format_number,
    format_value,
    render_report,
    x_ticks,
    y_ticks,
)
from tests.browser import INSTALL, BrowserError, find_chromium, render_page

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
GENERATED = datetime(2024, 4, 30, 6, 15, 0, tzinfo=UTC)


Values = list[float | None]


def line(
    labels: tuple[str, ...],
    measures: Mapping[str, Mapping[str, Sequence[float | None]]],
    *,
    by: str | None = None,
    rows: int = 0,
) -> ChartModel:
    """A line model: measure → series → values (the chart model's tests build these from warehouse rows)."""
    charts = tuple(MeasureChart(m, {n: tuple(v) for n, v in series.items()}) for m, series in measures.items())
    table = Table(("label", "value"), tuple((labels[i % len(labels)], i) for i in range(rows)), rows)
    return ChartModel("line", labels, charts, f"caption of {by or 'measures'}", table, by, "Asia/Tokyo, JST")


def bars(
    labels: tuple[str, ...], measures: Mapping[str, Sequence[float | None]], *, by: str | None = None
) -> ChartModel:
    charts = tuple(MeasureChart(m, {m: tuple(v)}) for m, v in measures.items())
    return ChartModel("bar", labels, charts, "caption of bars", Table(("k",), (), 0), by)


def per_measure(kind: str, labels: tuple[str, ...], series: Mapping[str, Sequence[float | None]]) -> ChartModel:
    """Each measure its own chart with one series named after it (a KPI without dimensions)."""
    if kind == "bar":
        return bars(labels, series)
    return line(labels, {m: {m: v} for m, v in series.items()})


def _kpi(name: str, chart: ChartModel, **changes: Any) -> ReportKpi:
    kpi = ReportKpi(
        name=name,
        description=f"{name} for the tests",
        owner="growth-team",
        grain="day",
        time_column="sales_date",
        columns=(Column("sales_date", "DATE", "JST calendar day"), Column("orders", "INT64", "Number of orders")),
        chart=chart,
        freshness="fresh",
        last_partition=chart.labels[-1] if chart.labels else None,
        last_loaded=GENERATED - timedelta(hours=1),
        rows=len(chart.labels),
    )
    return replace(kpi, **changes)


def _days(start: datetime, count: int) -> tuple[str, ...]:
    return tuple((start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(count))


def _hours(start: datetime, count: int) -> tuple[str, ...]:
    return tuple((start + timedelta(hours=i)).strftime("%Y-%m-%dT%H") for i in range(count))


def five_kpis() -> list[ReportKpi]:
    """The acceptance set: daily by status (orders ~500, sales ~30M, a gap of two days), hourly with two measures,
    monthly, snapshot bars by plan (30 rows in its table), empty."""
    days = _days(datetime(2024, 3, 1), 60)
    orders: Values = [480 + 60 * math.sin(i / 3) + (i % 7) * 9 for i in range(60)]
    sales: Values = [29_000_000 + 2_500_000 * math.sin(i / 5) + i * 40_000 for i in range(60)]
    orders[20] = orders[21] = sales[20] = sales[21] = None  # two days not loaded
    cancelled = [None if v is None else round(v / 10) for v in orders]
    cancelled_sales = [None if v is None else round(v / 12) for v in sales]
    hours = _hours(datetime(2024, 4, 27), 72)
    hourly: Values = [round(20 + 15 * math.sin((i - 6) * math.pi / 12) ** 2 + (i % 5), 1) for i in range(72)]
    buyers_hourly: Values = [None if v is None else v - 3 for v in hourly]
    months = ("2023-05", "2023-06", "2023-07", "2023-08", "2023-09", "2023-10", "2023-11", "2023-12", "2024-01")
    buyers: Values = [1200.0, 1320, 1290, 1500, 1610, 1580, 1745, 2100, 1980]
    users_table = Table(
        ("country", "plan", "users"),
        tuple((f"c{i:02d}", plan, 10 * i) for i in range(10) for plan in ("free", "pro", "enterprise")),
        30,
    )
    return [
        _kpi(
            "daily_sales",
            line(
                days,
                {
                    "orders": {"paid": orders, "cancelled": cancelled},
                    "sales": {"paid": sales, "cancelled": cancelled_sales},
                },
                by="status",
                rows=58 * 2,
            ),
            description="Orders and sales per JST day and status",
            columns=(
                Column("sales_date", "DATE", "JST calendar day"),
                Column("status", "STRING", "Order status (paid / refunded / cancelled)"),
                Column("orders", "INT64", "Number of orders"),
                Column("sales", "NUMERIC", "Sum of amount in JPY"),
            ),
            rows=58 * 3,
        ),
        _kpi(
            "hourly_orders",
            line(hours, {"orders": {"orders": hourly}, "buyers": {"buyers": buyers_hourly}}, rows=72),
            grain="hour",
            time_column="order_hour",
            description="Orders per JST hour",
            columns=(Column("order_hour", "DATETIME", "Start of the JST hour"), Column("orders", "INT64", "Orders")),
            freshness="stale (warn)",
        ),
        _kpi(
            "monthly_active_buyers",
            line(months, {"buyers": {"buyers": buyers}}, rows=9),
            grain="month",
            time_column="month",
            description="Distinct buyers per month",
            columns=(Column("month", "DATE", "First day of the month"), Column("buyers", "INT64", "Distinct buyers")),
            freshness="stale (error)",
        ),
        _kpi(
            "users_by_plan",
            replace(
                bars(("free", "pro", "enterprise", "trial"), {"users": [18_340.0, 4_120, 310, 0]}, by="plan"),
                table=users_table,
            ),
            grain="snapshot",
            time_column=None,
            description="Users per plan, as of the last load",
            columns=(Column("plan", "STRING", "Plan name"), Column("users", "INT64", "Users on the plan")),
            last_partition=None,
            rows=30,
        ),
        _kpi(
            "large_orders",
            line((), {}),
            description="Orders over 50,000 JPY",
            freshness="never loaded",
            last_partition=None,
            last_loaded=None,
            rows=0,
        ),
    ]


def _render(kpis: list[ReportKpi]) -> str:
    return render_report(kpis, title="KPI report", generated_at=GENERATED)


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg class=\"chart.*?</svg>", page, flags=re.DOTALL)


# --- numbers and axes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (7, "7"),
        (999, "999"),
        (1_500, "1.5k"),
        (12_000, "12k"),
        (12_345, "12.3k"),
        (250_000, "250k"),
        (999_950, "1M"),
        (3_400_000, "3.4M"),
        (30_000_000, "30M"),
        (1_230_000_000, "1.23B"),
        (5e12, "5T"),
        (-2_500, "-2.5k"),
        (0.25, "0.25"),
        (0.1 + 0.2, "0.3"),
        (1.5e16, "1.5e+16"),
        (float("nan"), "n/a"),
    ],
)
def test_format_number_is_compact(value: float, text: str) -> None:
    assert format_number(value) == text


def test_format_value_is_exact_for_tables() -> None:
    assert format_value(30_123_456) == "30,123,456"
    assert format_value(1234.5) == "1,234.5"
    assert format_value(0.01234) == "0.0123"
    assert format_value(None) == "—"


def test_y_ticks_are_round_and_cover_the_data() -> None:
    assert y_ticks(0, 31_800_000, include_zero=True) == [0, 10_000_000, 20_000_000, 30_000_000, 40_000_000]
    assert y_ticks(26_500_000, 33_800_000, include_zero=False) == [
        26_000_000,
        28_000_000,
        30_000_000,
        32_000_000,
        34_000_000,
    ]
    assert y_ticks(0, 0, include_zero=True) == [0, 0.25, 0.5, 0.75, 1]  # all zero: an axis, not a division by zero
    assert [format_number(v) for v in y_ticks(0, 0.9, include_zero=True)] == ["0", "0.25", "0.5", "0.75", "1"]
    assert y_ticks(-30, 50, include_zero=False) == [-40, -20, 0, 20, 40, 60]


def test_sixty_days_get_a_tick_per_monday_with_the_year_once() -> None:
    labels = _days(datetime(2024, 3, 1), 60)  # Fri 1 March … Mon 29 April 2024
    ticks = x_ticks(labels, 9)
    assert [labels[t.index] for t in ticks] == [
        "2024-03-04",
        "2024-03-11",
        "2024-03-18",
        "2024-03-25",
        "2024-04-01",
        "2024-04-08",
        "2024-04-15",
        "2024-04-22",
        "2024-04-29",
    ]
    assert ticks[0] == Tick(3, "Mar 4", "2024")
    assert [t.context for t in ticks[1:]] == [""] * 8
    assert x_ticks(labels, 5)[0].text == "Mar 4"
    assert len(x_ticks(labels, 5)) == 5  # every other Monday


def test_hours_are_thinned_to_round_hours_and_name_the_day() -> None:
    three_days = _hours(datetime(2024, 3, 1), 72)
    assert [(t.text, t.context) for t in x_ticks(three_days, 8)] == [
        ("00:00", "Mar 1 2024"),
        ("12:00", ""),
        ("00:00", "Mar 2"),
        ("12:00", ""),
        ("00:00", "Mar 3"),
        ("12:00", ""),
    ]
    sixty_days = _hours(datetime(2024, 3, 1), 1440)
    ticks = x_ticks(sixty_days, 9)
    assert 4 <= len(ticks) <= 9
    assert all(sixty_days[t.index].endswith("T00") for t in ticks)


def test_months_and_years_and_categories() -> None:
    months = tuple(f"{2022 + i // 12}-{i % 12 + 1:02d}" for i in range(24))
    assert [(t.text, t.context) for t in x_ticks(months, 9)] == [
        ("Jan", "2022"),
        ("Apr", ""),
        ("Jul", ""),
        ("Oct", ""),
        ("Jan", "2023"),
        ("Apr", ""),
        ("Jul", ""),
        ("Oct", ""),
    ]
    categories = tuple(f"c{i}" for i in range(30))
    assert [t.index for t in x_ticks(categories, 6)] == [0, 5, 10, 15, 20, 25]


def test_each_measure_has_its_own_chart_and_each_dimension_value_its_colour() -> None:
    labels = ("2024-03-01", "2024-03-02")
    model = line(
        labels,
        {
            "orders": {"paid": [500, 520], "refunded": [12, 13]},
            "sales": {"paid": [30_000_000, 31_000_000], "refunded": [None, None]},
            "missing": {"paid": [None, None]},
        },
        by="status",
    )
    page = _render([_kpi("k", model)])
    svgs = _svgs(page)
    assert [re.findall(r'data-measures="([^"]*)"', svg) for svg in svgs] == [["orders"], ["sales"]]
    assert re.findall(r'data-series="([^"]*)"', svgs[0]) == ["paid", "refunded"]
    assert re.findall(r'data-series="([^"]*)"', svgs[1]) == ["paid"]  # refunded has no value to draw there
    colour = re.compile(r'data-series="paid" stroke="(#[0-9a-f]+)"')
    assert colour.findall(svgs[0]) == colour.findall(svgs[1])  # paid is one colour in every chart of the KPI
    assert "No values for missing." in page
    assert '<p class="chart-caption">caption of status</p>' in page
    assert "<title>k: orders by status per day (Asia/Tokyo, JST)</title>" in svgs[0]


# --- the page ------------------------------------------------------------------------------------------------


def test_text_is_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script> & "quotes"'
    chart = per_measure("bar", (evil,), {evil: [1.0]})
    kpi = _kpi(
        "k<i>",
        chart,
        description=evil,
        owner=evil,
        columns=(Column(evil, evil, evil),),
        freshness=evil,
        last_partition=evil,
    )
    page = render_report([kpi], title=evil, generated_at=GENERATED)
    assert "<script>alert" not in page
    assert "<i>" not in page
    assert page.count("<script>") == 1  # the render check, and nothing else
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert 'data-kpi="k&lt;i&gt;"' in page
    assert 'id="kpi-k-i"' in page


def test_page_is_self_contained() -> None:
    page = _render(five_kpis())
    assert not re.search(r"(?:src|href)=\"(?!#)", page)  # only in-page links
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert "@import" not in page
    assert "url(" not in page
    assert "default-src &#x27;none&#x27;; style-src &#x27;sha256-" in page  # an attribute: quotes escaped


def test_sections_show_metadata_and_columns() -> None:
    page = _render(five_kpis())
    toc = page[page.index('<nav class="toc">') : page.index("</nav>")]
    assert re.findall(r'href="#(kpi-[a-z_]+)"', toc) == [
        "kpi-daily_sales",
        "kpi-hourly_orders",
        "kpi-monthly_active_buyers",
        "kpi-users_by_plan",
        "kpi-large_orders",
    ]
    daily = page[page.index('id="kpi-daily_sales"') : page.index('id="kpi-hourly_orders"')]
    assert '<span class="badge ok">fresh</span>' in daily
    assert "<dt>Owner</dt><dd>growth-team</dd>" in daily
    assert "<dt>Last partition</dt><dd>2024-04-29</dd>" in daily
    assert "<dt>Rows in last partition</dt><dd>174</dd>" in daily
    assert "<dt>Last loaded</dt><dd>2024-04-30 05:15:00 UTC</dd>" in daily
    assert "<tr><td><code>sales</code></td><td><code>NUMERIC</code></td><td>Sum of amount in JPY</td></tr>" in daily
    assert '<code>sales_date</code> <span class="tag">time</span>' in daily
    assert '<span class="badge warn">stale (warn)</span>' in page
    assert '<span class="badge bad">stale (error)</span>' in page
    assert '<span class="badge never">never loaded</span>' in page
    assert "Generated 2024-04-30 06:15:00 UTC · 5 KPIs" in page


def test_a_section_shows_its_lineage_escaped_and_none_when_unknown() -> None:
    (first, second, *_) = five_kpis()
    lineage = Lineage((("sales_date", ("orders.created_at",)), ("orders", ())), ("orders.created_at", "o<x>.id"))
    page = _render([replace(first, lineage=lineage), second])
    daily = page[page.index('id="kpi-daily_sales"') : page.index('id="kpi-hourly_orders"')]
    assert daily.index("<h3>Columns</h3>") < daily.index("<h3>Lineage</h3>")
    assert (
        "<tr><td><code>sales_date</code></td><td><code>orders.created_at</code></td></tr>\n"
        '<tr><td><code>orders</code></td><td><span class="muted">no column: counted or constant</span></td></tr>'
    ) in daily
    assert "The query reads <code>orders.created_at</code>, <code>o&lt;x&gt;.id</code>." in daily
    assert "Lineage" not in page[page.index('id="kpi-hourly_orders"') :]  # not known: nothing said


def test_daily_chart_is_a_chart_per_measure_from_zero_and_thinned() -> None:
    page = _render(five_kpis()[:1])
    orders, sales = _svgs(page)
    assert 'data-measures="orders"' in orders
    assert 'data-measures="sales"' in sales
    assert orders.count('class="x-tick"') == 9  # 60 days, one label per Monday
    assert re.findall(r'class="y-tick"[^>]*>([^<]+)<', sales) == ["0", "10M", "20M", "30M", "40M"]  # from zero
    assert re.findall(r'class="y-tick"[^>]*>([^<]+)<', orders) == ["0", "200", "400", "600"]
    assert orders.count("<polyline") == 4  # the gap of two days splits each status's line in two
    assert re.findall(r'class="legend-name"[^>]*>([^<]+)<', orders) == ["paid", "cancelled"]  # a line per status
    assert re.findall(r'<tspan class="legend-note" dx="6">([^<]+)</tspan>', sales) == [
        "latest 29.6M (2024-04-29)",
        "latest 2.47M (2024-04-29)",
    ]
    assert '<p class="chart-title"><strong>sales</strong> <span class="muted">— Sum of amount in JPY</span></p>' in page


def test_single_point_and_all_zero_are_drawn() -> None:
    single = _render([_kpi("one", per_measure("line", ("2024-03-01",), {"orders": [5.0]}))])
    (svg,) = _svgs(single)
    assert "<polyline" not in svg
    assert re.search(r'<circle class="dot" cx="420" cy="[\d.]+" r="3.5"/>', svg)  # in the middle of the axis
    zeros = _render([_kpi("zero", per_measure("line", _days(datetime(2024, 3, 1), 5), {"orders": [0.0] * 5}))])
    (svg,) = _svgs(zeros)
    assert re.findall(r'class="y-tick"[^>]*>([^<]+)<', svg) == ["0", "0.25", "0.5", "0.75", "1"]
    assert re.search(r'<polyline class="line" points="58,152( [\d.]+,152){4}"', svg)  # flat on the zero line


def test_empty_chart_shows_a_message_instead() -> None:
    page = _render(five_kpis()[4:])
    assert _svgs(page) == []
    assert '<div class="no-data" data-kpi="large_orders"><strong>No rows loaded</strong>' in page
    assert "this KPI has never been loaded" in page
    all_none = _render([_kpi("gaps", per_measure("line", ("2024-03-01", "2024-03-02"), {"orders": [None, None]}))])
    assert _svgs(all_none) == []
    assert "no values to draw" in all_none


def test_snapshot_bars() -> None:
    page = _render(five_kpis()[3:4])
    (svg,) = _svgs(page)
    assert 'class="chart chart-bar"' in svg
    assert svg.count('<rect class="bar"') == 4
    assert re.findall(r'class="x-tick"[^>]*><title>[^<]*</title>([^<]+)<', svg) == [
        "free",
        "pro",
        "enterprise",
        "trial",
    ]
    assert re.findall(r'class="bar-value"[^>]*>([^<]+)<', svg) == ["18.3k", "4.12k", "310", "0"]
    assert re.findall(r'class="y-tick"[^>]*>([^<]+)<', svg) == ["0", "5k", "10k", "15k", "20k"]
    heights = [float(h) for h in re.findall(r'<rect class="bar" [^>]*height="([\d.]+)"', svg)]
    assert heights[0] > heights[1] > heights[2] > heights[3] == 1  # a zero is a hairline on the axis


def test_same_input_same_bytes() -> None:
    assert _render(five_kpis()) == _render(five_kpis())
    assert _render(five_kpis()).encode() == _render(list(five_kpis())).encode()


def test_mismatched_series_are_refused() -> None:
    with pytest.raises(ValueError, match="series 'm' of 'm' has 1 values for 2 labels"):
        per_measure("line", ("a", "b"), {"m": [1.0]})
    with pytest.raises(ValueError, match="'line' or 'bar'"):
        ChartModel("pie", (), (), "")


def test_marks_are_drawn_on_their_point_with_the_expected_range() -> None:
    (svg,) = _svgs(_render(edge_kpis()[7:8]))
    (mark,) = re.findall(r'<circle class="mark" [^>]*><title>([^<]*)</title>', svg)
    assert mark == "2024-03-03 · paid: 30 — anomaly: 4.2σ above (expected 4 to 8)"
    assert svg.count('<line class="expected"') == 1


def test_the_data_table_states_its_true_count() -> None:
    kpi = five_kpis()[3]
    few = replace(kpi.chart, table=replace(kpi.chart.table, rows=kpi.chart.table.rows[:5]))
    page = _render([replace(kpi, chart=few)])
    assert '<details class="data" data-kpi="users_by_plan" data-total="30">' in page
    assert "<summary>Data: the newest 5 of 30 rows in the warehouse</summary>" in page
    assert page.count("<tr><td>c0") == 5
    assert "<th>country</th><th>plan</th><th>users</th>" in page
    empty = _render([replace(kpi, chart=replace(kpi.chart, table=replace(kpi.chart.table, rows=(), total=0)))])
    assert "<summary>Data: no rows in the warehouse</summary>" in empty


def test_times_are_shown_in_their_zone_named() -> None:
    tokyo = datetime(2024, 4, 30, 14, 15, tzinfo=ZoneInfo("Asia/Tokyo"))
    page = _render([replace(five_kpis()[0], last_loaded=tokyo)])
    assert "<dt>Last loaded</dt><dd>2024-04-30 14:15:00 JST (Asia/Tokyo)</dd>" in page
    assert "Generated 2024-04-30 06:15:00 UTC" in page


# --- in the browser ------------------------------------------------------------------------------------------


@pytest.mark.infra  # headless Chromium
def test_every_chart_draws_in_headless_chromium(tmp_path: Path) -> None:
    try:
        find_chromium()
    except BrowserError as error:
        pytest.fail(f"{error} (the Makefile's test setup runs: {INSTALL})")
    page = tmp_path / "report.html"
    page.write_text(_render(five_kpis()), encoding="utf-8")
    started = time.monotonic()
    rendered = render_page(page, screenshot=ARTIFACTS / "report.png")
    elapsed = time.monotonic() - started

    assert rendered.violations == ()  # nothing blocked, nothing loaded from outside
    assert rendered.styled
    assert [(c.kpi, c.measures) for c in rendered.charts] == [
        ("daily_sales", "orders"),
        ("daily_sales", "sales"),
        ("hourly_orders", "orders"),
        ("hourly_orders", "buyers"),
        ("monthly_active_buyers", "buyers"),
        ("users_by_plan", "users"),
    ]
    for chart in rendered.charts:
        assert chart.width > 600, chart
        assert chart.height > 100, chart
        for series in chart.series:
            assert series.length > 0, (chart.kpi, series)
            assert series.width > 0, (chart.kpi, series)
    daily_orders = rendered.charts[0]
    assert [s.name for s in daily_orders.series] == ["paid", "cancelled"]  # a line per status, not their sum
    assert [s.shapes for s in daily_orders.series] == [2, 2]  # two polylines around the gap, no dots at 60 points
    assert daily_orders.series[0].height > 20
    assert [len(c.series) for c in rendered.charts[2:4]] == [1, 1]  # hourly: orders and buyers never overlap
    bars = rendered.charts[5].series[0]
    assert bars.shapes == 4
    assert bars.height > 100
    assert [(e.kpi, e.text) for e in rendered.empty] == [
        ("large_orders", "No rows loaded — this KPI has never been loaded.")
    ]
    assert rendered.empty[0].height > 20
    tables = {t.kpi: t for t in rendered.tables}
    assert (tables["users_by_plan"].rows, tables["users_by_plan"].total) == (30, 30)  # every row of the snapshot
    assert tables["users_by_plan"].summary == "Data: all 30 rows in the warehouse"
    assert (tables["daily_sales"].rows, tables["daily_sales"].total) == (116, 116)
    assert rendered.screenshot is not None
    assert rendered.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert elapsed < 30, f"the browser took {elapsed:.1f}s"


MARKS = (Mark("2024-03-03", "paid", "anomaly: 4.2σ above", (4.0, 8.0)),)


def edge_kpis() -> list[ReportKpi]:
    """What must still draw: one point, all zeros, lone points between gaps, huge and negative values, 1440 hours,
    many measures of one size (the legend wraps), many categories, negative bars."""
    days = _days(datetime(2024, 3, 1), 5)
    hours = _hours(datetime(2024, 3, 1), 1440)
    many = {f"status_{name}": [float(100 + 10 * i + j) for j in range(5)] for i, name in enumerate("abcdefgh")}
    categories = tuple(f"country-{i:02d}" for i in range(40))
    return [
        _kpi("one_point", per_measure("line", days[:1], {"orders": [5.0]})),
        _kpi("all_zero", per_measure("line", days, {"orders": [0.0] * 5})),
        _kpi("lone_points", per_measure("line", days, {"orders": [1.0, None, 3.0, None, 5.0]})),
        _kpi("huge", per_measure("line", days, {"yen": [3e13, 3.2e13, 2.9e13, 3.4e13, 3.3e13]})),
        _kpi("negative", per_measure("line", days, {"margin": [-30.0, -5, 12, 40, -8]})),
        _kpi("sixty_days_of_hours", per_measure("line", hours, {"orders": [float(i % 24) for i in range(1440)]})),
        _kpi("many_measures", line(days, {"orders": many}, by="status")),
        _kpi("marked", add_marks(line(days, {"orders": {"paid": [5.0, 6, 30, 7, 6]}}), "orders", MARKS)),
        _kpi("many_categories", per_measure("bar", categories, {"users": [float(i * i) for i in range(40)]})),
        _kpi("negative_bars", per_measure("bar", ("a", "b", "c"), {"delta": [-5.0, 10.0, 0.0], "other": [-4.0, 9, 1]})),
    ]


def test_legend_wraps_and_the_chart_grows() -> None:
    (svg,) = _svgs(_render(edge_kpis()[6:7]))
    rows = sorted({int(y) for y in re.findall(r'<text class="legend-name" x="[\d.]+" y="(\d+)"', svg)})
    assert rows == [19, 37, 55]
    assert 'viewBox="0 0 800 226"' in svg  # 190 + two more legend rows
    assert re.findall(r'<text class="legend-name" [^>]*>([^<]+)<', svg)[0] == "status_a"


@pytest.mark.infra  # headless Chromium
def test_edge_cases_draw_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "edges.html"
    page.write_text(_render(edge_kpis()), encoding="utf-8")
    rendered = render_page(page)
    assert rendered.violations == ()
    drawn = {chart.kpi: chart for chart in rendered.charts}  # the first chart of each KPI
    for chart in reversed(rendered.charts):
        drawn[chart.kpi] = chart
    assert list(drawn) == [kpi.name for kpi in edge_kpis()]
    for chart in rendered.charts:
        assert chart.width > 600
        assert chart.height > 100
        assert chart.series, chart.kpi
        for series in chart.series:
            assert series.length > 0, (chart.kpi, series)
            assert series.shapes > 0, (chart.kpi, series)
    assert drawn["one_point"].series[0].shapes == 1  # a dot: a line needs two points
    assert drawn["all_zero"].series[0].height == pytest.approx(5, abs=0.5)  # a flat line, and its dots
    assert drawn["lone_points"].series[0].shapes == 3
    assert len(drawn["many_measures"].series) == 8
    assert drawn["many_categories"].series[0].shapes == 40
    assert [[s.shapes for s in c.series] for c in rendered.charts if c.kpi == "negative_bars"] == [[3], [3]]
    assert drawn["marked"].marks == 1
    assert sum(c.marks for c in rendered.charts) == 1
