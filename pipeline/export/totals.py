"""The exporter's running totals of one scored partition (the rule and why: :mod:`pipeline.core.totals`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.totals import NULL_VALUE, TOTALLED_DIMENSIONS, Total, scored_measures


@dataclass
class PartitionTotals:
    """The running totals of one partition's measures (per value of ``by``), fed each batch routed to it."""

    measures: tuple[str, ...]
    by: str | None
    _sums: dict[tuple[str, str | None], float] = field(default_factory=dict)

    @classmethod
    def of(
        cls, measures: Sequence[str], by: str | None, columns: Sequence[tuple[str, str]], time_column: str
    ) -> PartitionTotals | None:
        """The totals a KPI's partitions keep (``columns``: name and BigQuery type), or None when its ``by``
        column's values would not be named as the warehouse names them
        (:data:`~pipeline.core.totals.TOTALLED_DIMENSIONS`)."""
        types = dict(columns)
        if by is not None and types.get(by) not in {t.value for t in TOTALLED_DIMENSIONS}:
            return None
        return cls(scored_measures(measures, columns, time_column), by)

    def observe(self, batch: pa.RecordBatch) -> None:
        """Add one batch's rows (all of this partition's) to the sums."""
        if not batch.num_rows:
            return
        sums = self._sums
        if self.by is None:
            for measure in self.measures:
                total = pc.sum(pc.cast(batch.column(measure), pa.float64())).as_py()
                sums[measure, None] = sums.get((measure, None), 0.0) + (total or 0.0)
            return
        keys = pc.fill_null(pc.cast(batch.column(self.by), pa.string()), NULL_VALUE)
        table = pa.table(
            {"v": keys, **{str(i): pc.cast(batch.column(m), pa.float64()) for i, m in enumerate(self.measures)}}
        )
        grouped = table.group_by("v").aggregate([(str(i), "sum") for i in range(len(self.measures))]).to_pydict()
        for index, measure in enumerate(self.measures):
            for value, total in zip(grouped["v"], grouped[f"{index}_sum"], strict=True):
                key = (measure, f"{self.by}={value}")
                sums[key] = sums.get(key, 0.0) + (total or 0.0)

    def totals(self) -> tuple[Total, ...] | None:
        """The sums by measure and dimension value, or None when one is not finite (a NaN or infinite measure:
        the loader then sums the staged rows as the warehouse does). A partition without rows has none, as its
        history query reads no row for it (a series judged without its partition's total is judged by 0)."""
        if not all(math.isfinite(value) for value in self._sums.values()):
            return None
        ordered = sorted(self._sums.items(), key=lambda item: (item[0][0], item[0][1] or ""))
        return tuple(Total(measure, dimension, value) for (measure, dimension), value in ordered)
