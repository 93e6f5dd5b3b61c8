"""AWS Lambda entry points: parse the event, call the library, return JSON. No logic lives here.

One thing happens on import, before any handler runs: botocore's wire loggers are kept at INFO
(:func:`keep_wire_logs_quiet`). A function whose log level is set to DEBUG (Lambda's logging configuration,
``AWS_LAMBDA_LOG_LEVEL``) gets a root logger at DEBUG, and at DEBUG botocore writes what it sends and receives:
``botocore.parsers`` every response body (a ``GetSecretValue``'s ``SecretString``: the database password, the
BigQuery key, the Slack webhook), ``botocore.endpoint`` every request body (the clone's ``PutSecretValue``), and
``botocore.auth`` the signed request, the role's session token in it. ``tests/test_lambda_logs.py`` shows all three
in a DEBUG log without this, and none with it; botocore's other DEBUG lines (events, retries, connections) stay.
"""

from __future__ import annotations

import logging

# botocore's loggers that write request or response contents, or signing material, at DEBUG
WIRE_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.auth")


def keep_wire_logs_quiet() -> None:
    """Each of :data:`WIRE_LOGGERS` at INFO, unless its level was set on purpose (a debugging session's choice)."""
    for name in WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


keep_wire_logs_quiet()
