"""``kpi diff``'s comparison: two versions of a KPI's result, partition by partition — pure, no I/O (the queries
run in :mod:`pipeline.flows.diff`).

Each side is summarised per partition: its row count, the sum of each measure (a numeric column other than the time
column) and the multiset of its rows over the columns both sides share. A partition changed when any of those
differ, so rows that moved between dimension values are found even when every total is equal. Columns are compared
by the headers' declarations: added, removed, retyped.

The Markdown fits one pull-request comment: GitHub refuses a comment over 65,536 characters, so partitions that do
not fit are left out with a count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeline.core.types import MEASURE_TYPES

COMMENT_LIMIT = 65_536  # GitHub's limit on an issue or pull-request comment, in characters
NO_CHANGE = "no change in values"

Number = int | float | Decimal


@dataclass
class PartitionSummary:
    rows: int = 0
    sums: dict[str, Number] = field(default_factory=dict)
    content: Counter[tuple[Any, ...]] = field(default_factory=Counter)  # rows over the shared columns


@dataclass(frozen=True)
class ColumnChange:
    name: str
    base: str | None  # declared type at the base; None: added
    head: str | None  # declared type at the head; None: removed

    def __str__(self) -> str:
        if self.base is None:
            return f"added {self.name} ({self.head})"
        if self.head is None:
            return f"removed {self.name} ({self.base})"
        return f"retyped {self.name}: {self.base} → {self.head}"


@dataclass(frozen=True)
class PartitionDelta:
    partition: str
    rows: tuple[int, int]  # base, head
    measures: dict[str, tuple[Number | None, Number | None]]  # name → (base sum, head sum), changed ones only
    rows_changed: int  # rows of the head not in the base (over the shared columns)

    @property
    def changed(self) -> bool:
        return self.rows[0] != self.rows[1] or bool(self.measures) or self.rows_changed > 0


@dataclass(frozen=True)
class ValueDiff:
    kpi: str
    base_ref: str
    partitions: tuple[PartitionDelta, ...]
    columns: tuple[ColumnChange, ...]
    measures: tuple[str, ...]  # the measures compared

    @property
    def changed(self) -> bool:
        return bool(self.columns) or any(p.changed for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.kpi,
            "base": self.base_ref,
            "changed": self.changed,
            "columns": [{"name": c.name, "base": c.base, "head": c.head} for c in self.columns],
            "partitions": [
                {
                    "partition": p.partition,
                    "rows": {"base": p.rows[0], "head": p.rows[1]},
                    "measures": {k: {"base": _plain(b), "head": _plain(h)} for k, (b, h) in p.measures.items()},
                    "rows_changed": p.rows_changed,
                }
                for p in self.partitions
            ],
        }


def column_changes(base: Mapping[str, str], head: Mapping[str, str]) -> list[ColumnChange]:
    """Declared columns (name → type) of the two headers: added, removed and retyped, in the head's order."""
    changes = [ColumnChange(n, None, t) for n, t in head.items() if n not in base]
    changes += [ColumnChange(n, base[n], t) for n, t in head.items() if n in base and base[n] != t]
    changes += [ColumnChange(n, t, None) for n, t in base.items() if n not in head]
    return changes


def measures_of(columns: Mapping[str, str], time_column: str | None) -> list[str]:
    return [name for name, kind in columns.items() if name != time_column and kind in MEASURE_TYPES]


def compare(
    kpi: str,
    base_ref: str,
    partitions: Sequence[str],
    base: Mapping[str, PartitionSummary],
    head: Mapping[str, PartitionSummary],
    columns: Sequence[ColumnChange],
    measures: Sequence[str],
) -> ValueDiff:
    """The delta of every partition named (a partition neither side returned rows for has zeros on both)."""
    deltas = []
    for name in partitions:
        old, new = base.get(name, PartitionSummary()), head.get(name, PartitionSummary())
        moved = {m: (old.sums.get(m), new.sums.get(m)) for m in measures if _differs(old.sums.get(m), new.sums.get(m))}
        extra = sum((new.content - old.content).values())
        deltas.append(PartitionDelta(name, (old.rows, new.rows), moved, extra))
    return ValueDiff(kpi, base_ref, tuple(deltas), tuple(columns), tuple(measures))


def _differs(a: Number | None, b: Number | None) -> bool:
    return (a or 0) != (b or 0)


# -- text -------------------------------------------------------------------------------------------------------


def delta_text(base: Number | None, head: Number | None) -> str:
    """``1,204 → 1,180 (−24, −2.0%)``; ``0 → 5 (+5)``; ``12 (=)``."""
    old, new = base or 0, head or 0
    if old == new:
        return f"{_number(old)} (=)"
    change = new - old  # type: ignore[operator]
    sign = "+" if change >= 0 else "−"
    percent = f", {sign}{abs(change) / abs(old) * 100:.1f}%" if old else ""
    return f"{_number(old)} → {_number(new)} ({sign}{_number(abs(change))}{percent})"


def markdown(diff: ValueDiff, *, limit: int = COMMENT_LIMIT) -> str:
    """One pull-request comment: a heading, the column changes, a table of the changed partitions."""
    title = f"### `kpi diff {diff.kpi}` against `{diff.base_ref}`\n\n"
    if not diff.changed:
        return f"{title}{NO_CHANGE} over the last {len(diff.partitions)} partition(s).\n"
    lines = [title.rstrip("\n"), ""]
    if diff.columns:
        lines += ["Columns: " + "; ".join(f"`{c}`" for c in diff.columns), ""]
    changed = [p for p in diff.partitions if p.changed]
    lines.append(
        f"{len(changed)} of {len(diff.partitions)} partition(s) changed (row count, sums of "
        + (", ".join(f"`{m}`" for m in diff.measures) or "no measure")
        + ", and rows that differ):"
    )
    lines.append("")
    header = ["partition", "rows", *diff.measures, "rows changed"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footer_room = 120
    text = "\n".join(lines) + "\n"
    for shown, delta in enumerate(changed):
        cells = [f"`{delta.partition}`", delta_text(*delta.rows)]
        cells += [delta_text(*delta.measures[m]) if m in delta.measures else "=" for m in diff.measures]
        cells.append(str(delta.rows_changed))
        row = "| " + " | ".join(cells) + " |\n"
        if len(text) + len(row) + footer_room > limit:
            text += f"\n… and {len(changed) - shown} more changed partition(s) not shown (comment size limit).\n"
            return text
        text += row
    return text


def _number(value: Number) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return f"{value:,f}"
    return f"{value:,.6g}"


def _plain(value: Number | None) -> Any:
    return str(value) if isinstance(value, Decimal) else value
