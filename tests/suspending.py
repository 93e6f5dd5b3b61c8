"""Helpers for the suspend tests: a dev environment built on moto's server, its state as data, RDS events.

Every resource is created through boto3 against the moto server on loopback (``aws_env``), exactly as the
module later sees it. :func:`snapshot` reads back everything a suspend/start round trip must preserve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3

from pipeline.suspend import SuspendConfig, config_from_table

ACCOUNT = "123456789012"  # moto's account
OPT_IN = {"kpi:suspend": "true"}
PROD = {"Environment": "prod"}
FRIDAY_NIGHT = "2026-11-20T21:00:00+09:00"  # the suspend schedule fires (Fri 21:00 JST)
TUESDAY_MORNING = "2026-11-24T08:00:00+09:00"  # the resume after the long weekend (Mon 23rd is a holiday)
LABOUR_THANKSGIVING_0800_JST = "2026-11-22T23:00:00Z"  # 08:00 JST on Mon 2026-11-23, a national holiday


def config(**table: Any) -> SuspendConfig:
    return config_from_table({"accounts": [ACCOUNT], **table}, origin="test [suspend]")


def rds_event(identifier: str, *, cluster: bool = True, event_id: str = "", time: str = "") -> dict[str, Any]:
    """An EventBridge RDS event as AWS delivers it (docs: events-ref-rds, USER_Events.Messages)."""
    event_id = event_id or ("RDS-EVENT-0153" if cluster else "RDS-EVENT-0154")
    kind = "cluster" if cluster else "db"
    return {
        "version": "0",
        "id": "68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
        "detail-type": "RDS DB Cluster Event" if cluster else "RDS DB Instance Event",
        "source": "aws.rds",
        "account": ACCOUNT,
        "time": time or "2026-11-21T03:00:00Z",
        "region": "ap-northeast-1",
        "resources": [f"arn:aws:rds:ap-northeast-1:{ACCOUNT}:{kind}:{identifier}"],
        "detail": {
            "EventCategories": ["notification"],
            "SourceType": "CLUSTER" if cluster else "DB_INSTANCE",
            "SourceArn": f"arn:aws:rds:ap-northeast-1:{ACCOUNT}:{kind}:{identifier}",
            "Date": time or "2026-11-21T03:00:00.000Z",
            "Message": "DB cluster is being started due to it exceeding the maximum allowed time being stopped.",
            "SourceIdentifier": identifier,
            "EventID": event_id,
        },
    }


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


@dataclass
class DevEnvironment:
    """Builds resources on the moto server the ``aws_env`` fixture points boto3 at."""

    created: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ec2: Any = boto3.client("ec2")
        self.ecs: Any = boto3.client("ecs")
        self.scaling: Any = boto3.client("application-autoscaling")
        self.autoscaling: Any = boto3.client("autoscaling")
        self.rds: Any = boto3.client("rds")
        self._image = ""

    def _remember(self, kind: str, identifier: str) -> str:
        self.created.setdefault(kind, []).append(identifier)
        return identifier

    @property
    def image(self) -> str:
        if not self._image:
            # Filtered: listing moto's 1,300 default images takes a second per test.
            images = self.ec2.describe_images(Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"]
            self._image = images[0]["ImageId"]
        return self._image

    def instance(self, tags: dict[str, str]) -> str:
        spec = [{"ResourceType": "instance", "Tags": _tags(tags)}] if tags else []
        made = self.ec2.run_instances(
            ImageId=self.image, MinCount=1, MaxCount=1, InstanceType="t3.micro", TagSpecifications=spec
        )
        return self._remember("ec2", made["Instances"][0]["InstanceId"])

    def service(
        self,
        name: str,
        *,
        desired: int,
        tags: dict[str, str],
        cluster: str = "dev",
        cluster_tags: dict[str, str] | None = None,
        scaling: tuple[int, int] | None = None,
        daemon: bool = False,
    ) -> str:
        self.ecs.create_cluster(
            clusterName=cluster, tags=[{"key": k, "value": v} for k, v in (cluster_tags or {}).items()]
        )
        self.ecs.register_task_definition(
            family=name, containerDefinitions=[{"name": name, "image": "nginx", "memory": 128}]
        )
        options: dict[str, Any] = {"schedulingStrategy": "DAEMON"} if daemon else {"desiredCount": desired}
        self.ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=name,
            tags=[{"key": k, "value": v} for k, v in tags.items()],
            **options,
        )
        if scaling:
            self.scaling.register_scalable_target(
                ServiceNamespace="ecs",
                ResourceId=f"service/{cluster}/{name}",
                ScalableDimension="ecs:service:DesiredCount",
                MinCapacity=scaling[0],
                MaxCapacity=scaling[1],
            )
        return self._remember("ecs", f"{cluster}/{name}")

    def group(self, name: str, *, sizes: tuple[int, int, int], tags: dict[str, str]) -> str:
        template = f"{name}-template"
        self.ec2.create_launch_template(
            LaunchTemplateName=template, LaunchTemplateData={"ImageId": self.image, "InstanceType": "t3.micro"}
        )
        subnet = self.ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": template},
            MinSize=sizes[0],
            DesiredCapacity=sizes[1],
            MaxSize=sizes[2],
            VPCZoneIdentifier=subnet,
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in tags.items()],
        )
        return self._remember("asg", name)

    def aurora(self, name: str, *, tags: dict[str, str], members: int = 1, engine_mode: str = "") -> str:
        options = {"EngineMode": engine_mode} if engine_mode else {}
        self.rds.create_db_cluster(
            DBClusterIdentifier=name,
            Engine="aurora-mysql",
            MasterUsername="admin",
            MasterUserPassword="password-for-moto",
            Tags=_tags(tags),
            **options,
        )
        for number in range(1, members + 1):
            self.rds.create_db_instance(
                DBInstanceIdentifier=f"{name}-{number}",
                DBClusterIdentifier=name,
                Engine="aurora-mysql",
                DBInstanceClass="db.r6g.large",
                Tags=_tags(tags),
            )
        return self._remember("cluster", name)

    def database(self, name: str, *, tags: dict[str, str], engine: str = "postgres") -> str:
        self.rds.create_db_instance(
            DBInstanceIdentifier=name,
            Engine=engine,
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="admin",
            MasterUserPassword="password-for-moto",
            Tags=_tags(tags),
        )
        return self._remember("db", name)

    def replica(self, name: str, source: str, *, tags: dict[str, str]) -> str:
        self.rds.create_db_instance_read_replica(
            DBInstanceIdentifier=name, SourceDBInstanceIdentifier=source, Tags=_tags(tags)
        )
        return self._remember("db", name)

    # -- reading back ------------------------------------------------------------------------------------

    def instance_state(self, identifier: str) -> str:
        found = self.ec2.describe_instances(InstanceIds=[identifier])["Reservations"][0]["Instances"][0]
        return str(found["State"]["Name"])

    def instance_tags(self, identifier: str) -> dict[str, str]:
        found = self.ec2.describe_instances(InstanceIds=[identifier])["Reservations"][0]["Instances"][0]
        return {t["Key"]: t["Value"] for t in found.get("Tags", [])}

    def service_state(self, identifier: str) -> dict[str, Any]:
        cluster, name = identifier.split("/")
        found = self.ecs.describe_services(cluster=cluster, services=[name], include=["TAGS"])["services"][0]
        targets = self.scaling.describe_scalable_targets(
            ServiceNamespace="ecs", ResourceIds=[f"service/{cluster}/{name}"]
        )["ScalableTargets"]
        state: dict[str, Any] = {
            "desired": found["desiredCount"],
            "tags": {t["key"]: t["value"] for t in found.get("tags", [])},
        }
        if targets:
            state.update(min=targets[0]["MinCapacity"], max=targets[0]["MaxCapacity"])
        return state

    def group_state(self, name: str) -> dict[str, Any]:
        found = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        return {
            "sizes": (found["MinSize"], found["DesiredCapacity"], found["MaxSize"]),
            "tags": {t["Key"]: t["Value"] for t in found.get("Tags", [])},
        }

    def cluster_status(self, name: str) -> str:
        return str(self.rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["Status"])

    def cluster_tags(self, name: str) -> dict[str, str]:
        found = self.rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
        return {t["Key"]: t["Value"] for t in found.get("TagList", [])}

    def database_status(self, name: str) -> str:
        return str(self.rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"])

    def database_tags(self, name: str) -> dict[str, str]:
        found = self.rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
        return {t["Key"]: t["Value"] for t in found.get("TagList", [])}

    def snapshot(self, *, without: tuple[str, ...] = ("kpi:suspend:last-action",)) -> dict[str, Any]:
        """Everything a round trip must leave as it was (the last-action tag, which records it, aside)."""

        def keep(tags: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in tags.items() if k not in without}

        state: dict[str, Any] = {}
        for identifier in self.created.get("ec2", []):
            state[identifier] = (self.instance_state(identifier), keep(self.instance_tags(identifier)))
        for identifier in self.created.get("ecs", []):
            service = self.service_state(identifier)
            service["tags"] = keep(service["tags"])
            state[identifier] = service
        for name in self.created.get("asg", []):
            group = self.group_state(name)
            state[name] = (group["sizes"], keep(group["tags"]))
        for name in self.created.get("cluster", []):
            state[name] = (self.cluster_status(name), keep(self.cluster_tags(name)))
        for name in self.created.get("db", []):
            state[name] = (self.database_status(name), keep(self.database_tags(name)))
        return state
