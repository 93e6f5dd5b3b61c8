"""pipeline/core/bounds.py on its own: a partition's bound in each time column type's own terms."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from pipeline.core.bounds import column_bound
from pipeline.core.types import BqType

TOKYO, UTC_ZONE, NEW_YORK = ZoneInfo("Asia/Tokyo"), ZoneInfo("UTC"), ZoneInfo("America/New_York")
MIDNIGHT_TOKYO = datetime(2024, 3, 1, tzinfo=TOKYO)


@pytest.mark.parametrize(
    ("moment", "column_type", "source_zone", "bound"),
    [
        (MIDNIGHT_TOKYO, BqType.DATE, TOKYO, date(2024, 3, 1)),  # the local calendar day
        (MIDNIGHT_TOKYO, BqType.DATE, UTC_ZONE, date(2024, 3, 1)),  # a DATE has no zone to convert to
        (MIDNIGHT_TOKYO, BqType.TIMESTAMP, TOKYO, datetime(2024, 2, 29, 15, tzinfo=UTC)),  # a UTC instant
        (MIDNIGHT_TOKYO, BqType.DATETIME, TOKYO, datetime(2024, 3, 1)),  # naive wall clock of the source
        (MIDNIGHT_TOKYO, BqType.DATETIME, UTC_ZONE, datetime(2024, 2, 29, 15)),  # the source writes UTC clocks
        # New York's spring-forward day (2024-03-10): Tokyo midnight is 10:00 the day before, then 11:00
        (datetime(2024, 3, 10, tzinfo=TOKYO), BqType.DATETIME, NEW_YORK, datetime(2024, 3, 9, 10)),
        (datetime(2024, 3, 11, tzinfo=TOKYO), BqType.DATETIME, NEW_YORK, datetime(2024, 3, 10, 11)),
    ],
)
def test_column_bound(moment: datetime, column_type: BqType, source_zone: ZoneInfo, bound: date | datetime) -> None:
    found = column_bound(moment, column_type, source_zone)
    assert (found, type(found), getattr(found, "tzinfo", None)) == (bound, type(bound), getattr(bound, "tzinfo", None))
