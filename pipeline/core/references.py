"""Which source tables and columns a KPI's query reads, resolved scope by scope — and the names that resolve to
nothing.

Why one resolver: ``kpi check`` needs the names that do not exist (with a position and the closest real name),
``kpi impact`` every column read anywhere (a column only in a WHERE or a JOIN breaks the KPI as surely as one
in the SELECT list), and the type check the tables behind each alias. sqlglot's scopes (:mod:`sqlglot.optimizer
.scope`) say which tables, CTEs and subqueries each SELECT sees; this module walks them with MySQL's rules:
column names are case-insensitive, table names are not, and GROUP BY / HAVING / ORDER BY may name a SELECT
alias. A subquery sees its outer query's tables (correlation). Without a schema, a column is attributed only
when one table can hold it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from pipeline.core.positions import SqlPositions
from pipeline.core.schema import SchemaTable, SourceSchema
from pipeline.core.spec import Kpi
from pipeline.core.validator import suggest
from pipeline.errors import Location, Problem

__all__ = ["Reads", "resolve"]


@dataclass
class Reads:
    """What a query reads: physical tables, ``(table, column)`` pairs, and the problems of names that resolve to
    no table or column of the schema."""

    tables: set[str] = field(default_factory=set)
    columns: set[tuple[str, str]] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    offsets: dict[tuple[str, str], int] = field(default_factory=dict)  # first place each column is read

    def read(self, table: str, column: str, offset: int) -> None:
        self.columns.add((table, column))
        self.offsets[(table, column)] = min(offset, self.offsets.get((table, column), offset))


def resolve(kpi: Kpi, schema: SourceSchema | None) -> Reads:
    """Resolve every table and column name of ``kpi``'s query against ``schema`` (None: attribute what can be)."""
    reads = Reads()
    at = SqlPositions(kpi.path, kpi.query.sql, kpi.sql_line).at
    try:
        scopes = traverse_scope(kpi.query.tree)
    except Exception:
        return reads
    for scope in scopes:
        _Scope(scope, schema, kpi, at, reads).resolve()
    return reads


class _Scope:
    def __init__(
        self, scope: Scope, schema: SourceSchema | None, kpi: Kpi, at: Callable[[int], Location], reads: Reads
    ) -> None:
        self.scope, self.schema, self.kpi, self.reads = scope, schema, kpi, reads
        self.at = at

    def problem(self, node: exp.Expr, rule: str, message: str, hint: str) -> None:
        start = node.meta.get("start", 0) if isinstance(node, exp.Identifier) else _start(node)
        self.reads.problems.append(Problem(self.at(start), rule, message, hint, self.kpi.name))

    def resolve(self) -> None:
        for source in self.scope.sources.values():
            if isinstance(source, exp.Table):
                self.table(source)
        for column in self.scope.columns:
            # sqlglot lists a correlated subquery's outer references in the outer scope too; each column is
            # resolved once, by the SELECT it is written in.
            if isinstance(column.this, exp.Star) or column.find_ancestor(exp.Select) is not self.scope.expression:
                continue
            if column.table:
                self.qualified(column)
            else:
                self.unqualified(column)

    def known(self, table: exp.Table) -> SchemaTable | None:
        """The schema's table behind ``table``, or None when there is no schema or it lives in another database."""
        if self.schema is None or (table.db and table.db != self.schema.database):
            return None
        return self.schema.table(table.name)

    def table(self, table: exp.Table) -> None:
        if self.schema is None or (table.db and table.db != self.schema.database):
            self.reads.tables.add(table.name)
            return
        if self.schema.table(table.name) is None:
            self.problem(
                table.this,
                "unknown-table",
                f"table '{table.name}' does not exist in {self.schema.database or 'the source'}"
                f"{suggest(table.name, self.schema.tables)}",
                f"the tables are in {self.schema.origin}; if the table is new, pull the snapshot again "
                "(`kpi schema pull`)",
            )
            return
        self.reads.tables.add(table.name)

    def sources(self) -> Iterator[tuple[str, exp.Table | Scope]]:
        """The sources this SELECT sees, its own first, then those of the queries around it."""
        scope: Scope | None = self.scope
        while scope is not None:
            yield from scope.sources.items()
            scope = scope.parent

    def qualified(self, column: exp.Column) -> None:
        alias = column.table
        source = next((s for name, s in self.sources() if name == alias), None)
        if source is None:
            names = [name for name, _ in self.sources()]
            self.problem(
                column,
                "unknown-table",
                f"'{alias}.{column.name}': no table or alias '{alias}' in this query{suggest(alias, names)}",
                "name a table of the FROM clause, or its alias",
            )
            return
        if isinstance(source, Scope):
            if not _has_output(source, column.name):
                self.problem(
                    column.this,
                    "unknown-column",
                    f"'{alias}' has no column '{column.name}'{suggest(column.name, _outputs(source))}",
                    f"the subquery or CTE '{alias}' returns: {', '.join(_outputs(source))}",
                )
            return
        self.physical(column, source)

    def physical(self, column: exp.Column, table: exp.Table) -> None:
        known = self.known(table)
        if known is None:
            if self.schema is None or (table.db and table.db != self.schema.database):
                self.reads.read(table.name, column.name, _start(column))
            return  # an unknown table was reported once, at the table
        found = known.column(column.name)
        if found is None:
            names = [c.name for c in known.columns]
            self.problem(
                column.this,
                "unknown-column",
                f"column '{column.name}' does not exist in table '{known.name}'{suggest(column.name, names)}",
                f"the columns of {known.name}: {', '.join(names)} ({self.schema.origin if self.schema else ''})",
            )
            return
        self.reads.read(known.name, found.name, _start(column))

    def unqualified(self, column: exp.Column) -> None:
        name = column.name
        scope: Scope | None = self.scope
        while scope is not None:
            holders = [(alias, s) for alias, s in scope.sources.items() if self.holds(scope, s, name)]
            if len(holders) == 1:
                source = holders[0][1]
                if isinstance(source, exp.Table):
                    self.physical(column, source)
                return
            if len(holders) > 1:
                if self.schema is not None and all(isinstance(s, exp.Table) and self.known(s) for _, s in holders):
                    self.problem(
                        column.this,
                        "ambiguous-column",
                        f"column '{name}' is in {' and '.join(a for a, _ in holders)}: MySQL refuses it as ambiguous",
                        f"qualify it: {holders[0][0]}.{name}",
                    )
                return
            if scope is self.scope and _is_select_alias(scope, name):
                return  # MySQL lets GROUP BY, HAVING and ORDER BY name a SELECT alias
            scope = scope.parent
        if self.schema is None:
            return
        tables = [self.known(s) for _, s in self.sources() if isinstance(s, exp.Table)]
        names = [c.name for t in tables if t for c in t.columns]
        shown = ", ".join(t.name for t in tables if t) or "the query's tables"
        self.problem(
            column.this,
            "unknown-column",
            f"column '{name}' does not exist in {shown}{suggest(name, names)}",
            f"check the spelling against {self.schema.origin}, or qualify the column with its table",
        )

    def holds(self, scope: Scope, source: exp.Table | Scope, name: str) -> bool:
        """Whether ``source`` can provide the column ``name``: by the schema, or — without one, or for a table of
        another database — because it is the only source of its SELECT (MySQL would look nowhere else)."""
        if isinstance(source, Scope):
            return _has_output(source, name)
        known = self.known(source)
        if known is not None:
            return known.column(name) is not None
        return len(scope.sources) == 1


def _outputs(scope: Scope) -> list[str]:
    return list(scope.expression.named_selects) if isinstance(scope.expression, exp.Query) else []


def _has_output(scope: Scope, name: str) -> bool:
    selects = _outputs(scope)
    if isinstance(scope.expression, exp.Select) and any(
        isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
        for e in scope.expression.expressions
    ):
        return True  # `SELECT *` in a CTE: its columns are its tables' (checked there)
    return name.lower() in {s.lower() for s in selects}


def _is_select_alias(scope: Scope, name: str) -> bool:
    expression = scope.expression
    return isinstance(expression, exp.Select) and name.lower() in {
        e.alias.lower() for e in expression.expressions if isinstance(e, exp.Alias)
    }


def _start(node: exp.Expr) -> int:
    starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
    return min(starts, default=0)
