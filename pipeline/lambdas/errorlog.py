"""How a handler reports a failure: one JSON line for CloudWatch Logs Insights, then the error is re-raised so
that Step Functions retries it (``retryable``) or catches it, and S3/SQS deliveries are retried."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from pipeline.errors import KpiError


def log_error(error: KpiError, **context: Any) -> None:
    record = {"level": "error", "error": type(error).__name__, "message": str(error), "retryable": error.retryable}
    print(json.dumps({**record, **context}, default=str))


class RetryableError(Exception):
    """What a handler raises for a :class:`KpiError` worth retrying: Step Functions matches errors by class name
    only, so a retryable failure needs a name of its own to be retried while a person's mistake is not."""


def reraise(error: KpiError) -> NoReturn:
    """Raise ``error`` again, as :class:`RetryableError` when trying again later can succeed."""
    if error.retryable:
        raise RetryableError(str(error)) from error
    raise error
