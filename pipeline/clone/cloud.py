"""One AWS account as the clone uses it: RDS clusters and snapshots, a security group, secrets, a DNS record.

The adapter decides nothing (the workflow does), with one exception on purpose: every call that deletes or
modifies something goes through :func:`~pipeline.clone.names.check_deletable` first, so no code path — a bug,
a wrong run id, a resource renamed by hand — can delete or modify a resource the module did not create, or the
production cluster. Creating a snapshot of production is the only call that names the production cluster.

:func:`restore_shared_snapshot` is the one cross-account call (staging restores production's shared snapshot
by ARN); it is a function of its own so that tests can stand in for it: moto cannot restore another account's
snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from pipeline.aws import AWS_ERRORS, AwsClients, describe_error, error_code, pages, tag_dict, tag_list
from pipeline.clone.errors import CloneError
from pipeline.clone.names import check_deletable

__all__ = ["Account", "Cluster", "Snapshot", "restore_shared_snapshot"]

_MYSQL: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306}
_TRANSIENT = {"Throttling", "ThrottlingException", "InvalidDBClusterStateFault", "InvalidDBInstanceState"}
_GONE = {"DBClusterNotFoundFault", "DBInstanceNotFound", "DBClusterSnapshotNotFoundFault", "ResourceNotFoundException"}


@dataclass(frozen=True)
class Cluster:
    id: str
    arn: str
    status: str
    endpoint: str
    port: int
    username: str
    engine: str
    engine_version: str
    members: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    id: str
    arn: str
    status: str
    cluster: str
    engine: str
    engine_version: str
    encrypted: bool
    kms_key: str
    created: datetime | None
    tags: dict[str, str] = field(default_factory=dict)


class Account:
    """The clients of one account (production, or staging through the assumed role).

    ``protected`` is the production cluster's identifier: never deleted or modified, whatever its tags say.
    """

    def __init__(self, clients: AwsClients, *, label: str, protected: str) -> None:
        self.clients = clients
        self.label = label
        self.protected = protected

    @property
    def rds(self) -> Any:
        return self.clients("rds")

    def identity(self) -> str:
        try:
            return str(self.clients("sts").get_caller_identity()["Account"])
        except AWS_ERRORS as error:
            raise CloneError(
                f"cannot tell which AWS account the {self.label} credentials belong to: {describe_error(error)}",
                hint="aws sts get-caller-identity must work with these credentials (and the role must be assumable)",
                retryable=True,
            ) from None

    # --- reading ------------------------------------------------------------------------------------------

    def cluster(self, identifier: str) -> Cluster | None:
        try:
            found = self.rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"]
        except AWS_ERRORS as error:
            if error_code(error) in _GONE:
                return None
            raise self._failed("describe cluster", identifier, error) from None
        return _cluster(found[0]) if found else None

    def clusters(self) -> list[Cluster]:
        try:
            return [_cluster(item) for item in pages(self.rds, "describe_db_clusters", "DBClusters")]
        except AWS_ERRORS as error:
            raise self._failed("list clusters", "", error) from None

    def instance_status(self, identifier: str) -> str | None:
        try:
            found = self.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        except AWS_ERRORS as error:
            if error_code(error) in _GONE:
                return None
            raise self._failed("describe instance", identifier, error) from None
        return str(found[0]["DBInstanceStatus"]) if found else None

    def snapshot(self, identifier: str) -> Snapshot | None:
        try:
            found = self.rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=identifier)
        except AWS_ERRORS as error:
            if error_code(error) in _GONE:
                return None
            raise self._failed("describe snapshot", identifier, error) from None
        items = found["DBClusterSnapshots"]
        return self._with_tags(_snapshot(items[0])) if items else None

    def snapshots(self, cluster: str = "") -> list[Snapshot]:
        """Every available snapshot (automated and manual) of ``cluster``, or every manual one of the account."""
        arguments: dict[str, Any] = {"DBClusterIdentifier": cluster} if cluster else {"SnapshotType": "manual"}
        try:
            items = list(pages(self.rds, "describe_db_cluster_snapshots", "DBClusterSnapshots", **arguments))
        except AWS_ERRORS as error:
            raise self._failed("list snapshots", cluster, error) from None
        return [self._with_tags(_snapshot(item)) for item in items]

    def shared_with(self, identifier: str) -> list[str]:
        """The accounts a snapshot is shared with (``all`` when public)."""
        try:
            result = self.rds.describe_db_cluster_snapshot_attributes(DBClusterSnapshotIdentifier=identifier)
        except AWS_ERRORS as error:
            raise self._failed("read the sharing of snapshot", identifier, error) from None
        for attribute in result["DBClusterSnapshotAttributesResult"]["DBClusterSnapshotAttributes"]:
            if attribute["AttributeName"] == "restore":
                return [str(value) for value in attribute.get("AttributeValues", [])]
        return []

    def key_manager(self, key: str) -> str:
        """``AWS`` for an AWS-managed key (``aws/rds``, which cannot be shared), ``CUSTOMER`` otherwise."""
        try:
            return str(self.clients("kms").describe_key(KeyId=key)["KeyMetadata"].get("KeyManager", "CUSTOMER"))
        except AWS_ERRORS as error:
            raise self._failed("describe KMS key", key, error) from None

    # --- creating -----------------------------------------------------------------------------------------

    def take_snapshot(self, cluster: str, identifier: str, tags: Mapping[str, str]) -> None:
        self._call(
            "create snapshot",
            identifier,
            lambda: self.rds.create_db_cluster_snapshot(
                DBClusterIdentifier=cluster, DBClusterSnapshotIdentifier=identifier, Tags=tag_list(tags)
            ),
        )

    def copy_snapshot(self, source: str, identifier: str, kms_key: str, tags: Mapping[str, str]) -> None:
        self._call(
            "copy snapshot",
            identifier,
            lambda: self.rds.copy_db_cluster_snapshot(
                SourceDBClusterSnapshotIdentifier=source,
                TargetDBClusterSnapshotIdentifier=identifier,
                KmsKeyId=kms_key,
                Tags=tag_list(tags),
            ),
        )

    def restore(self, identifier: str, arguments: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        """A cluster from a snapshot (``SnapshotIdentifier``) or a copy-on-write clone
        (``SourceDBClusterIdentifier``), never deletion-protected: the module deletes it later."""
        common = {"DBClusterIdentifier": identifier, "DeletionProtection": False, "Tags": tag_list(tags), **arguments}
        if "SourceDBClusterIdentifier" in arguments:
            call = lambda: self.rds.restore_db_cluster_to_point_in_time(  # noqa: E731
                RestoreType="copy-on-write", UseLatestRestorableTime=True, **common
            )
        else:
            call = lambda: self.rds.restore_db_cluster_from_snapshot(**common)  # noqa: E731
        self._call("restore cluster", identifier, call)

    def add_instance(self, cluster: Cluster, identifier: str, instance_class: str, tags: Mapping[str, str]) -> None:
        check_deletable("cluster", cluster.id, cluster.tags, protected=self.protected)
        self._call(
            "create instance",
            identifier,
            lambda: self.rds.create_db_instance(
                DBInstanceIdentifier=identifier,
                DBClusterIdentifier=cluster.id,
                Engine=cluster.engine,
                DBInstanceClass=instance_class,
                PubliclyAccessible=False,
                Tags=tag_list(tags),
            ),
        )

    def security_group(self, name: str, vpc: str, source_group: str, tags: Mapping[str, str]) -> str:
        """The run's own security group: MySQL from the clone-database Lambda's group only. Found by name."""
        ec2 = self.clients("ec2")
        try:
            found = ec2.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc]}]
            )["SecurityGroups"]
            if found:
                return str(found[0]["GroupId"])
            group = ec2.create_security_group(
                GroupName=name,
                Description="kpi clone: temporary cluster, MySQL from the clone Lambda only",
                VpcId=vpc,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
            )["GroupId"]
            ec2.authorize_security_group_ingress(
                GroupId=group,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 3306,
                        "ToPort": 3306,
                        "UserIdGroupPairs": [{"GroupId": source_group}],
                    }
                ],
            )
            return str(group)
        except AWS_ERRORS as error:
            raise self._failed("create security group", name, error) from None

    def subnet_group_vpc(self, name: str) -> str:
        try:
            return str(self.rds.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"][0]["VpcId"])
        except AWS_ERRORS as error:
            raise self._failed("describe subnet group", name, error) from None

    def put_secret(self, name: str, value: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        client = self.clients("secretsmanager")
        text = json.dumps(dict(value))
        try:
            client.create_secret(Name=name, SecretString=text, Tags=tag_list(tags))
        except AWS_ERRORS as error:
            if error_code(error) != "ResourceExistsException":
                raise self._failed("store secret", name, error) from None
            self._check_secret(name)
            self._call("store secret", name, lambda: client.put_secret_value(SecretId=name, SecretString=text))

    def find_secret(self, name: str) -> dict[str, Any] | None:
        """The secret's JSON value, or None when there is no such secret."""
        try:
            value = self.clients("secretsmanager").get_secret_value(SecretId=name)["SecretString"]
        except AWS_ERRORS as error:
            if error_code(error) in _GONE:
                return None
            raise self._failed("read secret", name, error) from None
        return dict(json.loads(value))

    def read_secret(self, name: str) -> dict[str, Any]:
        try:
            value = json.loads(self.clients("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
        except AWS_ERRORS as error:
            raise self._failed("read secret", name, error) from None
        return dict(value)

    # --- modifying (guarded) ------------------------------------------------------------------------------

    def tag(self, arn: str, identifier: str, current: Mapping[str, str], tags: Mapping[str, str]) -> None:
        check_deletable("resource", identifier, current, protected=self.protected)
        self._call("tag", identifier, lambda: self.rds.add_tags_to_resource(ResourceName=arn, Tags=tag_list(tags)))

    def set_password(self, cluster: Cluster, password: str) -> None:
        check_deletable("cluster", cluster.id, cluster.tags, protected=self.protected)
        self._call(
            "set the master password of",
            cluster.id,
            lambda: self.rds.modify_db_cluster(
                DBClusterIdentifier=cluster.id, MasterUserPassword=password, ApplyImmediately=True
            ),
        )

    def share(self, snapshot: Snapshot, account: str) -> None:
        """Shared with ``account`` and nobody else (any other account or ``all`` is removed first)."""
        check_deletable("snapshot", snapshot.id, snapshot.tags, protected=self.protected)
        others = [value for value in self.shared_with(snapshot.id) if value != account]
        if others:
            self._modify_share(snapshot.id, ValuesToRemove=others)
        self._modify_share(snapshot.id, ValuesToAdd=[account])

    def unshare(self, snapshot: Snapshot) -> None:
        check_deletable("snapshot", snapshot.id, snapshot.tags, protected=self.protected)
        accounts = self.shared_with(snapshot.id)
        if accounts:
            self._modify_share(snapshot.id, ValuesToRemove=accounts)

    def delete_cluster(self, cluster: Cluster) -> None:
        """Its instances first (AWS refuses to delete a cluster with members), then the cluster, without a final
        snapshot: it is a copy."""
        check_deletable("cluster", cluster.id, cluster.tags, protected=self.protected)
        for member in cluster.members:
            if self.instance_status(member) not in (None, "deleting"):
                self._call("delete instance", member, partial(self.rds.delete_db_instance, DBInstanceIdentifier=member))
        if not any(self.instance_status(member) for member in cluster.members) and cluster.status != "deleting":
            self._call(
                "delete cluster",
                cluster.id,
                lambda: self.rds.delete_db_cluster(DBClusterIdentifier=cluster.id, SkipFinalSnapshot=True),
            )

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        check_deletable("snapshot", snapshot.id, snapshot.tags, protected=self.protected)
        self._call(
            "delete snapshot",
            snapshot.id,
            lambda: self.rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=snapshot.id),
        )

    def delete_security_group(self, name: str) -> bool:
        """True once the group is gone; False while the deleted cluster's network interfaces still hold it."""
        ec2 = self.clients("ec2")
        try:
            found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
        except AWS_ERRORS as error:
            raise self._failed("describe security group", name, error) from None
        for group in found:
            check_deletable("security group", name, tag_dict(group.get("Tags")), protected=self.protected)
            try:
                ec2.delete_security_group(GroupId=group["GroupId"])
            except AWS_ERRORS as error:
                if error_code(error) == "DependencyViolation":
                    return False
                raise self._failed("delete security group", name, error) from None
        return True

    def delete_secret(self, name: str) -> None:
        client = self.clients("secretsmanager")
        try:
            tags = tag_dict(client.describe_secret(SecretId=name).get("Tags"))
        except AWS_ERRORS as error:
            if error_code(error) in _GONE:
                return
            raise self._failed("describe secret", name, error) from None
        check_deletable("secret", name, tags, protected=self.protected)
        self._call(
            "delete secret",
            name,
            lambda: client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True),
        )

    # --- DNS ------------------------------------------------------------------------------------------------

    def record(self, zone: str, name: str) -> str | None:
        """The CNAME ``name`` points to in the private hosted zone ``zone`` (None when there is none)."""
        route53 = self.clients("route53")
        try:
            hosted = route53.get_hosted_zone(Id=zone)["HostedZone"]
            if not hosted.get("Config", {}).get("PrivateZone"):
                raise CloneError(
                    f"hosted zone {zone} ({hosted['Name']}) is public: the staging database's name would be "
                    "resolvable from the internet",
                    hint="use a private hosted zone associated with the staging VPC",
                )
            found = route53.list_resource_record_sets(
                HostedZoneId=zone, StartRecordName=name, StartRecordType="CNAME", MaxItems="1"
            )["ResourceRecordSets"]
        except AWS_ERRORS as error:
            raise self._failed("read DNS record", name, error) from None
        for item in found:
            if item["Name"].rstrip(".") == name.rstrip(".") and item["Type"] == "CNAME":
                return str(item["ResourceRecords"][0]["Value"]).rstrip(".")
        return None

    def point(self, zone: str, name: str, target: str, ttl: int) -> None:
        change = {
            "Action": "UPSERT",
            "ResourceRecordSet": {"Name": name, "Type": "CNAME", "TTL": ttl, "ResourceRecords": [{"Value": target}]},
        }
        self._call(
            "switch DNS record",
            name,
            lambda: self.clients("route53").change_resource_record_sets(
                HostedZoneId=zone,
                ChangeBatch={"Comment": f"kpi clone: {name} → {target}", "Changes": [change]},
            ),
        )

    # --- plumbing -------------------------------------------------------------------------------------------

    def _check_secret(self, name: str) -> None:
        tags = tag_dict(self.clients("secretsmanager").describe_secret(SecretId=name).get("Tags"))
        check_deletable("secret", name, tags, protected=self.protected)

    def _modify_share(self, identifier: str, **values: Sequence[str]) -> None:
        self._call(
            "share snapshot",
            identifier,
            lambda: self.rds.modify_db_cluster_snapshot_attribute(
                DBClusterSnapshotIdentifier=identifier, AttributeName="restore", **values
            ),
        )

    def _with_tags(self, snapshot: Snapshot) -> Snapshot:
        if snapshot.tags:
            return snapshot
        try:
            tags = tag_dict(self.rds.list_tags_for_resource(ResourceName=snapshot.arn).get("TagList"))
        except AWS_ERRORS as error:
            raise self._failed("read tags of snapshot", snapshot.id, error) from None
        return Snapshot(**{**snapshot.__dict__, "tags": tags})

    def _call(self, what: str, identifier: str, call: Any) -> Any:
        try:
            return call()
        except AWS_ERRORS as error:
            raise self._failed(what, identifier, error) from None

    def _failed(self, what: str, identifier: str, error: BaseException) -> CloneError:
        code = error_code(error)
        transient = code in {
            "Throttling",
            "ThrottlingException",
            "InvalidDBClusterStateFault",
            "InvalidDBInstanceState",
        }
        return CloneError(
            f"{self.label}: cannot {what} {identifier}: {describe_error(error)}".replace("  ", " "),
            hint="check the role's permissions (infra/template.yaml, README: Cloning) and rerun with the same run id",
            retryable=transient or not code,
        )


def restore_shared_snapshot(rds: Any, snapshot_arn: str, identifier: str, arguments: Mapping[str, Any]) -> None:
    """Staging restores production's shared snapshot by its ARN (the one cross-account call of the module)."""
    rds.restore_db_cluster_from_snapshot(
        DBClusterIdentifier=identifier, SnapshotIdentifier=snapshot_arn, DeletionProtection=False, **arguments
    )


def _cluster(item: Mapping[str, Any]) -> Cluster:
    return Cluster(
        id=str(item["DBClusterIdentifier"]),
        arn=str(item.get("DBClusterArn", "")),
        status=str(item.get("Status", "")),
        endpoint=str(item.get("Endpoint", "")),
        port=int(item.get("Port") or 3306),
        username=str(item.get("MasterUsername", "")),
        engine=str(item.get("Engine", "")),
        engine_version=str(item.get("EngineVersion", "")),
        members=tuple(str(m["DBInstanceIdentifier"]) for m in item.get("DBClusterMembers", [])),
        tags=tag_dict(item.get("TagList")),
    )


def _snapshot(item: Mapping[str, Any]) -> Snapshot:
    created = item.get("SnapshotCreateTime")
    return Snapshot(
        id=str(item["DBClusterSnapshotIdentifier"]),
        arn=str(item.get("DBClusterSnapshotArn", "")),
        status=str(item.get("Status", "")),
        cluster=str(item.get("DBClusterIdentifier", "")),
        engine=str(item.get("Engine", "")),
        engine_version=str(item.get("EngineVersion", "")),
        encrypted=bool(item.get("StorageEncrypted")),
        kms_key=str(item.get("KmsKeyId") or ""),
        created=created if isinstance(created, datetime) else None,
        tags=tag_dict(item.get("TagList")),
    )
