"""The suspend Lambda: dev environments off at night and on holidays, back on in the morning, never production.

Events (configured by ``KPI_SUSPEND_*`` variables or the ``[suspend]`` table of ``KPI_CONFIG``):

- ``{"action": "suspend"|"start", "phase"?: "apps"|"databases"|"all", "dbClusterIdentifiers"?: [...],
  "ids"?: [...], "tags"?: {...}, "dryRun"?: bool, "ignoreHoliday"?: bool, "now"?: ISO}`` → the report
  ``{"action", "phase", "holiday", "acted", "skipped", "failed", "pending", "ok", …}``, also sent to SNS when
  ``KPI_SUSPEND_TOPIC_ARN`` is set. A start on a holiday does nothing and names the holiday.
- ``{"action": "check", "phase": "databases"}`` → ``{"databases_available", "pending", "holiday"}``.
- ``{"action": "tick", "now"?: ISO}`` → ``{"runs": [report…]}``: what every schedule says is due since the last
  tick (``tick_minutes``), deferred suspends after a maintenance window, starts for one.
- ``{"action": "savings", "since"?: ISO, "now"?: ISO}`` → stopped hours and their cost per resource.
- an EventBridge RDS event (RDS-EVENT-0153/0154, AWS's seven-day automatic start) → stopped again when the
  module manages the database and the suspend window is in force; the report says why not otherwise.

Errors are logged as one JSON line and raised: a transient AWS failure as ``RetryableError`` (which the state machines
retry), a mistake (configuration, account allow-list, a malformed event) as itself, which fails at once.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.errors import KpiError
from pipeline.lambdas.errorlog import log_error, reraise
from pipeline.suspend import (
    Request,
    check_databases,
    is_rds_event,
    load_config,
    parse_rds_event,
    restart,
    run,
    savings,
    tick,
)
from pipeline.suspend.request import parse_now

# Seconds kept back from the invocation's remaining time when a start waits for its databases.
_MARGIN = 60.0


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    try:
        config = load_config()
        if isinstance(event, dict) and is_rds_event(event):
            result = restart(parse_rds_event(event), config).to_dict()
        elif isinstance(event, dict) and event.get("action") == "check":
            request = Request.from_event({**event, "action": "start", "phase": "databases"})
            result = check_databases(request, config)
        elif isinstance(event, dict) and event.get("action") == "tick":
            now = parse_now(event["now"]) if event.get("now") else None
            result = {"runs": [report.to_dict() for report in tick(config, now=now)]}
        elif isinstance(event, dict) and event.get("action") == "savings":
            since = parse_now(event["since"]) if event.get("since") else None
            now = parse_now(event["now"]) if event.get("now") else None
            result = savings(config, since=since, now=now).to_dict()
        else:
            request = Request.from_event(event)
            result = run(request, config, wait_seconds=_wait_budget(request, context)).to_dict()
    except KpiError as error:
        log_error(error, event=event)
        reraise(error)
    print(json.dumps({"level": "info", "suspend": result}, ensure_ascii=False, default=str))
    return result


def _wait_budget(request: Request, context: object) -> float:
    """How long a start of phase ``all`` may wait for its databases: what the invocation has left, minus a
    margin (none without a Lambda context; a state machine uses the phases and ``check`` instead)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if request.action != "start" or request.phase != "all" or remaining is None:
        return 0.0
    return max(0.0, float(remaining()) / 1000 - _MARGIN)
