"""How a handler reports a failure — the one retry contract of every handler, state machine and queue.

A failure is logged as one JSON line for CloudWatch Logs Insights (with ``retryable``), then raised again:
as :class:`RetryableError` when trying again later can succeed, as itself when a person must act. Step Functions
matches errors by the exception's class name only, so every state machine retries ``RetryableError`` (and
Lambda's own service errors) and nothing else: a SQL error, a check, a type, access denied or bad credentials
fail the execution at once with their message. The loader's queue follows the same rule
(:mod:`pipeline.lambdas.queue`).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from pipeline.errors import KpiError


def log_error(error: KpiError, **context: Any) -> None:
    record = {"level": "error", "error": type(error).__name__, "message": str(error), "retryable": error.retryable}
    print(json.dumps({**record, **context}, default=str))


class RetryableError(Exception):
    """What a handler raises for a :class:`KpiError` worth retrying: Step Functions matches errors by class name
    only, so a retryable failure needs a name of its own to be retried while a person's mistake is not. The
    message starts with the original error's class (``SourceError: …``), which the alert then shows."""


def reraise(error: KpiError) -> NoReturn:
    """Raise ``error`` again, as :class:`RetryableError` when trying again later can succeed."""
    if error.retryable:
        raise RetryableError(f"{type(error).__name__}: {error}") from error
    raise error
