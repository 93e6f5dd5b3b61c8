"""Column lineage: for each result column of a KPI, the source ``table.column``s its values are computed from;
and impact: which KPIs read a table or a column anywhere in their query.

Lineage follows values through CTEs, subqueries and expressions (sqlglot's :func:`sqlglot.lineage.lineage`):
``SUM(o.amount) AS sales`` comes from ``orders.amount``; ``COUNT(*)`` from no column. Impact is wider: a
column used only in a WHERE, a JOIN or a GROUP BY breaks the KPI when it is renamed as surely as one in the
SELECT list, so it counts every column the query reads (:mod:`pipeline.core.references`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage
from sqlglot.schema import MappingSchema

from pipeline.core.references import resolve
from pipeline.core.schema import SourceSchema
from pipeline.core.spec import Kpi
from pipeline.core.validator import suggest

__all__ = ["KpiLineage", "kpi_lineage", "reads_target"]


@dataclass(frozen=True)
class KpiLineage:
    """``columns``: result column → sorted ``table.column`` sources; ``reads``: every ``table.column`` read;
    ``tables``: every table read."""

    kpi: str
    columns: dict[str, list[str]]
    reads: list[str]
    tables: list[str]

    def to_dict(self) -> dict[str, object]:
        return {"columns": self.columns, "reads": self.reads, "tables": self.tables}


def kpi_lineage(kpi: Kpi, schema: SourceSchema | None = None) -> KpiLineage:
    """The lineage of every result column of ``kpi`` (with ``schema``, unqualified columns of joins resolve)."""
    mapping = schema.mapping() if schema else None
    columns: dict[str, list[str]] = {}
    for output in kpi.query.columns:
        columns[output.name] = _sources(output.name, kpi, schema, mapping)
    reads = resolve(kpi, schema)
    return KpiLineage(
        kpi.name,
        columns,
        sorted(f"{table}.{column}" for table, column in reads.columns),
        sorted(reads.tables),
    )


def _sources(name: str, kpi: Kpi, schema: SourceSchema | None, mapping: MappingSchema | None) -> list[str]:
    try:
        node = lineage(name, kpi.query.tree.copy(), schema=mapping or {}, dialect="mysql")
    except (SqlglotError, KeyError, ValueError, RecursionError):
        return []
    found = set()
    for step in node.walk():
        if isinstance(step.source, exp.Table) and not step.downstream:
            table = step.source.name
            column = step.name.split(".")[-1].strip('"`')
            known = schema.table(table) if schema else None
            spelt = known.column(column) if known else None  # the schema's spelling: MySQL ignores the case
            found.add(f"{table}.{spelt.name if spelt else column}")
    return sorted(found)


def reads_target(lineage_of: KpiLineage, target: str) -> list[str]:
    """What of ``target`` (``table`` or ``table.column``) the KPI reads: the matching ``table.column``s, or
    ``[table]`` for a table read without naming a column (``COUNT(*)``); empty when it does not read it."""
    table, _, column = target.partition(".")
    if column:
        return [read for read in lineage_of.reads if read.lower() == target.lower() and read.split(".")[0] == table]
    if table not in lineage_of.tables:
        return []
    return [read for read in lineage_of.reads if read.split(".")[0] == table] or [table]


def unknown_target(target: str, schemas: Iterable[SourceSchema]) -> str:
    """Why no snapshot knows ``target`` (``table`` or ``table.column``), with the closest name; empty when one
    does, or when there is no snapshot to tell. A misspelt target would otherwise read as "no KPI reads it"."""
    known = list(schemas)
    if not known:
        return ""
    table, _, column = target.partition(".")
    holders = [s.table(table) for s in known if s.table(table) is not None]
    if not holders:
        names = sorted({name for s in known for name in s.tables})
        return f"no table '{table}' in the schema snapshots{suggest(table, names)}"
    if column and not any(t.column(column) for t in holders if t is not None):
        names = [c.name for t in holders if t is not None for c in t.columns]
        return f"table '{table}' has no column '{column}'{suggest(column, names)}"
    return ""


def impacted(lineages: Iterable[KpiLineage], target: str) -> dict[str, list[str]]:
    """KPI name → what of ``target`` it reads, for every KPI that reads it."""
    found = {}
    for item in lineages:
        hits = reads_target(item, target)
        if hits:
            found[item.kpi] = hits
    return dict(sorted(found.items()))
