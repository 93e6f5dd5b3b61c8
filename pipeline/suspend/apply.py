"""Carry out a plan, one resource at a time: one refusal is reported and never stops the others.

On start, databases go first; with phase ``all``, apps follow only once ``check`` says every selected database
is available (polled until ``wait_seconds`` run out) — an app started against a stopped database restart-loops.
Each resource is checked against the production guard again right before it is touched, so that a bug in the
plan still cannot reach production.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pipeline.suspend import rules
from pipeline.suspend.config import SuspendConfig
from pipeline.suspend.errors import SuspendError
from pipeline.suspend.model import Kind, Tier
from pipeline.suspend.plan import Plan, Step, Verdict
from pipeline.suspend.report import Report
from pipeline.suspend.targets.base import AWS_ERRORS, Target, describe_error

__all__ = ["apply_plan", "preview"]

POLL_SECONDS = 15.0


def preview(plan: Plan, *, account: str = "", region: str = "") -> Report:
    """The report a run would produce (``--dry-run``): ``acted`` lists what would be done; nothing is touched."""
    report = Report.of(plan, dry_run=True, account=account, region=region)
    _report_plan_problems(plan, report)
    for step in plan.steps:
        if step.verdict == Verdict.ACT:
            report.act(step)
        elif step.verdict == Verdict.FAIL:
            report.fail(step.resource.id, step.resource.kind.value, step.reason)
        else:
            report.skip(step)
            if step.verdict == Verdict.WAIT:
                report.pending.append(step.resource.id)
    return report


def apply_plan(
    plan: Plan,
    targets: Mapping[Kind, Target],
    config: SuspendConfig,
    *,
    check: Callable[[], list[str]] | None = None,
    wait_seconds: float = 0.0,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    account: str = "",
    region: str = "",
) -> Report:
    """Run every step in the plan's order and report each outcome."""
    report = Report.of(plan, account=account, region=region)
    _report_plan_problems(plan, report)
    if plan.action == "suspend":
        for step in plan.steps:
            _run(step, plan.action, targets, config, report)
        return report
    databases, apps = plan.tier(Tier.DATABASE), plan.tier(Tier.APP)
    for step in databases:
        _run(step, plan.action, targets, config, report)
    waiting: list[str] = []
    if databases and check is not None:
        waiting = _wait(check, wait_seconds if apps else 0.0, poll_seconds, sleep, clock, report)
        report.pending += [identifier for identifier in waiting if identifier not in report.pending]
    if waiting and apps:
        for step in apps:
            report.skip(step, f"not started: databases not available yet ({', '.join(waiting)}); run again")
        report.incomplete = True
        return report
    for step in apps:
        _run(step, plan.action, targets, config, report)
    return report


def _report_plan_problems(plan: Plan, report: Report) -> None:
    for service, message in plan.errors:
        report.fail(service, "discovery", message)
    for selector in plan.missing:
        kind = selector.kind.value if selector.kind else "unknown"
        report.fail(selector.id, kind, "not found in this account and region")


def _wait(
    check: Callable[[], list[str]],
    wait_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    report: Report,
) -> list[str]:
    deadline = clock() + wait_seconds
    while True:
        try:
            waiting = check()
        except AWS_ERRORS as error:
            report.fail("rds", "discovery", f"cannot tell whether the databases are available: {describe_error(error)}")
            return ["rds"]
        if not waiting or clock() + poll_seconds > deadline:
            return waiting
        sleep(poll_seconds)


def _record(step: Step, targets: Mapping[Kind, Target], config: SuspendConfig, report: Report) -> None:
    if not step.record or rules.production(step.resource, config) is not None:
        return
    try:
        targets[step.resource.kind].tag(step.resource, step.record)
    except AWS_ERRORS as error:
        report.fail(step.resource.id, step.resource.kind.value, f"tagging it failed: {describe_error(error)}")


def _run(step: Step, action: str, targets: Mapping[Kind, Target], config: SuspendConfig, report: Report) -> None:
    resource = step.resource
    if step.verdict == Verdict.FAIL:
        report.fail(resource.id, resource.kind.value, step.reason)
        return
    if step.verdict != Verdict.ACT:
        report.skip(step)
        if step.verdict == Verdict.WAIT:
            report.pending.append(resource.id)
            report.incomplete = True
            _record(step, targets, config, report)  # a suspend deferred for a maintenance window: a tick ends it
        return
    refused = rules.production(resource, config)
    if refused:  # the plan never acts on production; this is the second lock on the same door
        report.fail(resource.id, resource.kind.value, f"refused: {refused}")
        return
    target = targets[resource.kind]
    try:
        if action == "suspend":
            if step.store:
                target.tag(resource, step.store)
            target.suspend(resource)
        else:
            target.start(resource, step.restore)
    except (*AWS_ERRORS, SuspendError) as error:
        text = error.message if isinstance(error, SuspendError) else describe_error(error)
        report.fail(resource.id, resource.kind.value, text)
        return
    report.act(step)
    try:
        if step.clear:
            target.untag(resource, step.clear)
        if step.record:
            target.tag(resource, step.record)
    except AWS_ERRORS as error:
        text = f"{action} done, but updating its tags failed: {describe_error(error)}"
        report.fail(resource.id, resource.kind.value, text)
