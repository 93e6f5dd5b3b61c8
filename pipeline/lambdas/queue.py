"""The loader's queue under the one retry contract: SQS retries a message only when its failure is retryable.

Lambda's SQS trigger with ``ReportBatchItemFailures``: the handler answers ``{"batchItemFailures": [{"itemIdentifier":
<messageId>}]}`` and Lambda deletes every other message of the batch. Per message:

- **loaded** (or skipped as already loaded or older): not listed, so deleted;
- **retryable failure** (a throttled or failing S3 or BigQuery, a lost connection): listed, and its visibility set to
  a backoff of 60 s doubling with each receive (:func:`backoff_seconds`: 60, 120, 240, 480 s), so a transient
  failure is retried within minutes — not after the queue's visibility timeout, which must outlast the loader's
  own timeout — and the redrive policy parks it in the dead-letter queue after ``maxReceiveCount`` receives;
- **permanent failure** (a damaged manifest, drift the loader refuses, access denied, bad credentials, an error of
  ours): sent at once to the queue's dead-letter queue (read from its redrive policy) with the error as message
  attributes, and not listed — so it is neither retried nor lost. If parking fails, the message is listed
  instead and SQS retries it: a message is never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.aws import AWS_ERRORS, AwsClients, describe_error
from pipeline.errors import KpiError

FIRST_BACKOFF = 60  # seconds before the second receive of a message whose load failed for a transient reason
MAX_BACKOFF = 900  # the loader's timeout; the queue's visibility timeout is longer still
MAX_ATTRIBUTE = 1024  # characters of the error message kept in the dead-letter message's attributes


def backoff_seconds(receive_count: int) -> int:
    """Seconds a message stays invisible after its ``receive_count``-th receive failed for a transient reason."""
    return min(FIRST_BACKOFF << max(receive_count - 1, 0), MAX_BACKOFF)


def is_queue_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records") or []
    return bool(records) and all(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)


@dataclass
class Outcome:
    """What became of one message: ``error`` is None when every manifest it announced loaded (or was skipped)."""

    record: Mapping[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def retryable(self) -> bool:
        return isinstance(self.error, KpiError) and self.error.retryable


def handle_messages(
    records: Sequence[Mapping[str, Any]],
    process: Callable[[Mapping[str, Any]], list[dict[str, Any]]],
    clients: AwsClients | None = None,
) -> dict[str, Any]:
    """Run ``process`` on each SQS record; the partial batch response, with every result for the report."""
    outcomes = []
    for record in records:
        outcome = Outcome(record)
        try:
            outcome.results = process(record)
        except Exception as error:  # every failure is classified below; none may escape and fail the whole batch
            outcome.error = error
        outcomes.append(outcome)
    failed = [o for o in outcomes if o.error is not None]
    queue = _Queue(clients or AwsClients()) if failed else None
    retry: list[str] = []
    for outcome in failed:
        assert queue is not None
        if outcome.retryable:
            queue.delay(outcome.record)
            retry.append(str(outcome.record.get("messageId", "")))
        elif not queue.park(outcome.record, outcome.error):
            retry.append(str(outcome.record.get("messageId", "")))
    return {
        "batchItemFailures": [{"itemIdentifier": message_id} for message_id in retry],
        "manifests": [result for outcome in outcomes for result in outcome.results],
        "failed": [_failure(o) for o in failed],
    }


def _failure(outcome: Outcome) -> dict[str, Any]:
    return {
        "messageId": outcome.record.get("messageId"),
        "error": type(outcome.error).__name__,
        "message": str(outcome.error),
        "retryable": outcome.retryable,
    }


class _Queue:
    """The source queue of the records, its URL and its dead-letter queue's URL (both looked up once)."""

    def __init__(self, clients: AwsClients) -> None:
        self.sqs = clients("sqs")
        self._urls: dict[str, str] = {}
        self._dead_letter: dict[str, str | None] = {}

    def delay(self, record: Mapping[str, Any]) -> None:
        """Back off before the next receive; if that fails, the queue's visibility timeout applies instead."""
        receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.url(str(record["eventSourceARN"])),
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=backoff_seconds(receives),
            )
        except (*AWS_ERRORS, KeyError) as error:
            _log("warning", "could not set the retry backoff", record, error)

    def park(self, record: Mapping[str, Any], error: BaseException | None) -> bool:
        """Send the message to the dead-letter queue with the error; False when that could not be done."""
        try:
            source = str(record["eventSourceARN"])
            target = self.dead_letter(source)
            if target is None:
                _log("warning", "the queue has no dead-letter queue: the message is retried instead", record)
                return False
            text = str(error)[:MAX_ATTRIBUTE] or type(error).__name__
            self.sqs.send_message(
                QueueUrl=target,
                MessageBody=str(record.get("body") or ""),
                MessageAttributes={
                    "kpi_error": {"DataType": "String", "StringValue": type(error).__name__},
                    "kpi_error_message": {"DataType": "String", "StringValue": text},
                    "kpi_source_message_id": {"DataType": "String", "StringValue": str(record.get("messageId"))},
                },
            )
        except (*AWS_ERRORS, KeyError) as failure:
            _log("error", "could not park the message in the dead-letter queue: it is retried instead", record, failure)
            return False
        _log("error", "failed for good: parked in the dead-letter queue", record, error)
        return True

    def url(self, arn: str) -> str:
        """``arn:aws:sqs:REGION:ACCOUNT:NAME`` → its queue URL."""
        if arn not in self._urls:
            _, _, _, _, account, name = arn.split(":", 5)
            self._urls[arn] = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return self._urls[arn]

    def dead_letter(self, arn: str) -> str | None:
        if arn not in self._dead_letter:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.url(arn), AttributeNames=["RedrivePolicy"])
            policy = json.loads((attributes.get("Attributes") or {}).get("RedrivePolicy") or "{}")
            target = policy.get("deadLetterTargetArn")
            self._dead_letter[arn] = self.url(str(target)) if target else None
        return self._dead_letter[arn]


def _log(level: str, what: str, record: Mapping[str, Any], error: BaseException | None = None, **more: Any) -> None:
    entry: dict[str, Any] = {"level": level, "queue": what, "messageId": record.get("messageId")}
    if error is not None:
        entry["error"] = type(error).__name__
        entry["message"] = describe_error(error) if isinstance(error, AWS_ERRORS) else str(error)
    print(json.dumps({**entry, **more}, default=str))
