"""The restored schema as the rules see it: tables, columns, keys, triggers (read by :mod:`pipeline.clone.mysql`).

Pure data. MariaDB's JSON is a LONGTEXT with a ``json_valid`` check; :attr:`Column.json` is true for both
that and MySQL's JSON type, so that rules and the scan treat them alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Column", "ForeignKey", "Schema", "Table"]

TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
NUMERIC_TYPES = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float", "double", "bit"}
)
# InnoDB commits a chunk and its journal row together; MyISAM, Aria or MEMORY would not roll either back.
TRANSACTIONAL_ENGINES = frozenset({"innodb"})


@dataclass(frozen=True)
class Column:
    """One column of a base table, from information_schema.COLUMNS."""

    table: str
    name: str
    data_type: str
    column_type: str
    nullable: bool = True
    max_length: int | None = None
    generated: bool = False
    json: bool = False

    @property
    def text(self) -> bool:
        """Holds characters a person could have typed (the keyed hash and the PII scan apply)."""
        return self.data_type in TEXT_TYPES or self.json

    @property
    def binary(self) -> bool:
        return self.data_type in BINARY_TYPES

    @property
    def numeric(self) -> bool:
        return self.data_type in NUMERIC_TYPES

    def describe(self) -> str:
        """``varchar(32) NULL``, as in SHOW CREATE TABLE."""
        kind = "json" if self.json else self.column_type
        return f"{kind} {'NULL' if self.nullable else 'NOT NULL'}" + (", generated" if self.generated else "")


@dataclass(frozen=True)
class ForeignKey:
    """``columns`` of ``table`` hold values of ``target_columns`` of ``target`` (declared, or a rule file's
    ``references`` when ``declared`` is false)."""

    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    declared: bool = True

    def __str__(self) -> str:
        return f"{self.table}({', '.join(self.columns)}) → {self.target}({', '.join(self.target_columns)})"


@dataclass(frozen=True)
class Table:
    """A base table: its columns in order, primary key, unique keys and the triggers an UPDATE would fire."""

    name: str
    columns: tuple[Column, ...]
    engine: str = "InnoDB"
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()
    triggers: tuple[str, ...] = ()
    rows: int = 0
    foreign_keys: tuple[ForeignKey, ...] = ()

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Schema:
    """The base tables of one database, by name."""

    database: str
    tables: Mapping[str, Table] = field(default_factory=dict)
