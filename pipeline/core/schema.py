"""A source database's schema as a snapshot: tables, columns, types, nullability, indexes and row estimates.

Why: ``kpi check`` runs in a pull request's CI, which has no database. A snapshot pulled once (``kpi schema
pull``) and committed under ``schemas/<source>.json`` lets it check every table and column a query reads, and
the types it implies, offline. The file is written for diffs: tables and indexes sorted by name, columns in the
table's own order, one column or index per line, and row estimates rounded to two significant digits so that
a day's inserts do not touch the file — a schema change in the application shows as a small, readable diff.

Pure: text in, text out (:func:`to_text`, :func:`from_text`); reading the database is
:mod:`pipeline.sources.schema_pull`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot.schema import MappingSchema

from pipeline.errors import Location, Problem, ProblemsError

__all__ = ["FORMAT", "SchemaColumn", "SchemaIndex", "SchemaTable", "SourceSchema", "from_text", "to_text"]

FORMAT = 1
SNAPSHOT_HINT = "pull it again: `kpi schema pull --env ENV` writes schemas/<source>.json"


@dataclass(frozen=True)
class SchemaColumn:
    """One column; ``type`` is the source's own spelling (``decimal(12,2)``, ``bigint unsigned``, ``TIMESTAMP``)."""

    name: str
    type: str
    nullable: bool = True


@dataclass(frozen=True)
class SchemaIndex:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class SchemaTable:
    name: str
    columns: tuple[SchemaColumn, ...]
    indexes: tuple[SchemaIndex, ...] = ()
    rows: int = 0  # the server's estimate (information_schema.TABLES.TABLE_ROWS), rounded

    def column(self, name: str) -> SchemaColumn | None:
        """MySQL column names are case-insensitive."""
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


@dataclass(frozen=True)
class SourceSchema:
    """The tables of one source (a KPI header's ``source:``), as pulled from ``pulled_from`` (no password)."""

    source: str
    dialect: str  # "mysql" or "duckdb": how the column types are spelt
    database: str
    tables: Mapping[str, SchemaTable] = field(default_factory=dict)
    pulled_from: str = ""
    path: str = ""  # the snapshot file it was read from; empty when pulled live

    @property
    def origin(self) -> str:
        """Where the schema came from, for messages: the snapshot file or the live source."""
        return self.path or f"the live source {self.pulled_from}"

    def table(self, name: str) -> SchemaTable | None:
        """Table names are case-sensitive on MySQL servers on Linux (lower_case_table_names=0, Aurora's default)."""
        return self.tables.get(name)

    def mapping(self) -> MappingSchema:
        """The schema as sqlglot's optimizer wants it (types parsed in the snapshot's dialect)."""
        return MappingSchema(
            {t.name: {c.name: c.type for c in t.columns} for t in self.tables.values()},
            dialect=self.dialect,
            normalize=False,
        )


def round_rows(rows: int) -> int:
    """Two significant digits: 1234567 → 1200000. Estimates move daily; the snapshot should not."""
    if rows < 100:
        return rows
    digits = len(str(rows)) - 2
    return round(rows, -digits)


def to_text(schema: SourceSchema) -> str:
    """The snapshot file's text: JSON, stable order, one column or index per line."""
    lines = [
        "{",
        f'  "format": {FORMAT},',
        f'  "source": {_j(schema.source)},',
        f'  "dialect": {_j(schema.dialect)},',
        f'  "database": {_j(schema.database)},',
        f'  "pulled_from": {_j(schema.pulled_from)},',
        '  "tables": {',
    ]
    tables = sorted(schema.tables.values(), key=lambda t: t.name)
    for number, table in enumerate(tables, start=1):
        lines.append(f"    {_j(table.name)}: {{")
        lines.append(f'      "rows": {round_rows(table.rows)},')
        lines.append('      "columns": {')
        lines.extend(
            f'        {_j(c.name)}: {{"type": {_j(c.type)}, "nullable": {_j(c.nullable)}}}'
            + ("," if i < len(table.columns) else "")
            for i, c in enumerate(table.columns, start=1)
        )
        lines.append("      },")
        indexes = sorted(table.indexes, key=lambda i: i.name)
        lines.append('      "indexes": {' + ("" if indexes else "}"))
        lines.extend(
            f'        {_j(ix.name)}: {{"columns": {_j(list(ix.columns))}, "unique": {_j(ix.unique)}}}'
            + ("," if i < len(indexes) else "")
            for i, ix in enumerate(indexes, start=1)
        )
        if indexes:
            lines.append("      }")
        lines.append("    }" + ("," if number < len(tables) else ""))
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def from_text(path: str, text: str) -> SourceSchema:
    """A snapshot file read back; anything malformed is one error naming the file and what to do."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("the file is not a JSON object")
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this kpi reads format {FORMAT}")
        tables = {}
        for name, table in dict(data["tables"]).items():
            columns = tuple(
                SchemaColumn(str(column), str(spec["type"]), bool(spec.get("nullable", True)))
                for column, spec in dict(table["columns"]).items()
            )
            indexes = tuple(
                SchemaIndex(str(index), tuple(str(c) for c in spec["columns"]), bool(spec.get("unique", False)))
                for index, spec in dict(table.get("indexes", {})).items()
            )
            tables[str(name)] = SchemaTable(str(name), columns, indexes, int(table.get("rows", 0)))
        return SourceSchema(
            source=str(data["source"]),
            dialect=str(data["dialect"]),
            database=str(data.get("database", "")),
            tables=tables,
            pulled_from=str(data.get("pulled_from", "")),
            path=path,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        detail = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        raise ProblemsError(
            [Problem(Location(path), "schema-snapshot", f"cannot read the schema snapshot: {detail}", SNAPSHOT_HINT)],
            what="a schema snapshot is unreadable",
            hint=SNAPSHOT_HINT,
        ) from None
