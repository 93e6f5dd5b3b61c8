"""ECS services: desiredCount to 0 and back, exactly, with Application Auto Scaling's min/max.

The counts before a suspend live in tags on the service (the plan writes them first). With a scalable target,
min and max are set to 0 before desiredCount — otherwise Application Auto Scaling would scale the service
straight back to its minimum — and restored before desiredCount on start.
https://docs.aws.amazon.com/autoscaling/application/userguide/services-that-can-integrate-ecs.html
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.suspend.model import Kind, Resource, State
from pipeline.suspend.targets.base import AwsClients, chunks, pages, tag_dict

DIMENSION = "ecs:service:DesiredCount"


class EcsTarget:
    service = "ecs"
    kinds: tuple[Kind, ...] = (Kind.ECS_SERVICE,)

    def __init__(self, clients: AwsClients) -> None:
        self.ecs: Any = clients("ecs")
        self.scaling: Any = clients("application-autoscaling")

    def discover(self) -> list[Resource]:
        targets = {
            str(t["ResourceId"]): (int(t["MinCapacity"]), int(t["MaxCapacity"]))
            for t in pages(self.scaling, "describe_scalable_targets", "ScalableTargets", ServiceNamespace="ecs")
            if t.get("ScalableDimension") == DIMENSION
        }
        found = []
        cluster_arns = list(pages(self.ecs, "list_clusters", "clusterArns"))
        for group in chunks(cluster_arns, 100):
            for cluster in self.ecs.describe_clusters(clusters=group, include=["TAGS"]).get("clusters", []):
                cluster_tags = tag_dict(cluster.get("tags"), "key", "value")
                service_arns = list(pages(self.ecs, "list_services", "serviceArns", cluster=cluster["clusterArn"]))
                for batch in chunks(service_arns, 10):
                    described = self.ecs.describe_services(
                        cluster=cluster["clusterArn"], services=batch, include=["TAGS"]
                    )
                    for service in described.get("services", []):
                        found.append(self._resource(service, str(cluster["clusterName"]), cluster_tags, targets))
        return found

    @staticmethod
    def _resource(
        service: Mapping[str, Any],
        cluster: str,
        cluster_tags: Mapping[str, str],
        targets: Mapping[str, tuple[int, int]],
    ) -> Resource:
        name = str(service["serviceName"])
        desired, running = int(service.get("desiredCount", 0)), int(service.get("runningCount", 0))
        capacity = {"desired": desired}
        scalable = targets.get(f"service/{cluster}/{name}")
        if scalable:
            capacity.update(min=scalable[0], max=scalable[1])
        status = str(service.get("status", ""))
        if status != "ACTIVE":
            state = State.GONE
        elif desired > 0:
            state = State.RUNNING
        else:
            state = State.STOPPING if running > 0 else State.STOPPED
        return Resource(
            kind=Kind.ECS_SERVICE,
            id=f"{cluster}/{name}",
            arn=str(service["serviceArn"]),
            state=state,
            status=f"{status.lower()}, {running} running",
            tags=tag_dict(service.get("tags"), "key", "value"),
            parent=cluster,
            parent_tags=cluster_tags,
            capacity=capacity,
            daemon=service.get("schedulingStrategy") == "DAEMON",
        )

    def suspend(self, resource: Resource) -> None:
        cluster, name = resource.id.split("/", 1)
        if "min" in resource.capacity:
            self._scale(cluster, name, 0, 0)
        self.ecs.update_service(cluster=cluster, service=name, desiredCount=0)

    def start(self, resource: Resource, restore: Mapping[str, int]) -> None:
        cluster, name = resource.id.split("/", 1)
        if "min" in restore and "max" in restore:
            self._scale(cluster, name, restore["min"], restore["max"])
        self.ecs.update_service(cluster=cluster, service=name, desiredCount=restore["desired"])

    def _scale(self, cluster: str, name: str, minimum: int, maximum: int) -> None:
        self.scaling.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=f"service/{cluster}/{name}",
            ScalableDimension=DIMENSION,
            MinCapacity=minimum,
            MaxCapacity=maximum,
        )

    def tag(self, resource: Resource, tags: Mapping[str, str]) -> None:
        self.ecs.tag_resource(resourceArn=resource.arn, tags=[{"key": k, "value": v} for k, v in tags.items()])

    def untag(self, resource: Resource, keys: Sequence[str]) -> None:
        self.ecs.untag_resource(resourceArn=resource.arn, tagKeys=list(keys))
