"""What the state machines and the queue send the handlers: scheduled exports of what is due, retries under one run
id, the backfill planner's batches — and the one retry contract: what is retried (``RetryableError``, a message
listed in the partial batch response) and what fails at once (everything else, parked in the dead-letter queue)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from google.api_core import exceptions as google_exceptions

from pipeline.core.lake import execution_run_id, new_run_id
from pipeline.errors import (
    KpiError,
    SourceError,
    StoreError,
    UsageError,
    bigquery_reasons_retryable,
    bigquery_retryable,
)
from pipeline.export import export
from pipeline.lambdas.errorlog import RetryableError, reraise
from pipeline.lambdas.exporter import handler as exporter
from pipeline.lambdas.loader import handler as loader
from pipeline.lambdas.planner import handler as planner
from pipeline.lambdas.queue import backoff_seconds
from pipeline.load import load_manifest
from pipeline.sources import open_source
from pipeline.stores import LocalStore, open_store
from pipeline.warehouses import open_warehouse
from tests.aws import MotoServer
from tests.exporting import days, make_kpi
from tests.loading import HEADER, SQL, held_open, shop_source


@pytest.fixture
def lambda_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_kpi(tmp_path / "q", "daily", HEADER.replace("timezone: Asia/Tokyo", "timezone: Asia/Tokyo\nlookback: 2"), SQL)
    monkeypatch.setenv("KPI_QUERIES", str(tmp_path / "q"))
    monkeypatch.setenv("KPI_SOURCE", shop_source(tmp_path))
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("KPI_ENV", raising=False)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_execution_run_ids_sort_by_start_time_and_repeat_for_retries() -> None:
    first = execution_run_id(datetime(2024, 3, 2, 6, 0, 1, 123000, tzinfo=UTC), "daily-2024-03-02")
    assert first == execution_run_id(datetime(2024, 3, 2, 6, 0, 1, 123000, tzinfo=UTC), "daily-2024-03-02")
    assert first.startswith("20240302T060001123Z-")
    rerun = execution_run_id(datetime(2024, 3, 3, 6, 0, tzinfo=UTC), "daily-2024-03-02")
    assert first < rerun  # the console's "re-run with the same input" is a newer run: its rows win
    assert len(first) == len(new_run_id())


def test_a_scheduled_export_takes_what_is_due_and_a_retry_reuses_its_run(lambda_env: Path) -> None:
    event = {"kpi": "daily", "execution": "export-2024-03-05", "started_at": "2024-03-05T06:00:00.000Z"}
    first = exporter(event)
    assert len(first["partitions"]) == 3  # the latest complete day and lookback 2
    assert len({p["run_id"] for p in first["partitions"]}) == 1
    assert first["partitions"][0]["run_id"].startswith("20240305T060000000Z-")
    retried = exporter(event)  # Step Functions retries the state with the same input
    assert [p["run_id"] for p in retried["partitions"]] == [p["run_id"] for p in first["partitions"]]
    json.dumps(first)


def test_the_planner_batches_a_backfill_and_leaves_out_what_is_loaded(lambda_env: Path) -> None:
    plan = planner({"kpis": ["daily"], "start": "2024-02-20", "end": "2024-04-10"})
    assert plan["batches"] == [
        {"kpi": "daily", "start": "2024-02-20", "end": "2024-02-29", "partitions": 10},
        {"kpi": "daily", "start": "2024-03-01", "end": "2024-03-31", "partitions": 31},
        {"kpi": "daily", "start": "2024-04-01", "end": "2024-04-10", "partitions": 10},
    ]
    exported = exporter({"kpi": "daily", "start": "2024-03-01", "end": "2024-03-31", "run_id": "r1"})
    store, warehouse = LocalStore(lambda_env / "lake"), open_warehouse(str(lambda_env / "wh.duckdb"))
    for part in exported["partitions"]:
        load_manifest(store, f"daily/day={part['partition']}/run=r1/_manifest.json", warehouse)
    warehouse.close()
    resumed = planner({"kpis": ["daily"], "start": "2024-02-20", "end": "2024-04-10"})
    assert [(b["start"], b["end"]) for b in resumed["batches"]] == [
        ("2024-02-20", "2024-02-29"),
        ("2024-04-01", "2024-04-10"),
    ]
    assert resumed["partitions"] == 20
    forced = planner({"kpis": ["daily"], "start": "2024-03-01", "end": "2024-03-31", "force": True})
    assert forced["partitions"] == 31
    with pytest.raises(UsageError, match="needs kpis"):
        planner({"kpi": "daily", "start": "2024-03-01"})


# -- the one retry contract ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (SourceError("MySQL error 1146: Table 'shop.nope' doesn't exist"), False),  # SQL: a person must act
        (SourceError("the query ran longer than the KPI's timeout (10m)"), False),  # again would only load Aurora
        (SourceError("MySQL error 2013: Lost connection to server during query", retryable=True), True),
        (StoreError("access denied: s3:PutObject (PutObject)"), False),
        (StoreError("S3 PutObject failed: SlowDown", retryable=True), True),
        (UsageError("the export event names no kpi"), False),
    ],
)
def test_a_handler_raises_retryable_error_exactly_when_the_error_is_retryable(error: KpiError, retryable: bool) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - which one is what this test is about
        reraise(error)
    if retryable:
        assert type(caught.value) is RetryableError
        assert str(caught.value) == f"{type(error).__name__}: {error}"  # the alert still names the error
        assert caught.value.__cause__ is error
    else:
        assert caught.value is error


def _google(status: int, reason: str = "", message: str = "refused") -> Exception:
    """The exception google-cloud-bigquery raises for an HTTP error answer (google.api_core's own mapping)."""
    errors = [{"reason": reason, "message": message}] if reason else []
    error: Exception = google_exceptions.from_http_status(status, message, errors=errors)  # type: ignore[no-untyped-call]
    return error


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (_google(403, "rateLimitExceeded"), True),
        (_google(403, "quotaExceeded", "Quota exceeded: too many table update operations for this table"), True),
        (_google(403, "accessDenied", "Access Denied: Table p:kpi.daily"), False),
        (_google(403, "billingNotEnabled"), False),
        (_google(403), False),  # a 403 without a reason: not known to pass by itself
        (_google(401, "", "Request had invalid authentication credentials"), False),
        (_google(400, "invalid", "Provided Schema does not match Table"), False),
        (_google(400, "invalidQuery", "Syntax error"), False),
        (
            _google(400, "invalidQuery", "Transaction is aborted due to concurrent update against table p:kpi.daily"),
            True,
        ),
        (_google(400, "jobInternalError"), True),
        (_google(404, "notFound"), False),
        (_google(409, "duplicate"), False),
        (_google(429), True),
        (_google(500, "backendError"), True),
        (_google(503), True),
        (google_exceptions.RetryError("Deadline of 600.0s exceeded", cause=_google(503)), True),  # type: ignore[no-untyped-call]
        (TimeoutError("timed out"), True),
        (ConnectionResetError("reset by peer"), True),
        (ValueError("a bug of ours"), False),
    ],
)
def test_bigquery_errors_are_classified_by_reason_not_by_status(error: Exception, retryable: bool) -> None:
    assert bigquery_retryable(error) is retryable


@pytest.mark.parametrize(
    ("status", "reasons", "retryable"),
    [
        (403, ["rateLimitExceeded"], True),
        (403, ["accessDenied", "rateLimitExceeded"], False),  # the first named reason decides
        (None, ["quotaExceeded"], True),  # a job's error_result: reason, no HTTP status
        (None, ["accessDenied"], False),
        (None, [], True),  # no answer at all
        (502, [""], True),
    ],
)
def test_bigquery_reasons_alone_classify_a_job_error_result(
    status: int | None, reasons: list[str], retryable: bool
) -> None:
    assert bigquery_reasons_retryable(status, reasons) is retryable


@pytest.mark.parametrize(("receives", "seconds"), [(1, 60), (2, 120), (3, 240), (4, 480), (5, 900), (9, 900)])
def test_a_failed_load_is_retried_after_a_backoff_that_doubles(receives: int, seconds: int) -> None:
    assert backoff_seconds(receives) == seconds


# -- the loader's queue ----------------------------------------------------------------------------------------


@dataclass
class LoadQueue:
    """The deployed queue on moto's server: manifest events in, a dead-letter queue behind (maxReceiveCount 5).
    :meth:`deliver` does what Lambda's SQS trigger does: receive, invoke, delete what the answer did not list."""

    url: str
    arn: str
    dead_letter_url: str

    def send(self, bucket: str, key: str) -> None:
        body = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
                }
            ]
        }
        boto3.client("sqs").send_message(QueueUrl=self.url, MessageBody=json.dumps(body))

    def deliver(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "eventSource": "aws:sqs",
                "eventSourceARN": self.arn,
            }
            for m in messages
        ]
        answer = loader({"Records": records}) if records else {"batchItemFailures": []}
        listed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in listed:
                sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return answer, records

    def dead_letters(self) -> list[dict[str, Any]]:
        found = boto3.client("sqs").receive_message(
            QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return list(found.get("Messages", []))


@pytest.fixture
def load_queue(aws_env: MotoServer) -> LoadQueue:
    sqs, name = boto3.client("sqs"), f"load-{uuid.uuid4().hex[:8]}"
    dead = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 5})
    # Visibility 0: a message is visible again at once unless the loader set a backoff — which the test then sees.
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy, "VisibilityTimeout": "0"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return LoadQueue(url, arn, dead)


def test_the_loader_retries_a_transient_failure_after_a_backoff_and_parks_a_permanent_one_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_bucket: str, load_queue: LoadQueue
) -> None:
    kpi = make_kpi(tmp_path / "q", "daily", HEADER, SQL)
    store = open_store(f"s3://{s3_bucket}/lake")
    (good,) = export(kpi, days("2024-03-01", 1), source=open_source(shop_source(tmp_path)), store=store, run_id="r1")
    damaged = "lake/daily/day=2024-03-02/run=r1/_manifest.json"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=damaged, Body=b'{"manifest_version": 1, "kpi": "daily"}')
    warehouse = tmp_path / "wh.duckdb"
    monkeypatch.setenv("KPI_WAREHOUSE", str(warehouse))
    monkeypatch.delenv("KPI_ENV", raising=False)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    # The loader waits LOCK_WAIT (60 s) for the file lock before it gives up (retryable): this test needs the wait
    # to end, not its length (tests/test_load_concurrency.py runs the wait itself on an injected clock).
    monkeypatch.setattr("pipeline.warehouses.duckdb.LOCK_WAIT", 1.0)
    load_queue.send(s3_bucket, "lake/daily/day=2024-03-01/run=r1/_manifest.json")
    load_queue.send(s3_bucket, damaged)

    with held_open(warehouse):
        answer, records = load_queue.deliver()
    ids = {json.loads(r["body"])["Records"][0]["s3"]["object"]["key"].split("/")[2]: r["messageId"] for r in records}
    assert answer["batchItemFailures"] == [{"itemIdentifier": ids["day=2024-03-01"]}]  # retried: the file was busy
    assert {(f["error"], f["retryable"]) for f in answer["failed"]} == {("LoadError", True), ("StoreError", False)}
    (parked,) = load_queue.dead_letters()  # the damaged manifest, at once: no receive count to wait for
    assert json.loads(parked["Body"])["Records"][0]["s3"]["object"]["key"] == damaged
    attributes = {k: v["StringValue"] for k, v in parked["MessageAttributes"].items()}
    assert attributes["kpi_error"] == "StoreError"
    assert attributes["kpi_source_message_id"] == ids["day=2024-03-02"]
    assert "the manifest cannot be read" in attributes["kpi_error_message"]
    assert load_queue.deliver()[1] == []  # the busy one waits out its backoff (60 s); the parked one is gone

    busy = next(r for r in records if r["messageId"] == ids["day=2024-03-01"])
    # The backoff is over (moto's clock cannot be moved: end it as its time would).
    boto3.client("sqs").change_message_visibility(
        QueueUrl=load_queue.url, ReceiptHandle=busy["receiptHandle"], VisibilityTimeout=0
    )
    answer, records = load_queue.deliver()
    assert [r["attributes"]["ApproximateReceiveCount"] for r in records] == ["2"]
    assert answer["batchItemFailures"] == []
    assert [(m["partition"], m["loaded"]) for m in answer["manifests"]] == [(good.partition, True)]
    with duckdb.connect(str(warehouse)) as db:
        assert db.execute('SELECT "partition", run_id FROM _kpi_loads').fetchall() == [("2024-03-01", "r1")]
    assert load_queue.deliver()[1] == []
    assert len(load_queue.dead_letters()) == 1  # still only the damaged manifest
