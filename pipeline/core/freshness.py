"""Whether a KPI's newest data is recent enough, by its header's ``freshness`` — what ``kpi status`` alerts on.

Age is measured from the end of the newest loaded partition (the data's own time), not from when it was loaded:
re-loading an old day must not make a stalled KPI look fresh. A partition loaded before it was over holds data up
to its load only, so its age counts from then; a partition that has not even begun (a mistyped ``--date``) is never
the newest — it is reported, not believed. A snapshot has no partitions, so its age is the time since its last load.
``warn_after`` marks a KPI as aging; past ``error_after`` (or never loaded) it is stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.core.intervals import interval_containing, parse_moment
from pipeline.core.spec import Kpi

FRESH, WARN, STALE, NEVER, UNCHECKED = "fresh", "warn", "stale", "never loaded", "no freshness set"


@dataclass(frozen=True)
class FreshnessState:
    level: str  # fresh | warn | stale | never loaded | no freshness set
    age: timedelta | None  # None when nothing was loaded

    @property
    def failing(self) -> bool:
        """What makes ``kpi status`` exit non-zero."""
        return self.level in (STALE, NEVER)


def data_end(kpi: Kpi, partition: str, loaded_at: datetime) -> datetime:
    """When the newest loaded data ends: the partition's end — or its load, if that came first — or the load time of
    a snapshot."""
    if not kpi.incremental:
        return loaded_at
    return min(interval_containing(kpi.grain, kpi.zone, parse_moment(partition), kpi.first_weekday).end, loaded_at)


def split_future(kpi: Kpi, partitions: Iterable[str], now: datetime) -> tuple[list[str], list[str]]:
    """The partitions that have begun at ``now``, and those that have not (in order): only the first can be newest."""
    begun: list[str] = []
    future: list[str] = []
    for partition in sorted(partitions):
        if (
            kpi.incremental
            and interval_containing(kpi.grain, kpi.zone, parse_moment(partition), kpi.first_weekday).start > now
        ):
            future.append(partition)
        else:
            begun.append(partition)
    return begun, future


def freshness(kpi: Kpi, newest_partition: str | None, loaded_at: datetime | None, now: datetime) -> FreshnessState:
    if newest_partition is None or loaded_at is None:
        return FreshnessState(NEVER, None)
    # never below zero: a load recorded after ``now`` (``--now`` earlier than the load, as the tests and a
    # reproduced schedule judge) of a partition not over at ``now`` holds data up to ``now`` at most
    age = max(now - data_end(kpi, newest_partition, loaded_at), timedelta(0))
    rules = kpi.freshness
    if rules.error_after is not None and age > rules.error_after:
        return FreshnessState(STALE, age)
    if rules.warn_after is not None and age > rules.warn_after:
        return FreshnessState(WARN, age)
    if rules.warn_after is None and rules.error_after is None:
        return FreshnessState(UNCHECKED, age)
    return FreshnessState(FRESH, age)
