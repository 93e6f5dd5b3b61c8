"""Schema drift between a warehouse table and an incoming manifest, and what may follow from it.

BigQuery allows only additive changes to a table in place: a new NULLABLE column is added and reported. A column
that disappeared or changed type would silently break every dashboard built on it (or fail half-way), so the
load stops and says which columns and how to resolve it. Descriptions are not drift: they follow the header.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.core.manifest import SchemaField


@dataclass(frozen=True)
class Drift:
    added: tuple[SchemaField, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()  # (column, table type, manifest type)

    @property
    def blocking(self) -> bool:
        return bool(self.removed or self.retyped)

    def problems(self) -> list[str]:
        found = [f"column '{name}' is in the table but no longer exported" for name in self.removed]
        found += [f"column '{name}' is {old} in the table but {new} in the export" for name, old, new in self.retyped]
        return found


def schema_drift(table: Sequence[SchemaField], incoming: Sequence[SchemaField]) -> Drift:
    """Compare by column name; order does not matter (loads name their columns)."""
    current = {f.name: f for f in table}
    arriving = {f.name: f for f in incoming}
    return Drift(
        added=tuple(f for f in incoming if f.name not in current),
        removed=tuple(name for name in current if name not in arriving),
        retyped=tuple(
            (name, current[name].type, field.type)
            for name, field in arriving.items()
            if name in current and current[name].type != field.type
        ),
    )


DRIFT_HINT = (
    "a removed or retyped column needs a decision: keep exporting it (restore it in the SELECT or its type in "
    "the header), or migrate the table yourself (e.g. rename it and backfill) and load again"
)
