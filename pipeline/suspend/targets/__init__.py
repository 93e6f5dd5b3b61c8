"""One adapter per AWS service, behind :class:`~pipeline.suspend.targets.base.Target`: discover, suspend, start,
tag, untag. Service quirks live in the file named after the service."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pipeline.suspend.model import Kind
from pipeline.suspend.targets.asg import AsgTarget
from pipeline.suspend.targets.base import AwsClients, Target
from pipeline.suspend.targets.ec2 import Ec2Target
from pipeline.suspend.targets.ecs import EcsTarget
from pipeline.suspend.targets.rds import RdsTarget

__all__ = ["AwsClients", "Target", "open_targets"]

_ADAPTERS: dict[str, Callable[[AwsClients], Target]] = {
    "ecs": EcsTarget,
    "asg": AsgTarget,
    "ec2": Ec2Target,
    "rds": RdsTarget,
}


def open_targets(services: Sequence[str], clients: AwsClients) -> dict[Kind, Target]:
    """The adapters of the configured services, by the kinds of resource each handles."""
    found: dict[Kind, Target] = {}
    for service in services:
        target = _ADAPTERS[service](clients)
        for kind in target.kinds:
            found[kind] = target
    return found
