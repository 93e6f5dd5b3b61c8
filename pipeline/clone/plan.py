"""Rules × schema → what masking will do, table by table (pure). ``kpi clone plan`` prints :meth:`MaskingPlan.text`.

Building a plan runs the coverage gate: a :class:`~pipeline.clone.errors.CoverageError` carries every
problem and the stubs, and nothing is touched. The plan holds the SQL of each column's rule, and for every
unique key that a rule rewrites, the query that finds distinct values the rule would merge into one (run
before any write: a collision is refused, never left to break a unique key halfway through).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.clone.coverage import check_coverage
from pipeline.clone.errors import CoverageError
from pipeline.clone.rules import ColumnRule, RuleFile, Strategy, TableRule
from pipeline.clone.schema import Schema, Table
from pipeline.clone.sql import Assignment, assignment, quote

__all__ = ["MaskingPlan", "TablePlan", "UniqueCheck", "build_plan"]


@dataclass(frozen=True)
class UniqueCheck:
    """A unique key (or a rule's ``unique: true``) that masking rewrites; ``sql`` counts the groups of
    distinct original values that would mask to one value (0 means none)."""

    columns: tuple[str, ...]
    sql: str


@dataclass(frozen=True)
class TablePlan:
    """What happens to one table: truncate, or delete some rows and then rewrite some columns in chunks."""

    table: Table
    truncate: bool
    delete_where: str
    assignments: tuple[Assignment, ...]
    rules: Mapping[str, ColumnRule]
    unique_checks: tuple[UniqueCheck, ...]
    table_sql: str

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def writes(self) -> bool:
        return self.truncate or bool(self.delete_where) or bool(self.assignments)

    def summary(self) -> str:
        if self.truncate:
            return "truncate"
        parts = []
        if self.delete_where:
            parts.append(f"delete where {self.delete_where}")
        if self.assignments:
            masked = ", ".join(f"{a.column} → {self.rules[a.column].describe()}" for a in self.assignments)
            chunks = "in chunks by primary key" if self.table.primary_key else "in one transaction (no primary key)"
            parts.append(f"mask {len(self.assignments)} of {len(self.table.columns)} columns {chunks}: {masked}")
        return "; then ".join(parts) if parts else "keep (every column judged safe)"


@dataclass(frozen=True)
class MaskingPlan:
    """The masking of one database. ``digest`` changes whenever what the rules write changes."""

    rules: RuleFile
    schema: Schema
    tables: tuple[TablePlan, ...]
    digest: str

    def text(self) -> str:
        width = max((len(t.name) for t in self.tables), default=0)
        counts = {t.name: f"~{t.table.rows:,} row{'s' if t.table.rows != 1 else ''}" for t in self.tables}
        count_width = max((len(c) for c in counts.values()), default=0)
        lines = [f"masking plan for database {self.schema.database} ({self.rules.path}), rules {self.digest}"]
        for table in self.tables:
            lines.append(f"  {table.name.ljust(width)}  {counts[table.name].rjust(count_width)}  {table.summary()}")
        columns = sum(len(t.table.columns) for t in self.tables)
        kept = sum(
            1
            for t in self.tables
            if not t.truncate
            for c in t.table.columns
            if c.name not in {a.column for a in t.assignments}
        )
        lines.append(f"coverage: {columns} columns in {len(self.tables)} tables, every one covered ({kept} kept)")
        return "\n".join(lines)


def build_plan(rules: RuleFile, schema: Schema) -> MaskingPlan:
    """The plan, or a :class:`CoverageError` listing every uncovered column and misfit rule, with stubs."""
    coverage = check_coverage(rules, schema)
    if not coverage.ok:
        raise CoverageError(coverage.problems, coverage.stubs)
    tables = tuple(_table_plan(schema, table, rules.tables[table.name]) for table in schema.tables.values())
    canonical = json.dumps(rules.canonical(), sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    return MaskingPlan(rules, schema, tuple(sorted(tables, key=lambda t: t.name)), digest)


def table_sql(database: str, table: str) -> str:
    return f"{quote(database)}.{quote(table)}"


def _table_plan(schema: Schema, table: Table, rule: TableRule) -> TablePlan:
    target = table_sql(schema.database, table.name)
    if rule.truncate:
        return TablePlan(table, True, "", (), {}, (), target)
    assignments = []
    for column in table.columns:
        found = assignment(rule.columns[column.name], column)
        if found is not None:
            assignments.append(found)
    return TablePlan(
        table,
        False,
        rule.delete_where,
        tuple(assignments),
        dict(rule.columns),
        _unique_checks(target, table, rule, assignments),
        target,
    )


def _unique_checks(
    target: str, table: Table, rule: TableRule, assignments: list[Assignment]
) -> tuple[UniqueCheck, ...]:
    rewritten = {a.column: a.expression for a in assignments}
    keys = list(table.unique_keys)
    keys.extend((name,) for name, r in rule.columns.items() if r.unique and r.strategy is not Strategy.KEEP)
    checks = []
    for key in dict.fromkeys(keys):
        if not any(column in rewritten for column in key):
            continue
        masked = [rewritten.get(column, quote(column)) for column in key]
        originals = ", ".join(quote(column) for column in key)
        conditions = [f"{m} IS NOT NULL" for m in masked]  # NULLs never collide in a unique key
        if rule.delete_where:
            conditions.append(f"({rule.delete_where.replace('%', '%%')}) IS NOT TRUE")  # rows the delete keeps
        sql = (
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {target} WHERE {' AND '.join(conditions)} "
            f"GROUP BY {', '.join(masked)} HAVING COUNT(DISTINCT {originals}) > 1) AS collisions"
        )
        checks.append(UniqueCheck(key, sql))
    return tuple(checks)
