"""The small interface every AWS service adapter implements (their boto3 clients come from :mod:`pipeline.aws`).

An adapter discovers its resources (identifiers, tags, state, the facts the guards need), stops or starts one,
and writes or removes tags. It decides nothing: the plan has already said what to do and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pipeline.aws import AWS_ERRORS, AwsClients, chunks, describe_error, pages, tag_dict
from pipeline.suspend.model import Kind, Resource

__all__ = ["AWS_ERRORS", "AwsClients", "Target", "chunks", "describe_error", "pages", "tag_dict"]


class Target(Protocol):
    """One AWS service's resources, behind the same five calls."""

    service: str
    kinds: tuple[Kind, ...]

    def discover(self) -> list[Resource]:
        """Every resource of the service in the region (selection is the plan's business)."""

    def suspend(self, resource: Resource) -> None:
        """Stop it (EC2, RDS) or set its capacity to zero (ECS, ASG)."""

    def start(self, resource: Resource, restore: Mapping[str, int]) -> None:
        """Start it, or set the stored capacity back."""

    def tag(self, resource: Resource, tags: Mapping[str, str]) -> None: ...

    def untag(self, resource: Resource, keys: Sequence[str]) -> None: ...
