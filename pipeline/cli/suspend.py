"""``kpi suspend plan|apply|check|calendar``: dev environments off at night and on holidays, never production."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.cli.app import Failed, cli
from pipeline.cli.output import print_json, stderr, stdout
from pipeline.errors import UsageError

if TYPE_CHECKING:
    from pipeline.suspend import Report, Request
    from pipeline.suspend.flow import Planned

F = TypeVar("F", bound=Callable[..., Any])

_VERBS = {"suspend": "stop", "start": "start"}


@cli.group()
def suspend() -> None:
    """Stop dev environments at night and on holidays, start them in the morning; never production.

    Reads [suspend] from kpi.toml (KPI_CONFIG) and KPI_SUSPEND_* variables. Resources opt in with the tag
    kpi:suspend=true, or are named with --id. The README explains tags, schedules, holidays and the guard.

    \b
    Examples:
      kpi suspend plan --action suspend
      kpi suspend apply --action suspend --dry-run
      kpi suspend apply --action start --phase all
      kpi suspend calendar
    """


def _console() -> Console:
    """Tables at their natural width when piped (a log is not 80 columns wide); fitted on a terminal."""
    console = stdout()
    if not console.is_terminal:
        console.width = 10_000
    return console


def _request_options(command: F) -> F:
    options = [
        click.option(
            "--action", type=click.Choice(["suspend", "start"]), required=True, help="Stop (suspend) or start."
        ),
        click.option(
            "--phase",
            type=click.Choice(["all", "apps", "databases"]),
            default="all",
            show_default=True,
            help="Which tier: apps (ECS, ASG, EC2), databases (RDS, Aurora), or both in the right order.",
        ),
        click.option("--id", "ids", multiple=True, metavar="ID", help="Only this resource (id or ARN); repeatable."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only opted-in resources with it."),
        click.option(
            "--schedule", default="", metavar="NAME", help="The resources of this schedule (default: the global one)."
        ),
        click.option("--now", "now_text", metavar="ISO", help="Decide as at this moment (no offset: the zone's)."),
        click.option("--ignore-holiday", is_flag=True, help="Start even on a holiday."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the Lambda's answer)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _request(
    action: str,
    phase: str,
    ids: tuple[str, ...],
    tags: tuple[str, ...],
    now_text: str | None,
    schedule: str = "",
    **flags: bool,
) -> Request:
    from pipeline.suspend import Request, Selector
    from pipeline.suspend.request import parse_now

    pairs = []
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag '{item}' is not KEY=VALUE", hint="e.g. --tag Team=web")
        pairs.append((key, value))
    return Request(
        action,
        phase,
        tuple(Selector(i) for i in ids),
        tuple(pairs),
        now=parse_now(now_text) if now_text else None,
        schedule=schedule,
        **flags,
    )


@suspend.command("plan")
@_request_options
def plan_command(
    action: str,
    phase: str,
    ids: tuple[str, ...],
    tags: tuple[str, ...],
    schedule: str,
    now_text: str | None,
    ignore_holiday: bool,
    as_json: bool,
) -> None:
    """What a run would do to each selected resource, and why; touches nothing.

    \b
    Examples:
      kpi suspend plan --action suspend
      kpi suspend plan --action start --now 2026-11-23T08:00      # a holiday: nothing
      kpi suspend plan --action suspend --id dev-aurora --json
    """
    from pipeline.suspend import load_config, make_plan
    from pipeline.suspend.apply import preview

    request = _request(action, phase, ids, tags, now_text, schedule, ignore_holiday=ignore_holiday)
    planned = make_plan(request, load_config())
    if as_json:
        print_json(preview(planned.plan, account=planned.account, region=planned.region).to_dict())
        return
    _print_plan(planned)


def _print_plan(planned: Planned) -> None:
    from pipeline.suspend import Verdict

    plan, console = planned.plan, _console()
    where = f"{planned.account} {planned.region}, " if planned.account else ""
    title = f"kpi suspend plan: {plan.action} {plan.phase} ({where}{plan.now:%Y-%m-%d %H:%M %Z})"
    if plan.holiday:
        console.print(f"{title}\n{plan.now:%Y-%m-%d} is {escape(plan.holiday)}: a start does nothing on a holiday")
        console.print("[dim](--ignore-holiday starts anyway)[/]")
        return
    table = Table("service", "type", "id", "state", "action", title=title)
    verb = _VERBS[plan.action]
    for step in plan.steps:
        r = step.resource
        if step.verdict == Verdict.ACT:
            what = f"[green]{verb}[/]: {escape(step.before)} → {escape(step.after)}"
        elif step.verdict == Verdict.ALREADY:
            what = f"[dim]{escape(step.reason)}[/]"
        elif step.verdict == Verdict.FAIL:
            what = f"[red]fail[/]: {escape(step.reason)}"
        else:
            what = f"[yellow]{step.verdict.value}[/]: {escape(step.reason)}"
        table.add_row(r.kind.service, r.kind.value, escape(r.id), escape(r.status), what)
    console.print(table)
    for selector in plan.missing:
        console.print(f"[red]not found:[/] {escape(selector.id)}")
    for service, message in plan.errors:
        console.print(f"[red]{service}:[/] {escape(message)}")
    acting = sum(step.verdict == Verdict.ACT for step in plan.steps)
    console.print(f"{acting} to {verb}, {len(plan.steps) - acting} left as they are; nothing was touched")


@suspend.command("apply")
@_request_options
@click.option("--dry-run", is_flag=True, help="Only plan (the same as `kpi suspend plan`).")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.IntRange(0, 3600),
    default=1800,
    show_default=True,
    help="On start (phase all): seconds to wait for the databases before starting the apps.",
)
def apply_command(
    action: str,
    phase: str,
    ids: tuple[str, ...],
    tags: tuple[str, ...],
    schedule: str,
    now_text: str | None,
    ignore_holiday: bool,
    as_json: bool,
    dry_run: bool,
    wait_seconds: int,
) -> None:
    """Stop or start the selected resources: apps before databases on suspend, databases first on start.

    The report lists what was acted on, skipped (with the reason) and failed (with the error); the exit code
    is 1 when anything failed or was left for a rerun. Running it again is safe: what is already stopped
    (or started) counts as done, and a rerun finishes what a failed run left.

    \b
    Examples:
      kpi suspend apply --action suspend
      kpi suspend apply --action start --wait 900
      kpi suspend apply --action suspend --id i-0abc123 --dry-run
    """
    from pipeline.suspend import load_config, make_plan, run

    request = _request(action, phase, ids, tags, now_text, schedule, ignore_holiday=ignore_holiday, dry_run=dry_run)
    config = load_config()
    if dry_run and not as_json:
        _print_plan(make_plan(request, config))
        return

    def sleep(seconds: float) -> None:
        if not as_json:
            stderr().print(f"databases not available yet; checking again in {seconds:.0f} s")
        time.sleep(seconds)

    report = run(request, config, wait_seconds=wait_seconds, sleep=sleep)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise Failed("actions failed")


def _print_report(report: Report) -> None:
    console = _console()
    where = f"{report.account} {report.region}, " if report.account else ""
    at = datetime.fromisoformat(report.at)
    title = f"kpi suspend apply: {report.action} {report.phase} ({where}{at:%Y-%m-%d %H:%M %z})"
    if report.holiday:
        console.print(f"{title}\n{escape(report.holiday)}: a start does nothing on a holiday")
        return
    table = Table("type", "id", "result", title=title)
    for item in report.acted:
        table.add_row(
            item["type"], escape(item["id"]), f"[green]done[/]: {escape(item['from'])} → {escape(item['to'])}"
        )
    for item in report.skipped:
        table.add_row(item["type"], escape(item["id"]), f"[dim]{escape(item['reason'])}[/]")
    for item in report.failed:
        table.add_row(item["type"], escape(item["id"]), f"[red]failed[/]: {escape(item['error'])}")
    console.print(table)
    if report.pending:
        console.print(f"pending: {', '.join(report.pending)}")
    status = "[green]ok[/]" if report.ok else "[red]needs attention[/] (run it again once the cause is fixed)"
    console.print(f"{len(report.acted)} acted, {len(report.skipped)} skipped, {len(report.failed)} failed: {status}")


@suspend.command("check")
@click.option("--id", "ids", multiple=True, metavar="ID", help="Only these databases (id or ARN); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (what the state machine polls).")
def check_command(ids: tuple[str, ...], as_json: bool) -> None:
    """Whether every selected database is available (what apps wait for on start); exit 1 when not.

    \b
    Example:
      kpi suspend check
    """
    from pipeline.suspend import check_databases, load_config

    answer = check_databases(_request("start", "databases", ids, (), None), load_config())
    if as_json:
        print_json(answer)
    elif answer["databases_available"]:
        stdout().print("databases available")
    else:
        stdout().print(f"not available yet: {', '.join(answer['pending'])}", highlight=False)
    if not answer["databases_available"]:
        raise Failed("databases not available")


@suspend.command("calendar")
@click.option("--now", "now_text", metavar="ISO", help="As at this moment (no offset: the zone's wall clock).")
@click.option("--days", type=click.IntRange(0, 400), default=30, show_default=True, help="Holidays ahead to list.")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def calendar_command(now_text: str | None, days: int, as_json: bool) -> None:
    """The schedules in their zone, today's holiday, whether the suspend window is in force, the holidays ahead.

    \b
    Examples:
      kpi suspend calendar
      kpi suspend calendar --now 2026-11-22T23:00:00Z
    """
    from pipeline.suspend import Calendar, load_config
    from pipeline.suspend.request import parse_now

    config = load_config(accounts=False)  # the calendar touches no AWS: it needs no account allow-list
    calendar = Calendar(config)
    now = calendar.local(parse_now(now_text) if now_text else datetime.now(UTC))
    window = calendar.window(now)
    upcoming = calendar.upcoming(now, days)
    data = {
        "timezone": config.timezone,
        "now": now.isoformat(),
        "suspend_at": config.suspend_at,
        "resume_at": config.resume_at,
        "holiday": calendar.holiday_at(now),
        "inside_suspend_window": window.inside,
        "window": window.reason,
        "holidays": [{"date": day.isoformat(), "name": name} for day, name in upcoming],
    }
    if as_json:
        print_json(data)
        return
    console = _console()
    console.print(f"now: {calendar.format(now)}")
    console.print(f"suspend at '{config.suspend_at}', resume at '{config.resume_at}' ({config.timezone})")
    console.print(escape(window.reason))
    table = Table("date", "day", "holiday", title=f"holidays in the next {days} days ({config.holidays or 'none'})")
    for day, name in upcoming:
        table.add_row(day.isoformat(), f"{day:%a}", escape(name))
    console.print(table)


@suspend.command("tick")
@click.option("--now", "now_text", metavar="ISO", help="As at this moment (no offset: the zone's wall clock).")
@click.option("--json", "as_json", is_flag=True, help="Print the runs' reports as JSON.")
def tick_command(now_text: str | None, as_json: bool) -> None:
    """Do what every schedule says is due since the last tick (run it every tick_minutes, 15 by default).

    A schedule whose suspend_at or working-day resume_at fired since runs for its resources (those whose
    kpi:suspend tag names it; true is the global one); suspends a maintenance window deferred are finished;
    with start_for_maintenance, stopped databases are started for their maintenance window. Exit 1 when a run
    needs attention.

    \b
    Example:
      kpi suspend tick --now 2026-11-20T23:00
    """
    from pipeline.suspend import load_config, tick
    from pipeline.suspend.request import parse_now

    reports = tick(load_config(), now=parse_now(now_text) if now_text else None)
    if as_json:
        print_json([report.to_dict() for report in reports])
    elif not reports:
        stdout().print("nothing is due")
    for report in reports if not as_json else ():
        _print_report(report)
    if any(not report.ok for report in reports):
        raise Failed("actions failed")


@suspend.command("savings")
@click.option("--since", "since_text", metavar="ISO", help="From this moment (default: the first of this month).")
@click.option("--now", "now_text", metavar="ISO", hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print the savings as JSON.")
def savings_command(since_text: str | None, now_text: str | None, as_json: bool) -> None:
    """The hours the schedules keep each opted-in resource stopped, and what those hours would have cost.

    Hours follow each resource's schedule and the holidays; prices are on-demand USD from the AWS Price List
    API where it answers, else an offline table (README: Savings). Aurora clusters count their member
    instances, Multi-AZ instances their standby.

    \b
    Examples:
      kpi suspend savings
      kpi suspend savings --since 2026-11-01 --json
    """
    from pipeline.suspend import load_config, savings
    from pipeline.suspend.request import parse_now

    found = savings(
        load_config(),
        since=parse_now(since_text) if since_text else None,
        now=parse_now(now_text) if now_text else None,
    )
    if as_json:
        print_json(found.to_dict())
        return
    console = _console()
    title = f"kpi suspend savings: {found.since:%Y-%m-%d %H:%M} → {found.until:%Y-%m-%d %H:%M %Z}"
    table = Table("type", "id", "schedule", "stopped h", "USD/h", "saved USD", "counted", title=title)
    for row in found.rows:
        hourly = "-" if row["hourly_usd"] is None else f"{row['hourly_usd']:.4f}"
        saved = "-" if row["saved_usd"] is None else f"{row['saved_usd']:,.2f}"
        counted = f"{row['basis']} ({row['priced_by']})"
        table.add_row(
            row["type"],
            escape(row["id"]),
            escape(row["schedule"]),
            f"{row['stopped_hours']:.1f}",
            hourly,
            saved,
            escape(counted),
        )
    console.print(table)
    unpriced = f"; not priced: {', '.join(found.summary()['unpriced'])}" if found.summary()["unpriced"] else ""
    console.print(f"{found.hours:,.1f} hours stopped, {found.cost:,.2f} USD saved{escape(unpriced)}")
