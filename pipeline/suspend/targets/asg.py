"""Auto Scaling groups: min, desired and max to 0, and back exactly from the tags the plan wrote first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.suspend.model import Kind, Resource, State
from pipeline.suspend.targets.base import AwsClients, pages, tag_dict


class AsgTarget:
    service = "asg"
    kinds: tuple[Kind, ...] = (Kind.ASG,)

    def __init__(self, clients: AwsClients) -> None:
        self.autoscaling: Any = clients("autoscaling")

    def discover(self) -> list[Resource]:
        return [
            self._resource(group)
            for group in pages(self.autoscaling, "describe_auto_scaling_groups", "AutoScalingGroups")
        ]

    @staticmethod
    def _resource(group: Mapping[str, Any]) -> Resource:
        capacity = {
            "min": int(group["MinSize"]),
            "desired": int(group["DesiredCapacity"]),
            "max": int(group["MaxSize"]),
        }
        instances = len(group.get("Instances", []))
        if group.get("Status"):  # only set while the group is being deleted
            state = State.GONE
        elif capacity["desired"] > 0 or capacity["min"] > 0:
            state = State.RUNNING
        else:
            state = State.STOPPING if instances else State.STOPPED
        return Resource(
            kind=Kind.ASG,
            id=str(group["AutoScalingGroupName"]),
            arn=str(group.get("AutoScalingGroupARN", "")),
            state=state,
            status=f"{instances} instance(s)",
            tags=tag_dict(group.get("Tags")),
            capacity=capacity,
            size=str(next((i.get("InstanceType") for i in group.get("Instances", []) if i.get("InstanceType")), "")),
        )

    def suspend(self, resource: Resource) -> None:
        self.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=resource.id, MinSize=0, MaxSize=0, DesiredCapacity=0
        )

    def start(self, resource: Resource, restore: Mapping[str, int]) -> None:
        self.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=resource.id,
            MinSize=restore["min"],
            MaxSize=restore["max"],
            DesiredCapacity=restore["desired"],
        )

    def tag(self, resource: Resource, tags: Mapping[str, str]) -> None:
        self.autoscaling.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": resource.id,
                    "ResourceType": "auto-scaling-group",
                    "Key": key,
                    "Value": value,
                    "PropagateAtLaunch": False,
                }
                for key, value in tags.items()
            ]
        )

    def untag(self, resource: Resource, keys: Sequence[str]) -> None:
        self.autoscaling.delete_tags(
            Tags=[{"ResourceId": resource.id, "ResourceType": "auto-scaling-group", "Key": key} for key in keys]
        )
