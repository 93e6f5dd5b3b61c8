"""Which Arrow and warehouse type each result column gets: the source's column metadata against the header.

A source describes its result columns as :class:`SourceColumn` values (MySQL field descriptors, DuckDB's Arrow
schema). :func:`plan_columns` pairs them with the KPI's declared ``columns`` and decides, before a single row is
read, whether each declaration can be honoured without changing a value. A pairing that would round, truncate
or reinterpret (``DECIMAL(38,10)`` as NUMERIC, DATETIME as DATE, FLOAT as NUMERIC…) is refused with the header
change that fixes it; the remaining run-time surprises (zero dates, TINYINT(1) holding 2, BIGINT UNSIGNED above
INT64, invalid UTF-8) are caught value by value in :mod:`pipeline.core.convert`.

Every warehouse type has one canonical Arrow type (:data:`ARROW_TYPES`), so all files of a KPI share one
physical schema whatever the source's precision was, and the loader never guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

from pipeline.core.spec import Kpi, Policy
from pipeline.core.types import BqType
from pipeline.errors import ExportError


class SourceKind(StrEnum):
    """What a result column holds, independent of the source product."""

    INTEGER = "integer"  # signed integers up to 64 bits, and unsigned up to 32 bits
    UNSIGNED_BIGINT = "unsigned bigint"  # may exceed INT64
    TINYINT1 = "tinyint(1)"  # MySQL's BOOLEAN: any value -128..127, often only 0/1
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"  # naive wall-clock time in the source's time zone
    TIMESTAMP = "timestamp"  # an instant (MySQL renders it in the session time zone)
    TIME = "time"  # MySQL TIME: a duration, -838:59:59 .. 838:59:59
    TEXT = "text"
    JSON = "json"
    BINARY = "binary"
    BIT = "bit"
    NULL = "null"  # `SELECT NULL AS x`: no type at all
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class SourceColumn:
    """One result column as the source reports it; ``label`` is the source's own spelling, for messages."""

    name: str
    kind: SourceKind
    label: str
    precision: int = 0
    scale: int = 0


@dataclass(frozen=True)
class ColumnPlan:
    """How one result column travels: its source, its declared warehouse type and the value policies."""

    source: SourceColumn
    type: BqType
    description: str
    zero_dates: Policy
    invalid_utf8: Policy

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]


ARROW_TYPES: dict[BqType, pa.DataType] = {
    BqType.STRING: pa.string(),
    BqType.INT64: pa.int64(),
    BqType.NUMERIC: pa.decimal128(38, 9),  # BigQuery NUMERIC: 29 integer and 9 fractional digits
    BqType.BIGNUMERIC: pa.decimal256(76, 38),  # BigQuery BIGNUMERIC: 38 integer and 38 fractional digits
    BqType.FLOAT64: pa.float64(),
    BqType.BOOL: pa.bool_(),
    BqType.DATE: pa.date32(),
    BqType.DATETIME: pa.timestamp("us"),  # naive: Parquet isAdjustedToUTC=false, which BigQuery loads as DATETIME
    BqType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    BqType.TIME: pa.time64("us"),
    BqType.JSON: pa.string(),  # JSON text; the loader declares the column JSON
    BqType.BYTES: pa.binary(),
}

_NUMERIC_PLACES = 9  # BigQuery NUMERIC: 29 integer digits and 9 decimal places
_BIGNUMERIC_PLACES = 38

# Declared type → the source kinds that convert to it without changing a value (bounds checked per value).
_ALLOWED: dict[BqType, frozenset[SourceKind]] = {
    BqType.STRING: frozenset(SourceKind) - {SourceKind.BIT, SourceKind.UNSUPPORTED},  # BINARY: if valid UTF-8
    BqType.INT64: frozenset(
        {SourceKind.INTEGER, SourceKind.UNSIGNED_BIGINT, SourceKind.TINYINT1, SourceKind.BIT, SourceKind.DECIMAL}
    ),
    BqType.NUMERIC: frozenset(
        {SourceKind.INTEGER, SourceKind.UNSIGNED_BIGINT, SourceKind.TINYINT1, SourceKind.DECIMAL}
    ),
    BqType.BIGNUMERIC: frozenset(
        {SourceKind.INTEGER, SourceKind.UNSIGNED_BIGINT, SourceKind.TINYINT1, SourceKind.DECIMAL}
    ),
    BqType.FLOAT64: frozenset({SourceKind.FLOAT, SourceKind.INTEGER, SourceKind.TINYINT1, SourceKind.DECIMAL}),
    BqType.BOOL: frozenset({SourceKind.BOOL, SourceKind.TINYINT1, SourceKind.INTEGER, SourceKind.BIT}),
    BqType.DATE: frozenset({SourceKind.DATE}),
    BqType.DATETIME: frozenset({SourceKind.DATETIME, SourceKind.TIMESTAMP}),
    BqType.TIMESTAMP: frozenset({SourceKind.DATETIME, SourceKind.TIMESTAMP}),
    BqType.TIME: frozenset({SourceKind.TIME}),
    BqType.JSON: frozenset({SourceKind.JSON, SourceKind.TEXT}),
    BqType.BYTES: frozenset({SourceKind.BINARY, SourceKind.TEXT, SourceKind.BIT, SourceKind.UNSUPPORTED}),
}

# What to declare for each kind when the declaration does not fit (the hint of the error).
_SUGGESTED: dict[SourceKind, str] = {
    SourceKind.INTEGER: "INT64",
    SourceKind.UNSIGNED_BIGINT: "INT64 (fails on values above 9223372036854775807) or NUMERIC",
    SourceKind.TINYINT1: "BOOL (only 0/1 allowed) or INT64",
    SourceKind.DECIMAL: "NUMERIC or BIGNUMERIC",
    SourceKind.FLOAT: "FLOAT64",
    SourceKind.BOOL: "BOOL",
    SourceKind.DATE: "DATE",
    SourceKind.DATETIME: "DATETIME (wall clock) or TIMESTAMP (read in source_timezone)",
    SourceKind.TIMESTAMP: "TIMESTAMP",
    SourceKind.TIME: "TIME (00:00–23:59:59.999999 only) or STRING (keeps values such as 838:59:59)",
    SourceKind.TEXT: "STRING",
    SourceKind.JSON: "JSON or STRING",
    SourceKind.BINARY: "BYTES",
    SourceKind.BIT: "INT64 or BYTES",
    SourceKind.NULL: "any type",
    SourceKind.UNSUPPORTED: "BYTES, or convert it in the SELECT (e.g. ST_AsText(geom))",
}


def plan_columns(kpi: Kpi, columns: list[SourceColumn]) -> list[ColumnPlan]:
    """Pair the result's columns with the header; raise one :class:`ExportError` listing every mismatch."""
    declared = {column.name: column for column in kpi.columns}
    problems: list[str] = []
    plans: list[ColumnPlan] = []
    seen: set[str] = set()
    for source in columns:
        if source.name in seen:
            problems.append(f"the result has two columns named '{source.name}'; give one an alias")
            continue
        seen.add(source.name)
        column = declared.get(source.name)
        if column is None:
            problems.append(
                f"result column '{source.name}' ({source.label}) is not declared in the header; "
                f"declare it: `{source.name}: {{type: …, description: …}}` with type {_SUGGESTED[source.kind]}"
            )
            continue
        reason = refusal(source, column.type)
        if reason:
            problems.append(f"column '{source.name}': {reason}")
            continue
        plans.append(
            ColumnPlan(
                source,
                column.type,
                column.description,
                column.zero_dates or kpi.zero_dates,
                column.invalid_utf8 or kpi.invalid_utf8,
            )
        )
    missing = [name for name in declared if name not in seen]
    problems.extend(f"column '{name}' is declared but the query did not return it" for name in missing)
    if problems:
        raise ExportError(
            "the query's result does not match the header:\n  - " + "\n  - ".join(problems),
            where=kpi.path,
            hint="change the declared types in the header, or CAST in the SELECT "
            f"(`kpi render {kpi.name}` shows the SQL)",
        )
    return plans


def refusal(source: SourceColumn, declared: BqType) -> str:
    """Why ``source`` cannot be loaded as ``declared`` without changing values; empty when it can."""
    if source.kind is SourceKind.NULL:
        return ""
    if source.kind not in _ALLOWED[declared]:
        return (
            f"{source.label} cannot be loaded as {declared.value} without changing values; "
            f"declare {_SUGGESTED[source.kind]}"
        )
    if source.kind is SourceKind.DECIMAL:
        # Decimal places are fixed by the column type, so too many of them would be rounded on every row: refuse
        # now. Integer digits are only a bound (SUM() widens DECIMAL(12,2) to DECIMAL(34,2)); values that do not
        # fit are refused one by one by the safe cast, naming the row.
        places = source.scale
        if declared is BqType.INT64 and places:
            return f"{source.label} has {places} decimal places; INT64 would drop them — declare NUMERIC"
        if declared is BqType.NUMERIC and places > _NUMERIC_PLACES:
            return (
                f"{source.label} has {places} decimal places; NUMERIC keeps {_NUMERIC_PLACES} and would round "
                "— declare BIGNUMERIC"
            )
        if declared is BqType.BIGNUMERIC and places > _BIGNUMERIC_PLACES:
            return f"{source.label} has {places} decimal places; BIGNUMERIC keeps 38 and would round — declare STRING"
    return ""
