"""Which declarations a result column can honour without changing a value (core/typeplan.py), pure and
table-driven: every pairing of source kind and declared type is accepted or refused, with the fix named."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.core.parse import parse_kpi
from pipeline.core.spec import Kpi, Policy
from pipeline.core.typeplan import ARROW_TYPES, SourceColumn, SourceKind, plan_columns
from pipeline.core.types import BqType
from pipeline.errors import ExportError


def kpi(declared: str, extra: str = "", select: str = "c") -> Kpi:
    """A snapshot KPI with column ``c`` declared as ``declared`` (through the real parser)."""
    text = f"/*---\ngrain: none\n{extra}columns:\n  c: {declared}\n---*/\nSELECT {select} FROM t\n"
    parsed, problems = parse_kpi("k.sql", text.encode(), "k")
    assert parsed is not None, problems
    return parsed


def source(kind: SourceKind, label: str, precision: int = 0, scale: int = 0) -> SourceColumn:
    return SourceColumn("c", kind, label, precision, scale)


ACCEPTED = [
    (source(SourceKind.INTEGER, "BIGINT"), BqType.INT64),
    (source(SourceKind.INTEGER, "INT"), BqType.NUMERIC),
    (source(SourceKind.INTEGER, "INT"), BqType.FLOAT64),
    (source(SourceKind.INTEGER, "TINYINT"), BqType.BOOL),
    (source(SourceKind.UNSIGNED_BIGINT, "BIGINT UNSIGNED"), BqType.INT64),  # values above 2^63−1 fail one by one
    (source(SourceKind.UNSIGNED_BIGINT, "BIGINT UNSIGNED"), BqType.NUMERIC),
    (source(SourceKind.TINYINT1, "TINYINT(1)"), BqType.BOOL),
    (source(SourceKind.TINYINT1, "TINYINT(1)"), BqType.INT64),
    (source(SourceKind.DECIMAL, "DECIMAL(12,2)", 12, 2), BqType.NUMERIC),
    (source(SourceKind.DECIMAL, "DECIMAL(38,9)", 38, 9), BqType.NUMERIC),
    (source(SourceKind.DECIMAL, "DECIMAL(65,30)", 65, 30), BqType.BIGNUMERIC),
    (source(SourceKind.DECIMAL, "DECIMAL(10,0)", 10, 0), BqType.INT64),
    (source(SourceKind.DECIMAL, "DECIMAL(12,2)", 12, 2), BqType.FLOAT64),
    (source(SourceKind.FLOAT, "DOUBLE"), BqType.FLOAT64),
    (source(SourceKind.DATE, "DATE"), BqType.DATE),
    (source(SourceKind.DATETIME, "DATETIME"), BqType.DATETIME),
    (source(SourceKind.DATETIME, "DATETIME"), BqType.TIMESTAMP),
    (source(SourceKind.TIMESTAMP, "TIMESTAMP"), BqType.TIMESTAMP),
    (source(SourceKind.TIMESTAMP, "TIMESTAMP"), BqType.DATETIME),
    (source(SourceKind.TIME, "TIME"), BqType.TIME),
    (source(SourceKind.TIME, "TIME"), BqType.STRING),
    (source(SourceKind.TEXT, "VARCHAR"), BqType.STRING),
    (source(SourceKind.TEXT, "VARCHAR"), BqType.JSON),
    (source(SourceKind.TEXT, "VARCHAR"), BqType.BYTES),
    (source(SourceKind.JSON, "JSON"), BqType.JSON),
    (source(SourceKind.BINARY, "BLOB"), BqType.BYTES),
    (source(SourceKind.BINARY, "BLOB"), BqType.STRING),  # if valid UTF-8 (invalid_utf8 policy)
    (source(SourceKind.BIT, "BIT(8)"), BqType.INT64),
    (source(SourceKind.BIT, "BIT(1)"), BqType.BOOL),
    (source(SourceKind.BIT, "BIT(8)"), BqType.BYTES),
    (source(SourceKind.UNSUPPORTED, "GEOMETRY"), BqType.BYTES),
    (source(SourceKind.NULL, "NULL"), BqType.TIMESTAMP),
    (source(SourceKind.NULL, "NULL"), BqType.JSON),
]


@pytest.mark.parametrize(("column", "declared"), ACCEPTED, ids=[f"{c.label}→{d.value}" for c, d in ACCEPTED])
def test_declarations_that_keep_every_value_are_accepted(column: SourceColumn, declared: BqType) -> None:
    (planned,) = plan_columns(kpi(declared.value), [column])
    assert (planned.name, planned.type, planned.arrow_type) == ("c", declared, ARROW_TYPES[declared])
    assert (planned.zero_dates, planned.invalid_utf8) == (Policy.ERROR, Policy.ERROR)


REFUSED = [
    (source(SourceKind.DECIMAL, "DECIMAL(12,2)", 12, 2), BqType.INT64, "has 2 decimal places; INT64 would drop them"),
    (source(SourceKind.DECIMAL, "DECIMAL(38,10)", 38, 10), BqType.NUMERIC, "NUMERIC keeps 9 and would round"),
    (source(SourceKind.DECIMAL, "DECIMAL(65,39)", 65, 39), BqType.BIGNUMERIC, "BIGNUMERIC keeps 38"),
    (source(SourceKind.FLOAT, "DOUBLE"), BqType.NUMERIC, "DOUBLE cannot be loaded as NUMERIC"),
    (source(SourceKind.FLOAT, "DOUBLE"), BqType.INT64, "declare FLOAT64"),
    (source(SourceKind.DATE, "DATE"), BqType.DATETIME, "DATE cannot be loaded as DATETIME without changing values"),
    (source(SourceKind.DATETIME, "DATETIME"), BqType.DATE, "declare DATETIME (wall clock) or TIMESTAMP"),
    (source(SourceKind.TIME, "TIME"), BqType.DATETIME, "declare TIME"),
    (source(SourceKind.TEXT, "VARCHAR"), BqType.INT64, "VARCHAR cannot be loaded as INT64"),
    (source(SourceKind.JSON, "JSON"), BqType.BYTES, "declare JSON or STRING"),
    (source(SourceKind.BIT, "BIT(8)"), BqType.STRING, "declare INT64 or BYTES"),
    (source(SourceKind.UNSUPPORTED, "GEOMETRY"), BqType.STRING, "ST_AsText"),
    (source(SourceKind.INTEGER, "INT"), BqType.DATE, "declare INT64"),
]


@pytest.mark.parametrize(
    ("column", "declared", "message"), REFUSED, ids=[f"{c.label}→{d.value}" for c, d, _ in REFUSED]
)
def test_declarations_that_would_change_values_are_refused_before_a_row_is_read(
    column: SourceColumn, declared: BqType, message: str
) -> None:
    with pytest.raises(ExportError) as refused:
        plan_columns(kpi(declared.value), [column])
    assert f"column 'c': {column.label}" in refused.value.message
    assert message in refused.value.message
    assert refused.value.where == "k.sql"


def test_every_mismatch_of_a_result_is_listed_at_once() -> None:
    declared = kpi("{type: DATE}\n  gone: {type: INT64}", select="c, gone")
    columns = [source(SourceKind.DATETIME, "DATETIME"), SourceColumn("extra", SourceKind.TEXT, "VARCHAR")]
    with pytest.raises(ExportError) as refused:
        plan_columns(declared, [*columns, columns[0]])
    message = refused.value.message
    assert "column 'c': DATETIME cannot be loaded as DATE" in message
    assert "result column 'extra' (VARCHAR) is not declared in the header" in message
    assert "with type STRING" in message
    assert "the result has two columns named 'c'" in message
    assert "column 'gone' is declared but the query did not return it" in message


@pytest.mark.parametrize(
    ("extra", "column_keys", "expected"),
    [
        ("", "", (Policy.ERROR, Policy.ERROR)),
        ("zero_dates: null\ninvalid_utf8: null\n", "", (Policy.NULL, Policy.NULL)),
        ("zero_dates: null\n", ", zero_dates: error", (Policy.ERROR, Policy.ERROR)),  # the column's own wins
        ("", ", invalid_utf8: null", (Policy.ERROR, Policy.NULL)),
    ],
)
def test_value_policies_come_from_the_column_or_else_the_kpi(
    extra: str, column_keys: str, expected: tuple[Policy, Policy]
) -> None:
    (planned,) = plan_columns(kpi(f"{{type: STRING{column_keys}}}", extra), [source(SourceKind.TEXT, "TEXT")])
    assert (planned.zero_dates, planned.invalid_utf8) == expected


def test_every_warehouse_type_has_one_arrow_type() -> None:
    assert set(ARROW_TYPES) == set(BqType)
    assert ARROW_TYPES[BqType.NUMERIC] == pa.decimal128(38, 9)
    assert ARROW_TYPES[BqType.BIGNUMERIC] == pa.decimal256(76, 38)
    assert ARROW_TYPES[BqType.TIMESTAMP] == pa.timestamp("us", tz="UTC")
    assert ARROW_TYPES[BqType.DATETIME] == pa.timestamp("us")
