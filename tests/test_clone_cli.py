"""``kpi clone`` as an operator uses it: the coverage gate against a real server, status and abort on moto."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.clone.workflow import CloneWorkflow
from tests.aws import MotoServer
from tests.clone_masking import RULES
from tests.cloning import NOON, Accounts, Loopback, SharedRestore, clone_database, drive, reader, set_up_accounts
from tests.conftest import MySqlServer


@pytest.fixture
def shop(mysql_server: MySqlServer) -> Iterator[tuple[str, Loopback]]:
    yield from clone_database(mysql_server)


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
