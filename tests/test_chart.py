"""The report's chart model, table-driven: series per dimension value, top N + other, gaps, zones, the data table.

The "warehouse" is a DuckDB table holding the rows; the sums the model draws are compared with the warehouse's own
``SUM(...) GROUP BY partition``, so a series that adds or loses a row fails here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from pipeline.core.chart import Mark, add_marks, build_chart, series_name
from pipeline.core.parse import parse_kpi
from pipeline.core.spec import ChartSettings, Kpi
from tests.conftest import ROOT

NOW = datetime(2024, 3, 10, 3, 0, tzinfo=UTC)  # 12:00 JST on 10 March 2024


def example(name: str) -> Kpi:
    path = ROOT / "queries" / f"{name}.sql"
    kpi, problems = parse_kpi(str(path), path.read_bytes(), name)
    assert kpi is not None, problems
    return kpi


def header_kpi(header: str, sql: str) -> Kpi:
    kpi, problems = parse_kpi("t.sql", f"/*---\n{header}\n---*/\n{sql}\n".encode(), "t")
    assert kpi is not None, problems
    return kpi


def warehouse(kpi: Kpi, rows: list[tuple[Any, ...]]) -> duckdb.DuckDBPyConnection:
    types = {
        "DATE": "DATE",
        "DATETIME": "TIMESTAMP",
        "STRING": "VARCHAR",
        "INT64": "BIGINT",
        "NUMERIC": "DECIMAL(38,9)",
    }
    db = duckdb.connect()
    db.execute(f"CREATE TABLE t ({', '.join(f'{c.name} {types[c.type.value]}' for c in kpi.columns)})")
    if rows:
        db.executemany(f"INSERT INTO t VALUES ({', '.join('?' for _ in kpi.columns)})", rows)
    return db


def rows_of(db: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cursor = db.execute("SELECT * FROM t")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


STATUSES = ("paid", "cancelled", "refunded", "paid_partially")


def daily_sales_rows(days: list[date]) -> list[tuple[Any, ...]]:
    return [
        (day, status, 10 * (n + 1) + i, Decimal(1000 * (n + 1) + i) + Decimal("0.5"))
        for i, day in enumerate(days)
        for n, status in enumerate(STATUSES)
        if not (status == "refunded" and i == 1)  # one day without refunds: a real zero
    ]


def test_daily_sales_draws_a_line_per_status_and_the_lines_add_up_to_the_warehouse() -> None:
    kpi = example("daily_sales")
    days = [date(2024, 3, 1) + timedelta(days=i) for i in (0, 1, 2, 4)]  # 4 March never loaded: a gap
    db = warehouse(kpi, daily_sales_rows(days))
    loaded = [d.isoformat() for d in days]
    model = build_chart(kpi, rows_of(db), loaded, NOW)

    assert model.kind == "line"
    assert model.labels == ("2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05")
    assert [c.measure for c in model.charts] == ["orders", "sales"]  # each measure its own chart
    orders = model.charts[0].series
    assert list(orders) == ["paid_partially", "refunded", "cancelled", "paid"]  # largest orders first
    assert orders["refunded"] == (30.0, 0.0, 32.0, None, 33.0)  # zero where loaded without a row, gap where not
    for chart in model.charts:
        expected = dict(
            db.execute(f"SELECT CAST(sales_date AS VARCHAR), SUM({chart.measure}) FROM t GROUP BY 1").fetchall()
        )
        for i, label in enumerate(model.labels):
            values = [v[i] for v in chart.series.values()]
            if label not in expected:
                assert values == [None] * 4
            else:
                assert sum(v or 0.0 for v in values) == pytest.approx(float(expected[label]))
    assert model.by == "status"
    assert model.zone == "Asia/Tokyo, JST"
    assert model.caption == (
        "One line per status (4 values). Each measure has its own chart. Time axis: 5 days in Asia/Tokyo, JST, "
        "2024-03-01 to 2024-03-05, one step per partition; a gap is a partition not loaded. Every y axis starts at "
        "zero: the measures are sums and counts, so a point's height is its size."
    )
    assert model.table.total == len(daily_sales_rows(days)) == 15
    assert len(model.table.rows) == 15
    assert model.table.columns == ("sales_date", "status", "orders", "sales")
    assert model.table.rows[0][0] == date(2024, 3, 5)  # newest first


@pytest.mark.parametrize(
    ("top", "names", "other"),
    [
        (2, ["c09", "c08", "other (8 values)"], [sum(range(1, 9)) * 1.0]),
        (5, ["c09", "c08", "c07", "c06", "c05", "other (5 values)"], [sum(range(1, 6)) * 1.0]),
        (9, [f"c{i:02d}" for i in range(9, -1, -1)], None),  # one left over: named, not "other (1 value)"
        (12, [f"c{i:02d}" for i in range(9, -1, -1)], None),
    ],
)
def test_top_n_and_other(top: int, names: list[str], other: list[float] | None) -> None:
    kpi = header_kpi(
        f"grain: day\ntime_column: d\nchart: {{by: country, top: {top}}}\ncolumns:\n  d: DATE\n  country: STRING\n"
        "  plan: STRING\n  users: INT64",
        "SELECT d, country, plan, users FROM x WHERE d >= :start AND d < :end",
    )
    rows = [(date(2024, 3, 1), f"c{i:02d}", plan, i + 1) for i in range(10) for plan in ("free", "pro")]
    rows = [(d, c, p, u if p == "free" else 0) for d, c, p, u in rows]
    model = build_chart(kpi, rows_of(warehouse(kpi, rows)), ["2024-03-01"], NOW)
    (users,) = model.charts
    assert list(users.series) == names
    if other is not None:
        assert users.series[names[-1]] == tuple(other)
        assert f"the top {top} of 10 by users, the other {10 - top} summed as 'other'" in model.caption
    assert sum(v[0] or 0 for v in users.series.values()) == sum(range(1, 11))
    assert "Summed over plan." in model.caption


def test_a_snapshot_charts_bars_by_its_chart_key_and_every_row_reaches_the_table() -> None:
    kpi = example("users_by_plan")
    assert kpi.chart.by == "plan"
    rows = [(f"c{i:02d}", plan, 100 * i + n) for i in range(10) for n, plan in enumerate(("free", "pro", "team"))]
    model = build_chart(kpi, rows_of(warehouse(kpi, rows)), [], NOW)
    assert model.kind == "bar"
    assert model.labels == ("team", "pro", "free")
    (users,) = model.charts
    assert users.series["users"] == (4520.0, 4510.0, 4500.0)
    for plan, total in zip(model.labels, users.series["users"], strict=True):
        assert total == sum(u for _, p, u in rows if p == plan)
    assert model.table.total == 30
    assert len(model.table.rows) == 30
    assert "Summed over country." in model.caption
    assert model.zone is None


def test_the_hourly_chart_names_the_kpis_zone_and_leaves_out_partitions_not_begun() -> None:
    kpi = header_kpi(
        "grain: hour\ntime_column: h\ntimezone: America/New_York\ncolumns:\n  h: TIMESTAMP\n  orders: INT64\n"
        "  buyers: INT64",
        "SELECT h, orders, buyers FROM x WHERE h >= :start AND h < :end",
    )
    # 20:00 … 23:00 on 9 March in New York (UTC-5), and a row in 2030
    hours = [datetime(2024, 3, 10, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(4)]
    hours.append(datetime(2030, 1, 1, tzinfo=UTC))
    rows = [{"h": h, "orders": 10 + i, "buyers": 5} for i, h in enumerate(hours)]
    model = build_chart(kpi, rows, [], NOW)  # NOW is 22:00 on 9 March in New York
    assert model.labels == ("2024-03-09T20", "2024-03-09T21", "2024-03-09T22")
    assert model.zone == "America/New_York, EST"
    assert [c.measure for c in model.charts] == ["orders", "buyers"]  # two measures, two charts
    assert model.charts[0].series == {"orders": (10.0, 11.0, 12.0)}
    assert model.table.total == 3  # the future row is not drawn and not counted
    spring = build_chart(kpi, [], ["2024-03-10T01", "2024-03-10T03"], datetime(2024, 3, 11, tzinfo=UTC))
    assert spring.labels == ("2024-03-10T01", "2024-03-10T03")  # 02:00 does not exist that night
    assert spring.zone == "America/New_York, EST/EDT"


def test_the_chart_key_picks_measures() -> None:
    kpi = header_kpi(
        "time_column: d\nchart: {measures: [amount]}\ncolumns:\n  d: DATE\n  n: INT64\n  amount: NUMERIC",
        "SELECT d, n, amount FROM x WHERE d >= :start AND d < :end",
    )
    model = build_chart(kpi, [{"d": date(2024, 3, 1), "n": 1, "amount": Decimal("2.5")}], ["2024-03-01"], NOW)
    assert [c.measure for c in model.charts] == ["amount"]
    assert model.charts[0].series == {"amount": (2.5,)}


def test_nothing_loaded_is_no_chart() -> None:
    model = build_chart(example("daily_sales"), [], [], NOW)
    assert model.labels == ()
    assert model.charts == ()
    assert model.table.total == 0


def test_marks_sit_on_drawn_points() -> None:
    kpi = example("daily_sales")
    days = [date(2024, 3, 1), date(2024, 3, 2)]
    model = build_chart(kpi, rows_of(warehouse(kpi, daily_sales_rows(days))), ["2024-03-01", "2024-03-02"], NOW)
    marked = add_marks(model, "sales", [Mark("2024-03-02", "paid", "anomaly", (900.0, 1100.0))])
    assert marked.charts[1].marks == (Mark("2024-03-02", "paid", "anomaly", (900.0, 1100.0)),)
    assert marked.charts[0].marks == ()
    with pytest.raises(ValueError, match="not on a drawn point"):
        add_marks(model, "sales", [Mark("2024-03-09", "paid", "x")])
    with pytest.raises(ValueError, match="'margin' is not a charted measure"):
        add_marks(model, "margin", [])


def test_the_readmes_chart_example_is_a_valid_header_key() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("chart: {measures: [orders], by: status, top: 3}"))
    source = (
        (ROOT / "queries" / "daily_sales.sql").read_text(encoding="utf-8").replace("checks:", line + "\nchecks:", 1)
    )
    kpi, problems = parse_kpi("daily_sales.sql", source.encode(), "daily_sales")
    assert kpi is not None, problems
    assert kpi.chart == ChartSettings(("orders",), "status", 3)
    days = [date(2024, 3, 1)]
    model = build_chart(kpi, rows_of(warehouse(kpi, daily_sales_rows(days))), ["2024-03-01"], NOW)
    assert [c.measure for c in model.charts] == ["orders"]
    # four statuses, top 3: the one left over keeps its name rather than becoming "other (1 value)"
    assert list(model.charts[0].series) == ["paid_partially", "refunded", "cancelled", "paid"]


@pytest.mark.parametrize(
    ("chart", "rule", "message", "hint"),
    [
        ("{top: 13}", "out-of-range", "chart.top is 13; a chart draws at most 12 lines", "from 1 to 12"),
        ("{top: 0}", "out-of-range", "'chart.top' must be 1 or more, found 0", "from 1 up"),
        ("{bye: d}", "unknown-key", "unknown chart key 'bye' (did you mean 'by'?)", "allowed: measures, by, top"),
        ("{by: n}", "chart-by", "'n' in chart.by is not a dimension", "this KPI declares none; remove `by`"),
        ("{measures: [amount, x]}", "chart-measure", "'x' in chart.measures is not a declared column", "n, amount"),
        ("[by]", "wrong-type", "'chart' must be a mapping (measures: [orders], by: status, top: 5), found a list", ""),
    ],
)
def test_the_chart_key_is_checked(chart: str, rule: str, message: str, hint: str) -> None:
    text = f"/*---\ntime_column: d\nchart: {chart}\ncolumns:\n  d: DATE\n  n: INT64\n  amount: NUMERIC\n---*/\n"
    text += "SELECT d, n, amount FROM x WHERE d >= :start AND d < :end\n"
    kpi, found = parse_kpi("t.sql", text.encode(), "t")
    assert kpi is None
    assert [(p.rule, p.message) for p in found] == [(rule, message)]
    assert hint in found[0].hint
    assert found[0].location.line == 3


def test_marks_found_elsewhere_are_left_out_when_not_strict() -> None:
    kpi = header_kpi(
        "time_column: d\nchart: {top: 1}\ncolumns:\n  d: DATE\n  country: STRING\n  n: INT64",
        "SELECT d, country, n FROM x WHERE d >= :start AND d < :end",
    )
    rows = [{"d": date(2024, 3, 1), "country": c, "n": n} for c, n in (("JP", 9), ("US", 2), ("KR", 1))]
    model = build_chart(kpi, rows, ["2024-03-01"], NOW)
    assert list(model.charts[0].series) == ["JP", "other (2 values)"]
    assert (series_name(model, "n", "JP"), series_name(model, "n", "US"), series_name(model, "x", "JP")) == (
        "JP",
        None,  # summed into "other": a mark there would point at the wrong line
        None,
    )
    found = [Mark("2024-03-01", "JP", "a"), Mark("2024-03-01", "US", "b"), Mark("2023-01-01", "JP", "c")]
    marked = add_marks(model, "n", found, strict=False)
    assert marked.charts[0].marks == (Mark("2024-03-01", "JP", "a"),)
    assert add_marks(model, "x", found, strict=False) == model
    unsplit = build_chart(example("hourly_orders"), [], ["2024-03-01T05"], NOW)
    assert series_name(unsplit, "orders") == "orders"


def test_the_same_rows_in_any_order_give_the_same_model() -> None:
    kpi = example("users_by_plan")
    rows = [{"country": f"c{i % 7}", "plan": p, "users": i} for i, p in enumerate(["free", "pro", "team"] * 7)]
    assert build_chart(kpi, rows, [], NOW) == build_chart(kpi, rows[::-1], [], NOW)
    assert build_chart(kpi, rows, [], NOW).table.rows[:2] == (("c0", "free", 0), ("c0", "pro", 7))
