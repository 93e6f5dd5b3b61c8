"""The small interface every AWS service adapter implements, and the boto3 clients they share.

An adapter discovers its resources (identifiers, tags, state, the facts the guards need), stops or starts one,
and writes or removes tags. It decides nothing: the plan has already said what to do and why.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.suspend.model import Kind, Resource

__all__ = ["AWS_ERRORS", "AwsClients", "Target", "describe_error", "pages"]

AWS_ERRORS = (ClientError, BotoCoreError)
# Throttling and transient faults are retried by botocore itself (standard mode), each call on its own.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


class AwsClients:
    """boto3 clients of one session, made once each. Tests hand in a session (or rely on AWS_ENDPOINT_URL)."""

    def __init__(self, session: boto3.Session | None = None) -> None:
        self.session = session or _new_session()
        self._clients: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        if name not in self._clients:
            self._clients[name] = self.session.client(name, config=_CONFIG)
        return self._clients[name]

    @property
    def region(self) -> str:
        return str(self.session.region_name or "")


_LOADER: Any = None


def _new_session() -> boto3.Session:
    """A fresh session (credentials and region read now) that shares the service models already loaded:
    parsing them costs ~80 ms per client, and a run makes seven clients (a warm Lambda would pay it again)."""
    global _LOADER
    core = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _LOADER)
    return boto3.Session(botocore_session=core)


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


def describe_error(error: BaseException) -> str:
    """``InvalidDBClusterStateFault: DbCluster x is in stopping state…`` — the API's code and message."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'Error')}: {details.get('Message', str(error))}"
    return str(error)


def pages(client: Any, operation: str, key: str, **arguments: Any) -> Iterator[Any]:
    """Every item under ``key`` of every page of ``operation``."""
    for page in client.get_paginator(operation).paginate(**arguments):
        yield from page.get(key, [])


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for index in range(0, len(items), size):
        yield list(items[index : index + size])


def tag_dict(tags: Sequence[Mapping[str, Any]] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    """``[{"Key": k, "Value": v}]`` (or ECS's lower-case ``key``/``value``) as a dict."""
    return {str(tag[key]): str(tag.get(value, "")) for tag in tags or []}
