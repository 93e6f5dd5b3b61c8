"""The rules, pure: production, selection, what AWS cannot stop, keep-running tags, stored capacities.

Every function reads a :class:`Resource` (and the configuration) and returns a reason or a value; none talks to
AWS. The guards encode what AWS refuses, so that one refusal never aborts a run — and what moto accepts but AWS
does not (stopping an Aurora member instance) is refused here, not left to the API:

- Aurora: stop at cluster level; member instances are stopped with it.
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-cluster-stop-start.html
- RDS instances: not a read replica, not a source with read replicas, not SQL Server Multi-AZ.
  https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_StopInstance.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pipeline.suspend.calendar import Calendar
from pipeline.suspend.config import DEFAULT_SCHEDULE, SuspendConfig
from pipeline.suspend.model import Kind, Resource
from pipeline.suspend.request import Request

__all__ = [
    "CAPACITY_TAGS",
    "capacity_to_store",
    "describe_capacity",
    "guard",
    "keep_running",
    "production",
    "selected",
    "stored_capacity",
]

# Where the capacity before a suspend is kept, under the configured prefix (``kpi:suspend:desired-count``…).
CAPACITY_TAGS: Mapping[Kind, Mapping[str, str]] = {
    Kind.ECS_SERVICE: {"desired": "desired-count", "min": "min-capacity", "max": "max-capacity"},
    Kind.ASG: {"min": "min-size", "desired": "desired-capacity", "max": "max-size"},
}
LAST_ACTION = "last-action"

_AURORA_ENGINES = ("aurora", "aurora-mysql", "aurora-postgresql")
_MULTI_AZ_CLUSTER_ENGINES = ("mysql", "postgres")  # RDS Multi-AZ DB clusters: stop/start at cluster level too
_INSTANCE_ENGINES = ("mysql", "mariadb", "postgres", "oracle", "sqlserver", "db2", "custom-oracle", "custom-sqlserver")
_UNSTOPPABLE_MODES = {
    "serverless": "Aurora Serverless v1 cannot be stopped (it pauses itself when idle)",
    "multimaster": "an Aurora multi-master cluster cannot be stopped",
    "parallelquery": "an Aurora parallel query cluster cannot be stopped",
    "global": "a cluster of an Aurora global database cannot be stopped",
}
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_WINDOW = re.compile(r"([a-z]{3}):(\d{2}):(\d{2})-([a-z]{3}):(\d{2}):(\d{2})")
DEFERRED = "deferred"  # state tag: a suspend waits for the maintenance window to end (or a start was for one)


def production(resource: Resource, config: SuspendConfig) -> str | None:
    """Why the resource counts as production (its own tag, or its ECS/Aurora cluster's), or None."""
    tag = config.production_tag
    values = {value.lower() for value in tag.values}
    for tags, whose in ((resource.tags, ""), (resource.parent_tags, f"its cluster {resource.parent} is ")):
        for key, value in tags.items():
            if key.strip().lower() == tag.key.strip().lower() and value.strip().lower() in values:
                return f"production: {whose}tagged {key}={value}; never touched"
    return None


def schedule_of(resource: Resource, config: SuspendConfig) -> str | None:
    """The schedule the opt-in tag names: ``true`` the global one (``default``), any other value a named one
    (perhaps unknown: the plan says so); None when the resource is not opted in."""
    value = resource.tags.get(config.opt_in_tag, "").strip()
    if not value or value.lower() == "false":
        return None
    return DEFAULT_SCHEDULE if value.lower() in ("true", DEFAULT_SCHEDULE) else value


def selected(resource: Resource, request: Request, config: SuspendConfig) -> bool:
    """Named explicitly (an id or ARN), else opted in by tag for the request's schedule (a run of the global one
    also takes resources naming a schedule that does not exist, to report them) and matching every tag pair."""
    if request.ids:
        return any(s.matches(resource.kind, resource.id, resource.arn) for s in request.ids)
    schedule = schedule_of(resource, config)
    wanted = request.schedule or DEFAULT_SCHEDULE
    unknown = schedule is not None and schedule != DEFAULT_SCHEDULE and schedule not in config.schedules
    if schedule != wanted and not (unknown and wanted == DEFAULT_SCHEDULE):
        return False
    return all(resource.tags.get(key) == value for key, value in request.tags)


def unknown_schedule(resource: Resource, config: SuspendConfig) -> str | None:
    schedule = schedule_of(resource, config)
    if schedule is None or schedule == DEFAULT_SCHEDULE or schedule in config.schedules:
        return None
    known = ", ".join(["true", *sorted(config.schedules)])
    return f"{config.opt_in_tag}={schedule} names no schedule of [suspend.schedules] (known: {known}); left as is"


def managed(resource: Resource, config: SuspendConfig) -> bool:
    """Opted in, or suspended by this module last (the original event selects clusters by name, untagged)."""
    opted = schedule_of(resource, config) is not None
    return opted or resource.tags.get(config.state_tag(LAST_ACTION), "").startswith("suspend@")


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def maintenance_span(window: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence of an RDS maintenance window (``sun:19:00-sun:19:30``, UTC) that holds ``now`` or comes
    next; None when the text is not one. https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.Maintenance.html"""
    match = _WINDOW.fullmatch(window.strip().lower())
    if not match or match[1] not in _DAYS or match[4] not in _DAYS:
        return None
    now = now.astimezone(UTC)
    week = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    start = week + timedelta(days=_DAYS.index(match[1]), hours=int(match[2]), minutes=int(match[3]))
    end = week + timedelta(days=_DAYS.index(match[4]), hours=int(match[5]), minutes=int(match[6]))
    if end <= start:
        end += timedelta(days=7)
    for shift in (-7, 0, 7):
        span = (start + timedelta(days=shift), end + timedelta(days=shift))
        if now < span[1]:
            return span
    return None  # pragma: no cover - the next week's always ends later


def in_maintenance(resource: Resource, now: datetime) -> tuple[datetime, datetime] | None:
    """The maintenance window the database is in at ``now``, if any."""
    span = maintenance_span(resource.maintenance_window, now) if resource.maintenance_window else None
    return span if span is not None and span[0] <= now.astimezone(UTC) else None


def guard(resource: Resource, action: str = "suspend") -> str | None:
    """Why AWS cannot (or this module must not) stop or start the resource on its own, or None."""
    kind = resource.kind
    done = "stopped" if action == "suspend" else "started"
    if kind == Kind.ECS_SERVICE and resource.daemon:
        return "DAEMON service: one task per container instance, no desired count; suspend its instances' group"
    if kind == Kind.EC2_INSTANCE:
        if resource.parent:
            return f"member of Auto Scaling group {resource.parent}: {done} with the group"
        if resource.instance_store:
            return "instance-store root volume: EC2 cannot stop it, only terminate it"
    if kind == Kind.DB_INSTANCE:
        return _instance_guard(resource, done)
    if kind == Kind.DB_CLUSTER:
        return _cluster_guard(resource)
    return None


def _instance_guard(resource: Resource, done: str) -> str | None:
    if resource.parent:
        what = "Aurora cluster" if resource.engine.startswith("aurora") else "DB cluster"
        return f"member of {what} {resource.parent}: {done} with the cluster"
    if resource.replica_of:
        return f"read replica of {resource.replica_of}: RDS cannot stop a read replica"
    if resource.replicas:
        return f"has read replicas ({', '.join(resource.replicas)}): RDS cannot stop it"
    if resource.engine.startswith("sqlserver") and resource.multi_az:
        return "SQL Server Multi-AZ: RDS cannot stop it"
    if not resource.engine.startswith(_INSTANCE_ENGINES):
        return f"engine {resource.engine or 'unknown'}: not an RDS engine this module stops"
    return None


def _cluster_guard(resource: Resource) -> str | None:
    if resource.engine not in _AURORA_ENGINES + _MULTI_AZ_CLUSTER_ENGINES:
        return f"engine {resource.engine or 'unknown'}: not an Aurora or RDS cluster this module stops"
    reason = _UNSTOPPABLE_MODES.get(resource.engine_mode)
    if reason:
        return f"engine mode {resource.engine_mode}: {reason}"
    if resource.global_cluster:
        return f"member of global database {resource.global_cluster}: Aurora cannot stop it"
    if resource.replica_of:
        return f"cross-Region read replica of {resource.replica_of}: Aurora cannot stop it"
    return None


def keep_running(resource: Resource, config: SuspendConfig, calendar: Calendar, now: datetime) -> str | None:
    """Why a suspend leaves the resource running (a keep-running tag in the future, or unreadable), or None.

    The value is an ISO date-time; without an offset it is read in the configured zone, and a bare date
    keeps the resource running through that whole day.
    """
    key = config.keep_running_tag
    value = resource.tags.get(key, "").strip()
    if not value:
        return None
    try:
        until = datetime.fromisoformat(value)
    except ValueError:
        return f"{key}={value} is not an ISO date-time: left running until the tag is fixed"
    if _DATE_ONLY.fullmatch(value):
        until += timedelta(days=1)
    until = calendar.local(until)
    if until > calendar.local(now):
        return f"{key}: kept running until {calendar.format(until)}"
    return None


def describe_capacity(kind: Kind, capacity: Mapping[str, int]) -> str:
    """``desired 3 (min 2, max 6)`` for ECS, ``min 1, desired 2, max 4`` for a group."""
    if kind == Kind.ECS_SERVICE:
        scaling = f" (min {capacity['min']}, max {capacity['max']})" if "min" in capacity else ""
        return f"desired {capacity.get('desired', 0)}{scaling}"
    return ", ".join(f"{key} {capacity.get(key, 0)}" for key in ("min", "desired", "max"))


def stored_capacity(resource: Resource, config: SuspendConfig) -> dict[str, int]:
    """The capacity kept in tags by the last suspend; a ValueError names a tag that is not a count."""
    found = {}
    for key, name in CAPACITY_TAGS.get(resource.kind, {}).items():
        tag = config.state_tag(name)
        if tag in resource.tags:
            value = resource.tags[tag].strip()
            if not value.isdigit():
                raise ValueError(f"tag {tag}={resource.tags[tag]} is not a count: fix or remove it")
            found[key] = int(value)
    return found


def capacity_to_store(resource: Resource, config: SuspendConfig) -> dict[str, str]:
    """The tags a suspend writes before zeroing: the current capacity — except what an unfinished suspend
    already stored, so that a rerun never stores the zeros it left behind. Stored tags count only while the
    last action begun is a suspend: left-overs of a finished start are stale and overwritten."""
    names = CAPACITY_TAGS.get(resource.kind, {})
    stored: dict[str, int] = {}
    if resource.tags.get(config.state_tag(LAST_ACTION), "").startswith("suspend@"):
        try:
            stored = stored_capacity(resource, config)
        except ValueError:
            stored = {}
    return {
        config.state_tag(names[key]): str(stored.get(key, value))
        for key, value in resource.capacity.items()
        if key in names
    }


def zero_capacity(capacity: Mapping[str, int]) -> dict[str, int]:
    return dict.fromkeys(capacity, 0)
