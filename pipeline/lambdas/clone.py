"""The clone Lambda (production account, outside the VPC): one idempotent step of a clone per invocation.

Events, each answered with the step's progress ``{"run", "phase", "next", "wait", "message"}`` (``next``: wait,
mask, health or done) unless noted:

- ``{"action": "start", "run"?: ID}`` — a new clone (guards first), or the run ``ID`` resumed;
- ``{"action": "advance", "run": ID, "health"?: {...}}`` — the next step; ``health`` is the worker's answer;
- ``{"action": "abort", "run": ID}`` — delete what the run created (the live staging cluster excepted);
- ``{"action": "retire"}`` → ``{"deleted": [...]}`` — staging clusters past their grace period.

Configured by ``KPI_CLONE_*`` variables. A failure is logged as one JSON line and raised; one worth retrying
is raised as ``RetryableError`` so that the state machine retries it and nothing else.
"""

from __future__ import annotations

from typing import Any

from pipeline.clone.config import load_config
from pipeline.clone.workflow import CloneWorkflow
from pipeline.errors import KpiError, UsageError
from pipeline.lambdas.errorlog import log_error, reraise


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    try:
        action = event.get("action") if isinstance(event, dict) else None
        workflow = CloneWorkflow(load_config())
        if action == "start":
            return workflow.start(event.get("run") or None).to_dict()
        if action == "advance":
            return workflow.advance(_run(event), event.get("health")).to_dict()
        if action == "abort":
            return workflow.abort(_run(event)).to_dict()
        if action == "retire":
            return {"deleted": workflow.retire()}
        raise UsageError(
            f"unknown clone action {action!r}",
            hint='send {"action": "start"}, {"action": "advance", "run": "20261128-2134"}, abort or retire',
        )
    except KpiError as error:
        log_error(error, event=event)
        reraise(error)


def _run(event: dict[str, Any]) -> str:
    run = event.get("run")
    if not isinstance(run, str) or not run:
        raise UsageError("the event has no 'run'", hint='e.g. {"action": "advance", "run": "20261128-2134"}')
    return run
