"""Which partition each exported row belongs to, by the KPI's ``time_column``.

A backfill batches many partitions into one query; :class:`Splitter` routes its rows to their partitions in the
same pass. For a single partition it is the guard that every row lies inside the interval: BigQuery refuses
a partition load whose rows fall outside the decorator's partition, and a query that ignores ``:start`` and
``:end`` should fail here, naming the row, not in the warehouse.

Comparisons are made in the column's own terms (:mod:`pipeline.core.bounds`), as the loader's are.

A week is loaded into BigQuery's DAY partition of its first day, so a week's rows must hold exactly that date in
the time column (a row dated Wednesday would fall in another BigQuery partition); the splitter refuses any other.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.arrays import arange
from pipeline.core.bounds import column_bound
from pipeline.core.intervals import Grain, Interval, week_start_sql
from pipeline.core.spec import Kpi
from pipeline.core.typeplan import ARROW_TYPES
from pipeline.core.types import BqType
from pipeline.errors import ExportError


class Splitter:
    def __init__(self, kpi: Kpi, intervals: list[Interval], column_type: BqType) -> None:
        self.kpi = kpi
        self.intervals = intervals
        self.column = kpi.time_column or ""
        self.bounds = [self._bound(i, column_type, start=True) for i in intervals]
        self.end = self._bound(intervals[-1], column_type, start=False)

    def _bound(self, interval: Interval, column_type: BqType, *, start: bool) -> pa.Scalar:
        value = column_bound(interval.start if start else interval.end, column_type, self.kpi.source_zone)
        return pa.scalar(value, ARROW_TYPES[column_type])

    def split(self, batch: pa.RecordBatch, first_row: int) -> Iterator[tuple[int, pa.RecordBatch, pa.Array | None]]:
        """``(interval index, rows, their 1-based result row numbers or None when consecutive)`` per partition
        present in the batch; raises when a row's time column is NULL or outside every interval."""
        values = batch.column(self.column)
        outside = pc.or_kleene(pc.less(values, self.bounds[0]), pc.greater_equal(values, self.end))
        bad = pc.fill_null(outside, True)  # NULL in the time column belongs to no partition
        if pc.any(bad).as_py():
            index = int(pc.index(bad, True).as_py())
            value = values[index].as_py()
            first, last = self.intervals[0], self.intervals[-1]
            raise ExportError(
                f"row {first_row + index}: {self.column} = {value!r} lies outside the exported range "
                f"[{first.start.isoformat()}, {last.end.isoformat()})",
                where=self.kpi.name,
                hint=f"filter the query with `{self.column} >= :start AND {self.column} < :end` "
                "(on the column the time column is computed from)",
            )
        weekly = self.kpi.grain is Grain.WEEK
        if len(self.intervals) == 1 and not weekly:
            yield 0, batch, None
            return
        slot = pc.subtract(_count_true([pc.greater_equal(values, b) for b in self.bounds]), 1)
        if weekly:
            self._check_first_days(values, slot, first_row)
        if len(self.intervals) == 1:
            yield 0, batch, None
            return
        numbers = pc.add(arange(batch.num_rows), first_row)
        for index in pc.unique(slot).to_pylist():
            mask = pc.equal(slot, index)
            yield int(index), batch.filter(mask), numbers.filter(mask)

    def _check_first_days(self, values: pa.Array, slot: pa.Array, first_row: int) -> None:
        """Every row of a week holds the week's first day (its BigQuery partition)."""
        expected = pc.take(pa.array(self.bounds, self.bounds[0].type), slot)
        wrong = pc.not_equal(values, expected)
        if not pc.any(wrong).as_py():
            return
        index = int(pc.index(wrong, True).as_py())
        raise ExportError(
            f"row {first_row + index}: {self.column} = {values[index].as_py()!r} is not the first day of its week "
            f"({expected[index].as_py()!r}); a week is stored in BigQuery's partition of that day",
            where=self.kpi.name,
            hint=f"select the week's first day as {self.column}, e.g. "
            + week_start_sql("created_at", self.kpi.first_weekday),
        )


def _count_true(masks: list[pa.Array]) -> pa.Array:
    total = masks[0].cast(pa.int32())
    for mask in masks[1:]:
        total = pc.add(total, mask.cast(pa.int32()))
    return total
