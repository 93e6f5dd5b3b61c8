"""A partition's bounds in the terms of its time column — shared by the exporter (routing rows) and the loader
(replacing exactly that partition) so that both mean the same rows.

DATE compares local calendar days, DATETIME the naive wall clock in ``source_timezone``, TIMESTAMP UTC instants.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from pipeline.core.types import BqType


def column_bound(moment: datetime, column_type: BqType, source_zone: ZoneInfo) -> date | datetime:
    """``moment`` (aware, in the KPI's zone) as a value of the time column's type."""
    if column_type is BqType.DATE:
        return moment.date()
    if column_type is BqType.TIMESTAMP:
        return moment.astimezone(UTC)
    return moment.astimezone(source_zone).replace(tzinfo=None)
