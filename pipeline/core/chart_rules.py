"""The rules of the header's ``chart`` key: which measures the report charts and by which dimension.

``chart: {measures: [orders], by: status, top: 5}`` — every part optional. A measure is a declared numeric column
(INT64, NUMERIC, BIGNUMERIC, FLOAT64) other than the time column; a dimension is any other declared column but the
time column. Kept apart from :mod:`pipeline.core.header_rules` so that the header's main rules stay short; the
header's checker calls :func:`chart_settings` with itself (the readers of :mod:`pipeline.core.validator`), and each
problem points at the key in the file.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.spec import ChartSettings, Column
from pipeline.core.types import MEASURE_TYPES
from pipeline.core.validator import PositionalValidator

CHART_KEYS = ("measures", "by", "top")
MAX_TOP = 12  # lines one chart can draw in distinguishable colours; the rest go into "other"


def measure_columns(columns: tuple[Column, ...], time_column: str | None) -> tuple[str, ...]:
    """The columns a chart can draw: numeric, and not the time column."""
    return tuple(c.name for c in columns if c.type in MEASURE_TYPES and c.name != time_column)


def dimension_columns(columns: tuple[Column, ...], time_column: str | None) -> tuple[str, ...]:
    """The columns a chart splits by: every column that is neither the time column nor numeric."""
    return tuple(c.name for c in columns if c.type not in MEASURE_TYPES and c.name != time_column)


def chart_settings(
    checker: PositionalValidator, value: Any, columns: tuple[Column, ...], time_column: str | None
) -> ChartSettings:
    """The ``chart`` key as :class:`ChartSettings`, recording a problem for every bad part (defaults stand in)."""
    mapping = checker.mapping(("chart",), value, "measures: [orders], by: status, top: 5")
    if not mapping:
        return ChartSettings()
    checker.unknown_keys(mapping, CHART_KEYS, ("chart",), "chart key")
    measures = measure_columns(columns, time_column)
    dimensions = dimension_columns(columns, time_column)
    declared = {c.name for c in columns}
    chosen: list[str] = []
    if "measures" in mapping:
        names = checker.names(("chart", "measures"), mapping["measures"], "column")
        listed = isinstance(mapping["measures"], list)
        for index, name in enumerate(names):
            if name in measures:
                chosen.append(name)
                continue
            where = ("chart", "measures", index) if listed else ("chart", "measures")
            what = "is not a declared column" if name not in declared else "is not a numeric column"
            checker.report(
                where,
                "chart-measure",
                f"'{name}' in chart.measures {what}",
                f"chart a numeric column other than the time column: {', '.join(measures) or 'none is declared'}",
            )
    by: str | None = None
    if "by" in mapping:
        text = checker.text(("chart", "by"), mapping["by"])
        if text is not None and text not in dimensions:
            what = "is not a declared column" if text not in declared else "is not a dimension"
            checker.report(
                ("chart", "by"),
                "chart-by",
                f"'{text}' in chart.by {what}",
                "split by a column that is neither the time column nor numeric: "
                + (", ".join(dimensions) or "this KPI declares none; remove `by`"),
            )
        elif text is not None:
            by = text
    top = ChartSettings.top
    if "top" in mapping:
        number = checker.integer(("chart", "top"), mapping["top"], minimum=1)
        if number is not None and number > MAX_TOP:
            checker.report(
                ("chart", "top"),
                "out-of-range",
                f"chart.top is {number}; a chart draws at most {MAX_TOP} lines",
                f"write a number from 1 to {MAX_TOP}; the smaller values are summed into 'other'",
            )
        elif number is not None:
            top = number
    return ChartSettings(tuple(chosen), by, top)
