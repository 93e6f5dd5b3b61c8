"""``kpi run``, ``kpi backfill``, ``kpi status``: the operators' commands, over one environment of kpi.toml."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline import catalog, interrupts, settings
from pipeline.cli.alerting import alert_failures, alert_stale, print_delivery
from pipeline.cli.app import Failed, cli
from pipeline.cli.arguments import END_HELP, allow_options, clock, env_option, now_option
from pipeline.cli.output import (
    SHOWN_PER_FILE,
    echo_styled,
    echo_table,
    escape,
    print_json,
    print_problems,
    stderr,
    stdout,
)
from pipeline.core.spec import Kpi
from pipeline.errors import Problem

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.core.anomaly import Anomaly
    from pipeline.core.plan import BackfillPlan
    from pipeline.flows.alerts import DeliveryReport
    from pipeline.flows.run import Job
    from pipeline.flows.runner import KpiSummary, Outcome, Runner
    from pipeline.flows.status import KpiStatus

_PARALLEL_HELP = "Queries at once per source (default: the source's `parallel` in kpi.toml, else 2)."


def run_with_progress(runner: Runner, jobs: Sequence[Job], *, quiet: bool) -> list[Outcome]:
    """The jobs with a progress bar on stderr (none with --json or when stderr is not a terminal). Called inside
    ``interrupts.handled()``: after SIGINT or SIGTERM the outcomes are those of what finished, and
    ``interrupts.requested()`` names the signal (:func:`report` says so)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # runs only

    total = sum(len(job.partitions) for job in jobs)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr(), transient=True, disable=quiet) as progress:
        task = progress.add_task("partitions", total=total)

        def advance(outcome: Outcome) -> None:
            progress.update(task, advance=1, description=f"{outcome.kpi} {outcome.partition}")

        return runner.run(jobs, advance)


def report(
    summaries: Sequence[KpiSummary],
    *,
    title: str,
    as_json: bool,
    planned: int = 0,
    again: str = "run the same command again: it does only what is missing",
    alerts: DeliveryReport | None = None,
) -> None:
    """The summary table (KPI, partitions, rows, bytes, seconds, status) or the same as JSON; exit 1 on a failure.

    Each failure is shown with its whole reason — every line of the message, and the hint — once for a run of
    partitions that failed for the same reason (``--json`` lists each partition: partition, kind, message, hint).
    After a stop (SIGINT, SIGTERM), the table holds what finished, a line says how much of the ``planned``
    partitions did not run and what to do (``again``), and the exit code is 130 or 143. ``alerts``, the run's
    alert delivery, is the document's ``alerts`` with --json, lines on stderr otherwise; it never changes the exit."""
    failed = any(s.failed for s in summaries)
    stopped = interrupts.requested()
    finished = sum(s.partitions for s in summaries)
    if as_json:
        document: dict[str, object] = {"ok": not failed and not stopped, "kpis": [s.as_dict() for s in summaries]}
        if stopped:
            document |= {"interrupted": interrupts.signal_name(stopped), "not_run": max(planned - finished, 0)}
        if alerts is not None:
            document["alerts"] = alerts.as_dict()
        print_json(document)
    else:
        from rich.table import Table  # rich only where a table is wide or coloured: not for a dry run

        table = Table("KPI", "partitions", "rows", "bytes", "seconds", "status", title=title)
        for s in summaries:
            status = "[green]ok[/]" if not s.failed else f"[red]{s.status}[/]"
            table.add_row(s.kpi, str(s.partitions), f"{s.rows:,}", f"{s.bytes:,}", f"{s.seconds:.1f}", status)
        console = stdout()
        console.print(table)
        for s in summaries:
            for failures in _same_reason(s.failed):
                print_failure(console, s.kpi, failures)
            for anomaly in s.anomalies:
                line = f"{s.kpi} {anomaly.partition} {anomaly.finding}"
                console.print(f"[red]anomaly:[/] {escape(line)}", highlight=False)
            for error in s.scoring_errors[:3]:
                console.print(f"[yellow]warning:[/] {s.kpi} {error}; loaded all the same", highlight=False)
        if stopped:
            console.print(
                f"[yellow]interrupted[/] by {interrupts.signal_name(stopped)}: {finished:,} of {planned:,} "
                f"partition(s) finished, {max(planned - finished, 0):,} not run — queries in flight were "
                f"cancelled, nothing uncommitted was kept, nothing was half-loaded; {again}",
                highlight=False,
            )
        print_delivery(alerts)
    if stopped:
        raise interrupts.Interrupted(stopped)
    if failed:
        raise Failed("partitions failed")


def _same_reason(outcomes: Sequence[Outcome]) -> list[list[Outcome]]:
    """Consecutive partitions (in order) that failed for one reason, grouped."""
    groups: list[list[Outcome]] = []
    for outcome in sorted(outcomes, key=lambda o: o.partition):
        reason = (outcome.kind, outcome.where, outcome.message, outcome.hint)
        last = groups[-1][-1] if groups else None
        if last is not None and (last.kind, last.where, last.message, last.hint) == reason:
            groups[-1].append(outcome)
        else:
            groups.append([outcome])
    return groups


def print_failure(console: Console, kpi: str, failures: Sequence[Outcome]) -> None:
    """``failed: KPI PARTITION(S) (kind): where: message`` with the message's further lines and the hint below."""
    first, last = failures[0], failures[-1]
    span = first.partition if len(failures) == 1 else f"{first.partition} … {last.partition}"
    about = ", ".join(filter(None, [f"{len(failures)} partitions" if len(failures) > 1 else "", first.kind]))
    head, *rest = first.message.splitlines() or [""]
    where = f"{first.where}: " if first.where and first.where != kpi else ""
    title = " ".join(filter(None, [kpi, span, f"({about})" if about else ""]))
    console.print(f"[red]failed:[/] {escape(title)}: {escape(where + head)}", highlight=False)
    for line in rest:
        console.print(escape(line if line.startswith(" ") else "  " + line), highlight=False)
    if first.hint:
        console.print(f"  [cyan]hint:[/] {escape(first.hint)}", highlight=False)


def chosen_kpis(queries: Path, names: Sequence[str]) -> list[Kpi]:
    """The named KPIs, or every enabled one; files with problems are reported and left out."""
    return kpis_and_broken(queries, names)[0]


def kpis_and_broken(queries: Path, names: Sequence[str]) -> tuple[list[Kpi], list[Outcome]]:
    """:func:`chosen_kpis`, and for each KPI (or file) left out because of its problems a failed outcome that
    lists them."""
    from pipeline.flows.runner import FAILED, Outcome

    found = catalog.load((queries,))
    if names:
        return [found.get(name) for name in names], []
    if found.problems:
        print_problems(stderr(), found.problems)
        stderr().print(f"[yellow]warning:[/] {len(found.problems)} problem(s): those KPIs are left out; see kpi check")
    broken: dict[str, list[Problem]] = {}
    for problem in found.problems:
        broken.setdefault(problem.kpi or problem.location.path, []).append(problem)
    left_out = [
        Outcome(
            name,
            "",
            FAILED,
            message=f"not run: its file has {len(problems)} problem(s):\n"
            + "\n".join(f"  {p}" + (f" ({p.hint})" if p.hint else "") for p in problems[:SHOWN_PER_FILE])
            + (f"\n  … and {len(problems) - SHOWN_PER_FILE:,} more" if len(problems) > SHOWN_PER_FILE else ""),
            kind="spec",
            hint="run `kpi check` and fix the file",
        )
        for name, problems in sorted(broken.items())
    ]
    return [kpi for kpi in found.kpis.values() if kpi.enabled], left_out


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--date", "date_text", help="The partition containing this moment, instead of the due ones.")
@click.option("--start", "start_text", help="First partition of a range (with --end).")
@click.option("--end", "end_text", help=END_HELP)
@allow_options
@env_option
@click.option("--parallel", type=click.IntRange(1, 64), help=_PARALLEL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@now_option
@click.pass_obj
def run(
    queries: Path,
    names: tuple[str, ...],
    date_text: str | None,
    start_text: str | None,
    end_text: str | None,
    allow_incomplete: bool,
    allow_before_start: bool,
    env_name: str | None,
    parallel: int | None,
    as_json: bool,
    now_text: str | None,
) -> None:
    """Export and load every partition due: the latest complete one and the header's `lookback` before it.

    NAMES are KPIs (default: every enabled one). One failing partition does not stop the others; the exit
    code is 1 when any failed. Dates that name a partition not over yet, or one before the header's `start`,
    are refused unless --allow-incomplete / --allow-before-start.

    \b
    Examples:
      kpi run                                   # everything due, on the embedded default
      kpi run daily_sales --date 2024-03-01
      kpi run --env production --parallel 1
    """
    from pipeline.core.selection import end_moment, moment
    from pipeline.flows.run import Asked, plan_run
    from pipeline.flows.runner import KpiSummary, Runner, summarize

    environment = settings.load_environment(env_name)
    asked = Asked(
        date=moment(date_text),
        start=moment(start_text),
        end=end_moment(end_text),
        allow_incomplete=allow_incomplete,
        allow_before_start=allow_before_start,
    )
    kpis, broken = kpis_and_broken(queries, names)
    now = clock(now_text)
    jobs = plan_run(kpis, asked, now)
    with interrupts.handled():  # from here on, a signal stops the run cleanly: see pipeline.interrupts
        outcomes = run_with_progress(Runner(environment, parallel=parallel), jobs, quiet=as_json)
    summaries = summarize(outcomes) + [KpiSummary(outcome.kpi, failed=[outcome]) for outcome in broken]
    report(
        summaries,
        title=f"kpi run ({environment.label})",
        as_json=as_json,
        planned=sum(len(job.partitions) for job in jobs),
        again="run the same command again to run them (it runs every partition it names again)",
        alerts=alert_failures(summaries, kpis, environment, now, command="kpi run"),
    )


@cli.command()
@click.argument("name")
@click.option("--start", "start_text", required=True, help="First partition (clamped to the header's `start`).")
@click.option("--end", "end_text", required=True, help=END_HELP)
@env_option
@click.option("--parallel", type=click.IntRange(1, 64), help=_PARALLEL_HELP)
@click.option("--force", is_flag=True, help="Run partitions already loaded from the same SQL too.")
@click.option("--dry-run", is_flag=True, help="Print the plan (partitions, batches, queries); touch nothing.")
@click.option(
    "--via",
    type=click.Choice(["local", "sfn"]),
    default="local",
    show_default=True,
    help="local: run here; sfn: start the deployed backfill state machine (kpi.toml backfill_state_machine).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan or the summary as JSON.")
@click.pass_obj
def backfill(
    queries: Path,
    name: str,
    start_text: str,
    end_text: str,
    env_name: str | None,
    parallel: int | None,
    force: bool,
    dry_run: bool,
    via: str,
    as_json: bool,
) -> None:
    """Export and load a range of partitions, one source query per month of days (day of hours, year of months).

    Resumable: partitions already loaded from the same SQL are skipped unless --force, so a backfill that was
    stopped half-way, run again, does only what is missing. Partitions without rows are committed empty.

    \b
    Examples:
      kpi backfill daily_sales --start 2024-01-01 --end 2024-12-31 --dry-run
      kpi backfill daily_sales --start 2024-01-01 --end 2024-12-31 --parallel 2
      kpi backfill hourly_orders --start 2024-03-01 --end 2024-03-07 --force
      kpi backfill daily_sales --start 2024-01-01 --end 2024-12-31 --env production --via sfn
    """
    from pipeline.flows.backfill import plan_range, start_state_machine

    environment = settings.load_environment(env_name)
    kpi = catalog.load_one((queries,), name)
    if via == "sfn" and not dry_run:
        execution = start_state_machine(environment, kpi.name, start_text, end_text, force=force)
        region = execution.split(":")[3]
        console = (
            f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution}"
        )
        if as_json:
            print_json({"execution": execution, "console": console})
        else:
            stdout().print(f"started {execution}\nwatch it: {console}", markup=False, highlight=False)
        return
    with interrupts.handled():  # from here on, a signal stops the backfill cleanly: see pipeline.interrupts
        plan = plan_range(kpi, start_text, end_text, environment.warehouse, force=force)
        if dry_run:
            print_plan(kpi, plan, environment, as_json=as_json)
            return
        if not plan.batches:
            nothing_to_do(kpi, plan, start_text, end_text, as_json=as_json)
            return
        # the exporter, the loader and their libraries (pyarrow…) only for a run: a dry run starts in a third
        from pipeline.flows.run import Job
        from pipeline.flows.runner import Runner, summarize

        runner = Runner(environment, parallel=parallel, force=force)
        outcomes = run_with_progress(runner, [Job(kpi, batch) for batch in plan.batches], quiet=as_json)
    if plan.done and not as_json:
        stdout().print(f"skipped {len(plan.done)} partition(s) already loaded from this SQL (--force runs them)")
    summaries = summarize(outcomes)
    report(
        summaries,
        title=f"kpi backfill {name} ({environment.label})",
        as_json=as_json,
        planned=plan.partitions,
        alerts=alert_failures(summaries, [kpi], environment, clock(None), command=f"kpi backfill {name}"),
    )


def nothing_to_do(kpi: Kpi, plan: BackfillPlan, start: str, end: str, *, as_json: bool) -> None:
    """A backfill whose range holds nothing to run: fine when everything is loaded already (exit 0), a mistake
    when the range is all in the future or before the header's start (the flow's UsageError, exit 2)."""
    from pipeline.flows.backfill import left_out_of, refuse_empty

    refuse_empty(kpi, plan, start, end, now=datetime.now(kpi.zone))
    left_out = left_out_of(kpi, plan)
    note = f"; left out: {', '.join(left_out)}" if left_out else ""
    if as_json:
        print_json({"ok": True, "kpis": [], "already_loaded": len(plan.done), "left_out": left_out})
    else:
        stdout().print(
            f"nothing to do: {kpi.name}'s {len(plan.done)} partition(s) from {start} to {end} are loaded from this "
            f"SQL already (--force runs them again){note}",
            highlight=False,
        )


def print_plan(kpi: Kpi, plan: BackfillPlan, environment: settings.Environment, *, as_json: bool) -> None:
    """The batches, their partitions and each query as the source would receive it. Printed without rich (its
    import was a fifth of a dry run's CPU time): plain lines, and the batches' table as rich draws it. The query
    and its values are printed as they are — through rich, a ``:name:`` in them was an emoji code."""
    from pipeline.flows.backfill import plan_queries
    from pipeline.sources import renderer
    from pipeline.transpile_cache import transpiles_kept

    with transpiles_kept():  # the demo's DuckDB SQL of the last dry run, without sqlglot
        queries = plan_queries(kpi, plan, renderer(environment.source(kpi.source, kpi=kpi.name).url))
    if as_json:
        print_json(
            {
                "kpi": kpi.name,
                "partitions": plan.partitions,
                "queries": len(queries),
                "already_loaded": list(plan.done),
                "before_start": list(plan.before_start),
                "incomplete": list(plan.incomplete),
                "batches": queries,
            }
        )
        return
    bold: dict[str, Any] = {"bold": True}
    early = f"; {len(plan.before_start)} before the header's start, left out" if plan.before_start else ""
    early += f"; {len(plan.incomplete)} not complete yet, left out" if plan.incomplete else ""
    echo_styled(
        (kpi.name, bold),
        f": {plan.partitions} partition(s) in {len(queries)} source quer{'y' if len(queries) == 1 else 'ies'} "
        f"on source '{kpi.source}'; {len(plan.done)} already loaded from this SQL{early}",
    )
    rows = [[str(number), str(q["first"]), str(q["last"]), str(q["partitions"])] for number, q in enumerate(queries, 1)]
    echo_table(["#", "first", "last", "partitions"], rows, title="batches (one source query each)")
    if queries:
        echo_styled(("first query:", bold))
        click.echo(str(queries[0]["sql"]))
        click.echo(f"values: {queries[0]['values']}")
    echo_styled(("dry run:", {"fg": "yellow"}), " nothing was exported or loaded")


def _anomalies(found: Sequence[Anomaly] | None, *, scored: bool) -> str:
    """``—`` (not scored), ``none``, or ``2: sales spike, orders drop`` for the newest partition."""
    if found is None or not scored:
        return "—"
    if not found:
        return "[green]none[/]"
    named = ", ".join(f"{a.measure}{f' [{a.dimension}]' if a.dimension else ''} {a.direction}" for a in found[:2])
    return f"[red]{len(found)}: {named}{' …' if len(found) > 2 else ''}[/]"


def _age(hours: object) -> str:
    if not isinstance(hours, float | int):
        return "—"
    return f"{hours:.1f}h" if hours < 48 else f"{int(hours // 24)}d {int(hours % 24)}h"


def _loaded(moment: datetime | None, *, with_zone: bool) -> str:
    """``2026-11-29 04:38`` (the zone in the header), or ``2026-11-29 04:38 JST`` when zones differ per row."""
    if moment is None:
        return "—"
    return moment.strftime("%Y-%m-%d %H:%M") + (f" {moment.tzname()}" if with_zone else "")


@cli.command()
@click.argument("names", nargs=-1)
@env_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--fail-on-anomaly", is_flag=True, help="Exit 1 when a KPI's newest partition has an anomaly.")
@click.option("--alert", is_flag=True, help="Alert the owners of stale KPIs (kpi.toml [alerts]), one message each.")
@now_option
@click.pass_obj
def status(
    queries: Path,
    names: tuple[str, ...],
    env_name: str | None,
    as_json: bool,
    fail_on_anomaly: bool,
    alert: bool,
    now_text: str | None,
) -> None:
    """Per KPI: the newest loaded partition, its rows, when it was loaded, its freshness and its anomalies.

    Exit code 1 when any KPI is stale (past the header's freshness.error_after) or was never loaded, for
    alerting from cron or CI; with --fail-on-anomaly also when a newest partition has an anomaly. With --alert,
    the owners of stale KPIs are sent one message each (kpi.toml [alerts]); a delivery that fails is reported
    and does not change the exit code.

    \b
    Examples:
      kpi status
      kpi status daily_sales hourly_orders --env production --json
      kpi status --fail-on-anomaly
      kpi status --env production --alert
    """
    from pipeline.flows.status import kpi_status

    environment = settings.load_environment(env_name)
    now = clock(now_text)
    kpis = chosen_kpis(queries, names)
    lines = kpi_status(kpis, environment.warehouse, now)
    delivery = alert_stale(kpis, lines, environment, now) if alert else None
    anomalous = any(line.anomalies for line in lines)
    if as_json:
        document: dict[str, object] = {
            "ok": not any(line.failing for line in lines) and not (fail_on_anomaly and anomalous)
        }
        document["kpis"] = [line.to_dict() for line in lines]
        print_json(document | ({"alerts": delivery.as_dict()} if delivery else {}))
    else:
        print_status(lines, title=f"kpi status ({environment.label})")
        print_delivery(delivery)
    if any(line.failing for line in lines):
        raise Failed("stale")
    if fail_on_anomaly and anomalous:
        raise Failed("anomaly")


def print_status(lines: Sequence[KpiStatus], *, title: str) -> None:
    """Partitions are named in each KPI's zone; load times are shown in the same zone, named once in the header
    when every KPI shares it, else beside each time. Then a warning per KPI with partitions loaded ahead of time."""
    from rich.table import Table

    zones = {line.timezone for line in lines}
    one_zone = next(iter(zones)) if len(zones) == 1 else None
    table = Table(
        "KPI",
        f"last partition ({one_zone})" if one_zone else "last partition (KPI's zone)",
        "rows",
        f"loaded ({one_zone})" if one_zone else "loaded (KPI's zone)",
        "age",
        "freshness",
        "anomalies",
        title=title,
    )
    colours = {"fresh": "green", "warn": "yellow", "stale": "red", "never loaded": "red"}
    for line in lines:
        table.add_row(
            line.kpi,
            line.partition or "—",
            f"{line.rows:,}" if line.rows is not None else "—",
            _loaded(line.loaded_at, with_zone=one_zone is None),
            _age(line.age_hours),
            f"[{colours.get(line.freshness, 'white')}]{line.freshness}[/]",
            _anomalies(line.anomalies, scored=line.anomalies is not None),
        )
    console = stdout()
    console.print(table)
    for line in lines:
        future, name = line.future_partitions, line.kpi
        if future:
            console.print(
                f"[yellow]warning:[/] {name}: {len(future)} loaded partition(s) have not begun yet "
                f"({', '.join(future[:3])}{' …' if len(future) > 3 else ''}): not counted as the newest; "
                f"a run with a mistyped --date loaded them — `kpi remove {name} "
                + (f"--date {future[0]}" if len(future) == 1 else f"--start {future[0]} --end {future[-1]}")
                + "` removes them",
                highlight=False,
            )
