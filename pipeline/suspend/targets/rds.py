"""RDS: Aurora (and Multi-AZ) DB clusters stopped at cluster level, and standalone DB instances.

Member instances are discovered too — with their cluster, so that the guard can say why they are skipped —
but :meth:`RdsTarget.suspend` refuses to call ``StopDBInstance`` on one even if asked: AWS refuses it with
``InvalidParameterCombination`` (and moto accepts it, so only this guard is tested). A cluster counts as
available only when its member instances are too: apps wait for the instances, not for the cluster record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.suspend.errors import SuspendError
from pipeline.suspend.model import Kind, Resource, State
from pipeline.suspend.targets.base import AWS_ERRORS, AwsClients, pages, tag_dict

# https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBCluster.html (Status) and the instance states
_STATES = {
    "available": State.RUNNING,
    "stopped": State.STOPPED,
    "stopping": State.STOPPING,
    "starting": State.STARTING,
    "deleting": State.GONE,
    "deleted": State.GONE,
    "failed": State.GONE,
}


class RdsTarget:
    service = "rds"
    kinds: tuple[Kind, ...] = (Kind.DB_CLUSTER, Kind.DB_INSTANCE)

    def __init__(self, clients: AwsClients) -> None:
        self.rds: Any = clients("rds")

    def discover(self) -> list[Resource]:
        clusters = list(pages(self.rds, "describe_db_clusters", "DBClusters"))
        instances = list(pages(self.rds, "describe_db_instances", "DBInstances"))
        cluster_tags = {str(c["DBClusterIdentifier"]): self._tags(c, "DBClusterArn") for c in clusters}
        instance_states = {str(i["DBInstanceIdentifier"]): str(i.get("DBInstanceStatus", "")) for i in instances}
        members_of_global = self._global_members()
        found = [self._cluster(c, cluster_tags, instance_states, members_of_global) for c in clusters]
        found += [self._instance(i, cluster_tags) for i in instances]
        return found

    def _global_members(self) -> dict[str, str]:
        """Cluster ARN → global database identifier."""
        members = {}
        try:
            for group in pages(self.rds, "describe_global_clusters", "GlobalClusters"):
                for member in group.get("GlobalClusterMembers", []):
                    members[str(member["DBClusterArn"])] = str(group["GlobalClusterIdentifier"])
        except AWS_ERRORS:
            pass  # no global databases in reach (or not in this partition): nothing to guard against
        return members

    def _tags(self, record: Mapping[str, Any], arn_key: str) -> dict[str, str]:
        if "TagList" in record:
            return tag_dict(record["TagList"])
        return tag_dict(self.rds.list_tags_for_resource(ResourceName=record[arn_key]).get("TagList"))

    def _cluster(
        self,
        cluster: Mapping[str, Any],
        cluster_tags: Mapping[str, dict[str, str]],
        instance_states: Mapping[str, str],
        members_of_global: Mapping[str, str],
    ) -> Resource:
        identifier = str(cluster["DBClusterIdentifier"])
        status = str(cluster.get("Status", ""))
        state = _STATES.get(status, State.BUSY)
        members = [str(m["DBInstanceIdentifier"]) for m in cluster.get("DBClusterMembers", [])]
        waiting = [m for m in members if instance_states.get(m, "available") != "available"]
        if state == State.RUNNING and waiting:
            state = State.STARTING
            status = f"{status} ({', '.join(f'{m}: {instance_states[m]}' for m in waiting)})"
        return Resource(
            kind=Kind.DB_CLUSTER,
            id=identifier,
            arn=str(cluster["DBClusterArn"]),
            state=state,
            status=status,
            tags=cluster_tags[identifier],
            engine=str(cluster.get("Engine", "")),
            engine_mode=str(cluster.get("EngineMode", "") or ""),
            replica_of=str(cluster.get("ReplicationSourceIdentifier") or ""),
            global_cluster=members_of_global.get(str(cluster["DBClusterArn"]), ""),
            multi_az=bool(cluster.get("MultiAZ", False)),
            maintenance_window=str(cluster.get("PreferredMaintenanceWindow") or ""),
        )

    def _instance(self, instance: Mapping[str, Any], cluster_tags: Mapping[str, dict[str, str]]) -> Resource:
        status = str(instance.get("DBInstanceStatus", ""))
        cluster = str(instance.get("DBClusterIdentifier") or "")
        source = instance.get("ReadReplicaSourceDBInstanceIdentifier") or instance.get(
            "ReadReplicaSourceDBClusterIdentifier"
        )
        return Resource(
            kind=Kind.DB_INSTANCE,
            id=str(instance["DBInstanceIdentifier"]),
            arn=str(instance["DBInstanceArn"]),
            state=_STATES.get(status, State.BUSY),
            status=status,
            tags=self._tags(instance, "DBInstanceArn"),
            parent=cluster,
            parent_tags=cluster_tags.get(cluster, {}),
            engine=str(instance.get("Engine", "")),
            replica_of=str(source or ""),
            replicas=tuple(str(r) for r in instance.get("ReadReplicaDBInstanceIdentifiers", [])),
            multi_az=bool(instance.get("MultiAZ", False)),
            maintenance_window=str(instance.get("PreferredMaintenanceWindow") or ""),
            size=str(instance.get("DBInstanceClass") or ""),
        )

    def suspend(self, resource: Resource) -> None:
        if resource.kind == Kind.DB_CLUSTER:
            self.rds.stop_db_cluster(DBClusterIdentifier=resource.id)
            return
        if resource.parent:
            raise SuspendError(
                f"refusing StopDBInstance on {resource.id}: member of cluster {resource.parent}",
                hint="stop the cluster instead (AWS refuses to stop a cluster member on its own)",
            )
        self.rds.stop_db_instance(DBInstanceIdentifier=resource.id)

    def start(self, resource: Resource, restore: Mapping[str, int]) -> None:
        if resource.kind == Kind.DB_CLUSTER:
            self.rds.start_db_cluster(DBClusterIdentifier=resource.id)
            return
        if resource.parent:
            raise SuspendError(
                f"refusing StartDBInstance on {resource.id}: member of cluster {resource.parent}",
                hint="start the cluster instead",
            )
        self.rds.start_db_instance(DBInstanceIdentifier=resource.id)

    def tag(self, resource: Resource, tags: Mapping[str, str]) -> None:
        self.rds.add_tags_to_resource(ResourceName=resource.arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def untag(self, resource: Resource, keys: Sequence[str]) -> None:
        self.rds.remove_tags_from_resource(ResourceName=resource.arn, TagKeys=list(keys))
