"""One run, end to end: calendar → account allow-list → discover → plan → apply → report (→ SNS).

The CLI and the Lambda both call these functions; they hold the only I/O of the module besides the adapters.
The clients come in as a parameter (built from the default boto3 session when none is given), so tests point
them at a local stand-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import NoCredentialsError

from pipeline.suspend import rules
from pipeline.suspend.apply import POLL_SECONDS, apply_plan, preview
from pipeline.suspend.calendar import Calendar
from pipeline.suspend.config import DEFAULT_SCHEDULE, SuspendConfig
from pipeline.suspend.errors import SuspendError
from pipeline.suspend.model import Kind, Resource, State, Tier
from pipeline.suspend.plan import Plan, build_plan, databases_pending, stamp
from pipeline.suspend.report import Report, publish
from pipeline.suspend.request import Request, Selector
from pipeline.suspend.restart import AutoStart
from pipeline.suspend.savings import Savings, month_start, savings_report
from pipeline.suspend.targets import AwsClients, Target, open_targets
from pipeline.suspend.targets.base import AWS_ERRORS, describe_error

# Minutes after a resume_at during which every tick starts the schedule again (idempotent): Aurora takes minutes to
# come up, and apps start only once their databases are available.
START_CATCH_UP = 60

__all__ = ["Planned", "check_account", "check_databases", "make_plan", "restart", "run", "savings", "tick"]


def _moment(given: datetime | None) -> datetime:
    return given or datetime.now(UTC)


def check_account(clients: AwsClients, config: SuspendConfig) -> str:
    """The caller's account, if the allow-list has it; otherwise a SuspendError before anything is touched."""
    try:
        account = str(clients("sts").get_caller_identity()["Account"])
    except NoCredentialsError:
        raise SuspendError(
            "no AWS credentials found", hint="configure credentials (aws sts get-caller-identity must work)"
        ) from None
    except AWS_ERRORS as error:
        raise SuspendError(
            f"cannot tell which AWS account this is: {describe_error(error)}",
            hint="aws sts get-caller-identity must work with these credentials",
            retryable=True,
        ) from None
    if account not in config.accounts:
        raise SuspendError(
            f"account {account} is not in the allow-list ({', '.join(config.accounts)}): nothing was touched",
            where=config.origin,
            hint="run it in an allowed account, or add this one to [suspend] accounts (KPI_SUSPEND_ACCOUNTS)",
        )
    return account


def discover(targets: Mapping[Kind, Target]) -> tuple[list[Resource], list[tuple[str, str]]]:
    """Every resource of every adapter; an adapter that fails is reported, the others still count."""
    resources: list[Resource] = []
    errors: list[tuple[str, str]] = []
    for target in {id(t): t for t in targets.values()}.values():
        try:
            resources += target.discover()
        except AWS_ERRORS as error:
            errors.append((target.service, f"discovery failed: {describe_error(error)}"))
    return resources, errors


@dataclass(frozen=True)
class Planned:
    """A plan, the adapters that carry it out, and where it runs."""

    plan: Plan
    targets: Mapping[Kind, Target]
    account: str = ""
    region: str = ""
    resources: tuple[Resource, ...] = ()  # everything discovered (the savings of the report count from it)


def make_plan(request: Request, config: SuspendConfig, *, clients: AwsClients | None = None) -> Planned:
    """The plan for the request. A start on a holiday (national or custom, on the zone's calendar) plans nothing
    and touches nothing — not even the account check."""
    calendar = Calendar(config, config.schedule(request.schedule))
    now = calendar.local(_moment(request.now))
    if request.action == "start" and not request.ignore_holiday:
        holiday = calendar.holiday_at(now)
        if holiday:
            return Planned(Plan(request.action, request.phase, now, holiday), {})
    clients = clients or AwsClients()
    account = check_account(clients, config)
    targets = open_targets(config.services, clients)
    resources, errors = discover(targets)
    plan = build_plan(resources, request, config, calendar, now, errors=errors)
    return Planned(plan, targets, account, clients.region, tuple(resources))


def run(
    request: Request,
    config: SuspendConfig,
    *,
    clients: AwsClients | None = None,
    wait_seconds: float = 0.0,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    notify: bool = True,
) -> Report:
    """Plan and apply (or only plan, for a dry run); the report goes to SNS when a topic is configured."""
    clients = clients or AwsClients()
    planned = make_plan(request, config, clients=clients)
    plan = planned.plan
    if request.dry_run:
        return preview(plan, account=planned.account, region=planned.region)
    if plan.holiday:
        report = Report.of(plan, account=planned.account, region=planned.region)
    else:
        rds = planned.targets.get(Kind.DB_CLUSTER)

        def check() -> list[str]:
            return databases_pending(rds.discover() if rds else [], request, config)

        report = apply_plan(
            plan,
            planned.targets,
            config,
            check=check if plan.action == "start" else None,
            wait_seconds=wait_seconds,
            poll_seconds=poll_seconds,
            sleep=sleep,
            account=planned.account,
            region=planned.region,
        )
    if notify and config.topic_arn:
        if planned.resources:
            month = savings_report(planned.resources, config, month_start(plan.now, config), plan.now, clients=clients)
            report.savings = month.summary()
        publish(report, config.topic_arn, clients("sns"))
    return report


def tick(
    config: SuspendConfig,
    *,
    now: datetime | None = None,
    clients: AwsClients | None = None,
    notify: bool = True,
) -> list[Report]:
    """What is due since the last tick (``tick_minutes`` ago), run every few minutes by a schedule:

    1. each schedule whose ``suspend_at``, or working-day ``resume_at``, fired since: a run of its resources —
       and a start again at every tick for an hour after its ``resume_at`` (:data:`START_CATCH_UP`): a tick has
       no time to wait for databases, so apps held back are started by a later one (what runs already is left);
    2. suspends a maintenance window deferred (the ``deferred`` state tag): stopped once the window is over, if
       their schedule's suspend window is still in force (its tag is dropped otherwise);
    3. with ``start_for_maintenance``: stopped databases whose maintenance window opens before the next tick are
       started for it, and tagged deferred, so that step 2 stops them again after it.
    """
    moment = _moment(now)
    since = moment - timedelta(minutes=config.tick_minutes)
    clients = clients or AwsClients()
    reports = []
    for schedule in config.all_schedules():
        calendar = Calendar(config, schedule)
        due = calendar.fired(since, moment)
        if due is None and calendar.fired(moment - timedelta(minutes=START_CATCH_UP), moment) == "start":
            due = "start"  # apps held back until their databases were available: started by a later tick
        if due:
            name = "" if schedule.name == DEFAULT_SCHEDULE else schedule.name
            reports.append(run(Request(due, schedule=name, now=moment), config, clients=clients, notify=notify))
    if "rds" not in config.services:
        return reports
    check_account(clients, config)
    rds = open_targets(("rds",), clients)[Kind.DB_CLUSTER]
    databases = [r for r in rds.discover() if r.kind.tier == Tier.DATABASE and rules.managed(r, config)]
    deferred_tag = config.state_tag(rules.DEFERRED)
    deferred = [r for r in databases if deferred_tag in r.tags and rules.production(r, config) is None]
    due_now = []
    for resource in deferred:
        named = rules.schedule_of(resource, config) or DEFAULT_SCHEDULE
        inside = Calendar(config, config.schedules.get(named) or config.schedule()).window(moment).inside
        if inside and rules.in_maintenance(resource, moment) is None:
            due_now.append(Selector(resource.id, resource.kind))
        elif not inside:
            rds.untag(resource, [deferred_tag])  # morning came first: nothing to stop any more
    if due_now:
        request = Request("suspend", "databases", tuple(due_now), now=moment)
        reports.append(run(request, config, clients=clients, notify=notify))
    if config.start_for_maintenance:
        reports += _start_for_maintenance(databases, config, rds, moment, clients, notify)
    return reports


def _start_for_maintenance(
    databases: list[Resource],
    config: SuspendConfig,
    rds: Target,
    moment: datetime,
    clients: AwsClients,
    notify: bool,
) -> list[Report]:
    horizon = moment + timedelta(minutes=config.tick_minutes)
    opening = []
    for resource in databases:
        span = rules.maintenance_span(resource.maintenance_window, moment) if resource.maintenance_window else None
        stoppable = rules.guard(resource, "start") is None and rules.production(resource, config) is None
        if span is not None and stoppable and resource.state == State.STOPPED and moment < span[0] <= horizon:
            opening.append(resource)
    if not opening:
        return []
    request = Request(
        "start", "databases", tuple(Selector(r.id, r.kind) for r in opening), now=moment, ignore_holiday=True
    )
    report = run(request, config, clients=clients, notify=notify)
    started = {item["id"] for item in report.acted}
    for resource in opening:
        if resource.id in started:
            rds.tag(resource, {config.state_tag(rules.DEFERRED): stamp("maintenance", moment)})
    return [report]


def savings(
    config: SuspendConfig,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    clients: AwsClients | None = None,
) -> Savings:
    """The savings of every opted-in resource from ``since`` (default: the start of this month) to ``now``."""
    moment = Calendar(config).local(_moment(now))
    start = Calendar(config).local(since) if since else month_start(moment, config)
    clients = clients or AwsClients()
    check_account(clients, config)
    resources, errors = discover(open_targets(config.services, clients))
    if errors:
        raise SuspendError("; ".join(f"{service}: {message}" for service, message in errors), retryable=True)
    return savings_report(resources, config, start, moment, clients=clients)


def check_databases(request: Request, config: SuspendConfig, *, clients: AwsClients | None = None) -> dict[str, Any]:
    """``{"databases_available", "pending", "holiday"}``: what the resume state machine polls between tiers."""
    calendar = Calendar(config)
    holiday = None if request.ignore_holiday else calendar.holiday_at(_moment(request.now))
    clients = clients or AwsClients()
    check_account(clients, config)
    pending: list[str] = []
    if "rds" in config.services:
        try:
            resources = open_targets(("rds",), clients)[Kind.DB_CLUSTER].discover()
        except AWS_ERRORS as error:
            raise SuspendError(f"cannot list the databases: {describe_error(error)}", retryable=True) from None
        pending = databases_pending(resources, replace(request, action="start", phase="databases"), config)
    return {"databases_available": not pending, "pending": pending, "holiday": holiday}


def restart(
    event: AutoStart, config: SuspendConfig, *, clients: AwsClients | None = None, notify: bool = True
) -> Report:
    """Stop again a database AWS started after seven days — if the module manages it and the suspend window is
    in force; otherwise leave it, and say why."""
    calendar = Calendar(config)
    now = calendar.local(_moment(event.time))
    window = calendar.window(now)
    if not event.automatic:
        plan = Plan("suspend", Tier.DATABASE.value, now)
        report = Report.of(plan, trigger=event.event_id)
        report.skipped.append(
            {
                "id": event.identifier,
                "type": event.kind.value,
                "reason": f"{event.event_id} is not an automatic start (RDS-EVENT-0153/0154): ignored",
            }
        )
        return report
    if not window.inside and not config.schedules:  # with named schedules, each resource's own decides (plan)
        report = Report.of(Plan("suspend", Tier.DATABASE.value, now), trigger=event.event_id, window=window.reason)
        report.skipped.append(
            {"id": event.identifier, "type": event.kind.value, "reason": f"{window.reason}: left running"}
        )
    else:
        clients = clients or AwsClients()
        request = Request(
            "suspend", Tier.DATABASE.value, (Selector(event.identifier, event.kind),), now=now, restart=True
        )
        report = run(request, config, clients=clients, notify=False)
        report.trigger, report.window = event.event_id, window.reason
    if notify and config.topic_arn:
        publish(report, config.topic_arn, (clients or AwsClients())("sns"))
    return report
