"""pipeline/flows/run.py on its own: the partitions a run writes (due, asked for, refused) and its jobs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.spec import Kpi
from pipeline.errors import UsageError
from pipeline.flows.run import Asked, intervals_to_run, plan_run
from tests.exporting import DAILY, DAILY_SQL, make_kpi

NOW = datetime(2024, 3, 10, 0, 30, tzinfo=UTC)  # 09:30 on the 10th in Tokyo: the 9th is the latest complete day
SNAPSHOT = "grain: none\ncolumns:\n  n: {type: INT64}"


@pytest.fixture(scope="module")
def kpis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kpi]:
    folder = tmp_path_factory.mktemp("queries")
    return {
        "daily": make_kpi(folder, "daily", DAILY, DAILY_SQL),  # lookback 2, start 2024-01-01
        "snapshot": make_kpi(folder, "snapshot", SNAPSHOT, "SELECT COUNT(*) AS n FROM orders"),
    }


@pytest.mark.parametrize(
    ("asked", "partitions"),
    [
        (Asked(), ["2024-03-07", "2024-03-08", "2024-03-09"]),  # due: the latest complete and its lookback
        (Asked(due=False), ["2024-03-09"]),  # kpi export without dates: the latest alone
        (Asked(date=datetime(2024, 3, 1, 12)), ["2024-03-01"]),
        (Asked(start=datetime(2024, 2, 28), end=datetime(2024, 3, 1)), ["2024-02-28", "2024-02-29", "2024-03-01"]),
        (Asked(date=datetime(2024, 3, 10), allow_incomplete=True), ["2024-03-10"]),
        (Asked(date=datetime(2023, 12, 31), allow_before_start=True), ["2023-12-31"]),
    ],
    ids=["due", "latest", "date", "range", "incomplete-allowed", "before-start-allowed"],
)
def test_the_partitions_a_run_writes(kpis: dict[str, Kpi], asked: Asked, partitions: list[str]) -> None:
    assert [i.partition for i in intervals_to_run(kpis["daily"], asked, NOW)] == partitions


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        (Asked(date=datetime(2024, 3, 10)), "refusing to run daily: 2024-03-10 is not over yet"),
        (Asked(date=datetime(2023, 12, 31)), "refusing to run daily: 2023-12-31 is before the header's start"),
        (Asked(start=datetime(2024, 3, 1)), "--start and --end go together"),
    ],
    ids=["incomplete", "before-start", "half-a-range"],
)
def test_what_a_run_must_not_write_is_refused(kpis: dict[str, Kpi], asked: Asked, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        intervals_to_run(kpis["daily"], asked, NOW)
    assert raised.value.message.startswith(message)


def test_the_jobs_of_a_run_one_query_per_batch_and_one_for_a_snapshot(kpis: dict[str, Kpi]) -> None:
    month_end = datetime(2024, 3, 1, 0, 30, tzinfo=UTC)  # the 1st in Tokyo: Feb 28 and 29 due, and Feb 27
    jobs = plan_run([kpis["daily"], kpis["snapshot"]], Asked(), month_end)
    assert [(job.kpi.name, job.partitions) for job in jobs] == [
        ("daily", ["2024-02-27", "2024-02-28", "2024-02-29"]),
        ("snapshot", ["snapshot"]),
    ]
    across = plan_run([kpis["daily"]], Asked(start=datetime(2024, 2, 28), end=datetime(2024, 3, 2)), NOW)
    assert [job.partitions for job in across] == [["2024-02-28", "2024-02-29"], ["2024-03-01", "2024-03-02"]]
    assert plan_run([kpis["daily"]], Asked(), datetime(2023, 6, 1, tzinfo=UTC)) == []  # before the start: none due


def test_a_snapshot_has_no_dates(kpis: dict[str, Kpi]) -> None:
    with pytest.raises(UsageError, match="snapshot is a snapshot"):
        plan_run([kpis["snapshot"]], Asked(date=datetime(2024, 3, 1)), NOW)
