"""The analysts' commands: ``check``, ``list``, ``render``, ``new``."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from pipeline import catalog
from pipeline.cli.app import Failed, cli
from pipeline.cli.arguments import env_option, param_pairs
from pipeline.cli.output import echo_styled, print_json, print_problems, stderr, stdout
from pipeline.core.intervals import Grain
from pipeline.core.render import bind_values, inline_mysql, render_duckdb, render_mysql
from pipeline.core.selection import moment, requested_intervals
from pipeline.core.spec import Kpi


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@env_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--explain", is_flag=True, help="Also EXPLAIN each query on the environment's MySQL sources.")
@click.option("--start", help="With --explain: EXPLAIN each backfill batch from this date…")
@click.option("--end", help="…to this one (default: the partitions a scheduled run sends).")
@click.pass_obj
def check(
    queries: Path,
    paths: tuple[Path, ...],
    env_name: str | None,
    as_json: bool,
    explain: bool,
    start: str | None,
    end: str | None,
) -> None:
    """Check KPI files (default: the queries folder) and report every problem.

    Tables, columns and declared types are checked against the schema snapshots in schemas/ (`kpi schema
    pull`), or with --env against that environment's live sources. Exits 1 when any file has a problem.
    With --explain, also runs EXPLAIN FORMAT=JSON (no row of data read) for the bound values of each query on the
    environment's MySQL sources, and exits 1 when one would full-scan a table over the environment's
    explain_max_rows (unless its header says allow_full_scan: true).

    \b
    Examples:
      kpi check
      kpi check queries/daily_sales.sql --json
      kpi check --env production
      kpi check --explain --env production
    """
    from pipeline import settings  # kpi.toml's reader: not for render, list or new
    from pipeline.schemas import check_catalog, schemas_for_check

    found = catalog.load(paths or (queries,))
    environment = settings.load_environment(env_name) if env_name else None
    schemas = schemas_for_check(queries, environment, {k.source for k in found.kpis.values()})
    report = check_catalog(found, schemas, within=None if environment else queries)
    found.problems.extend(report.problems)
    guarded = None
    if explain and found.ok:
        from pipeline.cli.explaining import run_explain

        guarded = run_explain(sorted(found.kpis.values(), key=lambda k: k.name), env_name, start, end)
    if as_json:
        from pipeline.cli.explaining import explain_json

        print_json(
            {
                "ok": found.ok and not (guarded and guarded.refused),
                "files": found.files,
                "kpis": sorted(found.kpis),
                "problems": [p.to_dict() for p in found.problems],
                "warnings": [p.to_dict() for p in report.warnings],
                "schemas": report.checked,
                "unchecked_sources": report.unchecked,
                **({"explain": explain_json(guarded)} if guarded else {}),
            }
        )
    else:
        console = stdout()
        print_problems(console, found.problems)
        print_problems(console, [replace(w, message=f"warning: {w.message}") for w in report.warnings])
        broken = len({p.location.path for p in found.problems})
        if found.ok:
            kpis, files = _count(len(found.kpis), "KPI"), _count(len(found.files), "file")
            console.print(f"[green]ok:[/] {kpis} in {files}, no problems")
        else:
            problems, files = _count(len(found.problems), "problem"), _count(len(found.files), "file")
            console.print(f"[red]{problems}[/] in {broken} of {files}")
        if guarded is not None:
            from pipeline.cli.explaining import print_explain

            print_explain(guarded)
    if not found.ok:
        raise Failed("problems")
    if guarded and guarded.refused:
        raise Failed("full scans refused")


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the KPIs as JSON.")
@click.pass_obj
def list_kpis(queries: Path, as_json: bool) -> None:
    """List the KPIs: name, grain, schedule, owner, description.

    \b
    Example:
      kpi list
    """
    found = catalog.load((queries,))
    kpis = sorted(found.kpis.values(), key=lambda k: k.name)
    if as_json:
        from pipeline.core.lineage import kpi_lineage
        from pipeline.schemas import read_snapshots, schemas_folder

        snapshots = read_snapshots(schemas_folder(queries))
        print_json([{**_summary(k), "lineage": kpi_lineage(k, snapshots.get(k.source)).to_dict()} for k in kpis])
    else:
        from rich.table import Table

        table = Table("name", "grain", "schedule", "owner", "description", title=None, expand=False)
        for kpi in kpis:
            schedule = f"{kpi.schedule} ({kpi.timezone})" if kpi.schedule else "on demand"
            name = kpi.name if kpi.enabled else f"{kpi.name} (disabled)"
            name += " (full scan allowed)" if kpi.allow_full_scan else ""
            table.add_row(name, kpi.grain.value, schedule, kpi.owner, kpi.description)
        stdout().print(table)
    if not found.ok:
        stderr().print(f"[yellow]{len(found.problems)} problems left some files out; run `kpi check`[/]")
        raise Failed("files left out")


@cli.command()
@click.argument("name")
@click.option("--date", "date_text", help="A moment inside the partition (default: the newest complete one).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Value for a declared parameter.")
@click.option("--dialect", type=click.Choice(["mysql", "duckdb"]), default="mysql", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print SQL and values as JSON.")
@click.pass_obj
def render(
    queries: Path, name: str, date_text: str | None, params: tuple[str, ...], dialect: str, as_json: bool
) -> None:
    """Show the SQL a KPI runs for one partition, and the values bound to it.

    \b
    Examples:
      kpi render daily_sales --date 2024-03-01
      kpi render hourly_orders --date 2024-03-01T09 --dialect duckdb
      kpi render large_orders --param min_amount=50000
    """
    kpi = catalog.load_one((queries,), name)
    intervals = requested_intervals(kpi, now=datetime.now(kpi.zone), date=moment(date_text))
    interval = intervals[0] if intervals else None
    values = bind_values(kpi, interval, param_pairs(params))
    rendered = render_duckdb(kpi.query, values) if dialect == "duckdb" else render_mysql(kpi.query, values)
    if as_json:
        print_json(
            {
                "kpi": kpi.name,
                "partition": interval.partition if interval else None,
                "dialect": rendered.dialect,
                "sql": rendered.sql,
                "values": {k: _jsonable(v) for k, v in rendered.values.items()},
            }
        )
        return
    dim: dict[str, Any] = {"dim": True}
    header = f"-- {kpi.name}" + (f", partition {interval.partition} ({kpi.timezone})" if interval else " (snapshot)")
    echo_styled((f"{header}; {rendered.dialect}, values bound by the driver:", dim))
    click.echo(rendered.sql)
    for key, value in rendered.values.items():
        shown = repr(value) if isinstance(value, str) else str(value)
        echo_styled((f"-- :{key} = ", dim), (shown, {"fg": "cyan"}), " ", (f"({type(value).__name__})", dim))
    if dialect == "mysql":
        echo_styled(("-- to paste into a SQL client:", dim))
        click.echo(inline_mysql(kpi.query, values))


@cli.command()
@click.argument("name")
@click.option("--grain", type=click.Choice([g.value for g in Grain]), default="day", show_default=True)
@click.pass_obj
def new(queries: Path, name: str, grain: str) -> None:
    """Create queries/NAME.sql with every header key present and commented.

    \b
    Example:
      kpi new weekly_refunds --grain week
    """
    from pipeline.flows.scaffold import new_kpi_file  # its header rules import PyYAML: only `kpi new` needs them

    path = new_kpi_file(queries, name, Grain(grain), date.today())
    stdout().print(
        f"[green]created[/] {catalog.display_path(path)}; edit it, then run `kpi check {catalog.display_path(path)}`"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _summary(kpi: Kpi) -> dict[str, Any]:
    return {
        "name": kpi.name,
        "path": kpi.path,
        "grain": kpi.grain.value,
        "time_column": kpi.time_column,
        "timezone": kpi.timezone,
        "schedule": kpi.schedule,
        "owner": kpi.owner,
        "description": kpi.description,
        "tags": list(kpi.tags),
        "enabled": kpi.enabled,
        "allow_full_scan": kpi.allow_full_scan,
        "sql_hash": kpi.sql_hash,
    }


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, date | datetime) else value
