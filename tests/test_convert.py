"""The conversion of one batch of a column into its declared type (core/convert.py), pure and table-driven: exact
casts or an error naming column and row, the `null` policies counted, and the wall-clock rule of DST zones — the
same on Arrow's fast path and on the zoneinfo fallback."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from pipeline.core.convert import Conversion, WallClockError, localize, wall_clock_problem
from pipeline.core.spec import Policy
from pipeline.core.typeplan import ColumnPlan, SourceColumn, SourceKind
from pipeline.core.types import BqType
from pipeline.errors import ExportError

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def plan(
    kind: SourceKind,
    label: str,
    declared: BqType,
    *,
    zero_dates: Policy = Policy.ERROR,
    invalid_utf8: Policy = Policy.ERROR,
    scale: int = 0,
) -> ColumnPlan:
    return ColumnPlan(SourceColumn("c", kind, label, 0, scale), declared, "", zero_dates, invalid_utf8)


def text(values: list[bytes | None]) -> pa.Array:
    """A column as MySQL's text protocol delivers it: bytes."""
    return pa.array(values, pa.binary())


# -- MySQL's text protocol -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "label", "declared", "raw", "expected"),
    [
        (SourceKind.INTEGER, "BIGINT", BqType.INT64, [b"1", b"-5", None], [1, -5, None]),
        (
            SourceKind.UNSIGNED_BIGINT,
            "BIGINT UNSIGNED",
            BqType.NUMERIC,
            [b"18446744073709551615"],
            [Decimal("18446744073709551615")],
        ),
        (
            SourceKind.DECIMAL,
            "DECIMAL(12,2)",
            BqType.NUMERIC,
            [b"12.50", b"-0.01"],
            [Decimal("12.5"), Decimal("-0.01")],
        ),
        (
            SourceKind.DECIMAL,
            "DECIMAL(65,10)",
            BqType.BIGNUMERIC,
            [b"9" * 38 + b".0123456789"],
            [Decimal("9" * 38 + ".0123456789")],
        ),
        (SourceKind.INTEGER, "INT", BqType.FLOAT64, [b"3"], [3.0]),
        (SourceKind.FLOAT, "DOUBLE", BqType.FLOAT64, [b"0.25", b"-1e300"], [0.25, -1e300]),
        (SourceKind.TINYINT1, "TINYINT(1)", BqType.BOOL, [b"0", b"1", None], [False, True, None]),
        (SourceKind.TINYINT1, "TINYINT(1)", BqType.INT64, [b"2", b"-128"], [2, -128]),
        (SourceKind.DATE, "DATE", BqType.DATE, [b"2024-02-29", None], [date(2024, 2, 29), None]),
        (
            SourceKind.DATETIME,
            "DATETIME(6)",
            BqType.DATETIME,
            [b"2024-03-01 10:30:00.500000"],
            [datetime(2024, 3, 1, 10, 30, 0, 500000)],
        ),
        (
            SourceKind.DATETIME,
            "DATETIME",
            BqType.TIMESTAMP,
            [b"2024-03-01 09:00:00"],
            [datetime(2024, 3, 1, 0, 0, tzinfo=UTC)],
        ),  # read in the source zone, Tokyo
        (
            SourceKind.TIME,
            "TIME(6)",
            BqType.TIME,
            [b"23:59:59.999999", b"00:00:00"],
            [time(23, 59, 59, 999999), time(0)],
        ),
        (SourceKind.TIME, "TIME", BqType.STRING, [b"838:59:59"], ["838:59:59"]),
        (SourceKind.TEXT, "VARCHAR", BqType.STRING, ["日本".encode(), b"", None], ["日本", "", None]),
        (SourceKind.TEXT, "VARCHAR", BqType.JSON, [b'{"a": [1]}', b"null"], ['{"a": [1]}', "null"]),
        (SourceKind.BINARY, "VARBINARY", BqType.BYTES, [b"\x00\xff"], [b"\x00\xff"]),
        (SourceKind.BIT, "BIT(16)", BqType.INT64, [b"\x01\x00"], [256]),
        (SourceKind.NULL, "NULL", BqType.DATE, [None, None], [None, None]),
    ],
)
def test_text_values_convert_exactly(
    kind: SourceKind, label: str, declared: BqType, raw: list[bytes | None], expected: list[Any]
) -> None:
    conversion = Conversion("k", [plan(kind, label, declared)], TOKYO)
    converted = conversion.from_text(conversion.plans[0], text(raw), first_row=1)
    assert converted.type == conversion.plans[0].arrow_type
    assert converted.to_pylist() == expected
    assert conversion.replaced == {}


@pytest.mark.parametrize(
    ("kind", "label", "declared", "raw", "message", "hint"),
    [
        (
            SourceKind.UNSIGNED_BIGINT,
            "BIGINT UNSIGNED",
            BqType.INT64,
            [b"1", b"18446744073709551615"],
            "column 'c' (BIGINT UNSIGNED → INT64), row 11: value '18446744073709551615' does not fit INT64 exactly",
            "declare NUMERIC",
        ),
        (
            SourceKind.DECIMAL,
            "DECIMAL(40,2)",
            BqType.NUMERIC,
            [b"1" * 30 + b".00"],
            "row 10: value '" + "1" * 30 + ".00' does not fit NUMERIC exactly",
            "declare BIGNUMERIC",
        ),
        (
            SourceKind.TINYINT1,
            "TINYINT(1)",
            BqType.BOOL,
            [b"1", b"0", b"2"],
            "column 'c', row 12: value 2 is neither 0 nor 1",
            "declare INT64",
        ),
        (
            SourceKind.DATE,
            "DATE",
            BqType.DATE,
            [b"2024-01-01", b"0000-00-00"],
            "column 'c', row 11: zero date '0000-00-00'",
            "zero_dates: null",
        ),
        (SourceKind.DATE, "DATE", BqType.DATE, [b"2024-13-01"], "row 10: value '2024-13-01' does not fit DATE", ""),
        (SourceKind.TIME, "TIME", BqType.TIME, [b"838:59:59"], "row 10: TIME '838:59:59' is a duration", "STRING"),
        (SourceKind.TIME, "TIME", BqType.TIME, [b"-00:00:01"], "row 10: TIME '-00:00:01' is a duration", "STRING"),
        (
            SourceKind.TEXT,
            "VARCHAR",
            BqType.STRING,
            [b"ok", b"\xff\xfe"],
            "column 'c', row 11: invalid UTF-8 b'\\xff\\xfe'",
            "invalid_utf8: null",
        ),
        (SourceKind.TEXT, "VARCHAR", BqType.JSON, [b"{}", b"{oops"], "row 11: not valid JSON: '{oops'", "STRING"),
    ],
)
def test_text_values_that_would_change_stop_naming_column_and_row(
    kind: SourceKind, label: str, declared: BqType, raw: list[bytes | None], message: str, hint: str
) -> None:
    conversion = Conversion("k", [plan(kind, label, declared)], TOKYO)
    with pytest.raises(ExportError) as refused:
        conversion.from_text(conversion.plans[0], text(raw), first_row=10)
    assert message in refused.value.message
    assert hint in refused.value.hint
    assert refused.value.where == "k"


@pytest.mark.parametrize(
    ("column", "raw", "expected", "replaced"),
    [
        (
            plan(SourceKind.DATE, "DATE", BqType.DATE, zero_dates=Policy.NULL),
            [b"0000-00-00", b"2024-01-00", b"2024-01-02"],
            [None, None, date(2024, 1, 2)],
            {"c: zero dates": 2},
        ),
        (
            plan(SourceKind.DATETIME, "DATETIME", BqType.DATETIME, zero_dates=Policy.NULL),
            [b"0000-00-00 00:00:00"],
            [None],
            {"c: zero dates": 1},
        ),
        (
            plan(SourceKind.TEXT, "TEXT", BqType.STRING, invalid_utf8=Policy.NULL),
            [b"\xff", b"ok"],
            [None, "ok"],
            {"c: invalid UTF-8": 1},
        ),
    ],
)
def test_the_null_policy_loads_null_and_counts_it(
    column: ColumnPlan, raw: list[bytes | None], expected: list[Any], replaced: dict[str, int]
) -> None:
    conversion = Conversion("k", [column], TOKYO)
    assert conversion.from_text(column, text(raw), first_row=1).to_pylist() == expected
    assert dict(conversion.replaced) == replaced


# -- typed input (DuckDB) ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "kind", "declared", "expected"),
    [
        (pa.array([1, None], pa.int32()), SourceKind.INTEGER, BqType.INT64, [1, None]),
        (pa.array([0, 1], pa.int8()), SourceKind.INTEGER, BqType.BOOL, [False, True]),
        (pa.array([Decimal("1.25")], pa.decimal128(10, 2)), SourceKind.DECIMAL, BqType.NUMERIC, [Decimal("1.25")]),
        (
            pa.array([datetime(2024, 3, 1, 9)], pa.timestamp("us")),
            SourceKind.DATETIME,
            BqType.TIMESTAMP,
            [datetime(2024, 3, 1, 0, tzinfo=UTC)],
        ),
        (
            pa.array([datetime(2024, 3, 1, 0, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            SourceKind.TIMESTAMP,
            BqType.DATETIME,
            [datetime(2024, 3, 1, 9)],
        ),  # the instant as Tokyo wall clock
        (pa.array([5], pa.int64()), SourceKind.INTEGER, BqType.STRING, ["5"]),
    ],
)
def test_typed_values_convert_exactly(array: pa.Array, kind: SourceKind, declared: BqType, expected: list[Any]) -> None:
    conversion = Conversion("k", [plan(kind, str(array.type), declared)], TOKYO)
    assert conversion.from_arrow(conversion.plans[0], array, first_row=1).to_pylist() == expected


def test_a_typed_value_outside_the_declared_type_stops_naming_the_row() -> None:
    conversion = Conversion("k", [plan(SourceKind.INTEGER, "INTEGER", BqType.BOOL)], TOKYO)
    with pytest.raises(ExportError, match=r"column 'c', row 6: value 3 is neither 0 nor 1"):
        conversion.from_arrow(conversion.plans[0], pa.array([1, 3], pa.int32()), first_row=5)


# -- wall-clock times in DST zones: one rule, both paths ------------------------------------------------------------

GAP = "does not exist in America/New_York: the clocks skipped it (a DST gap)"
TWICE = "happened twice in America/New_York (at 05:30 and 06:30 UTC, a DST fall-back)"


@pytest.mark.parametrize(
    ("zone", "values", "expected"),
    [
        (
            NEW_YORK,
            [datetime(2024, 3, 10, 1, 59), datetime(2024, 3, 10, 3, 0)],
            [datetime(2024, 3, 10, 6, 59, tzinfo=UTC), datetime(2024, 3, 10, 7, 0, tzinfo=UTC)],
        ),  # either side of a gap
        (
            NEW_YORK,
            [datetime(2024, 11, 3, 0, 59), datetime(2024, 11, 3, 2, 0), None],
            [datetime(2024, 11, 3, 4, 59, tzinfo=UTC), datetime(2024, 11, 3, 7, 0, tzinfo=UTC), None],
        ),  # either side
        (NEW_YORK, [datetime(2024, 3, 10, 2, 30)], (0, "2024-03-10 02:30:00 " + GAP)),
        (NEW_YORK, [datetime(2024, 3, 10, 1), datetime(2024, 3, 10, 2)], (1, "2024-03-10 02:00:00 " + GAP)),
        (NEW_YORK, [datetime(2024, 11, 3, 0, 30), datetime(2024, 11, 3, 1, 30)], (1, "2024-11-03 01:30:00 " + TWICE)),
        (NEW_YORK, [datetime(2024, 11, 3, 1, 0)], (0, "2024-11-03 01:00:00 happened twice")),
        (BERLIN, [datetime(2024, 10, 27, 2, 15)], (0, "happened twice in Europe/Berlin (at 00:15 and 01:15 UTC")),
        (BERLIN, [datetime(2024, 3, 31, 2, 15)], (0, "does not exist in Europe/Berlin")),
        (
            TOKYO,
            [datetime(2024, 3, 10, 2, 30), datetime(2024, 11, 3, 1, 30)],
            [datetime(2024, 3, 9, 17, 30, tzinfo=UTC), datetime(2024, 11, 2, 16, 30, tzinfo=UTC)],
        ),  # no DST: no rule
        (ZoneInfo("UTC"), [datetime(2024, 11, 3, 1, 30)], [datetime(2024, 11, 3, 1, 30, tzinfo=UTC)]),
    ],
)
@pytest.mark.parametrize("arrow_zones", [True, False], ids=["arrow", "zoneinfo"])
def test_wall_clock_times_follow_one_rule_on_both_paths(
    zone: ZoneInfo, values: list[datetime | None], expected: list[datetime | None] | tuple[int, str], arrow_zones: bool
) -> None:
    array = pa.array(values, pa.timestamp("us"))
    if isinstance(expected, tuple):
        with pytest.raises(WallClockError) as refused:
            localize(array, zone, arrow_zones=arrow_zones)
        assert refused.value.index == expected[0]
        assert expected[1] in refused.value.reason
    else:
        converted = localize(array, zone, arrow_zones=arrow_zones)
        assert converted.type == pa.timestamp("us", tz="UTC")
        assert converted.to_pylist() == expected


def test_both_paths_give_the_same_words_for_the_same_row() -> None:
    array = pa.array(
        [datetime(2024, 11, 3, 0, 59), datetime(2024, 11, 3, 1, 0), datetime(2024, 3, 10, 2, 0)], pa.timestamp("us")
    )
    reasons = []
    for arrow_zones in (True, False):
        with pytest.raises(WallClockError) as refused:
            localize(array, NEW_YORK, arrow_zones=arrow_zones)
        reasons.append((refused.value.index, refused.value.reason))
    assert reasons[0] == reasons[1]
    assert reasons[0] == (1, wall_clock_problem(datetime(2024, 11, 3, 1, 0), NEW_YORK))


@pytest.mark.parametrize("source", ["text", "typed"])
def test_a_repeated_wall_clock_time_stops_the_export_naming_column_and_row(source: str) -> None:
    column = plan(SourceKind.DATETIME, "DATETIME", BqType.TIMESTAMP)
    conversion = Conversion("k", [column], NEW_YORK)
    raw = text([b"2024-11-03 00:30:00", b"2024-11-03 01:30:00"])
    typed = pa.array([datetime(2024, 11, 3, 0, 30), datetime(2024, 11, 3, 1, 30)], pa.timestamp("us"))
    convert = conversion.from_text if source == "text" else conversion.from_arrow
    with pytest.raises(ExportError) as refused:
        convert(column, raw if source == "text" else typed, 100)
    assert refused.value.message == (
        "column 'c' (DATETIME → TIMESTAMP), row 101: 2024-11-03 01:30:00 happened twice in America/New_York "
        "(at 05:30 and 06:30 UTC, a DST fall-back): which one is meant is not in the data"
    )
    assert "declare c DATETIME" in refused.value.hint
    assert "source_timezone: UTC" in refused.value.hint


def test_a_whole_batch_converts_into_the_planned_schema() -> None:
    plans = [
        ColumnPlan(SourceColumn("d", SourceKind.DATE, "DATE"), BqType.DATE, "", Policy.ERROR, Policy.ERROR),
        ColumnPlan(SourceColumn("n", SourceKind.INTEGER, "BIGINT"), BqType.INT64, "", Policy.ERROR, Policy.ERROR),
    ]
    conversion = Conversion("k", plans, TOKYO)
    batch = conversion.batch([text([b"2024-03-01"]), text([b"7"])], first_row=1, text=True)
    assert batch.schema == conversion.schema
    assert batch.to_pylist() == [{"d": date(2024, 3, 1), "n": 7}]
