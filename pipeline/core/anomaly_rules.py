"""The rules of the header's ``anomaly`` key: which measures are scored after each load, split how, on which calendar.

``anomaly: {measures: [sales], by: [status], seasonality: [weekday, jp_holiday, month_end], sensitivity: medium,
min_history: 28}`` — every part optional; ``anomaly: {}`` scores every numeric column's partition total with the
defaults (:data:`DEFAULTS`). Measures and dimensions follow the chart's rules (:mod:`pipeline.core.chart_rules`);
scoring needs a day or hour grain (:data:`pipeline.core.spec.ANOMALY_GRAINS`). Each problem points at the key in the
file, with the closest valid name when one was misspelt.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.calendar_jp import SEASONALITY
from pipeline.core.chart_rules import dimension_columns, measure_columns
from pipeline.core.spec import ANOMALY_GRAINS, MIN_HISTORY, AnomalySettings, Column, Sensitivity
from pipeline.core.validator import PositionalValidator, suggest

ANOMALY_KEYS = ("measures", "by", "seasonality", "sensitivity", "min_history")
DEFAULTS = {
    "measures": "every numeric column",
    "by": "none: each partition's total",
    "seasonality": ", ".join(AnomalySettings.seasonality) + " (hourly KPIs add the hour of the day)",
    "sensitivity": "medium (4 scales from expected; low 5, high 3.5)",
    "min_history": f"{MIN_HISTORY['day']} partitions (days), {MIN_HISTORY['hour']} (hours)",
}
EXAMPLE = "measures: [sales], by: [status], sensitivity: medium"


def anomaly_settings(
    checker: PositionalValidator, value: Any, columns: tuple[Column, ...], time_column: str | None, grain: str | None
) -> AnomalySettings | None:
    """The ``anomaly`` key as :class:`AnomalySettings` (None when it is written ``anomaly: false``), recording a
    problem for every bad part (defaults stand in)."""
    if value is False:
        return None
    if value is None or value is True:
        value = {}
    mapping = checker.mapping(("anomaly",), value, EXAMPLE)
    if mapping is None:
        return None
    if grain is not None and grain not in ANOMALY_GRAINS:
        checker.report(
            ("anomaly",),
            "anomaly-grain",
            f"anomaly scoring needs a day or hour grain, this KPI's is '{grain}'",
            "remove `anomaly`, or score a daily or hourly KPI (weeks and months have too few partitions a year)",
            at_key=True,
        )
    checker.unknown_keys(mapping, ANOMALY_KEYS, ("anomaly",), "anomaly key")
    measures = measure_columns(columns, time_column)
    dimensions = dimension_columns(columns, time_column)
    declared = [c.name for c in columns]
    chosen = _listed(checker, mapping, "measures", measures, declared, "a numeric column other than the time column")
    by = _listed(checker, mapping, "by", dimensions, declared, "a column that is neither the time column nor numeric")
    if len(by) > 1:
        checker.report(
            ("anomaly", "by"),
            "anomaly-by",
            f"anomaly.by names {len(by)} dimensions; scoring splits by one",
            f"keep one of {', '.join(by)}: each of its values is scored as a series of its own",
        )
    seasonality = AnomalySettings.seasonality
    if "seasonality" in mapping:
        names = checker.names(("anomaly", "seasonality"), mapping["seasonality"], "seasonality")
        listed = isinstance(mapping["seasonality"], list)
        for index, name in enumerate(names):
            if name not in SEASONALITY:
                checker.report(
                    ("anomaly", "seasonality", index) if listed else ("anomaly", "seasonality"),
                    "invalid-value",
                    f"unknown seasonality '{name}'{suggest(name, SEASONALITY)}",
                    f"allowed: {', '.join(SEASONALITY)} (an empty list compares every day alike)",
                )
        seasonality = tuple(n for n in SEASONALITY if n in names)
    sensitivity = Sensitivity.MEDIUM
    if "sensitivity" in mapping:
        sensitivity = checker.choice(("anomaly", "sensitivity"), mapping["sensitivity"], Sensitivity) or sensitivity
    min_history = None
    if "min_history" in mapping:
        min_history = checker.integer(("anomaly", "min_history"), mapping["min_history"], minimum=7)
    return AnomalySettings(chosen, by[0] if len(by) == 1 else None, seasonality, sensitivity, min_history)


def _listed(
    checker: PositionalValidator,
    mapping: dict[Any, Any],
    key: str,
    allowed: tuple[str, ...],
    declared: list[str],
    what: str,
) -> tuple[str, ...]:
    """The names under ``anomaly.<key>`` that are in ``allowed``, reporting the others at their position."""
    if key not in mapping:
        return ()
    names = checker.names(("anomaly", key), mapping[key], "column")
    listed = isinstance(mapping[key], list)
    kept = []
    for index, name in enumerate(names):
        if name in allowed:
            kept.append(name)
            continue
        found = "is not a declared column" if name not in declared else f"is not {what}"
        checker.report(
            ("anomaly", key, index) if listed else ("anomaly", key),
            f"anomaly-{key}",
            f"'{name}' in anomaly.{key} {found}{suggest(name, allowed) if name not in declared else ''}",
            f"name {what}: {', '.join(allowed) or 'this KPI declares none'}",
        )
    return tuple(kept)
