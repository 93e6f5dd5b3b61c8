"""A scored partition's totals, summed by the exporter as its rows stream past: what the load judges it by.

This module holds the rule (pure: the loader, which has no pyarrow, reads it); the exporter's running sums over
Arrow batches are :class:`pipeline.export.totals.ExportTotals`.

Why: the loader judges a new partition's sums against the expectations its history gives. Summed in the
warehouse, they exist only once the rows are loaded — on BigQuery that made the scoring two statements of the
load's own transaction script (the staged rows summed and judged into ``_kpi_anomalies``, read back), seconds
of DML on every scored load. Summed here, they travel in the manifest (version 4, ``totals``), and the loader
judges them in Python while the files upload and writes the scores beside the upload: the load's script is an
unscored load's (:mod:`pipeline.warehouses.commit_scoring`).

The sums are exactly what the history query (:func:`pipeline.warehouses.anomalies.history_sql`) reads from the
loaded table: per value of the ``by`` dimension, each measure cast to a double and summed, a NULL measure
counting nothing (a series whose every value is NULL sums to 0, as the query's NULL sum is read). Only the
order of the additions differs — the floating-point sum may differ from the warehouse's in its last bits.
The dimension value is named as the query's ``CAST(… AS STRING)`` names it, and a NULL as
:data:`NULL_VALUE`; that text is the same in Arrow, DuckDB and BigQuery only for STRING, BOOL (``true``,
``false``) and DATE (ISO) columns, so a KPI split by a column of another type (DATETIME, TIMESTAMP, BYTES…)
gets no totals and its manifest none: the loader then sums the staged rows in its script as before.

What summing costs an export is measured by ``bench/anomaly_bench.py`` (:mod:`pipeline.export.totals` says how
it was brought down to the export's noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pipeline.core.types import MEASURE_TYPES, BqType

NULL_VALUE = "(null)"  # a NULL dimension value, as every warehouse's history query names it
# The dimension types whose values Arrow casts to the same text as DuckDB's and BigQuery's CAST AS STRING.
TOTALLED_DIMENSIONS = frozenset({BqType.STRING, BqType.BOOL, BqType.DATE})


class Total(NamedTuple):
    """One measure's sum over a partition, for one dimension value (``status=paid``) or all rows (None). A named
    tuple: a tuple of text and numbers leaves the garbage collector's lists, where an export's thousands of them
    (a year of days, by four statuses, two measures) made its collections 8–13 % of the export (measured)."""

    measure: str
    dimension: str | None
    value: float


def scored_measures(measures: Sequence[str], columns: Sequence[tuple[str, str]], time_column: str) -> tuple[str, ...]:
    """The measures named, or every numeric column but the time column (``columns``: name and BigQuery type)."""
    if measures:
        return tuple(measures)
    return tuple(name for name, kind in columns if kind in MEASURE_TYPES and name != time_column)
