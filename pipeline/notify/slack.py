"""A Slack incoming webhook (https://api.slack.com/messaging/webhooks): POST ``{"text": mrkdwn, "blocks": [...]}``
(the message's Block Kit blocks, built in :mod:`pipeline.core.alerts`, and their mrkdwn fallback), Slack answers
200 ``ok``. The URL is the secret's value — a bare URL, or a JSON object with ``url`` or ``webhook_url`` — and
appears in no message, log line or error: whoever has it can post to the channel."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from pipeline.core.alert_routing import Destination
from pipeline.core.alerts import Message
from pipeline.errors import AlertError
from pipeline.secrets import text_secret

_HINT = "check the webhook in Slack's Incoming Webhooks app and the secret's value; the run itself is unaffected"


def webhook_url(destination: Destination, *, timeout: float) -> str:
    """The webhook URL the destination's secret holds; AlertError (naming the secret, not its value) otherwise."""
    where = str(destination)
    text = text_secret(
        destination.target,
        region=destination.region,
        what="Slack webhook",
        where=where,
        error=AlertError,
        timeout=timeout,
        holds='the webhook URL (bare, or as JSON {"url": …})',
    ).strip()
    if text.startswith("{"):
        try:
            found = json.loads(text)
        except ValueError:
            found = {}
        text = str(found.get("url") or found.get("webhook_url") or "") if isinstance(found, dict) else ""
    # https only, but for a relay on this machine's loopback (a local proxy to Slack, the tests' stand-in)
    if not text.startswith("https://") and not text.startswith("http://127.0.0.1"):
        raise AlertError(
            f"the secret {destination.target} does not hold a webhook URL (https://hooks.slack.com/…)",
            where=where,
            hint='store the URL bare, or as {"url": "https://hooks.slack.com/services/…"}',
        )
    return text


def post(destination: Destination, message: Message, *, timeout: float) -> None:
    """POST the message's blocks and text; AlertError on any answer but 2xx, on a timeout or a refused connection."""
    url = webhook_url(destination, timeout=timeout)
    where = str(destination)
    payload: dict[str, object] = {"text": message.text}
    if message.blocks:
        payload["blocks"] = list(message.blocks)
    body = json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json; charset=utf-8"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # https, or loopback: checked above
            answer.read(1024)
    except urllib.error.HTTPError as failure:
        raise AlertError(f"Slack answered HTTP {failure.code}", where=where, hint=_HINT) from None
    except TimeoutError:
        raise AlertError(f"Slack did not answer within {timeout:g}s", where=where, hint=_HINT, retryable=True) from None
    except (urllib.error.URLError, OSError) as failure:
        reason = getattr(failure, "reason", failure)
        kind = "timed out" if isinstance(reason, TimeoutError) else type(reason).__name__
        raise AlertError(f"cannot reach Slack: {kind}", where=where, hint=_HINT, retryable=True) from None
