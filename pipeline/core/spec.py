"""The KPI spec: what one ``queries/*.sql`` file declares, as typed, immutable values.

Everything downstream (export, load, schedules, backfills, reports) reads a :class:`Kpi`, never the raw file.
``pipeline.core.parse`` builds it and reports every problem of a file at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from zoneinfo import ZoneInfo

from pipeline.core.intervals import Grain, WeekStart
from pipeline.core.query import Query
from pipeline.core.types import BqType


class Policy(StrEnum):
    """What to do with a value MySQL can hold but the warehouse cannot (zero dates, invalid UTF-8)."""

    ERROR = "error"  # stop the export, naming column and row: nothing is committed
    NULL = "null"  # load NULL instead, and count the replacements in the manifest


class FileFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


@dataclass(frozen=True)
class Column:
    name: str
    type: BqType
    description: str = ""
    zero_dates: Policy | None = None  # None: the KPI-wide policy applies
    invalid_utf8: Policy | None = None


@dataclass(frozen=True)
class Param:
    """A query parameter ``:name`` beside ``:start`` and ``:end``; ``default`` None means it must be given."""

    name: str
    type: BqType
    default: object | None = None
    description: str = ""


@dataclass(frozen=True)
class Checks:
    """Data checks evaluated on the exported rows before a partition is committed."""

    min_rows: int = 0
    not_null: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()  # the combination of these columns is unique within a partition


@dataclass(frozen=True)
class Freshness:
    warn_after: timedelta | None = None
    error_after: timedelta | None = None


@dataclass(frozen=True)
class ChartSettings:
    """What the report charts (the header's ``chart`` key): which measures, split by which dimension, how many lines.

    Empty ``measures`` means every numeric column; ``by`` None means the first dimension column (if any).
    """

    measures: tuple[str, ...] = ()
    by: str | None = None
    top: int = 5  # series drawn for the largest values of `by`; the rest are summed into one "other" series


class Sensitivity(StrEnum):
    """How far from its expected range a value must be to be an anomaly (``anomaly.sensitivity``)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


# Partitions of history before the first one scored, by grain; the grains scoring supports. Here rather than in
# pipeline.core.anomaly, so that checking a header does not import the scoring code.
MIN_HISTORY = {"day": 28, "hour": 14 * 24}
ANOMALY_GRAINS = tuple(MIN_HISTORY)


@dataclass(frozen=True)
class AnomalySettings:
    """What anomaly scoring watches (the header's ``anomaly`` key; a KPI without it is not scored).

    Empty ``measures`` means every numeric column; ``by`` None scores each measure's partition total, a dimension
    scores each of its values apart; ``min_history`` None means the grain's default
    (:data:`MIN_HISTORY`)."""

    measures: tuple[str, ...] = ()
    by: str | None = None
    seasonality: tuple[str, ...] = ("weekday", "jp_holiday", "month_end")
    sensitivity: Sensitivity = Sensitivity.MEDIUM
    min_history: int | None = None


@dataclass(frozen=True)
class Kpi:
    """One KPI, as declared by its file. Field defaults here are the documented header defaults."""

    name: str
    path: str
    query: Query
    columns: tuple[Column, ...]
    sql_line: int = 1  # file line where the SQL starts (positions of SQL problems)
    name_line: int = 1  # file line of the `name:` key, or 1 when the name comes from the file name
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    enabled: bool = True
    grain: Grain = Grain.DAY
    week_start: WeekStart = WeekStart.MONDAY  # weeks only
    time_column: str | None = None
    timezone: str = "Asia/Tokyo"
    source_timezone: str | None = None  # None: same as `timezone`
    start: date | datetime | None = None
    lookback: int = 0
    schedule: str | None = None
    source: str = "default"
    format: FileFormat = FileFormat.PARQUET
    timeout: timedelta = timedelta(minutes=10)
    params: tuple[Param, ...] = ()
    checks: Checks = field(default_factory=Checks)
    freshness: Freshness = field(default_factory=Freshness)
    cluster_by: tuple[str, ...] = ()
    zero_dates: Policy = Policy.ERROR
    invalid_utf8: Policy = Policy.ERROR
    chart: ChartSettings = field(default_factory=ChartSettings)
    anomaly: AnomalySettings | None = None  # None: values are not scored
    allow_full_scan: bool = False  # the EXPLAIN guard lets this KPI scan whole tables (pipeline.core.explain)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def source_zone(self) -> ZoneInfo:
        return ZoneInfo(self.source_timezone or self.timezone)

    @property
    def first_weekday(self) -> int:
        """The weekday a week partition starts on (Monday 0, Sunday 6); see :func:`interval_containing`."""
        return self.week_start.weekday

    @property
    def incremental(self) -> bool:
        return self.grain is not Grain.NONE

    @cached_property
    def sql_hash(self) -> str:
        """Identifies the query text: a backfill skips partitions already loaded from the same hash."""
        return hashlib.sha256(self.query.sql.strip().encode()).hexdigest()[:16]
