"""The clone's AWS workflow on moto's server (two accounts), with the masking done for real on MariaDB.

moto restores nothing across accounts and accepts sharing snapshots AWS would refuse, so the one cross-account
call is served by :class:`tests.cloning.SharedRestore`, which refuses what AWS refuses; the tests assert that the
module's own guards never get that far.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pymysql
import pytest

from pipeline.clone.cloud import Account
from pipeline.clone.config import config_from_table
from pipeline.clone.errors import CloneError, CoverageError, RuleFileError
from pipeline.clone.names import Names, Tags, check_deletable
from pipeline.clone.worker import mask_temporary
from pipeline.clone.workflow import CloneWorkflow
from pipeline.lambdas import clone as clone_lambda
from pipeline.lambdas import clone_database as clone_database_lambda
from pipeline.lambdas.errorlog import RetryableError
from tests.aws import MotoServer
from tests.clone_masking import USERS
from tests.cloning import (
    ANALYST_PASSWORD,
    APP_PASSWORD,
    NOON,
    PROD_PASSWORD,
    PRODUCTION,
    RECORD,
    ROLE,
    SOURCE,
    STAGING,
    Accounts,
    Loopback,
    SharedRestore,
    clone_database,
    clone_variables,
    drive,
    reader,
    record_target,
    reset_shop,
    set_up_accounts,
)
from tests.conftest import MySqlServer
from tests.mariadb import ADMIN, ADMIN_PASSWORD
from tests.test_clone_masking import SHOP_TABLES, assert_masked_exactly_once, dump, tables_of

# Infrastructure (the clone workflow on moto and a private MariaDB): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra

RUN = "20261128-0300"
NIGHTLY = {"shop-prod-2026-11-26", "shop-prod-2026-11-27"}


@pytest.fixture
def shop(cluster_server: MySqlServer) -> Iterator[tuple[str, Loopback]]:
    yield from clone_database(cluster_server)


@pytest.fixture
def accounts(
    aws_env: MotoServer, tmp_path: Path, shop: tuple[str, Loopback], monkeypatch: pytest.MonkeyPatch
) -> Accounts:
    aws_env.reset()
    for key in list(os.environ):
        if key.startswith("KPI_CLONE_"):
            monkeypatch.delenv(key)
    return set_up_accounts(tmp_path, shop[0])


def workflow(accounts: Accounts, restore: SharedRestore | None = None, **changes: Any) -> CloneWorkflow:
    return CloneWorkflow(
        accounts.config(**changes),
        clients=accounts.production,
        staging=accounts.staging,
        restore_shared=restore or SharedRestore(accounts),
        now=lambda: NOON,
    )


def manual_snapshots(accounts: Accounts) -> set[str]:
    """Production's manual snapshots (moto also makes an automated one of each cluster it creates)."""
    found = accounts.production("rds").describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    return {s["DBClusterSnapshotIdentifier"] for s in found}


def cluster_ids(clients: Any) -> list[str]:
    return sorted(c["DBClusterIdentifier"] for c in clients("rds").describe_db_clusters()["DBClusters"])


def test_a_clone_masks_shares_only_with_staging_and_switches_the_record(
    accounts: Accounts, shop: tuple[str, Loopback]
) -> None:
    database, loopback = shop
    restore = SharedRestore(accounts)
    clone = workflow(accounts, restore)
    steps = drive(clone, loopback)
    assert steps[-1].next == "done"
    assert steps[0].run == RUN
    phases = [step.phase for step in steps]
    for phase in ("restore", "mask", "snapshot", "encrypt", "staging", "health", "done"):
        assert phase in phases
    assert phases.index("mask") < phases.index("snapshot") < phases.index("encrypt") < phases.index("staging")
    names = Names(RUN)

    # the data: masked exactly once, no journal left behind
    connection = reader(loopback)
    assert_masked_exactly_once(connection, b"k" * 32)
    assert tables_of(connection) == SHOP_TABLES
    connection.close()

    # the temporary cluster was reached with the rotated password, never production's
    temp_logins = [c for c in loopback.seen if c.get("dbClusterIdentifier") == names.temp_cluster]
    assert temp_logins
    assert all(c["password"] != PROD_PASSWORD and len(c["password"]) >= 24 for c in temp_logins)
    staging_logins = [c for c in loopback.seen if c.get("dbClusterIdentifier") == names.staging_cluster]
    assert staging_logins
    assert all(c["password"] not in (PROD_PASSWORD, temp_logins[0]["password"]) for c in staging_logins)

    # staging restored the copy under the clone key, shared with staging alone, carrying the masked tags
    (call,) = restore.calls
    assert call["snapshot"] == names.shared_snapshot
    assert call["shared"] == [STAGING]
    assert call["kms"] == accounts.kms_key
    assert call["tags"][Tags.MASKED_ALL] == "true"
    assert call["tags"][f"kpi:clone:masked:{database}"].count("-") == 1

    # DNS points to the new cluster; the old one is retired, not yet deleted; the hand-made one is untouched
    staging_rds = accounts.staging("rds")
    new = staging_rds.describe_db_clusters(DBClusterIdentifier=names.staging_cluster)["DBClusters"][0]
    assert record_target(accounts) == new["Endpoint"]
    old = staging_rds.describe_db_clusters(DBClusterIdentifier="staging-db-20261101-0300")["DBClusters"][0]
    assert {t["Key"]: t["Value"] for t in old["TagList"]}[Tags.RETIRED] == NOON.isoformat()
    assert cluster_ids(accounts.staging) == ["staging-db-20261101-0300", names.staging_cluster, "staging-hand-made"]

    # production: the temporary cluster, its security group and secrets are gone; the masked snapshot is kept
    # but shared with nobody; the production cluster and its snapshots are as they were
    assert cluster_ids(accounts.production) == [SOURCE]
    prod = accounts.production("rds")
    source = prod.describe_db_clusters(DBClusterIdentifier=SOURCE)["DBClusters"][0]
    assert source["Status"] == "available"
    assert {t["Key"]: t["Value"] for t in source["TagList"]} == {"Environment": "prod"}
    assert manual_snapshots(accounts) == NIGHTLY | {names.masked_snapshot, names.shared_snapshot}
    account = Account(accounts.production, label="production", protected=SOURCE)
    assert account.shared_with(names.shared_snapshot) == []
    groups = accounts.production("ec2").describe_security_groups()["SecurityGroups"]
    assert names.security_group not in {g["GroupName"] for g in groups}
    secrets = {s["Name"] for s in accounts.production("secretsmanager").list_secrets()["SecretList"]}
    assert secrets == {"kpi/clone-masking-key"}

    # a later retire, after the grace period, deletes the old cluster and nothing else
    later = CloneWorkflow(
        accounts.config(), clients=accounts.production, staging=accounts.staging, now=lambda: NOON + timedelta(hours=25)
    )
    assert later.retire() == ["staging-db-20261101-0300"]
    remaining = [c["DBClusterIdentifier"] for c in staging_rds.describe_db_clusters()["DBClusters"]]
    assert "staging-hand-made" in remaining
    assert names.staging_cluster in remaining

    # resuming the finished run does nothing; a later clone replaces it, and resuming it then never switches back
    assert clone.start(RUN).next == "done"
    assert record_target(accounts) == new["Endpoint"]
    reset_shop(loopback)  # the next clone restores production again
    second = CloneWorkflow(
        accounts.config(health_query=""),  # no network path to staging: the check is skipped, and says so
        clients=accounts.production,
        staging=accounts.staging,
        restore_shared=restore,
        now=lambda: NOON + timedelta(hours=13),
    )
    assert drive(second, loopback)[-1].run == "20261128-1600"
    latest = staging_rds.describe_db_clusters(DBClusterIdentifier="staging-db-20261128-1600")["DBClusters"][0]
    assert record_target(accounts) == latest["Endpoint"]
    assert {t["Key"]: t["Value"] for t in latest["TagList"]}[Tags.HEALTHY] == "not checked (health_query is empty)"
    assert clone.start(RUN).next == "done"
    assert record_target(accounts) == latest["Endpoint"]
    assert cluster_ids(accounts.production) == [SOURCE]
    with pytest.raises(CloneError, match="clone 20261001-0000 has nothing left to resume"):
        clone.start("20261001-0000")

    # the temporary cluster came from production's newest snapshot
    newest = max(
        prod.describe_db_cluster_snapshots(DBClusterIdentifier=SOURCE)["DBClusterSnapshots"],
        key=lambda s: s["SnapshotCreateTime"],
    )
    temp_source = [s for s in steps if s.phase == "restore" and "from snapshot" in s.message]
    assert temp_source[0].message.endswith(f"from snapshot {newest['DBClusterSnapshotIdentifier']}")


def test_interrupted_masking_resumes_without_masking_twice_and_nothing_is_shared_before(
    accounts: Accounts, shop: tuple[str, Loopback]
) -> None:
    _database, loopback = shop
    restore = SharedRestore(accounts)
    clone = workflow(accounts, restore)
    steps = drive(clone, loopback, stop_at="mask")
    assert steps[-1].next == "mask"
    Names(RUN)
    config = accounts.config()
    # the masking Lambda runs out of time after its first chunk
    answer = mask_temporary(config, RUN, clients=accounts.production, connect=loopback, seconds=0, chunk_rows=50)
    assert answer["masked"] is False
    assert "paused" in answer["message"]
    # the workflow will not snapshot (let alone share) a cluster that is not masked
    assert clone.advance(RUN).next == "mask"
    assert manual_snapshots(accounts) == NIGHTLY
    assert restore.calls == []
    # a fresh start with the same run id resumes; masking finishes without masking a row twice
    answer = mask_temporary(config, RUN, clients=accounts.production, connect=loopback, chunk_rows=50)
    assert answer["masked"] is True
    connection = reader(loopback)
    assert_masked_exactly_once(connection, b"k" * 32)
    masked = dump(connection, "users")
    connection.close()
    # interrupted after masking (the state machine died before the snapshot): a rerun masks nothing again
    again = mask_temporary(config, RUN, clients=accounts.production, connect=loopback)
    assert again == {"run": RUN, "masked": True, "databases": {}, "message": "already masked"}
    resumed = CloneWorkflow(
        config, clients=accounts.production, staging=accounts.staging, restore_shared=restore, now=lambda: NOON
    )
    assert drive(resumed, loopback, RUN)[-1].next == "done"
    connection = reader(loopback)
    assert dump(connection, "users") == masked
    connection.close()
    assert len(restore.calls) == 1
    assert restore.calls[0]["shared"] == [STAGING]


def test_a_snapshot_without_the_masked_tags_is_never_shared(accounts: Accounts, shop: tuple[str, Loopback]) -> None:
    _, loopback = shop
    restore = SharedRestore(accounts)
    clone = workflow(accounts, restore)
    drive(clone, loopback, stop_at="mask")
    names = Names(RUN)
    # someone snapshots the (unmasked) temporary cluster under the name the masked snapshot would have
    tags = names.tags("masked-snapshot")
    accounts.production("rds").create_db_cluster_snapshot(
        DBClusterIdentifier=names.temp_cluster,
        DBClusterSnapshotIdentifier=names.masked_snapshot,
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    with pytest.raises(CloneError, match="does not carry the masked tags: it is not shared"):
        clone.advance(RUN)
    account = Account(accounts.production, label="production", protected=SOURCE)
    assert account.shared_with(names.masked_snapshot) == []
    assert account.snapshot(names.shared_snapshot) is None
    assert restore.calls == []


def test_a_snapshot_under_a_key_staging_cannot_use_needs_kms_key(
    accounts: Accounts, shop: tuple[str, Loopback]
) -> None:
    _, loopback = shop
    restore = SharedRestore(accounts)
    clone = workflow(accounts, restore, kms_key="")
    with pytest.raises(CloneError, match="no kms_key is configured to copy it with") as raised:
        drive(clone, loopback)
    assert "customer-managed KMS key granted to the staging account" in str(raised.value)
    account = Account(accounts.production, label="production", protected=SOURCE)
    assert account.shared_with(Names(RUN).masked_snapshot) == []
    assert restore.calls == []


def test_an_unclassified_column_stops_the_clone_before_anything_is_shared(
    accounts: Accounts, shop: tuple[str, Loopback]
) -> None:
    _database, loopback = shop
    connection = reader(loopback)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE users ADD COLUMN line_id VARCHAR(64) NULL")
    connection.close()
    clone = workflow(accounts)
    with pytest.raises(CoverageError) as raised:
        drive(clone, loopback)
    assert "users.line_id" in str(raised.value)
    assert raised.value.stubs
    assert clone.advance(RUN).next == "mask"  # still waiting for masking: no snapshot, nothing shared


def test_guards_accounts_interval_and_in_flight(accounts: Accounts, shop: tuple[str, Loopback]) -> None:
    _, loopback = shop
    wrong = CloneWorkflow(accounts.config(source_account="111111111111"), clients=accounts.production, now=lambda: NOON)
    with pytest.raises(CloneError, match="these credentials are of account 123456789012"):
        wrong.start()
    assert cluster_ids(accounts.production) == [SOURCE]
    # staging credentials that are production's own: refused before anything is shared
    same = CloneWorkflow(accounts.config(), clients=accounts.production, staging=accounts.production, now=lambda: NOON)
    with pytest.raises(CloneError, match=f"of account {PRODUCTION}, not target_account {STAGING}"):
        same.staging.identity() and same.staging
    clone = workflow(accounts)
    drive(clone, loopback, stop_at="mask")
    with pytest.raises(CloneError, match=f"clone {RUN} is still in flight"):
        workflow(accounts).start()
    drive(clone, loopback, RUN)
    with pytest.raises(CloneError, match="min_interval_hours is 12"):
        workflow(accounts).start()
    later = CloneWorkflow(
        accounts.config(),
        clients=accounts.production,
        staging=accounts.staging,
        restore_shared=SharedRestore(accounts),
        now=lambda: NOON + timedelta(hours=13),
    )
    assert later.start().run == "20261128-1600"


def test_the_configuration_refuses_one_account_for_both_and_a_foreign_role() -> None:
    table = {
        "source_account": PRODUCTION,
        "source_cluster": SOURCE,
        "subnet_group": "p",
        "worker_security_group": "sg-1",
        "masking_key_secret": "k",
        "target_account": PRODUCTION,
        "target_role_arn": ROLE,
        "target_subnet_group": "s",
        "target_security_groups": ["sg-2"],
        "hosted_zone_id": "Z1",
        "record_name": "db.staging.internal",
    }
    with pytest.raises(CloneError, match="source_account and target_account are the same"):
        config_from_table(table)
    with pytest.raises(CloneError, match="target_role_arn is a role of account 210987654321, not of target_account"):
        config_from_table({**table, "target_account": "333333333333"})
    with pytest.raises(CloneError, match="missing key: hosted_zone_id"):
        config_from_table({k: v for k, v in {**table, "target_account": STAGING}.items() if k != "hosted_zone_id"})
    with pytest.raises(CloneError, match="did you mean 'record_ttl'"):
        config_from_table({**table, "target_account": STAGING, "record_tll": 60})
    assert config_from_table({**table, "target_account": STAGING}).snapshot == "latest"


def test_only_the_modules_own_resources_are_deleted(accounts: Accounts) -> None:
    with pytest.raises(CloneError, match="it is the production cluster"):
        check_deletable("cluster", SOURCE, {Tags.CREATED_BY: "kpi-pipeline", Tags.RUN: RUN}, protected=SOURCE)
    account = Account(accounts.staging, label="staging", protected=SOURCE)
    hand_made = account.cluster("staging-hand-made")
    assert hand_made is not None
    with pytest.raises(CloneError, match="has no kpi:clone:created-by=kpi-pipeline tag"):
        account.delete_cluster(hand_made)
    production = Account(accounts.production, label="production", protected=SOURCE)
    source = production.cluster(SOURCE)
    assert source is not None
    with pytest.raises(CloneError, match="it is the production cluster"):
        production.set_password(source, "x" * 30)
    assert "staging-hand-made" in cluster_ids(accounts.staging)


def test_a_public_hosted_zone_is_refused(accounts: Accounts, shop: tuple[str, Loopback]) -> None:
    _, loopback = shop
    public = accounts.staging("route53").create_hosted_zone(Name="example.com", CallerReference="public")
    clone = workflow(accounts, hosted_zone_id=public["HostedZone"]["Id"])
    with pytest.raises(CloneError, match="is public"):
        drive(clone, loopback)
    assert record_target(accounts) == accounts.old_endpoint


def test_abort_removes_the_run_and_keeps_production(accounts: Accounts, shop: tuple[str, Loopback]) -> None:
    _, loopback = shop
    clone = workflow(accounts, snapshot="take")
    drive(clone, loopback, stop_at="mask")
    names = Names(RUN)
    assert Account(accounts.production, label="p", protected=SOURCE).snapshot(names.source_snapshot) is not None
    for _ in range(5):
        if clone.abort(RUN).next == "done":
            break
    assert cluster_ids(accounts.production) == [SOURCE]
    assert manual_snapshots(accounts) == NIGHTLY
    assert record_target(accounts) == accounts.old_endpoint


def test_the_lambda_starts_a_clone_and_names_its_errors(accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    config = accounts.config()
    for key, value in {
        "SOURCE_ACCOUNT": PRODUCTION,
        "SOURCE_CLUSTER": SOURCE,
        "SUBNET_GROUP": config.subnet_group,
        "WORKER_SECURITY_GROUP": config.worker_security_group,
        "MASKING_KEY_SECRET": config.masking_key_secret,
        "TARGET_ACCOUNT": STAGING,
        "TARGET_ROLE_ARN": ROLE,
        "TARGET_SUBNET_GROUP": "staging-private",
        "TARGET_SECURITY_GROUPS": "sg-a, sg-b",
        "HOSTED_ZONE_ID": accounts.zone,
        "RECORD_NAME": "db.staging.internal",
        "KMS_KEY": accounts.kms_key,
    }.items():
        monkeypatch.setenv(f"KPI_CLONE_{key}", value)
    monkeypatch.setenv("KPI_CONFIG", "/nonexistent/kpi.toml")
    answer = clone_lambda.handler({"action": "start"})
    assert answer["phase"] == "restore"
    assert answer["next"] == "wait"
    assert answer["wait"] == 60
    assert "from snapshot" in answer["message"]
    assert clone_lambda.handler({"action": "advance", "run": answer["run"]})["run"] == answer["run"]
    with pytest.raises(CloneError):
        clone_lambda.handler({"action": "advance", "run": "yesterday"})
    monkeypatch.setenv("KPI_CLONE_TARGET_ROLE_ARN", f"arn:aws:iam::{STAGING}:role/missing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a transient failure
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(RetryableError, match="cannot tell which AWS account"):
        clone_lambda.handler({"action": "start"})


def test_a_copy_on_write_clone_takes_no_snapshot_of_production(accounts: Accounts, shop: tuple[str, Loopback]) -> None:
    _, loopback = shop
    restore = SharedRestore(accounts)
    steps = drive(workflow(accounts, restore, snapshot="clone"), loopback)
    assert steps[-1].next == "done"
    assert next(s.message for s in steps if s.phase == "restore").endswith(f"from copy-on-write clone of {SOURCE}")
    assert manual_snapshots(accounts) == NIGHTLY | {Names(RUN).masked_snapshot, Names(RUN).shared_snapshot}
    assert restore.calls[0]["shared"] == [STAGING]
    assert_masked_exactly_once(reader(loopback), b"k" * 32)


def test_databases_scope_the_clone_and_the_others_never_reach_the_snapshot(
    accounts: Accounts, shop: tuple[str, Loopback]
) -> None:
    database, loopback = shop
    other = f"{database}_scratch"
    with loopback.server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{other}`")
        cursor.execute(f"CREATE TABLE `{other}`.`notes` (id INT PRIMARY KEY, email TEXT)")
        cursor.execute(f"INSERT INTO `{other}`.`notes` VALUES (1, 'taro@mail.co.jp')")
        for host in ("%", "localhost"):
            cursor.execute(f"GRANT ALL ON `{other}`.* TO '{loopback.user}'@'{host}'")
    try:
        unscoped = workflow(accounts)
        drive(unscoped, loopback, stop_at="mask")
        with pytest.raises(RuleFileError, match=f"database {other} has no masking rule file"):
            mask_temporary(accounts.config(), RUN, clients=accounts.production, connect=loopback)
        answer = mask_temporary(
            accounts.config(databases=(database,)), RUN, clients=accounts.production, connect=loopback
        )
        assert answer["masked"] is True
        assert answer["databases"] == {database: "masked"}
        with loopback.server.connect() as admin, admin.cursor() as cursor:
            cursor.execute("SHOW DATABASES LIKE %s", (other,))
            assert cursor.fetchall() == ()  # dropped from the temporary cluster before the masking started
    finally:
        with loopback.server.connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{other}`")


def test_staging_gets_new_logins_and_no_production_password_opens_it(
    accounts: Accounts, shop: tuple[str, Loopback]
) -> None:
    database, loopback = shop
    loopback.log_in(loopback.app, APP_PASSWORD).close()  # production's passwords work on the fresh copy
    loopback.log_in(loopback.analyst, ANALYST_PASSWORD).close()
    grant = f"GRANT INSERT ON `{database}`.`orders` TO '{loopback.app}'@'%'"
    clone = workflow(accounts, staging_logins=(loopback.app,), login_statements=(grant,))
    steps = drive(clone, loopback)
    assert steps[-1].next == "done"
    names = Names(RUN)

    # production's passwords open nothing: the staging login was re-passworded, every other login locked
    for login, password in ((loopback.app, APP_PASSWORD), (loopback.analyst, ANALYST_PASSWORD)):
        with pytest.raises(pymysql.OperationalError) as refused:
            loopback.log_in(login, password)
        assert refused.value.args[0] in (1045, 4151), refused.value  # access denied / account locked
    with loopback.server.connect() as admin, admin.cursor() as cursor:
        for host in ("%", "localhost"):
            cursor.execute(f"SHOW CREATE USER '{loopback.analyst}'@'{host}'")
            assert "ACCOUNT LOCK" in cursor.fetchone()[0]  # and its production hash overwritten

    # staging's applications find the new credentials in staging's Secrets Manager, under the record's name
    secret = accounts.staging("secretsmanager").get_secret_value(SecretId=f"kpi-clone/login/{loopback.app}")
    credentials = json.loads(secret["SecretString"])
    assert credentials["host"] == RECORD
    assert credentials["username"] == loopback.app
    assert credentials["password"] not in (APP_PASSWORD, PROD_PASSWORD)
    assert len(credentials["password"]) >= 24
    app = loopback.log_in(loopback.app, credentials["password"])
    with app.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM `{database}`.users")
        assert cursor.fetchone() == (USERS,)
    app.close()
    with loopback.server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"SHOW GRANTS FOR '{loopback.app}'@'%'")
        assert any("INSERT ON" in row[0] and "`orders`" in row[0] for row in cursor.fetchall())  # login_statements
    # the health check logged in with it before the record was switched
    health_logins = [c for c in loopback.seen if c.get("username") == loopback.app]
    assert [c["password"] for c in health_logins] == [credentials["password"]]
    assert health_logins[0]["dbClusterIdentifier"] == names.staging_cluster

    # the masked snapshot says what was done to the logins; the passwords' production copy is gone
    tags = Account(accounts.production, label="p", protected=SOURCE).snapshot(names.masked_snapshot)
    assert tags is not None
    assert tags.tags[Tags.LOGINS].startswith("2 for staging / 2 locked / ")  # app and analyst, @% and @localhost
    production_secrets = {s["Name"] for s in accounts.production("secretsmanager").list_secrets()["SecretList"]}
    assert production_secrets == {"kpi/clone-masking-key"}
    assert loopback.log_in(ADMIN, ADMIN_PASSWORD)  # keep_logins: left as they were


def test_a_staging_login_the_copy_does_not_have_stops_the_clone_before_the_snapshot(
    accounts: Accounts, shop: tuple[str, Loopback]
) -> None:
    _, loopback = shop
    restore = SharedRestore(accounts)
    with pytest.raises(CloneError, match="staging_logins names ghost, which the copy does not have"):
        drive(workflow(accounts, restore, staging_logins=("ghost",)), loopback)
    assert manual_snapshots(accounts) == NIGHTLY
    assert restore.calls == []


def test_the_ecs_tasks_entry_point_masks_with_no_time_limit_and_exits_with_what_happened(
    accounts: Accounts, shop: tuple[str, Loopback], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m pipeline.lambdas.clone_database mask RUN`, as the Fargate task runs it (CloneMaskRunner=ecs):
    configured by the same variables as the Lambda, it masks in one go and says so on stdout and in its code."""
    _, loopback = shop
    drive(workflow(accounts), loopback, stop_at="mask")
    for name, value in clone_variables(accounts.config()).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KPI_CONFIG", "/nonexistent/kpi.toml")
    monkeypatch.setattr("pipeline.clone.worker.connect_mysql", loopback)  # the VPC and its DNS (tests/cloning.py)
    assert clone_database_lambda.main(["mask"]) == 2
    assert clone_database_lambda.main(["mask", RUN]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["clone_database"]
    assert (answer["run"], answer["masked"]) == (RUN, True)
    assert_masked_exactly_once(reader(loopback), b"k" * 32)
    monkeypatch.setenv("KPI_CLONE_MASKING_KEY_SECRET", "kpi/missing-key")
    assert clone_database_lambda.main(["mask", "20261001-0000"]) == 1  # no such run: a person must look
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["level"] == "error"
