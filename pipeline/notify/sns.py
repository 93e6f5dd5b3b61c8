"""An SNS topic: one Publish per message, its Subject (ASCII, under 100 characters) and its plain-text body.
Subscribers (e-mail, chat integrations, a Lambda) decide how the owner reads it."""

from __future__ import annotations

from pipeline.core.alert_routing import Destination
from pipeline.core.alerts import Message
from pipeline.errors import AlertError

_HINT = "check the topic's ARN and that the role may sns:Publish on it; the run itself is unaffected"


def publish(destination: Destination, message: Message, *, timeout: float) -> str:
    """Publish the message; its MessageId, or AlertError with the API's error code."""
    import boto3
    import botocore.config
    import botocore.exceptions

    config = botocore.config.Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2})
    try:
        client = boto3.client("sns", region_name=destination.region, config=config)
        answer = client.publish(TopicArn=destination.target, Subject=message.subject, Message=message.body)
    except botocore.exceptions.ClientError as failure:
        code = failure.response.get("Error", {}).get("Code", "error")
        raise AlertError(f"SNS refused the message: {code}", where=str(destination), hint=_HINT) from None
    except botocore.exceptions.BotoCoreError as failure:
        raise AlertError(
            f"cannot reach SNS: {type(failure).__name__}", where=str(destination), hint=_HINT, retryable=True
        ) from None
    return str(answer.get("MessageId", ""))
