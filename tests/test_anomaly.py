"""Anomaly scoring's pure core: the header key's rules, the calendar, and the method on small known series."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from pipeline.core.anomaly import Observation, expect, score, weekday_zscore
from pipeline.core.calendar_jp import day_kind
from pipeline.core.parse import parse_kpi
from pipeline.core.spec import AnomalySettings, Sensitivity

HEADER = "/*---\ntime_column: d\n{line}columns:\n  d: DATE\n  status: STRING\n  n: INT64\n  amount: NUMERIC\n---*/\n"
SQL = "SELECT d, status, n, amount FROM x WHERE d >= :start AND d < :end\n"


def parse(line: str, grain: str = "") -> tuple[object, list[tuple[str, str, str, int]]]:
    text = HEADER.format(line=(f"grain: {grain}\n" if grain else "") + line + "\n") + SQL
    kpi, found = parse_kpi("t.sql", text.encode(), "t")
    return kpi, [(p.rule, p.message, p.hint, p.location.line) for p in found]


def test_the_anomaly_key_reads_its_parts_and_defaults() -> None:
    kpi, found = parse("anomaly: {measures: [amount], by: [status], sensitivity: high, min_history: 56}")
    assert found == []
    assert kpi.anomaly == AnomalySettings(  # type: ignore[attr-defined]
        ("amount",), "status", ("weekday", "jp_holiday", "month_end"), Sensitivity.HIGH, 56
    )
    kpi, found = parse("anomaly: {}")
    assert kpi.anomaly == AnomalySettings()  # type: ignore[attr-defined]
    kpi, found = parse("")
    assert kpi.anomaly is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "rule", "message", "hint"),
    [
        ("anomaly: {measure: [n]}", "unknown-key", "unknown anomaly key 'measure' (did you mean 'measures'?)", ""),
        (
            "anomaly: {measures: [amout]}",
            "anomaly-measures",
            "'amout' in anomaly.measures is not a declared column (did you mean 'amount'?)",
            "n, amount",
        ),
        (
            "anomaly: {measures: [status]}",
            "anomaly-measures",
            "'status' in anomaly.measures is not a numeric column other than the time column",
            "n, amount",
        ),
        (
            "anomaly: {by: [stats]}",
            "anomaly-by",
            "'stats' in anomaly.by is not a declared column (did you mean 'status'?)",
            "status",
        ),
        (
            "anomaly: {seasonality: [weekday, holiday]}",
            "invalid-value",
            "unknown seasonality 'holiday' (did you mean 'jp_holiday'?)",
            "weekday, jp_holiday, month_end",
        ),
        (
            "anomaly: {sensitivity: hi}",
            "invalid-value",
            "'anomaly.sensitivity' is 'hi' (did you mean 'high'?)",
            "low, medium, high",
        ),
        ("anomaly: {min_history: 3}", "out-of-range", "'anomaly.min_history' must be 7 or more, found 3", ""),
        (
            "anomaly: [n]",
            "wrong-type",
            "'anomaly' must be a mapping (measures: [sales], by: [status], sensitivity: medium), found a list",
            "",
        ),
    ],
)
def test_the_anomaly_key_is_checked_at_its_position(line: str, rule: str, message: str, hint: str) -> None:
    kpi, found = parse(line)
    assert kpi is None
    assert [(r, m) for r, m, _, _ in found] == [(rule, message)]
    assert hint in found[0][2]
    assert found[0][3] == 3


def test_weeks_and_months_are_not_scored() -> None:
    kpi, found = parse("anomaly: {}", grain="month")
    assert kpi is None
    assert [(r, m) for r, m, _, _ in found] == [
        ("anomaly-grain", "anomaly scoring needs a day or hour grain, this KPI's is 'month'")
    ]


def test_the_calendar_knows_seasons_holidays_and_paydays() -> None:
    every = frozenset({"weekday", "jp_holiday", "month_end"})
    assert day_kind(date(2026, 5, 4), every).key == "golden_week:05-04"
    assert day_kind(date(2026, 1, 2), every).kind == "new_year"
    assert day_kind(date(2026, 8, 14), every).kind == "obon"
    assert day_kind(date(2026, 9, 22), every).kind == "holiday"  # 国民の休日, between two holidays
    assert (day_kind(date(2026, 9, 25), every).kind, day_kind(date(2026, 9, 25), every).month_end) == ("friday", True)
    assert day_kind(date(2026, 5, 4), frozenset({"weekday"})).kind == "monday"  # without jp_holiday: its weekday
    assert day_kind(date(2026, 5, 5), frozenset()).kind == "day"


def days(first: date, values: list[float]) -> list[Observation]:
    return [Observation((first + timedelta(n)).isoformat(), "n", None, v) for n, v in enumerate(values)]


def test_a_spike_is_scored_with_its_expected_range_and_a_quiet_day_is_not() -> None:
    # 10 weeks of a flat weekday pattern (weekends double), 2026-06-01 a Monday; then one spike
    pattern = [100, 101, 99, 100, 102, 200, 198]
    values = [float(pattern[n % 7] + (n % 3)) for n in range(70)]
    values[68] = 300.0  # Saturday 2026-08-08 at 1.5× its weekday
    obs = days(date(2026, 6, 1), values)
    targets = [o.partition for o in obs[63:]]
    scores = {s.partition: s for s in score("t", "day", AnomalySettings(min_history=28), obs, targets)}
    assert sorted(scores) == targets
    spike = scores["2026-08-06"]  # a Thursday: 100 + 0 expected
    assert not spike.anomalous
    assert 99 <= spike.expected <= 103
    anomaly = scores["2026-08-08"].anomaly()
    assert anomaly is not None
    assert (anomaly.direction, anomaly.actual) == ("spike", 300.0)
    assert anomaly.low < 200 < anomaly.high < 300
    assert anomaly.score > 4
    assert [p for p, s in scores.items() if s.anomalous] == ["2026-08-08"]


def test_a_vanished_dimension_value_is_a_drop_and_min_history_holds_back_young_series() -> None:
    first = date(2026, 6, 1)
    obs = [Observation((first + timedelta(n)).isoformat(), "n", "status=paid", 50.0 + n % 2) for n in range(40)]
    loaded = [(first + timedelta(n)).isoformat() for n in range(41)]
    (drop,) = score("t", "day", AnomalySettings(min_history=28), obs, [loaded[-1]], loaded)
    assert (drop.dimension, drop.actual, drop.direction) == ("status=paid", 0.0, "drop")
    assert score("t", "day", AnomalySettings(min_history=56), obs, [loaded[-1]], loaded) == []


def test_the_plain_weekday_z_score_cries_wolf_on_a_holiday() -> None:
    # ordinary weekdays of 100 ± 1; Monday 2026-07-20 (Marine Day) sells like a Sunday: 180
    values = [100.0 + (n % 3) - 1 for n in range(56)]
    obs = days(date(2026, 5, 25), values)
    obs.append(Observation("2026-07-20", "n", None, 180.0))
    assert [p for p, _ in weekday_zscore(obs, ["2026-07-20"])] == ["2026-07-20"]


@pytest.mark.parametrize("grain", ["day", "hour"])
def test_a_partition_expected_before_its_rows_are_loaded_scores_as_it_does_after(grain: str) -> None:
    # What a load scoring inside its own transaction relies on: the expectation of a partition depends only on
    # the partitions before it, so it can be computed before the partition's rows exist and judge them after.
    from bench.anomaly_series import daily, hourly

    series = daily() if grain == "day" else hourly()
    observations = [Observation(p, "n", None, v) for p, v in sorted(series.values.items())]
    settings = AnomalySettings()
    checked = 0
    for target in [p for p in series.scored if p in series.values][:: 7 if grain == "day" else 41]:
        history = [o for o in observations if o.partition <= target]
        after = score("t", grain, settings, history, [target])
        before = expect("t", grain, settings, [o for o in history if o.partition != target], target)
        assert [e.judge(series.values[target]) for e in before] == after
        checked += 1
    assert checked >= 7
    # a dimension value the target lacks is expected there all the same (it counts 0: a drop)
    first = date(2026, 6, 1)
    paid = [Observation((first + timedelta(n)).isoformat(), "n", "status=paid", 50.0 + n % 2) for n in range(40)]
    (expected,) = expect("t", "day", AnomalySettings(min_history=28), paid, "2026-07-11")
    assert (expected.dimension, expected.judge(0.0).direction) == ("status=paid", "drop")
    assert expect("t", "day", AnomalySettings(min_history=56), paid, "2026-07-11") == []
