"""Anomaly scoring's pure core: the header key's rules, the calendar, and the method on small known series."""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from pipeline.core.anomaly import (
    MIN_SCALE,
    THRESHOLDS,
    WINDOWS,
    Expectation,
    Observation,
    Score,
    Windows,
    day_of,
    expect,
    score,
    weekday_zscore,
)
from pipeline.core.calendar_jp import WEEKDAYS, DayKind, day_kind
from pipeline.core.parse import parse_kpi
from pipeline.core.spec import MIN_HISTORY, AnomalySettings, Sensitivity

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


# -- the method written out plainly: what the optimised core (computed where needed) must equal, bit for bit ------


def reference_score(
    grain: str,
    settings: AnomalySettings,
    observations: list[Observation],
    targets: list[str],
    loaded: list[str] | None = None,
) -> list[Score]:
    """:func:`score` as it was first written: every point's level a median sorted afresh, every residual's kind
    looked up and every median without one value sorted again."""
    wanted = set(targets)
    series: dict[tuple[str, str | None], dict[str, float]] = defaultdict(dict)
    for o in observations:
        series[(o.measure, o.dimension)][o.partition] = o.value
    every = sorted(set(loaded) if loaded is not None else {p for s in series.values() for p in s})
    seasonality = frozenset(settings.seasonality)
    kinds = {}
    for partition in every:
        day, hour = day_of(partition)
        kinds[partition] = (day_kind(day, seasonality), hour if grain == "hour" else None)
    minimum = settings.min_history if settings.min_history is not None else MIN_HISTORY[grain]
    scores = []
    for (measure, dimension), values in sorted(series.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        first = min(values)
        points = [Point(p, v, math.asinh(v), *kinds[p]) for p in every if p >= first for v in (values.get(p, 0.0),)]
        scorer = PlainScorer(points, WINDOWS[grain], "weekday" in seasonality)
        for index, point in enumerate(points):
            if point.partition not in wanted or index < minimum:
                continue
            center, scale = scorer.expect(index)
            if center is not None:
                expectation = Expectation(
                    "t", point.partition, measure, dimension, center, scale, THRESHOLDS[settings.sensitivity]
                )
                scores.append(expectation.judge(point.value))
    return scores


@dataclass(frozen=True)
class Point:
    partition: str
    value: float
    x: float
    kind: DayKind
    hour: int | None

    def key(self, kind: str) -> str:
        if self.hour is None:
            return kind
        return f"{'workday' if kind in WEEKDAYS[:5] else kind}@{self.hour}"


class PlainScorer:
    def __init__(self, points: list[Point], windows: Windows, by_weekday: bool) -> None:
        self.points, self.windows, self.by_weekday = points, windows, by_weekday
        self.levels: list[float | None] = []
        self.day_start: list[int] = []
        ordinary: list[float] = []
        for index, point in enumerate(points):
            recent = ordinary[-windows.level :]
            self.levels.append(statistics.median(recent) if len(recent) >= min(7, windows.level) else None)
            same_day = index > 0 and points[index - 1].partition[:10] == point.partition[:10]
            self.day_start.append(self.day_start[-1] if same_day else index)
            if point.kind.ordinary and not point.kind.month_end:
                ordinary.append(point.x)
        self.tables: dict[int, tuple[dict[str, tuple[float, int]], float, float]] = {}

    def residual(self, index: int) -> float | None:
        level = self.levels[index]
        return None if level is None else self.points[index].x - level

    def expect(self, target: int) -> tuple[float | None, float]:
        level = self.levels[target]
        if level is None:
            return None, 0.0
        anchor = self.day_start[target]  # the hours of a day share the effects measured before it
        if anchor not in self.tables:
            self.tables[anchor] = self.measure(anchor)
        effects, payday, spread = self.tables[anchor]
        point = self.points[target]
        found = self.effect(point, effects)
        _, effect, seen = found if found is not None else ("", 0.0, 1)
        effect += payday if point.kind.month_end else 0.0
        return level + effect, spread * math.sqrt(1 + 1 / seen)

    def measure(self, before: int) -> tuple[dict[str, tuple[float, int]], float, float]:
        w = self.windows
        recent = [(j, r) for j in range(max(0, before - w.recent), before) if (r := self.residual(j)) is not None]
        yearly = [(j, r) for j in range(max(0, before - w.year), before) if (r := self.residual(j)) is not None]
        plain: dict[str, list[float]] = defaultdict(list)
        for j, r in recent:
            p = self.points[j]
            if p.kind.ordinary and not p.kind.month_end:
                plain[p.key(p.kind.kind)].append(r)
        effects = {key: (statistics.median(rs), len(rs)) for key, rs in plain.items()}
        month_end = [
            r - effects[key][0]
            for j, r in recent
            for p in (self.points[j],)
            if p.kind.ordinary and p.kind.month_end and (key := p.key(p.kind.kind)) in effects
        ]
        payday = statistics.median(month_end) if month_end else 0.0
        special: dict[str, list[float]] = defaultdict(list)
        for j, r in yearly:
            p = self.points[j]
            if not p.kind.ordinary:
                lift = r - (payday if p.kind.month_end else 0.0)
                special[p.key(p.kind.key)].append(lift)
                if p.kind.key != p.kind.kind:
                    special[p.key(p.kind.kind)].append(lift)
        for key, rs in special.items():
            effects[key] = (statistics.median(rs), len(rs))
        pools = {key: sorted(rs) for key, rs in (*plain.items(), *special.items())}
        in_recent = {j for j, _ in recent}
        residuals = []
        for j, r in yearly:
            p = self.points[j]
            found = self.effect(p, effects)
            if found is None:
                continue
            key, effect, _ = found
            lift = payday if p.kind.month_end else 0.0
            own = (p.kind.ordinary and not p.kind.month_end and j in in_recent and key == p.key(p.kind.kind)) or (
                not p.kind.ordinary and key in (p.key(p.kind.key), p.key(p.kind.kind))
            )
            if own:
                value = r - lift if not p.kind.ordinary else r
                ordered = pools[key]
                index = bisect.bisect_left(ordered, value)
                rest = ordered[:index] + ordered[index + 1 :] if ordered[index : index + 1] == [value] else ordered
                if not rest:
                    continue
                effect = statistics.median(rest)
            residuals.append(abs(r - effect - lift))
        spread = 1.4826 * statistics.median(residuals) if residuals else MIN_SCALE
        return effects, payday, max(spread, MIN_SCALE)

    def effect(self, point: Point, effects: dict[str, tuple[float, int]]) -> tuple[str, float, int] | None:
        kind = point.kind
        chain = [kind.key, kind.kind]
        if not kind.ordinary:
            chain += ["holiday", "sunday" if self.by_weekday else "day"]
        for name in chain:
            key = point.key(name)
            if key in effects and (name == kind.key or effects[key][1] >= 3 or name in WEEKDAYS or name == "day"):
                effect, seen = effects[key]
                return key, effect, seen
        return None


EVERY_SEASONALITY = ("weekday", "jp_holiday", "month_end")


@pytest.mark.parametrize("grain", ["day", "hour"])
@pytest.mark.parametrize(
    "settings",
    [
        AnomalySettings(),
        AnomalySettings(seasonality=("weekday", "month_end"), sensitivity=Sensitivity.HIGH, min_history=7),
        AnomalySettings(seasonality=("jp_holiday",), sensitivity=Sensitivity.LOW, min_history=90),
        AnomalySettings(seasonality=()),
    ],
)
def test_the_core_scores_every_partition_as_the_method_written_out_plainly(
    grain: str, settings: AnomalySettings
) -> None:
    from bench.anomaly_series import daily, hourly

    series = daily() if grain == "day" else hourly()
    observations = [Observation(p, "n", None, v) for p, v in sorted(series.values.items())]
    every = sorted(series.values)
    found = score("t", grain, settings, observations, every)
    assert found == reference_score(grain, settings, observations, every)
    assert len(found) > len(series.scored)  # the young series' partitions too, from min_history on


@pytest.mark.parametrize("grain", ["day", "hour"])
def test_a_load_s_one_new_partition_is_expected_as_the_method_written_out_plainly(grain: str) -> None:
    # the common case: one new day or hour, from the history its load reads (first_needed on)
    from bench.anomaly_series import daily, hourly
    from pipeline.warehouses.anomalies import first_needed

    series = daily() if grain == "day" else hourly()
    observations = [Observation(p, "n", None, v) for p, v in sorted(series.values.items())]
    checked = 0
    for target in series.scored[:: 3 if grain == "day" else 29]:
        since = first_needed(target, grain)
        history = [o for o in observations if since <= o.partition < target]
        expected = [e.judge(series.values[target]) for e in expect("t", grain, AnomalySettings(), history, target)]
        loaded = [*history, Observation(target, "n", None, series.values[target])]
        assert expected == reference_score(grain, AnomalySettings(), loaded, [target])
        checked += len(expected)
    assert checked >= 45


def test_dimension_values_with_gaps_late_starts_and_vanishings_score_as_the_method_written_out_plainly() -> None:
    from bench.anomaly_series import daily

    rng = random.Random(5)
    base = sorted(daily().values.items())[-300:]
    observations = []
    for index, (partition, value) in enumerate(base):
        for dimension, share, first, last in (
            ("paid", 0.7, 0, 300),
            ("cancelled", 0.1, 60, 300),
            ("gone", 0.2, 0, 250),
        ):
            if first <= index <= last and rng.random() > 0.03:  # a few days without the value: 0 there
                for measure, factor in (("sales", 1.0), ("n", 0.001)):
                    amount = round(value * share * factor * rng.uniform(0.9, 1.1), rng.choice([0, 2]))
                    observations.append(Observation(partition, measure, f"status={dimension}", amount))
    loaded = [p for p, _ in base]
    for settings in (AnomalySettings(min_history=14), AnomalySettings(seasonality=("weekday", "month_end"))):
        found = score("t", "day", settings, observations, loaded[-60:], loaded)
        assert found == reference_score("day", settings, observations, loaded[-60:], loaded)
        assert {s.dimension for s in found} == {"status=paid", "status=cancelled", "status=gone"}
        sparse = loaded[-60::7]  # without `loaded`: the partitions of the observations
        assert score("t", "day", settings, observations, sparse) == reference_score(
            "day", settings, observations, sparse
        )


def test_the_history_query_s_rows_become_observations_one_per_measure_a_null_sum_0() -> None:
    from pipeline.core.types import BqType
    from pipeline.warehouses.anomalies import History

    one = History("t", "d", BqType.DATE, "day", "Asia/Tokyo", "Asia/Tokyo", ("n",), None, "2026-06-01")
    assert one.observations([("2026-06-01", None, 3), ("2026-06-02", None, None)]) == [
        Observation("2026-06-01", "n", None, 3.0),
        Observation("2026-06-02", "n", None, 0.0),
    ]
    split = History("t", "d", BqType.DATE, "day", "Asia/Tokyo", "Asia/Tokyo", ("n", "amount"), "status", "2026-06-01")
    assert split.observations([("2026-06-01", "paid", 2, 9.5), ("2026-06-01", "(null)", None, 1)]) == [
        Observation("2026-06-01", "n", "status=paid", 2.0),
        Observation("2026-06-01", "amount", "status=paid", 9.5),
        Observation("2026-06-01", "n", "status=(null)", 0.0),
        Observation("2026-06-01", "amount", "status=(null)", 1.0),
    ]
    with pytest.raises(ValueError, match="shorter"):
        split.observations([("2026-06-01", "paid", 2)])  # a sum missing: the query and the measures disagree


def test_a_nan_or_an_infinite_sum_scores_as_the_method_written_out_plainly() -> None:
    # a NaN sorts by the order values come in: the core sorts such a series' medians afresh, as the method reads
    from bench.anomaly_series import daily

    base = sorted(daily().values.items())[-200:]
    targets = [p for p, _ in base[100:]]
    for bad in (math.nan, math.inf, -math.inf):
        observations = [Observation(p, "n", None, bad if i in (90, 120, 150) else v) for i, (p, v) in enumerate(base)]
        found = score("t", "day", AnomalySettings(), observations, targets)
        plain = reference_score("day", AnomalySettings(), observations, targets)
        assert [repr(s) for s in found] == [repr(s) for s in plain]  # as text: a NaN is not equal to itself
        assert len(found) == len(targets)
