"""AWS's seven-day automatic start of a stopped database, as EventBridge delivers it.

RDS starts a cluster or instance that has been stopped for seven days and says so with RDS-EVENT-0153
(cluster) or RDS-EVENT-0154 (instance), in the event's ``detail``:
``{"EventID", "SourceIdentifier", "SourceType": "CLUSTER"|"DB_INSTANCE", "SourceArn", "Message", "Date"}``.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_Events.Messages.html
https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-rds.html

The resource is ``starting`` when the event arrives, and RDS accepts a stop only once it is available: the
run then reports it ``pending``, and the caller (a state machine's Wait/Choice loop) sends the same event again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.suspend.errors import SuspendError
from pipeline.suspend.model import Kind
from pipeline.suspend.request import parse_now

__all__ = ["AUTO_START_EVENTS", "AutoStart", "is_rds_event", "parse_rds_event"]

AUTO_START_EVENTS = {"RDS-EVENT-0153": Kind.DB_CLUSTER, "RDS-EVENT-0154": Kind.DB_INSTANCE}
_SOURCE_TYPES = {"CLUSTER": Kind.DB_CLUSTER, "DB_INSTANCE": Kind.DB_INSTANCE}


@dataclass(frozen=True)
class AutoStart:
    """One RDS event: which resource, and when (the event's ``time``, or ``now`` in tests)."""

    event_id: str
    identifier: str
    kind: Kind
    time: datetime | None

    @property
    def automatic(self) -> bool:
        return self.event_id in AUTO_START_EVENTS


def is_rds_event(event: Mapping[str, Any]) -> bool:
    return event.get("source") == "aws.rds" and "detail" in event


def parse_rds_event(event: Mapping[str, Any]) -> AutoStart:
    """The event's resource; a SuspendError names a missing key of ``detail``."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise SuspendError("the RDS event has no 'detail' object", hint="pass the EventBridge event unchanged")
    for key in ("EventID", "SourceIdentifier"):
        if not isinstance(detail.get(key), str) or not detail[key]:
            raise SuspendError(f"the RDS event's detail has no '{key}'", hint="pass the EventBridge event unchanged")
    event_id = str(detail["EventID"])
    kind = _SOURCE_TYPES.get(str(detail.get("SourceType", ""))) or AUTO_START_EVENTS.get(event_id)
    if kind is None:
        raise SuspendError(
            f"the RDS event's SourceType {detail.get('SourceType')!r} is neither CLUSTER nor DB_INSTANCE",
            hint="route only RDS-EVENT-0153 and RDS-EVENT-0154 to this handler",
        )
    moment = event.get("now") or event.get("time")
    return AutoStart(event_id, str(detail["SourceIdentifier"]), kind, parse_now(moment) if moment else None)
