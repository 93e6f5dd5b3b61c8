"""``kpi clone plan|run|status|abort``: production's database, masked, into staging, behind the coverage gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from pipeline.cli.app import Failed, cli
from pipeline.cli.output import print_json, stderr, stdout
from pipeline.errors import UsageError


@cli.group()
def clone() -> None:
    """Copy production's database into staging, masked, and switch staging's DNS record to it.

    Masking rules live in masking/<database>.yaml (README: Cloning production into staging). The AWS side
    reads [clone] from kpi.toml (KPI_CONFIG) and KPI_CLONE_* variables.

    \b
    Examples:
      kpi clone plan                                   # the rule files, checked
      kpi clone plan --url mysql://root@127.0.0.1:3306/   # ... against a server's schema: the coverage gate
      kpi clone mask --url mysql://root@127.0.0.1:3306/shop_copy --rules masking/shop.yaml   # try on a copy
      kpi clone run                                    # start the deployed state machine
      kpi clone status
    """


@clone.command("plan")
@click.option("--url", metavar="MYSQL_URL", help="A server whose schema to check the rules against (a copy, a dev DB).")
@click.option(
    "--rules",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("masking"),
    show_default=True,
    envvar="KPI_CLONE_RULES",
    help="Folder of masking rule files (env: KPI_CLONE_RULES).",
)
@click.option("--write", is_flag=True, help="Add the stubs of uncovered columns to the rule files (and new files).")
def plan_command(url: str | None, folder: Path, write: bool) -> None:
    """Check the masking rules; with --url, run the coverage gate and print what masking would do.

    Every column of every database on the server must be covered by a rule (keep counts): a column no rule
    covers fails the gate, and the stub to paste is printed (--write adds it for you to review). A database
    at the end of the URL (mysql://reader@host:3306/shop) checks that one only; without, `databases` of
    [clone] in kpi.toml, else every database the login sees. Reads information_schema only; writes nothing.
    """
    from pipeline.clone.rules import load_rule_folder

    rules = load_rule_folder(folder)
    console = stdout()
    if not url:
        for database, file in sorted(rules.items()):
            console.print(f"{escape(file.path)}: database {escape(database)}, {len(file.tables)} tables")
        files = f"{len(rules)} rule file fits" if len(rules) == 1 else f"{len(rules)} rule files fit"
        console.print(f"{files} the format; pass --url to check them against a schema")
        return
    if not _gate(url, folder, rules, write):
        raise Failed("coverage")


def _gate(url: str, folder: Path, rules: dict[str, Any], write: bool) -> bool:
    from pipeline.clone.config import configured_scope
    from pipeline.clone.coverage import check_databases, in_scope, new_rule_file
    from pipeline.clone.errors import CoverageError
    from pipeline.clone.local import connect
    from pipeline.clone.masking import plan_masking
    from pipeline.clone.mysql import list_databases, read_schema
    from pipeline.clone.stubs import apply_stubs

    console, ok = stdout(), True
    connection, settings = connect(url, "kpi clone plan --url")
    scope = (settings.database,) if settings.database else configured_scope()
    if scope:
        whose = "the URL's" if settings.database else "[clone] databases"
        console.print(escape(f"databases: {', '.join(scope)} ({whose})"))
    try:
        with connection.cursor() as cursor:
            found = list_databases(cursor)
            databases = in_scope(found, scope)
            for problem in check_databases(found, rules, str(folder), scope):
                ok = False
                stderr().print(escape(str(problem)))
                name = Path(problem.location.path).stem
                if write and problem.rule == "unclassified-database":
                    path = folder / f"{name}.yaml"
                    path.write_text(new_rule_file(read_schema(cursor, name), str(folder)), encoding="utf-8")
                    stderr().print(f"wrote {escape(str(path))}: review every guess before committing it")
        for database in databases:
            if database not in rules:
                continue
            try:
                console.print(escape(plan_masking(connection, rules[database]).text()))
            except CoverageError as error:
                ok = False
                stderr().print(escape(str(error)))
                if write and error.stubs:
                    path = Path(rules[database].path)
                    path.write_text(apply_stubs(path.read_text(encoding="utf-8"), error.stubs), encoding="utf-8")
                    stderr().print(f"added {len(error.stubs)} stubs to {escape(str(path))}: review them")
    finally:
        connection.close()
    console.print("coverage gate: " + ("[green]open[/]" if ok else "[red]shut[/] (nothing would be masked or shared)"))
    return ok


@clone.command("mask")
@click.option("--url", metavar="MYSQL_URL", required=True, help="The copy to mask: mysql://user@host:3306/shop_copy.")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path),
    default=Path("masking"),
    show_default=True,
    help="A rule file, or a folder holding one for the URL's database.",
)
@click.option("--key-secret", metavar="SECRET", help="Mask with the key in this Secrets Manager secret (name or ARN).")
@click.option("--chunk-rows", type=click.IntRange(1, 1_000_000), default=5000, show_default=True, hidden=True)
def mask_command(url: str, rules_path: Path, key_secret: str | None, chunk_rows: int) -> None:
    """Mask a disposable copy in place, as a clone would: the gate, the engine, the journal, the PII scan.

    Refuses a database not marked as a disposable copy (a table kpi_disposable_copy naming it; README: Trying
    a rule file on a dev copy). Stopped anywhere, run it again: it resumes after the last chunk. Without
    --key-secret a random key is used, so values differ from a real clone's.

    \b
    Examples:
      kpi clone mask --url mysql://root@127.0.0.1:3306/shop_copy --rules masking/shop.yaml
      kpi clone mask --url 'mysql://me@dev-db:3306/shop_copy?ssl=true' --key-secret kpi/clone-masking-key
    """
    from pipeline.clone.local import mask_copy, random_key

    if key_secret:
        from pipeline.aws import AwsClients
        from pipeline.clone.worker import masking_key

        key = masking_key(AwsClients(), key_secret)
    else:
        key = random_key()
        stderr().print("no --key-secret: masking with a random key (values differ from a real clone's)")
    report = mask_copy(url, rules_path, key, chunk_rows=chunk_rows)
    stdout().print(escape(report.text()))


@clone.command("run")
@click.option("--run", "run_id", metavar="RUN", help="Resume this run (e.g. 20261128-2134) instead of a new one.")
def run_command(run_id: str | None) -> None:
    """Start the deployed clone state machine (state_machine in [clone], or KPI_CLONE_STATE_MACHINE).

    A new run checks its guards first (accounts, the minimum interval, no clone in flight). A run that failed
    or was stopped resumes from where it was with --run: every step finds what the last attempt made by its
    tags, and nothing is masked twice.
    """
    import boto3
    import botocore.exceptions

    from pipeline.clone.config import load_config
    from pipeline.clone.errors import CloneError
    from pipeline.clone.names import parse_run_id

    config = load_config()
    if not config.state_machine:
        raise UsageError(
            "no clone state machine is configured",
            hint="set state_machine = <ARN> in [clone] (the stack output CloneStateMachineArn), or "
            "KPI_CLONE_STATE_MACHINE",
        )
    payload = {"run": parse_run_id(run_id)} if run_id else {}
    try:
        region = config.state_machine.split(":")[3] if config.state_machine.count(":") >= 5 else None
        client = boto3.client("stepfunctions", region_name=region)
        started = client.start_execution(stateMachineArn=config.state_machine, input=json.dumps(payload))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise CloneError(
            f"cannot start the clone state machine: {error}",
            where=config.state_machine,
            hint="check the ARN and that your credentials may states:StartExecution on it",
        ) from None
    stdout().print(f"started {escape(str(started['executionArn']))}")
    stdout().print("follow it with `kpi clone status` or in the Step Functions console")


@clone.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(as_json: bool) -> None:
    """Every clone run with resources in either account, and where staging's DNS record points."""
    from pipeline.clone.config import load_config
    from pipeline.clone.workflow import CloneWorkflow

    status = CloneWorkflow(load_config()).status()
    if as_json:
        print_json(status)
        return
    table = Table("run", "temporary cluster", "masked snapshot", "staging cluster", "live", "retired at")
    for row in status["runs"]:
        table.add_row(
            row["run"],
            row["temporary_cluster"] or "-",
            row["masked_snapshot"] or "-",
            escape(row["staging_cluster"]) or "-",
            "[green]yes[/]" if row["live"] else "",
            row["retired_at"],
        )
    stdout().print(table)
    stdout().print(f"{escape(status['record'])} → {escape(status['points_to'] or '(no record)')}")


@clone.command("abort")
@click.argument("run_id", metavar="RUN")
def abort_command(run_id: str) -> None:
    """Delete what run RUN created (never the staging cluster DNS points to, never anything untagged).

    Deleting a cluster takes minutes: run it again until it says the run was removed.
    """
    from pipeline.clone.config import load_config
    from pipeline.clone.workflow import CloneWorkflow

    progress = CloneWorkflow(load_config()).abort(run_id)
    stdout().print(escape(progress.message))
