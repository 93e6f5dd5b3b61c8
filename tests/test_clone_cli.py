"""``kpi clone`` as an operator uses it: the coverage gate against a real server, status and abort on moto."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.clone import journal_state
from pipeline.clone.local import mask_copy
from pipeline.clone.workflow import CloneWorkflow
from tests.aws import MotoServer
from tests.clone_masking import RULES
from tests.cloning import NOON, Accounts, Loopback, SharedRestore, clone_database, drive, reader, set_up_accounts
from tests.conftest import MySqlServer
from tests.test_clone_masking import assert_masked_exactly_once, dump


@pytest.fixture
def shop(cluster_server: MySqlServer) -> Iterator[tuple[str, Loopback]]:
    yield from clone_database(cluster_server)


def url_of(loopback: Loopback) -> str:
    return f"mysql://{loopback.user}:{loopback.password}@{loopback.server.host}:{loopback.server.port}/"


def test_plan_checks_the_rule_files_and_runs_the_gate_against_a_server(
    runner: CliRunner, tmp_path: Path, shop: tuple[str, Loopback]
) -> None:
    database, loopback = shop
    rules = tmp_path / "masking"
    rules.mkdir()

    (rules / f"{database}.yaml").write_text(RULES.replace("database: shop", f"database: {database}"))
    listed = runner.invoke(cli, ["clone", "plan", "--rules", str(rules)])
    assert listed.exit_code == 0, listed.output
    assert f"database {database}, 7 tables" in listed.output
    opened = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback)])
    assert opened.exit_code == 0, opened.output
    assert f"masking plan for database {database}" in opened.output
    assert "coverage gate: open" in opened.output
    connection = reader(loopback)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE users ADD COLUMN line_id VARCHAR(64) NULL")
    connection.close()
    shut = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback)])
    assert shut.exit_code == 1
    assert "users.line_id" in shut.output
    assert "coverage gate: shut" in shut.output
    assert "Traceback" not in shut.output
    written = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback), "--write"])
    assert written.exit_code == 1
    assert "line_id" in (rules / f"{database}.yaml").read_text()
    reopened = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback)])
    assert reopened.exit_code == 0, reopened.output


def test_a_broken_rule_file_is_reported_with_its_position(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text("tables:\n  users:\n    columns:\n      email: shuffle\n")
    result = runner.invoke(cli, ["clone", "plan", "--rules", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'shop.yaml'}:4:" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def project(
    aws_env: MotoServer, tmp_path: Path, shop: tuple[str, Loopback], monkeypatch: pytest.MonkeyPatch
) -> Accounts:
    aws_env.reset()
    for key in list(os.environ):
        if key.startswith("KPI_CLONE_"):
            monkeypatch.delenv(key)
    accounts = set_up_accounts(tmp_path, shop[0])
    config = accounts.config()
    table = {
        "source_account": config.source_account,
        "source_cluster": config.source_cluster,
        "subnet_group": config.subnet_group,
        "worker_security_group": config.worker_security_group,
        "masking_key_secret": config.masking_key_secret,
        "kms_key": config.kms_key,
        "target_account": config.target_account,
        "target_role_arn": config.target_role_arn,
        "target_subnet_group": config.target_subnet_group,
        "target_security_groups": list(config.target_security_groups),
        "hosted_zone_id": config.hosted_zone_id,
        "record_name": config.record_name,
        "rules": str(accounts.rules),
    }
    lines = ["[clone]"] + [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    (tmp_path / "kpi.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    return accounts


def test_status_lists_runs_and_the_record_and_abort_removes_one(
    runner: CliRunner, project: Accounts, shop: tuple[str, Loopback]
) -> None:
    _, loopback = shop
    clone = CloneWorkflow(
        project.config(),
        clients=project.production,
        staging=project.staging,
        restore_shared=SharedRestore(project),
        now=lambda: NOON,
    )
    drive(clone, loopback, stop_at="mask")
    result = runner.invoke(cli, ["clone", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["points_to"] == project.old_endpoint
    runs = {row["run"]: row for row in status["runs"]}
    assert runs["20261128-0300"]["temporary_cluster"] == "available"
    assert runs["20261128-0300"]["masked_snapshot"] == ""
    assert runs["20261101-0300"]["live"] is True
    table = runner.invoke(cli, ["clone", "status"])
    assert "db.staging.internal → staging-db-20261101-0300" in table.output
    for _ in range(5):
        aborted = runner.invoke(cli, ["clone", "abort", "20261128-0300"])
        assert aborted.exit_code == 0, aborted.output
        if "removed" in aborted.output:
            break
    assert "clone 20261128-0300 removed" in aborted.output
    after = json.loads(runner.invoke(cli, ["clone", "status", "--json"]).output)
    assert [row["run"] for row in after["runs"]] == ["20261101-0300"]


def test_run_needs_a_state_machine_and_starts_it(runner: CliRunner, project: Accounts) -> None:
    missing = runner.invoke(cli, ["clone", "run"])
    assert missing.exit_code == 2
    assert "KPI_CLONE_STATE_MACHINE" in missing.output
    sfn = project.production("stepfunctions")
    arn = sfn.create_state_machine(
        name="kpi-clone",
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    started = runner.invoke(cli, ["clone", "run", "--run", "20261128-0300"], env={"KPI_CLONE_STATE_MACHINE": arn})
    assert started.exit_code == 0, started.output
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"run": "20261128-0300"}
    bad = runner.invoke(cli, ["clone", "run", "--run", "yesterday"], env={"KPI_CLONE_STATE_MACHINE": arn})
    assert bad.exit_code == 1
    assert "is not a clone run id" in bad.output


def grant_other_database(loopback: Loopback, name: str) -> None:
    """A second database the same login sees (a shared dev server), without a rule file."""
    with loopback.server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"CREATE TABLE `{name}`.`notes` (id INT PRIMARY KEY, body TEXT)")
        for host in ("%", "localhost"):
            cursor.execute(f"GRANT ALL ON `{name}`.* TO '{loopback.user}'@'{host}'")


def drop_database(loopback: Loopback, name: str) -> None:
    with loopback.server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def test_plan_checks_only_the_database_the_url_or_the_configuration_names(
    runner: CliRunner, tmp_path: Path, shop: tuple[str, Loopback], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, loopback = shop
    other = f"{database}_other"
    rules = tmp_path / "masking"
    rules.mkdir()
    (rules / f"{database}.yaml").write_text(RULES.replace("database: shop", f"database: {database}"))
    (rules / "billing.yaml").write_text("tables:\n  invoices: truncate\n")  # another server's database
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    monkeypatch.delenv("KPI_CLONE_DATABASES", raising=False)
    grant_other_database(loopback, other)
    try:
        everything = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback)])
        assert everything.exit_code == 1
        assert f"database {other} has no masking rule file" in everything.output
        assert "database billing is not on the cluster" in everything.output
        scoped = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback) + database])
        assert scoped.exit_code == 0, scoped.output
        assert f"databases: {database} (the URL's)" in scoped.output
        assert other not in scoped.output
        assert "billing" not in scoped.output
        assert "coverage gate: open" in scoped.output
        missing = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback) + "nope"])
        assert missing.exit_code == 1
        assert "database nope is not on the server" in missing.output
        (tmp_path / "kpi.toml").write_text(f'[clone]\ndatabases = ["{database}"]\n', encoding="utf-8")
        configured = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback)])
        assert configured.exit_code == 0, configured.output
        assert f"databases: {database} ([clone] databases)" in configured.output
        (tmp_path / "kpi.toml").write_text('[clone]\ndatabases = ["shop; drop"]\n', encoding="utf-8")
        wrong = runner.invoke(cli, ["clone", "plan", "--rules", str(rules), "--url", url_of(loopback)])
        assert wrong.exit_code == 1
        assert "databases: 'shop; drop' is not a database name" in wrong.output
    finally:
        drop_database(loopback, other)


def mark(loopback: Loopback, name: str | None = None) -> None:
    connection = reader(loopback)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE kpi_disposable_copy (database_name VARCHAR(64) PRIMARY KEY)")
        cursor.execute("INSERT INTO kpi_disposable_copy VALUES (%s)", (name or loopback.database,))
    connection.commit()
    connection.close()


def test_mask_refuses_a_database_not_marked_as_a_disposable_copy(
    runner: CliRunner, tmp_path: Path, shop: tuple[str, Loopback]
) -> None:
    database, loopback = shop
    before = dump(reader(loopback), "users")
    url = url_of(loopback) + database
    rules = tmp_path / "shop.yaml"
    rules.write_text(RULES)
    refused = runner.invoke(cli, ["clone", "mask", "--url", url, "--rules", str(rules)])
    assert refused.exit_code == 1
    assert f"refusing to mask {database}: it is not marked as a disposable copy" in refused.output
    assert "CREATE TABLE kpi_disposable_copy" in refused.output
    assert "Traceback" not in refused.output
    mark(loopback, "shop")  # a marker that names another database: restored from elsewhere
    renamed = runner.invoke(cli, ["clone", "mask", "--url", url, "--rules", str(rules)])
    assert renamed.exit_code == 1
    assert f"its kpi_disposable_copy names shop, not {database}" in renamed.output
    nameless = runner.invoke(cli, ["clone", "mask", "--url", url_of(loopback), "--rules", str(rules)])
    assert nameless.exit_code == 1
    assert "names no database" in nameless.output
    assert dump(reader(loopback), "users") == before


def test_mask_masks_a_marked_copy_with_the_clone_engine_and_resumes(
    runner: CliRunner, tmp_path: Path, shop: tuple[str, Loopback], aws_env: MotoServer
) -> None:
    database, loopback = shop
    mark(loopback)
    key = b"k" * 32
    boto3.client("secretsmanager").create_secret(Name=f"kpi/trial-{database}", SecretString=key.decode())
    rules = tmp_path / "masking"
    rules.mkdir()
    (rules / "shop.yaml").write_text(RULES)
    url = url_of(loopback) + database
    wrong_folder = runner.invoke(cli, ["clone", "mask", "--url", url, "--rules", str(rules)])
    assert wrong_folder.exit_code == 1
    assert f"no rule file in {rules} is for database {database}" in wrong_folder.output

    # stopped after its second chunk (a kill, a lost connection): the journal keeps its place
    seen: list[int] = []

    def stop(table: str, progress: Any) -> None:
        seen.append(progress.chunks)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mask_copy(url, rules / "shop.yaml", key, chunk_rows=50, on_chunk=stop)
    assert journal_state(reader(loopback), database) is not None
    done = runner.invoke(
        cli,
        ["clone", "mask", "--url", url, "--rules", str(rules / "shop.yaml"), "--key-secret", f"kpi/trial-{database}"],
    )
    assert done.exit_code == 0, done.output
    assert f"database {database}: masked in" in done.output
    assert "(resumed)" in done.output
    assert "PII scan: 9 columns sampled, nothing found" in done.output
    connection = reader(loopback)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE kpi_disposable_copy")  # the marker stays in place; out of the comparison
    assert_masked_exactly_once(connection, key)
    connection.close()
