"""Two AWS accounts on moto's server and a MariaDB database standing in for the clusters' contents.

Production is moto's default account; staging is the account of the role the clone assumes (moto answers
calls made with assumed-role credentials as that account). Two stand-ins, both at the network edge:

- :class:`SharedRestore` replaces :func:`pipeline.clone.cloud.restore_shared_snapshot`, the one call moto
  cannot serve (restoring another account's shared snapshot). It refuses what AWS refuses — a snapshot not
  shared with the caller's account, or encrypted with a key the caller was not granted — and otherwise
  creates the cluster the restore would.
- :class:`Loopback` is what DNS and the VPC would be: every cluster endpoint reaches one MariaDB server of
  the tests' own (tests/mariadb.py), whose logins are the cluster's. The master login (``admin``, moto's)
  arrives as a user who may read and change logins and sees only the cloned database (as a restored cluster
  holds only production's databases); any other login is checked by the server with the password given. It
  records the credentials each connection was opened with.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pymysql
from botocore.exceptions import ClientError

from pipeline.aws import AwsClients, tag_dict
from pipeline.clone.config import CloneConfig
from pipeline.clone.worker import check_health, mask_temporary
from pipeline.clone.workflow import CloneWorkflow, Progress, assume_role
from tests.clone_masking import RULES, create_shop
from tests.conftest import MySqlServer
from tests.mariadb import ADMIN

PRODUCTION = "123456789012"
STAGING = "210987654321"
ROLE = f"arn:aws:iam::{STAGING}:role/kpi-clone-staging"
SOURCE = "shop-prod"
PROD_PASSWORD = "production-master-password"
ZONE_NAME = "staging.internal"
RECORD = "db.staging.internal"
NOON = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)  # 12:00 JST


@dataclass
class Accounts:
    """The two accounts as the tests set them up; ``config()`` is a clone configuration that fits them."""

    production: AwsClients
    staging: AwsClients
    rules: Path
    kms_key: str
    prod_key: str
    zone: str
    worker_group: str
    old_endpoint: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def config(self, **changes: Any) -> CloneConfig:
        base = CloneConfig(
            source_account=PRODUCTION,
            source_cluster=SOURCE,
            subnet_group="prod-private",
            worker_security_group=self.worker_group,
            masking_key_secret="kpi/clone-masking-key",
            target_account=STAGING,
            target_role_arn=ROLE,
            target_subnet_group="staging-private",
            target_security_groups=("sg-staging-app",),
            hosted_zone_id=self.zone,
            record_name=RECORD,
            kms_key=self.kms_key,
            rules=str(self.rules),
            poll_seconds=0,
            min_interval_hours=12,
            grace_hours=24,
            keep_logins=(ADMIN, "root"),  # the tests' own logins on their MariaDB
        )
        return replace(base, **changes)


def clone_variables(config: CloneConfig) -> dict[str, str]:
    """The ``KPI_CLONE_*`` variables that configure the deployed Lambdas as ``config`` (lists comma-separated),
    as the template passes them; ``origin`` and the CLI's ``state_machine`` are not among them."""
    found = {}
    for item in fields(CloneConfig):
        if item.name in ("origin", "state_machine"):
            continue
        value = getattr(config, item.name)
        found[f"KPI_CLONE_{item.name.upper()}"] = ",".join(value) if isinstance(value, tuple) else str(value)
    return found


def tags_of(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def set_up_accounts(tmp_path: Path, database: str) -> Accounts:
    production = AwsClients(boto3.Session())
    staging = assume_role(production, ROLE)
    kms = production("kms")
    prod_key = kms.create_key(Description="production's own key")["KeyMetadata"]["Arn"]
    clone_key = kms.create_key(Description="kpi clone, granted to staging")["KeyMetadata"]["Arn"]
    ec2, rds = production("ec2"), production("rds")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"ap-northeast-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in enumerate("ac")
    ]
    rds.create_db_subnet_group(DBSubnetGroupName="prod-private", DBSubnetGroupDescription="p", SubnetIds=subnets)
    worker = ec2.create_security_group(GroupName="kpi-clone-worker", Description="w", VpcId=vpc)["GroupId"]
    rds.create_db_cluster(
        DBClusterIdentifier=SOURCE,
        Engine="aurora-mysql",
        EngineVersion="8.0.mysql_aurora.3.05.2",
        MasterUsername="admin",
        MasterUserPassword=PROD_PASSWORD,
        StorageEncrypted=True,
        KmsKeyId=prod_key,
        DBSubnetGroupName="prod-private",
        Tags=tags_of({"Environment": "prod"}),
    )
    for day in (26, 27):  # the nightly snapshots; the newest is restored
        rds.create_db_cluster_snapshot(
            DBClusterIdentifier=SOURCE, DBClusterSnapshotIdentifier=f"shop-prod-2026-11-{day}"
        )
    production("secretsmanager").create_secret(Name="kpi/clone-masking-key", SecretString="k" * 32)
    sec2, srds = staging("ec2"), staging("rds")
    staging_vpc = sec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    zone = staging("route53").create_hosted_zone(
        Name=ZONE_NAME,
        CallerReference=uuid.uuid4().hex,
        HostedZoneConfig={"PrivateZone": True, "Comment": "staging"},
        VPC={"VPCRegion": "ap-northeast-1", "VPCId": staging_vpc},
    )["HostedZone"]["Id"]
    old = srds.create_db_cluster(
        DBClusterIdentifier="staging-db-20261101-0300",
        Engine="aurora-mysql",
        MasterUsername="admin",
        MasterUserPassword="old-staging-password",
        Tags=tags_of(
            {"kpi:clone:created-by": "kpi-pipeline", "kpi:clone:run": "20261101-0300", "kpi:clone:role": "staging"}
        ),
    )["DBCluster"]
    srds.create_db_cluster(
        DBClusterIdentifier="staging-hand-made",
        Engine="aurora-mysql",
        MasterUsername="admin",
        MasterUserPassword="hand-made-password",
    )
    point(staging, zone, old["Endpoint"])
    rules = tmp_path / "masking"
    rules.mkdir()
    (rules / f"{database}.yaml").write_text(RULES.replace("database: shop", f"database: {database}"), encoding="utf-8")
    return Accounts(production, staging, rules, clone_key, prod_key, zone, worker, old["Endpoint"])


def point(staging: AwsClients, zone: str, target: str) -> None:
    change = {
        "Action": "UPSERT",
        "ResourceRecordSet": {"Name": RECORD, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": target}]},
    }
    staging("route53").change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [change]})


def record_target(accounts: Accounts) -> str:
    found = accounts.staging("route53").list_resource_record_sets(
        HostedZoneId=accounts.zone, StartRecordName=RECORD, StartRecordType="CNAME", MaxItems="1"
    )["ResourceRecordSets"]
    return str(found[0]["ResourceRecords"][0]["Value"])


class SharedRestore:
    """Staging restoring production's shared snapshot, as AWS would allow it (see the module docstring)."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.calls: list[dict[str, Any]] = []

    def __call__(self, rds: Any, snapshot_arn: str, identifier: str, arguments: Mapping[str, Any]) -> None:
        production = self.accounts.production("rds")
        name = snapshot_arn.rsplit(":", 1)[-1]
        snapshot = production.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"][0]
        attributes = production.describe_db_cluster_snapshot_attributes(DBClusterSnapshotIdentifier=name)
        shared = attributes["DBClusterSnapshotAttributesResult"]["DBClusterSnapshotAttributes"][0]["AttributeValues"]
        tags = tag_dict(production.list_tags_for_resource(ResourceName=snapshot_arn)["TagList"])
        self.calls.append({"snapshot": name, "shared": list(shared), "kms": snapshot.get("KmsKeyId"), "tags": tags})
        if STAGING not in shared:
            raise _refused(f"snapshot {name} is not shared with {STAGING}")
        if snapshot.get("StorageEncrypted") and snapshot.get("KmsKeyId") != self.accounts.kms_key:
            raise _refused(f"staging may not use the key of snapshot {name}")
        rds.create_db_cluster(
            DBClusterIdentifier=identifier,
            Engine=arguments["Engine"],
            MasterUsername="admin",
            MasterUserPassword=PROD_PASSWORD,  # a restored snapshot keeps production's master password
            DBSubnetGroupName=arguments["DBSubnetGroupName"],
            VpcSecurityGroupIds=arguments["VpcSecurityGroupIds"],
            Tags=arguments["Tags"],
        )


def _refused(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "InvalidRestoreFault", "Message": message}}, "RestoreDBClusterFromSnapshot")


MASTER = "admin"  # the master user of every cluster moto makes here
APP_PASSWORD = "production-app-password"  # staging's application login, as production has it
ANALYST_PASSWORD = "production-analyst-password"  # a login staging does not need


class Loopback:
    """Every cluster endpoint reaches the tests' MariaDB: the master login as a user who sees only ``database``,
    any other login as itself. ``app`` (a staging login) and ``analyst`` exist with production's passwords."""

    def __init__(self, server: MySqlServer, database: str, user: str, password: str, suffix: str = "") -> None:
        self.server, self.database, self.user, self.password = server, database, user, password
        self.app, self.analyst = f"app{suffix}", f"analyst{suffix}"
        self.seen: list[dict[str, Any]] = []

    def __call__(self, credentials: Mapping[str, Any]) -> Any:
        self.seen.append(dict(credentials))
        master = credentials.get("username") == MASTER
        return pymysql.connect(
            host=self.server.host,
            port=self.server.port,
            user=self.user if master else str(credentials["username"]),
            password=self.password if master else str(credentials["password"]),
            charset="utf8mb4",
            autocommit=False,
        )

    def log_in(self, user: str, password: str) -> Any:
        """A login to the copy as ``user`` (what staging's applications do)."""
        return pymysql.connect(
            host=self.server.host,
            port=self.server.port,
            user=user,
            password=password,
            connect_timeout=3,
            autocommit=True,  # holds no metadata lock that would block the test's DROP DATABASE
        )


def reader(loopback: Loopback) -> Any:
    """A connection to the cloned database itself, to look at the data."""
    return pymysql.connect(
        host=loopback.server.host,
        port=loopback.server.port,
        user=loopback.user,
        password=loopback.password,
        database=loopback.database,
        charset="utf8mb4",
    )


def reset_shop(loopback: Loopback) -> None:
    """The database as production has it again (what the next clone's restore brings), unmasked."""
    connection = reader(loopback)
    with connection.cursor() as cursor:
        cursor.execute("SET foreign_key_checks = 0")
        cursor.execute("SHOW TABLES")
        for (table,) in cursor.fetchall():
            cursor.execute(f"DROP TABLE `{table}`")
        cursor.execute("SET foreign_key_checks = 1")
    create_shop(connection)
    connection.close()


def drive(
    workflow: CloneWorkflow,
    loopback: Loopback,
    run: str | None = None,
    *,
    stop_at: str = "done",
    seconds: float | None = None,
    limit: int = 60,
) -> list[Progress]:
    """The state machine's loop, in-process: advance, wait (poll_seconds is 0), mask or health, until
    ``next`` is ``stop_at`` (or done)."""
    steps = [workflow.start(run)]
    health: dict[str, Any] | None = None
    for _ in range(limit):
        step = steps[-1]
        if step.next in (stop_at, "done"):
            return steps
        if step.next == "mask":
            mask_temporary(
                workflow.config, step.run, clients=workflow.production.clients, connect=loopback, seconds=seconds
            )
        elif step.next == "health":
            health = check_health(workflow.config, step.run, clients=workflow.production.clients, connect=loopback)
        steps.append(workflow.advance(step.run, health))
    raise AssertionError(f"no end after {limit} steps: {[s.phase for s in steps][-10:]}")


def clone_database(server: MySqlServer) -> Iterator[tuple[str, Loopback]]:
    """A fresh shop database on the tests' own MariaDB (``cluster_server``), a master user who sees only it and
    may change logins, and production's logins ``app`` and ``analyst``."""
    suffix = uuid.uuid4().hex[:8]
    name = f"kpi_clone_{suffix}"
    user, password = f"u{suffix}", uuid.uuid4().hex
    loopback = Loopback(server, name, user, password, suffix)
    logins = {user: password, loopback.app: APP_PASSWORD, loopback.analyst: ANALYST_PASSWORD}
    with server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        for host in ("%", "localhost"):
            for login, secret in logins.items():
                cursor.execute(f"CREATE USER '{login}'@'{host}' IDENTIFIED BY '{secret}'")
            cursor.execute(f"GRANT ALL ON `{name}`.* TO '{user}'@'{host}' WITH GRANT OPTION")
            cursor.execute(f"GRANT CREATE USER ON *.* TO '{user}'@'{host}'")  # as RDS's master user has
            cursor.execute(f"GRANT SELECT ON `mysql`.* TO '{user}'@'{host}'")
            cursor.execute(f"GRANT SELECT ON `{name}`.* TO '{loopback.app}'@'{host}'")
    connection = replace(server, database=name).connect(charset="utf8mb4")
    create_shop(connection)
    connection.close()
    try:
        yield name, loopback
    finally:
        with server.connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for login in logins:
                cursor.execute(f"DROP USER IF EXISTS '{login}'@'%'")
                cursor.execute(f"DROP USER IF EXISTS '{login}'@'localhost'")
