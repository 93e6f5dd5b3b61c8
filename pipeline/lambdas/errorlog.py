"""How a handler reports a failure: one JSON line for CloudWatch Logs Insights, then the error is re-raised so
that Step Functions retries it (``retryable``) or catches it, and S3/SQS deliveries are retried."""

from __future__ import annotations

import json
from typing import Any

from pipeline.errors import KpiError


def log_error(error: KpiError, **context: Any) -> None:
    record = {"level": "error", "error": type(error).__name__, "message": str(error), "retryable": error.retryable}
    print(json.dumps({**record, **context}, default=str))
