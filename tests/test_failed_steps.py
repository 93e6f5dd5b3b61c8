"""What a deployed state machine hands its owner-alert step, read (pipeline.core.failed_steps): the failure's
reason out of Step Functions' Error and Cause, and the partitions a failed export or batch was to write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import catalog
from pipeline.core.failed_steps import FailedStep, failures, parse_failed, partitions_of, reason
from pipeline.core.spec import Kpi
from pipeline.errors import UsageError
from tests.exporting import DAILY, DAILY_SQL, make_kpi

HOURLY = DAILY.replace("grain: day", "grain: hour").replace("day:    {type: DATE}", "day:    {type: TIMESTAMP}")
HOURLY_SQL = DAILY_SQL.replace("CAST(created_at AS DATE)", "DATE_FORMAT(created_at, '%Y-%m-%d %H:00:00')")


def lambda_cause(error_type: str, message: str) -> str:
    """The Python runtime's answer for an exception, as Step Functions puts it in a failed task's Cause."""
    return json.dumps({"errorMessage": message, "errorType": error_type, "requestId": "r", "stackTrace": ["  …"]})


@pytest.mark.parametrize(
    ("error", "cause", "expected"),
    [
        (
            "SourceError",
            lambda_cause("SourceError", "Table orders does not exist"),
            "SourceError: Table orders does not exist",
        ),
        # a RetryableError's message starts with the original class: not named twice, RetryableError not at all
        ("RetryableError", lambda_cause("RetryableError", "StoreError: SlowDown"), "StoreError: SlowDown"),
        (
            "States.Timeout",
            "Task timed out after 900.00 seconds",
            "States.Timeout: Task timed out after 900.00 seconds",
        ),
        ("States.TaskFailed", "", "States.TaskFailed"),
        ("", "", "failed (no error recorded)"),
        ("SourceError", "{not json", "SourceError: {not json"),
    ],
)
def test_the_reason_is_the_error_and_the_handlers_message(error: str, cause: str, expected: str) -> None:
    assert reason(error, cause) == expected


@pytest.fixture
def kpis(tmp_path: Path) -> dict[str, Kpi]:
    make_kpi(tmp_path / "q", "daily", DAILY, DAILY_SQL)  # lookback 2, start 2024-01-01
    make_kpi(tmp_path / "q", "hourly", HOURLY, HOURLY_SQL)
    make_kpi(tmp_path / "q", "snapshot", "grain: none\ncolumns:\n  orders: {type: INT64}\n", "SELECT 1 AS orders")
    return dict(catalog.load((tmp_path / "q",)).kpis)


def test_a_batch_is_its_partitions_and_a_scheduled_export_what_was_due_at_the_start(kpis: dict[str, Kpi]) -> None:
    started = datetime(2024, 3, 10, 0, 30, tzinfo=UTC)  # 09:30 JST: the 9th is the latest complete JST day
    batch = FailedStep("daily", "SourceError: x", start="2024-03-01", end="2024-03-04")
    assert partitions_of(batch, kpis["daily"], started) == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
    hours = partitions_of(FailedStep("hourly", "x", start="2024-03-01T22", end="2024-03-01T23"), kpis["hourly"], None)
    assert hours == ["2024-03-01T22", "2024-03-01T23"]
    assert partitions_of(FailedStep("daily", "x"), kpis["daily"], started) == ["2024-03-07", "2024-03-08", "2024-03-09"]
    assert partitions_of(FailedStep("snapshot", "x"), kpis["snapshot"], started) == ["snapshot"]
    assert partitions_of(FailedStep("daily", "x", partitions=("2024-03-05",)), kpis["daily"], started) == ["2024-03-05"]
    # a KPI whose header is not in queries/: the batch by its range, the export by nothing ("(not run)" in alerts)
    assert partitions_of(FailedStep("gone", "x", start="2024-03-01", end="2024-03-31"), None, started) == [
        "2024-03-01 … 2024-03-31"
    ]
    assert partitions_of(FailedStep("gone", "x"), None, started) == [""]
    assert failures([batch], kpis, started) == [("daily", f"2024-03-0{d}", "SourceError: x") for d in range(1, 5)]


def test_the_event_is_read_or_refused_naming_the_item() -> None:
    steps = parse_failed(
        [
            {"kpi": "daily", "start": "2024-03-01", "end": "2024-03-31", "error": "E", "cause": lambda_cause("E", "m")},
            {"kpi": "weekly", "partitions": ["2024-02-26"], "error": "States.Timeout", "cause": "late"},
        ]
    )
    assert steps == [
        FailedStep("daily", "E: m", start="2024-03-01", end="2024-03-31"),
        FailedStep("weekly", "States.Timeout: late", partitions=("2024-02-26",)),
    ]
    for bad, message in [
        ({"kpi": "daily"}, "the alert event's failed must be a list of failed KPIs or batches"),
        ([{"error": "E"}], "failed item 1 names no kpi"),
        ([{"kpi": "a"}, {"kpi": "b", "batch": 1}], "failed item 2 (b) has unknown keys batch"),
        ([{"kpi": "a", "partitions": "2024-03-01"}], "failed item 1 (a): partitions must be a list of text"),
    ]:
        with pytest.raises(UsageError) as raised:
            parse_failed(bad)
        assert raised.value.message == message
        assert raised.value.hint.startswith('send {"failed": [')
