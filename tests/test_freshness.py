"""pipeline/core/freshness.py on its own: a KPI's age and level at a given moment (the clock is a parameter).

Age counts from the end of the newest partition (or from its load, when that came first); a partition not begun
yet is never the newest; a snapshot's age is the time since its load.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.core.freshness import (
    FRESH,
    NEVER,
    STALE,
    UNCHECKED,
    WARN,
    data_end,
    freshness,
    split_future,
)
from pipeline.core.spec import Freshness, Kpi
from tests.exporting import DAILY, DAILY_SQL, make_kpi

# DAILY: Tokyo days, freshness warn_after 30h, error_after 54h. The 9th ends at 15:00 UTC on the 9th.
END_OF_THE_9TH = datetime(2024, 3, 9, 15, tzinfo=UTC)
LOADED = datetime(2024, 3, 9, 16, tzinfo=UTC)  # an hour after the day ended


@pytest.fixture(scope="module")
def kpis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kpi]:
    folder = tmp_path_factory.mktemp("queries")
    daily = make_kpi(folder, "daily", DAILY, DAILY_SQL)
    snapshot = make_kpi(folder, "snapshot", "grain: none\ncolumns:\n  n: {type: INT64}", "SELECT 1 AS n")
    return {"daily": daily, "snapshot": snapshot}


@pytest.mark.parametrize(
    ("partition", "loaded_at", "now", "level", "age"),
    [
        ("2024-03-09", LOADED, END_OF_THE_9TH + timedelta(hours=30), FRESH, timedelta(hours=30)),
        ("2024-03-09", LOADED, END_OF_THE_9TH + timedelta(hours=30, minutes=1), WARN, timedelta(hours=30, minutes=1)),
        ("2024-03-09", LOADED, END_OF_THE_9TH + timedelta(hours=54, minutes=1), STALE, timedelta(hours=54, minutes=1)),
        # loaded before the day was over: it holds data up to its load only, so the age counts from then
        ("2024-03-09", END_OF_THE_9TH - timedelta(hours=5), END_OF_THE_9TH, FRESH, timedelta(hours=5)),
        # re-loading an old day later does not make it fresh: the age is the data's, not the load's
        (
            "2024-03-01",
            datetime(2024, 3, 12, tzinfo=UTC),
            datetime(2024, 3, 12, tzinfo=UTC),
            STALE,
            timedelta(days=10, hours=9),
        ),
        (None, None, END_OF_THE_9TH, NEVER, None),
    ],
    ids=["fresh", "warn", "stale", "loaded-early", "old-day-reloaded", "never"],
)
def test_levels_and_ages(
    kpis: dict[str, Kpi],
    partition: str | None,
    loaded_at: datetime | None,
    now: datetime,
    level: str,
    age: timedelta | None,
) -> None:
    state = freshness(kpis["daily"], partition, loaded_at, now)
    assert (state.level, state.age, state.failing) == (level, age, level in (STALE, NEVER))


def test_without_rules_the_age_is_shown_but_not_judged(kpis: dict[str, Kpi]) -> None:
    unchecked = replace(kpis["daily"], freshness=Freshness())
    state = freshness(unchecked, "2024-03-01", LOADED, END_OF_THE_9TH + timedelta(days=30))
    assert (state.level, state.failing) == (UNCHECKED, False)


def test_a_snapshots_age_is_the_time_since_its_load(kpis: dict[str, Kpi]) -> None:
    assert data_end(kpis["snapshot"], "snapshot", LOADED) == LOADED
    assert data_end(kpis["daily"], "2024-03-09", LOADED) == END_OF_THE_9TH


def test_a_partition_not_begun_yet_is_never_the_newest(kpis: dict[str, Kpi]) -> None:
    loaded = ["2024-03-08", "2099-05-01", "2024-03-09", "2024-03-10"]
    # at 14:59 UTC on the 9th, Tokyo's 10th has not begun (it begins at 15:00 UTC)
    assert split_future(kpis["daily"], loaded, END_OF_THE_9TH - timedelta(minutes=1)) == (
        ["2024-03-08", "2024-03-09"],
        ["2024-03-10", "2099-05-01"],
    )
    assert split_future(kpis["daily"], loaded, END_OF_THE_9TH)[1] == ["2099-05-01"]
    assert split_future(kpis["snapshot"], ["snapshot"], END_OF_THE_9TH) == (["snapshot"], [])


def test_a_load_recorded_after_the_moment_judged_is_never_a_negative_age(kpis: dict[str, Kpi]) -> None:
    """``--now`` earlier than the load (the tests, a schedule reproduced later): the 9th, not over at 12:00 UTC,
    loaded at 16:00 — its data reaches 12:00 at most, age 0, fresh; not -4 h as ``now - loaded_at`` would say.
    A partition already over at ``now`` ages from its end, whenever it was loaded."""
    noon = datetime(2024, 3, 9, 12, tzinfo=UTC)
    state = freshness(kpis["daily"], "2024-03-09", LOADED, noon)
    assert (state.level, state.age) == (FRESH, timedelta(0))
    later = freshness(kpis["daily"], "2024-03-08", LOADED, noon)
    assert later.age == timedelta(hours=21)  # the 8th ended 15:00 UTC on the 8th
