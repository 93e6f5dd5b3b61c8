"""pipeline/export/split.py on its own: rows routed to their partitions, and a row outside them refused by number.

Pure (Arrow in, Arrow out): the exporter's flows test it through MySQL and DuckDB; these tables pin it directly,
in each time column type's terms (a DATE day, a DATETIME wall clock in ``source_timezone``, a TIMESTAMP instant).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from pipeline.core.intervals import Grain, intervals_between
from pipeline.core.spec import Kpi
from pipeline.core.types import BqType
from pipeline.errors import ExportError
from pipeline.export.split import Splitter
from tests.exporting import make_kpi

TOKYO = ZoneInfo("Asia/Tokyo")
HEADER = """
grain: day
time_column: t
timezone: Asia/Tokyo
columns:
  t: {type: DATE}
  n: {type: INT64}
"""
SQL = "SELECT day AS t, n FROM x WHERE day >= :start AND day < :end"
THREE_DAYS = list(intervals_between(Grain.DAY, TOKYO, datetime(2024, 3, 1), datetime(2024, 3, 3)))


@pytest.fixture(scope="module")
def kpi(tmp_path_factory: pytest.TempPathFactory) -> Kpi:
    return make_kpi(tmp_path_factory.mktemp("split"), "split", HEADER, SQL)


def routed(splitter: Splitter, times: list[object], first_row: int = 1) -> list[tuple[int, list[int], object]]:
    batch = pa.RecordBatch.from_pydict({"t": times, "n": list(range(len(times)))})
    return [
        (index, rows.column("n").to_pylist(), None if numbers is None else numbers.to_pylist())
        for index, rows, numbers in splitter.split(batch, first_row)
    ]


@pytest.mark.parametrize(
    ("column_type", "source_zone", "times", "expected"),
    [
        (
            BqType.DATE,
            None,
            [date(2024, 3, 2), date(2024, 3, 1), date(2024, 3, 3), date(2024, 3, 2)],
            [(1, [0, 3], [1, 4]), (0, [1], [2]), (2, [2], [3])],
        ),
        (  # the wall clock of the KPI's own zone: 23:59 on the 1st is still the 1st
            BqType.DATETIME,
            None,
            [datetime(2024, 3, 1, 23, 59), datetime(2024, 3, 2, 0, 0)],
            [(0, [0], [1]), (1, [1], [2])],
        ),
        (  # a source writing UTC clocks: 15:00 UTC is Tokyo's midnight
            BqType.DATETIME,
            "UTC",
            [datetime(2024, 2, 29, 15, 0), datetime(2024, 3, 1, 14, 59), datetime(2024, 3, 1, 15, 0)],
            [(0, [0, 1], [1, 2]), (1, [2], [3])],
        ),
        (  # instants: Tokyo's 3rd begins at 15:00 UTC on the 2nd
            BqType.TIMESTAMP,
            None,
            [datetime(2024, 3, 2, 15, tzinfo=UTC), datetime(2024, 3, 2, 14, 59, tzinfo=UTC)],
            [(2, [0], [1]), (1, [1], [2])],
        ),
    ],
    ids=["date", "datetime", "datetime-utc-source", "timestamp"],
)
def test_rows_go_to_their_partitions_with_their_result_row_numbers(
    kpi: Kpi, column_type: BqType, source_zone: str | None, times: list[object], expected: list[object]
) -> None:
    splitter = Splitter(replace(kpi, source_timezone=source_zone), THREE_DAYS, column_type)
    assert routed(splitter, times) == expected


def test_one_partition_passes_its_batch_through_unnumbered(kpi: Kpi) -> None:
    splitter = Splitter(kpi, THREE_DAYS[:1], BqType.DATE)
    assert routed(splitter, [date(2024, 3, 1)] * 3) == [(0, [0, 1, 2], None)]


@pytest.mark.parametrize(
    ("times", "first_row", "message"),
    [
        ([date(2024, 3, 1), date(2024, 3, 4)], 1, "row 2: t = datetime.date(2024, 3, 4) lies outside"),
        ([date(2024, 2, 29)], 101, "row 101: t = datetime.date(2024, 2, 29) lies outside"),
        ([date(2024, 3, 2), None], 1, "row 2: t = None lies outside"),  # NULL belongs to no partition
    ],
    ids=["after", "before", "null"],
)
def test_a_row_outside_the_range_is_refused_by_its_number(
    kpi: Kpi, times: list[object], first_row: int, message: str
) -> None:
    splitter = Splitter(kpi, THREE_DAYS, BqType.DATE)
    with pytest.raises(ExportError) as raised:
        routed(splitter, times, first_row)
    error = raised.value
    assert str(error.message) == f"{message} the exported range [2024-03-01T00:00:00+09:00, 2024-03-04T00:00:00+09:00)"
    assert (error.where, error.hint) == (
        "split",
        "filter the query with `t >= :start AND t < :end` (on the column the time column is computed from)",
    )
