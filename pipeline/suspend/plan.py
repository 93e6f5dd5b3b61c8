"""The plan, pure: discovered resources × request × configuration → an ordered list of steps, each with its reason.

``kpi suspend plan`` prints it, ``apply`` carries it out; the same function decides both, so what the plan shows
is what a run does. Order: on suspend, apps (ECS, then Auto Scaling groups, then EC2) before databases; on start,
databases first, and apps only once they are available (``apply`` waits between the two tiers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from pipeline.suspend import rules
from pipeline.suspend.calendar import Calendar
from pipeline.suspend.config import SuspendConfig
from pipeline.suspend.model import START_ORDER, SUSPEND_ORDER, Kind, Resource, State, Tier
from pipeline.suspend.request import Request, Selector

__all__ = ["Plan", "Step", "Verdict", "build_plan", "databases_pending", "decide", "stamp"]


class Verdict(StrEnum):
    ACT = "act"  # stop or start it
    ALREADY = "already"  # already stopped/stopping (started/starting): success, nothing to do
    SKIP = "skip"  # left alone on purpose: production, a guard, keep-running, not managed
    WAIT = "wait"  # not yet in a state to act on (starting, modifying…): a rerun finishes it
    FAIL = "fail"  # cannot be done as it stands (a stored count that is not a number): a person must look


@dataclass(frozen=True)
class Step:
    """What happens to one resource. ``store`` tags are written before acting (the capacity to restore),
    ``restore`` is the capacity a start sets, ``clear`` the tags a start removes, ``record`` the tags written
    once the action succeeded (the last action)."""

    resource: Resource
    verdict: Verdict
    reason: str = ""
    before: str = ""
    after: str = ""
    store: Mapping[str, str] = field(default_factory=dict)
    restore: Mapping[str, int] = field(default_factory=dict)
    clear: tuple[str, ...] = ()
    record: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    action: str
    phase: str
    now: datetime
    holiday: str | None = None
    steps: tuple[Step, ...] = ()
    missing: tuple[Selector, ...] = ()  # explicit identifiers that matched nothing
    errors: tuple[tuple[str, str], ...] = ()  # (service, message) of a discovery that failed

    def tier(self, tier: Tier) -> list[Step]:
        return [step for step in self.steps if step.resource.kind.tier == tier]


def stamp(action: str, now: datetime) -> str:
    """The last-action tag's value: ``suspend@2026-11-20T12:00:00Z`` (UTC; AWS tag values allow these)."""
    return f"{action}@{now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def build_plan(
    resources: Iterable[Resource],
    request: Request,
    config: SuspendConfig,
    calendar: Calendar,
    now: datetime,
    *,
    errors: Sequence[tuple[str, str]] = (),
) -> Plan:
    """Every selected resource of the request's phase, decided and ordered."""
    found = list(resources)
    failed_services = {service for service, _ in errors}
    missing = tuple(
        selector
        for selector in request.ids
        if not any(selector.matches(r.kind, r.id, r.arn) for r in found)
        and not (selector.kind and selector.kind.service in failed_services)
    )
    order = SUSPEND_ORDER if request.action == "suspend" else START_ORDER
    tiers = {Tier.APP, Tier.DATABASE} if request.phase == "all" else {Tier(request.phase)}
    steps = []
    for resource in sorted(found, key=lambda r: (order.index(r.kind), r.id)):
        if resource.kind.tier in tiers:
            step = decide(resource, request, config, calendar, now)
            if step is not None:
                steps.append(step)
    return Plan(request.action, request.phase, calendar.local(now), None, tuple(steps), missing, tuple(errors))


def decide(
    resource: Resource, request: Request, config: SuspendConfig, calendar: Calendar, now: datetime
) -> Step | None:
    """The step for one resource, or None when the request does not select it."""
    if not rules.selected(resource, request, config):
        return None
    before = _describe(resource)
    reason = rules.production(resource, config)
    if reason:
        return Step(resource, Verdict.SKIP, reason, before)
    reason = rules.unknown_schedule(resource, config) if not request.ids else None
    if reason:
        return Step(resource, Verdict.SKIP, reason, before)
    if request.restart and not rules.managed(resource, config):
        return Step(
            resource,
            Verdict.SKIP,
            f"not managed: neither {config.opt_in_tag}=true nor suspended by this module "
            f"({config.state_tag(rules.LAST_ACTION)}); left running",
            before,
        )
    named = rules.schedule_of(resource, config)
    if request.restart and config.schedules:  # AWS's restart, judged by the resource's own schedule
        own = config.schedule(named if named in config.schedules else None)
        window = Calendar(config, own).window(now)
        if not window.inside:
            return Step(resource, Verdict.SKIP, f"schedule {own.name}: {window.reason}; left running", before)
    if resource.state == State.GONE:
        return Step(resource, Verdict.SKIP, f"{resource.status}: nothing to do", before)
    reason = rules.guard(resource, request.action)
    if reason:
        return Step(resource, Verdict.SKIP, reason, before)
    if request.action == "suspend":
        return _suspend(resource, config, calendar, now, before)
    return _start(resource, config, now, before)


def _suspend(resource: Resource, config: SuspendConfig, calendar: Calendar, now: datetime, before: str) -> Step:
    reason = rules.keep_running(resource, config, calendar, now)
    if reason:
        return Step(resource, Verdict.SKIP, reason, before)
    if resource.state in (State.STOPPED, State.STOPPING):
        return Step(resource, Verdict.ALREADY, f"already {resource.state.value}", before)
    if resource.state != State.RUNNING:
        return Step(resource, Verdict.WAIT, f"{resource.status}: it can be stopped once it is running", before)
    deferred = config.state_tag(rules.DEFERRED)
    maintenance = rules.in_maintenance(resource, now) if resource.kind.tier == Tier.DATABASE else None
    if maintenance is not None:
        until = calendar.format(maintenance[1])
        return Step(
            resource,
            Verdict.WAIT,
            f"in its maintenance window {resource.maintenance_window} (UTC): never stopped during one; "
            f"the next tick after {until} stops it",
            before,
            record={deferred: stamp("suspend", now)},
        )
    clear = (deferred,) if deferred in resource.tags else ()
    last = {config.state_tag(rules.LAST_ACTION): stamp("suspend", now)}
    if resource.kind in rules.CAPACITY_TAGS:
        store = {**rules.capacity_to_store(resource, config), **last}
        after = rules.describe_capacity(resource.kind, rules.zero_capacity(resource.capacity))
        return Step(resource, Verdict.ACT, "", before, after, store=store, clear=clear)
    return Step(resource, Verdict.ACT, "", before, "stopped", clear=clear, record=last)


def _start(resource: Resource, config: SuspendConfig, now: datetime, before: str) -> Step:
    if resource.state in (State.RUNNING, State.STARTING):
        word = "available" if resource.kind.tier == Tier.DATABASE and resource.state == State.RUNNING else None
        return Step(resource, Verdict.ALREADY, f"already {word or resource.state.value}", before)
    if resource.state != State.STOPPED:
        return Step(resource, Verdict.WAIT, f"{resource.status}: it can be started once it is stopped", before)
    record = {config.state_tag(rules.LAST_ACTION): stamp("start", now)}
    if resource.kind in rules.CAPACITY_TAGS:
        return _restore(resource, config, before, record)
    after = "available" if resource.kind.tier == Tier.DATABASE else "running"
    return Step(resource, Verdict.ACT, "", before, after, record=record)


def _restore(resource: Resource, config: SuspendConfig, before: str, record: Mapping[str, str]) -> Step:
    names = rules.CAPACITY_TAGS[resource.kind]
    try:
        stored = rules.stored_capacity(resource, config)
    except ValueError as error:
        return Step(resource, Verdict.FAIL, str(error), before)
    needed = ("desired",) if resource.kind == Kind.ECS_SERVICE else ("min", "desired", "max")
    absent = [config.state_tag(names[key]) for key in needed if key not in stored]
    if absent:
        return Step(
            resource,
            Verdict.SKIP,
            f"no {', '.join(absent)} tag: nothing stored to restore (not suspended by this module); left as is",
            before,
        )
    clear = tuple(config.state_tag(names[key]) for key in stored)
    after = rules.describe_capacity(resource.kind, stored)
    return Step(resource, Verdict.ACT, "", before, after, restore=stored, clear=clear, record=record)


def _describe(resource: Resource) -> str:
    if resource.kind in rules.CAPACITY_TAGS:
        return rules.describe_capacity(resource.kind, resource.capacity)
    return resource.status


def databases_pending(resources: Iterable[Resource], request: Request, config: SuspendConfig) -> list[str]:
    """The selected databases a start covers that are not available yet (what apps must wait for)."""
    pending = []
    for resource in resources:
        if resource.kind.tier != Tier.DATABASE or not rules.selected(resource, request, config):
            continue
        if rules.production(resource, config) or rules.guard(resource) or resource.state == State.GONE:
            continue
        if resource.state != State.RUNNING:
            pending.append(resource.id)
    return pending
