"""JSON secrets from AWS Secrets Manager: the database credentials of a source, the BigQuery service-account key
of a warehouse. One place that reads them, so both fail the same way: the secret named, its value never shown."""

from __future__ import annotations

from typing import Any

from pipeline.errors import KpiError


def json_secret(secret_id: str, *, region: str | None, what: str, where: str, error: type[KpiError]) -> dict[str, Any]:
    """The secret's ``SecretString`` as a JSON object; ``error`` (SourceError, LoadError …) when it cannot be read."""
    import json

    text = text_secret(secret_id, region=region, what=what, where=where, error=error, holds="a JSON object")
    try:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except ValueError as failure:
        raise _unreadable(secret_id, what, where, error, failure, "a JSON object") from None
    return value


def text_secret(
    secret_id: str,
    *,
    region: str | None,
    what: str,
    where: str,
    error: type[KpiError],
    timeout: float | None = None,
    holds: str = "its value",
) -> str:
    """The secret's ``SecretString`` as it is (a Slack webhook URL is stored bare); ``timeout`` bounds the call
    (connect and read, one attempt per retry of botocore's standard mode)."""
    import boto3
    import botocore.config
    import botocore.exceptions

    config = botocore.config.Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2})
    try:
        client = boto3.client("secretsmanager", region_name=region, config=config if timeout else None)
        return str(client.get_secret_value(SecretId=secret_id)["SecretString"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, KeyError) as failure:
        raise _unreadable(secret_id, what, where, error, failure, holds) from None


def _unreadable(
    secret_id: str, what: str, where: str, error: type[KpiError], failure: Exception, holds: str
) -> KpiError:
    import botocore.exceptions

    reason = type(failure).__name__
    if isinstance(failure, botocore.exceptions.ClientError):  # the API's code says what is wrong: not found, denied
        reason = str(failure.response.get("Error", {}).get("Code") or reason)
    return error(
        f"cannot read the {what} secret {secret_id}: {reason}",
        where=where,
        hint=f"check the ARN, that the secret holds {holds}, and that the role may secretsmanager:GetSecretValue on it",
        retryable=isinstance(failure, botocore.exceptions.BotoCoreError),
    )
