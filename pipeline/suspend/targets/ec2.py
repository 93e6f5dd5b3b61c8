"""EC2 instances: stop and start. Instances of an Auto Scaling group are the group's business (the group would
replace a stopped one), so discovery records the group and the guard skips them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.suspend.model import Kind, Resource, State
from pipeline.suspend.targets.base import AwsClients, pages, tag_dict

_STATES = {
    "pending": State.STARTING,
    "running": State.RUNNING,
    "stopping": State.STOPPING,
    "stopped": State.STOPPED,
    "shutting-down": State.GONE,
    "terminated": State.GONE,
}


class Ec2Target:
    service = "ec2"
    kinds: tuple[Kind, ...] = (Kind.EC2_INSTANCE,)

    def __init__(self, clients: AwsClients) -> None:
        self.ec2: Any = clients("ec2")
        self.region = clients.region

    def discover(self) -> list[Resource]:
        found = []
        states = ["pending", "running", "stopping", "stopped"]
        filters = [{"Name": "instance-state-name", "Values": states}]
        for reservation in pages(self.ec2, "describe_instances", "Reservations", Filters=filters):
            for instance in reservation.get("Instances", []):
                found.append(self._resource(instance, str(reservation.get("OwnerId", ""))))
        return found

    def _resource(self, instance: Mapping[str, Any], owner: str) -> Resource:
        tags = tag_dict(instance.get("Tags"))
        name = str(instance["State"]["Name"])
        status = name
        reason = instance.get("StateReason", {})
        if name == "stopped" and reason.get("Code") == "Client.InternalError":
            # An encrypted EBS volume whose KMS key the role may not use: the start "succeeds", then stops.
            status = f"stopped ({reason.get('Message', 'Client.InternalError')}; check kms:CreateGrant)"
        return Resource(
            kind=Kind.EC2_INSTANCE,
            id=str(instance["InstanceId"]),
            arn=f"arn:aws:ec2:{self.region}:{owner}:instance/{instance['InstanceId']}",
            state=_STATES.get(name, State.BUSY),
            status=status,
            tags=tags,
            parent=tags.get("aws:autoscaling:groupName", ""),
            instance_store=instance.get("RootDeviceType") == "instance-store",
            size=str(instance.get("InstanceType") or ""),
        )

    def suspend(self, resource: Resource) -> None:
        self.ec2.stop_instances(InstanceIds=[resource.id])

    def start(self, resource: Resource, restore: Mapping[str, int]) -> None:
        self.ec2.start_instances(InstanceIds=[resource.id])

    def tag(self, resource: Resource, tags: Mapping[str, str]) -> None:
        self.ec2.create_tags(Resources=[resource.id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def untag(self, resource: Resource, keys: Sequence[str]) -> None:
        self.ec2.delete_tags(Resources=[resource.id], Tags=[{"Key": key} for key in keys])
