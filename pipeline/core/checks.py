"""The header's data checks, evaluated on the stream of one partition before anything is committed.

``not_null`` and ``min_rows`` cost nothing but counters. ``unique`` remembers every key it has seen, so its
memory grows with the number of distinct keys of the partition — fine for KPI results (aggregates), and the
reason it is opt-in. Failures name the rows (1-based, counted over the query's result) so that the analyst can
find them with ``kpi render`` and a SQL client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.spec import Checks

_SHOWN = 5  # offending rows quoted per failure


@dataclass
class PartitionChecks:
    checks: Checks
    rows: int = 0
    _nulls: dict[str, list[int]] = field(default_factory=dict)
    _null_counts: dict[str, int] = field(default_factory=dict)
    _keys: dict[tuple[object, ...], int] = field(default_factory=dict)
    _duplicates: list[tuple[int, int, tuple[object, ...]]] = field(default_factory=list)
    _duplicate_count: int = 0

    def observe(self, batch: pa.RecordBatch, row_numbers: pa.Array | None, first_row: int) -> None:
        """Account for one batch; ``row_numbers`` maps its rows to result rows (None: consecutive from first_row)."""

        numbers = row_numbers.to_pylist() if row_numbers is not None else None

        def number(index: int) -> int:
            return int(numbers[index]) if numbers is not None else first_row + index

        self.rows += batch.num_rows
        for name in self.checks.not_null:
            nulls = pc.is_null(batch.column(name))
            count = pc.sum(nulls).as_py() or 0
            if count:
                self._null_counts[name] = self._null_counts.get(name, 0) + count
                shown = self._nulls.setdefault(name, [])
                if len(shown) < _SHOWN:
                    indices = pc.indices_nonzero(nulls)[: _SHOWN - len(shown)].to_pylist()
                    shown.extend(number(i) for i in indices)
        if self.checks.unique:
            columns = [batch.column(name).to_pylist() for name in self.checks.unique]
            for index, key in enumerate(zip(*columns, strict=True)):
                first = self._keys.setdefault(key, number(index))
                if first != number(index):
                    self._duplicate_count += 1
                    if len(self._duplicates) < _SHOWN:
                        self._duplicates.append((first, number(index), key))

    def failures(self) -> list[str]:
        """Every broken check, one sentence each; empty when the partition may be committed."""
        found: list[str] = []
        if self.rows < self.checks.min_rows:
            found.append(f"min_rows: {self.rows} row(s), at least {self.checks.min_rows} expected")
        for name, count in self._null_counts.items():
            rows = ", ".join(map(str, self._nulls[name]))
            found.append(f"not_null: column '{name}' is NULL in {count} row(s) (rows {rows}…)")
        if self._duplicate_count:
            columns = ", ".join(self.checks.unique)
            pairs = "; ".join(f"rows {a} and {b} share {key!r}" for a, b, key in self._duplicates)
            found.append(f"unique: ({columns}) repeats in {self._duplicate_count} row(s): {pairs}")
        return found
