"""JSON secrets from AWS Secrets Manager: the database credentials of a source, the BigQuery service-account key
of a warehouse. One place that reads them, so both fail the same way: the secret named, its value never shown."""

from __future__ import annotations

from typing import Any

from pipeline.errors import KpiError


def json_secret(secret_id: str, *, region: str | None, what: str, where: str, error: type[KpiError]) -> dict[str, Any]:
    """The secret's ``SecretString`` as a JSON object; ``error`` (SourceError, LoadError …) when it cannot be read."""
    import json

    import boto3
    import botocore.exceptions

    try:
        client = boto3.client("secretsmanager", region_name=region)
        value = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, ValueError, KeyError) as failure:
        raise error(
            f"cannot read the {what} secret {secret_id}: {type(failure).__name__}",
            where=where,
            hint="check the ARN, that the secret holds a JSON object, and that the role may "
            "secretsmanager:GetSecretValue on it",
            retryable=isinstance(failure, botocore.exceptions.BotoCoreError),
        ) from None
    return value
