"""boto3 clients and the small helpers every AWS-facing module shares (suspend, clone).

Clients of one session are made once each and share the service models already parsed; errors are
described as the API's code and message, which is what an operator searches for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "AWS_ERRORS",
    "AwsClients",
    "assumed_clients",
    "chunks",
    "describe_error",
    "error_code",
    "pages",
    "tag_dict",
    "tag_list",
]

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


def _new_session(**arguments: Any) -> boto3.Session:
    """A fresh session (credentials and region read now, or given as ``boto3.Session`` arguments: an assumed
    role's) that shares the service models already loaded: parsing them costs ~80 ms per client, and a run makes
    seven clients (a warm Lambda would pay it again)."""
    global _LOADER
    core = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _LOADER)
    return boto3.Session(botocore_session=core, **arguments)


def assumed_clients(clients: AwsClients, credentials: Mapping[str, Any]) -> AwsClients:
    """Clients of another account, with the ``Credentials`` of an ``sts:AssumeRole`` answer, in the same region."""
    return AwsClients(
        _new_session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=clients.region or None,
        )
    )


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


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """A dict as AWS's ``[{"Key": k, "Value": v}]``."""
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def error_code(error: BaseException) -> str:
    """The API's error code (``DBClusterNotFoundFault``…), or '' for anything that is not an API error."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""
