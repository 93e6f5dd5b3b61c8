"""``kpi check`` against a DuckDB source's snapshot: would the demo run the query's functions?

A warning, not a failure: the query is valid MySQL, and production runs it; only the embedded stand-in cannot.

The transpiled query is bound — ``EXPLAIN``, no row — in an in-memory DuckDB holding empty tables of the
snapshot's columns and types and the MySQL macros the demo source registers. A function DuckDB lacks (or has with
other arguments) is reported at the call, in MySQL's terms, the same message ``kpi preview`` gives; every other
binder complaint is the name resolver's to report (:mod:`pipeline.core.references`), so nothing is said twice.
"""

from __future__ import annotations

import itertools

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.tokenizer_core import TokenType

from pipeline.core.mysql_on_duckdb import to_duckdb
from pipeline.core.schema import SourceSchema
from pipeline.core.spec import Kpi
from pipeline.core.sqlgate import SqlPositions
from pipeline.duckdb_import import duckdb
from pipeline.errors import Problem
from pipeline.sources.duckdb import register_mysql_functions, unsupported_function

__all__ = ["DemoBinder"]


class DemoBinder:
    """One in-memory DuckDB with the snapshot's tables (empty), for every KPI of that source."""

    def __init__(self, schema: SourceSchema) -> None:
        self.schema = schema
        self.db = duckdb.connect(":memory:")
        for table in schema.tables.values():
            columns = ", ".join(f'"{c.name}" {c.type}' for c in table.columns)
            try:
                self.db.execute(f'CREATE TABLE "{table.name}" ({columns})')
            except duckdb.Error:
                continue  # a type this DuckDB cannot spell back: queries of that table bind nothing here
        register_mysql_functions(self.db)

    def problem(self, kpi: Kpi) -> Problem | None:
        tree = kpi.query.tree.copy().transform(lambda n: exp.Null() if isinstance(n, exp.Placeholder) else n)
        try:
            self.db.execute("EXPLAIN " + to_duckdb(tree))
        except duckdb.Error as error:
            unsupported = unsupported_function(error)
            if unsupported is None:
                return None
            name, message, hint = unsupported
            at = SqlPositions(kpi.path, kpi.query.sql, kpi.sql_line).at(_call_offset(kpi.query.sql, name))
            return Problem(at, "demo-unsupported", message, hint, kpi.name)
        return None

    def close(self) -> None:
        self.db.close()


def _call_offset(sql: str, name: str) -> int:
    """Where the query calls ``name(`` (0 when the call was written otherwise, e.g. WEEK via a macro)."""
    tokens = MySQL().tokenize(sql)
    for token, following in itertools.pairwise(tokens):
        if token.text.upper() == name and following.token_type is TokenType.L_PAREN:
            return token.start
    return 0
