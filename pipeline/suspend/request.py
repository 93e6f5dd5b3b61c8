"""What was asked: the Lambda event or the command line's options, as one frozen :class:`Request`.

The original event ``{"action": "suspend"|"start", "dbClusterIdentifiers": [...]}`` keeps working; the optional
keys ``phase``, ``ids``, ``tags``, ``schedule``, ``dryRun``, ``ignoreHoliday`` and ``now`` (tests) are added. A
missing or wrong key is a :class:`SuspendError` naming it, raised at the door rather than deep in a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.suspend.errors import SuspendError
from pipeline.suspend.model import ACTIONS, PHASES, Kind

__all__ = ["Request", "Selector", "parse_now"]

EXAMPLE_EVENT = '{"action": "suspend", "dbClusterIdentifiers": ["dev-aurora"]}'


@dataclass(frozen=True)
class Selector:
    """An explicit identifier (or ARN), optionally only of one kind (``dbClusterIdentifiers`` are clusters)."""

    id: str
    kind: Kind | None = None

    def matches(self, kind: Kind, resource_id: str, arn: str) -> bool:
        return (self.kind is None or self.kind == kind) and self.id in (resource_id, arn)


@dataclass(frozen=True)
class Request:
    """One run: suspend or start, which tier, which resources.

    Without ``ids``, the resources tagged with the opt-in tag (and every ``tags`` pair) are selected; with
    ``ids``, exactly those. ``restart`` marks the re-stop after AWS's seven-day automatic start: then only a
    resource the module manages (opt-in tag, or suspended by it) is stopped again. A naive ``now`` is a
    wall-clock time in the configured zone.
    """

    action: str
    phase: str = "all"
    ids: tuple[Selector, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    dry_run: bool = False
    now: datetime | None = None
    ignore_holiday: bool = False
    restart: bool = False
    schedule: str = ""  # the opt-in tag's value of the resources a tag-selected run takes: "" is the global one

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise SuspendError(
                f"action '{self.action}' is not one of {', '.join(repr(a) for a in ACTIONS)}",
                hint=f"send e.g. {EXAMPLE_EVENT}",
            )
        if self.phase not in PHASES:
            raise SuspendError(
                f"phase '{self.phase}' is not one of {', '.join(repr(p) for p in PHASES)}",
                hint='"apps" and "databases" let a state machine wait between the tiers; "all" does both in order',
            )

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        """The Lambda event as a Request; unknown keys are ignored (Step Functions may add its own)."""
        if not isinstance(event, Mapping):
            raise SuspendError("the event is not a JSON object", hint=f"send e.g. {EXAMPLE_EVENT}")
        if "action" not in event:
            raise SuspendError("the event has no 'action'", hint=f"send e.g. {EXAMPLE_EVENT}")
        ids = [Selector(name, Kind.DB_CLUSTER) for name in _names(event, "dbClusterIdentifiers")]
        ids += [Selector(name) for name in _names(event, "ids")]
        tags = event.get("tags") or {}
        if not isinstance(tags, Mapping) or not all(isinstance(v, str) for v in tags.values()):
            raise SuspendError("'tags' must be an object of text values", hint='e.g. "tags": {"Team": "web"}')
        return cls(
            action=str(event["action"]),
            phase=str(event.get("phase") or "all"),
            ids=tuple(ids),
            tags=tuple((str(k), v) for k, v in tags.items()),
            dry_run=_flag(event, "dryRun"),
            now=parse_now(event["now"]) if event.get("now") else None,
            ignore_holiday=_flag(event, "ignoreHoliday"),
            schedule=_schedule(event),
        )

    def to_event(self) -> dict[str, Any]:
        """The event that asks for the same run (what the CLI would send a state machine)."""
        event: dict[str, Any] = {"action": self.action, "phase": self.phase}
        clusters = [s.id for s in self.ids if s.kind == Kind.DB_CLUSTER]
        others = [s.id for s in self.ids if s.kind != Kind.DB_CLUSTER]
        if clusters:
            event["dbClusterIdentifiers"] = clusters
        if others:
            event["ids"] = others
        if self.tags:
            event["tags"] = dict(self.tags)
        if self.schedule:
            event["schedule"] = self.schedule
        return event


def parse_now(value: object) -> datetime:
    """An ISO date-time (``2026-11-22T23:00:00Z``); without an offset it is read in the configured zone."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise SuspendError(
            f"'now' {value!r} is not an ISO date-time", hint='e.g. "2026-11-22T23:00:00Z" or "2026-11-23T08:00"'
        ) from None


def _names(event: Mapping[str, Any], key: str) -> list[str]:
    value = event.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise SuspendError(f"'{key}' must be a list of identifiers", hint=f"send e.g. {EXAMPLE_EVENT}")
    return list(value)


def _schedule(event: Mapping[str, Any]) -> str:
    value = event.get("schedule") or ""
    if not isinstance(value, str):
        raise SuspendError("'schedule' must be a schedule's name", hint='e.g. "schedule": "late"')
    return value


def _flag(event: Mapping[str, Any], key: str) -> bool:
    value = event.get(key, False)
    if not isinstance(value, bool):
        raise SuspendError(f"'{key}' must be true or false", hint=f'e.g. "{key}": true')
    return value
