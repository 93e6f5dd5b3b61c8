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
from pipeline.clone.model import ColumnRule, RuleFile, Strategy, TableRule
from pipeline.clone.schema import ForeignKey, Schema, Table
from pipeline.clone.sql import Assignment, assignment, column_digest, kept_by_subset, orphaned, quote

__all__ = ["FakeColumn", "MaskingPlan", "ReferenceCheck", "SubsetStep", "TablePlan", "UniqueCheck", "build_plan"]


@dataclass(frozen=True)
class FakeColumn:
    """A column rewritten with realistic fakes (pipeline.clone.fakes): ``digest_sql`` is its keyed hash, read per
    chunk; ``suffix`` hex characters of it follow the fake in a unique column."""

    column: str
    kind: str
    locale: str
    suffix: int
    max_length: int | None
    digest_sql: str


@dataclass(frozen=True)
class SubsetStep:
    """Rows of ``table`` that a subset removes: outside a root's subset, or referencing a removed row."""

    table: str
    condition: str
    why: str


@dataclass(frozen=True)
class ReferenceCheck:
    """After a subset: ``sql`` counts rows whose key points at no row (0 means none)."""

    key: ForeignKey
    sql: str


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
    fakes: tuple[FakeColumn, ...] = ()

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def writes(self) -> bool:
        return self.truncate or bool(self.delete_where) or bool(self.assignments) or bool(self.fakes)

    @property
    def rewritten(self) -> tuple[str, ...]:
        """The columns masking writes: SQL rules and fakes."""
        return tuple(a.column for a in self.assignments) + tuple(f.column for f in self.fakes)

    def summary(self) -> str:
        if self.truncate:
            return "truncate"
        parts = []
        if self.delete_where:
            parts.append(f"delete where {self.delete_where}")
        if self.rewritten:
            masked = ", ".join(f"{c} → {self.rules[c].describe()}" for c in self.rewritten)
            chunks = "in chunks by primary key" if self.table.primary_key else "in one transaction (no primary key)"
            parts.append(f"mask {len(self.rewritten)} of {len(self.table.columns)} columns {chunks}: {masked}")
        return "; then ".join(parts) if parts else "keep (every column judged safe)"


@dataclass(frozen=True)
class MaskingPlan:
    """The masking of one database. ``digest`` changes whenever what the rules write changes."""

    rules: RuleFile
    schema: Schema
    tables: tuple[TablePlan, ...]
    digest: str
    subset: tuple[SubsetStep, ...] = ()
    reference_checks: tuple[ReferenceCheck, ...] = ()

    def table(self, name: str) -> TablePlan:
        return next(t for t in self.tables if t.name == name)

    def text(self) -> str:
        width = max((len(t.name) for t in self.tables), default=0)
        counts = {t.name: f"~{t.table.rows:,} row{'s' if t.table.rows != 1 else ''}" for t in self.tables}
        count_width = max((len(c) for c in counts.values()), default=0)
        lines = [f"masking plan for database {self.schema.database} ({self.rules.path}), rules {self.digest}"]
        for step in self.subset:
            lines.append(f"  subset: {step.table}: {step.why}")
        for table in self.tables:
            lines.append(f"  {table.name.ljust(width)}  {counts[table.name].rjust(count_width)}  {table.summary()}")
        columns = sum(len(t.table.columns) for t in self.tables)
        kept = sum(1 for t in self.tables if not t.truncate for c in t.table.columns if c.name not in t.rewritten)
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
    subset, checks = _subset(rules, schema)
    return MaskingPlan(rules, schema, tuple(sorted(tables, key=lambda t: t.name)), digest, subset, checks)


def foreign_keys(rules: RuleFile, schema: Schema) -> list[ForeignKey]:
    """Every key between the database's tables: declared ones (information_schema) and the rules' ``references``."""
    found = [key for table in schema.tables.values() for key in table.foreign_keys if key.target in schema.tables]
    for rule in rules.tables.values():
        found += [ForeignKey(rule.name, (r.column,), r.table, (r.target,), declared=False) for r in rule.references]
    return found


def _subset(rules: RuleFile, schema: Schema) -> tuple[tuple[SubsetStep, ...], tuple[ReferenceCheck, ...]]:
    """Roots first, then every table that references a subset one, each after the tables it references (a
    cycle is left to the reference check, which then fails the run)."""
    roots = {name: rule.subset for name, rule in rules.tables.items() if rule.subset is not None}
    if not roots:
        return (), ()
    keys = foreign_keys(rules, schema)
    affected = set(roots)
    while True:
        more = {k.table for k in keys if k.target in affected} - affected
        if not more:
            break
        affected |= more
    order: list[str] = []
    pending = sorted(affected)
    while pending:
        ready = [
            t
            for t in pending
            if all(k.target in order or k.target == t for k in keys if k.table == t and k.target in affected)
        ]
        chosen = ready[0] if ready else pending[0]
        order.append(chosen)
        pending.remove(chosen)
    steps = []
    for name in order:
        target = table_sql(schema.database, name)
        conditions, why = [], []
        subset = roots.get(name)
        if subset is not None:
            kept = kept_by_subset(schema.tables[name].primary_key, subset.fraction, subset.where)
            conditions.append(f"({kept}) IS NOT TRUE")
            why.append(_describe_subset(subset.fraction, subset.where))
        for key in (k for k in keys if k.table == name and k.target in affected):
            parent = table_sql(schema.database, key.target)
            conditions.append(orphaned(target, key.columns, parent, key.target_columns, same=key.target == name))
            why.append(f"rows whose {', '.join(key.columns)} no longer find their {key.target} row")
        steps.append(SubsetStep(name, " OR ".join(conditions), "; ".join(why)))
    checks = []
    for key in keys:
        child, parent = table_sql(schema.database, key.table), table_sql(schema.database, key.target)
        condition = orphaned(child, key.columns, parent, key.target_columns, same=key.table == key.target)
        checks.append(ReferenceCheck(key, f"SELECT COUNT(*) FROM {child} WHERE {condition}"))
    return tuple(steps), tuple(checks)


def _describe_subset(fraction: float, where: str) -> str:
    parts = [f"rows where {where}"] if where else []
    if fraction < 1:
        parts.append(
            f"{fraction:.0%} of them by the keyed hash of the primary key"
            if where
            else f"{fraction:.0%} of the rows by the keyed hash of the primary key"
        )
    return "keeps " + ", ".join(parts)


def table_sql(database: str, table: str) -> str:
    return f"{quote(database)}.{quote(table)}"


def _table_plan(schema: Schema, table: Table, rule: TableRule) -> TablePlan:
    target = table_sql(schema.database, table.name)
    if rule.truncate:
        return TablePlan(table, True, "", (), {}, (), target)
    assignments, fakes = [], []
    unique_columns = {column for key in (*table.unique_keys, table.primary_key) for column in key}
    for column in table.columns:
        column_rule = rule.columns[column.name]
        if column_rule.strategy is Strategy.FAKE:
            unique = column_rule.unique or column.name in unique_columns
            suffix = (column_rule.length or 0) if unique else 0
            fakes.append(
                FakeColumn(
                    column.name,
                    str(column_rule.value),
                    column_rule.locale,
                    suffix,
                    column.max_length,
                    column_digest(column),
                )
            )
            continue
        found = assignment(column_rule, column)
        if found is not None:
            assignments.append(found)
    return TablePlan(
        table,
        False,
        rule.delete_where,
        tuple(assignments),
        dict(rule.columns),
        _unique_checks(target, table, rule, assignments, fakes),
        target,
        tuple(fakes),
    )


def _unique_checks(
    target: str, table: Table, rule: TableRule, assignments: list[Assignment], fakes: list[FakeColumn]
) -> tuple[UniqueCheck, ...]:
    # A unique fake is unique by its suffix, the keyed hash's first characters: those are checked.
    rewritten = {a.column: a.expression for a in assignments}
    rewritten |= {f.column: f"LEFT({f.digest_sql}, {f.suffix})" for f in fakes if f.suffix}
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
