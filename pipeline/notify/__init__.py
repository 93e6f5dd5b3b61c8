"""Delivery of alert messages at the edge: a Slack incoming webhook (its URL read from Secrets Manager) or an SNS
topic. One call per message, bounded by a timeout; a failure is an :class:`~pipeline.errors.AlertError` whose
message names the destination (a secret's id, a topic's ARN) and never holds the webhook's URL."""

from __future__ import annotations

from pipeline.core.alert_routing import Destination
from pipeline.core.alerts import Message


def deliver(destination: Destination, message: Message, *, timeout: float) -> None:
    """Send ``message`` to ``destination``; AlertError when it could not be delivered."""
    if destination.kind == "slack":
        from pipeline.notify.slack import post

        post(destination, message, timeout=timeout)
    else:
        from pipeline.notify.sns import publish

        publish(destination, message, timeout=timeout)
