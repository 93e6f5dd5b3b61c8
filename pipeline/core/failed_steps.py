"""What a deployed state machine hands its owner-alert step: the KPIs (scheduled export) or batches (backfill)
that failed for good, read into :class:`FailedStep` and turned into the partitions an owner is told about. Pure.

The exporter runs inside the VPC with no way to Slack or to the owners' topics, so a failed export cannot alert
its owner itself; the export and backfill state machines collect their failures and hand them, once per
execution, to a Lambda outside the VPC (:mod:`pipeline.lambdas.freshness`). Each item carries Step Functions'
``Error`` and ``Cause`` of the failed task: for a Lambda task the cause is the Python runtime's JSON answer
(``{"errorMessage", "errorType", "stackTrace"}``), of which only the message is for people — :func:`reason`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pipeline.core.intervals import intervals_between, parse_moment
from pipeline.core.lake import SNAPSHOT
from pipeline.core.plan import due_intervals
from pipeline.core.spec import Kpi
from pipeline.errors import UsageError

EVENT_HINT = (
    'send {"failed": [{"kpi": "daily_sales", "start": "2024-03-01", "end": "2024-03-31", "error": "SourceError", '
    '"cause": "…"}], "execution": NAME, "started_at": ISO-8601, "context": "kpi backfill (deployed)"}'
)
_ITEM_KEYS = {"kpi", "partition", "partitions", "start", "end", "error", "cause"}


@dataclass(frozen=True)
class FailedStep:
    """One KPI of a scheduled export, or one backfill batch (``start``–``end``), that failed; ``partitions``
    when the state machine knew them. ``reason`` is the failure in one line, for the owner."""

    kpi: str
    reason: str
    partitions: tuple[str, ...] = ()
    start: str = ""
    end: str = ""


def parse_failed(items: object) -> list[FailedStep]:
    """The event's ``failed`` list read; a UsageError naming the first item that is not shaped as a failure."""
    if not isinstance(items, list):
        raise UsageError("the alert event's failed must be a list of failed KPIs or batches", hint=EVENT_HINT)
    steps = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping) or not isinstance(item.get("kpi"), str) or not item["kpi"]:
            raise UsageError(f"failed item {number} names no kpi", hint=EVENT_HINT)
        unknown = sorted(set(item) - _ITEM_KEYS)
        if unknown:
            raise UsageError(
                f"failed item {number} ({item['kpi']}) has unknown keys {', '.join(unknown)}", hint=EVENT_HINT
            )
        listed = item.get("partitions")
        if listed is not None and not (isinstance(listed, list) and all(isinstance(p, str) for p in listed)):
            raise UsageError(
                f"failed item {number} ({item['kpi']}): partitions must be a list of text", hint=EVENT_HINT
            )
        partitions = tuple(listed or ()) + ((str(item["partition"]),) if item.get("partition") else ())
        steps.append(
            FailedStep(
                kpi=item["kpi"],
                reason=reason(str(item.get("error") or ""), str(item.get("cause") or "")),
                partitions=partitions,
                start=str(item.get("start") or ""),
                end=str(item.get("end") or ""),
            )
        )
    return steps


def reason(error: str, cause: str) -> str:
    """``SourceError: Table … does not exist``: the failed task's error name and what its cause says.

    A Lambda task's cause is the runtime's JSON; its ``errorMessage`` is the handler's message (a
    ``RetryableError``'s already starts with the original error's class, so it is not named twice). Any other
    cause (``States.Timeout``'s text, say) is shown as it is."""
    message = cause.strip()
    try:
        answer = json.loads(message) if message.startswith("{") else None
    except ValueError:
        answer = None
    if isinstance(answer, Mapping) and isinstance(answer.get("errorMessage"), str):
        message = str(answer["errorMessage"]).strip()
        error = error or str(answer.get("errorType") or "")
        if error == "RetryableError" and message:
            return message
    if not message:
        return error or "failed (no error recorded)"
    return f"{error}: {message}" if error and not message.startswith(f"{error}:") else message


def partitions_of(step: FailedStep, kpi: Kpi | None, started_at: datetime | None) -> list[str]:
    """The partitions the failed step was to write, as a run names them: those the state machine listed; a
    batch's ``start``–``end`` partitions; for a scheduled export (no dates), what was due when the execution
    started — the exporter's own rule (:func:`~pipeline.core.plan.due_intervals`), judged at that moment.
    Without the KPI's header (not in ``queries/``) a batch is named by its range, an export by nothing."""
    if step.partitions:
        return list(step.partitions)
    if kpi is not None and not kpi.incremental:
        return [SNAPSHOT]
    if step.start or step.end:
        if kpi is None or not (step.start and step.end):
            return [" … ".join(filter(None, (step.start, step.end)))]
        try:
            first, last = parse_moment(step.start), parse_moment(step.end)
        except ValueError:
            return [f"{step.start} … {step.end}"]
        return [i.partition for i in intervals_between(kpi.grain, kpi.zone, first, last, kpi.first_weekday)]
    if kpi is None or started_at is None:
        return [""]
    return [i.partition for i in due_intervals(kpi, started_at)] or [""]


def failures(
    steps: Sequence[FailedStep], kpis: Mapping[str, Kpi], started_at: datetime | None
) -> list[tuple[str, str, str]]:
    """(kpi, partition, reason) per partition of each failed step: what
    :func:`pipeline.flows.alerts.failure_alerts` takes, as ``kpi run`` hands it its failed partitions."""
    return [
        (step.kpi, partition, step.reason)
        for step in steps
        for partition in partitions_of(step, kpis.get(step.kpi), started_at)
    ]
