"""The clone-database Lambda (production VPC, next to the temporary cluster): the clone's database work.

- ``{"action": "mask", "run": ID}`` → ``{"run", "masked": bool, "databases", "message"}``: masks until a minute
  before the invocation's time is up, then stops between two chunks (``masked`` false: call again);
- ``{"action": "health", "run": ID}`` → ``{"run", "healthy": true, …}``: the staging cluster answers
  ``health_query`` and holds no masking journal.

Configured by ``KPI_CLONE_*`` variables; the masking rule files are packaged under ``KPI_CLONE_RULES``.
"""

from __future__ import annotations

from typing import Any

from pipeline.clone.config import load_config
from pipeline.clone.worker import check_health, mask_temporary
from pipeline.errors import KpiError, UsageError
from pipeline.lambdas.errorlog import log_error, reraise

# Seconds kept back from the invocation's remaining time: the chunk in flight, the tags, the answer.
_MARGIN = 90.0


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    try:
        action = event.get("action") if isinstance(event, dict) else None
        run = event.get("run") if isinstance(event, dict) else None
        if action not in ("mask", "health") or not isinstance(run, str):
            raise UsageError(
                f"expected a mask or health action with a run, got {event!r}"[:300],
                hint='send {"action": "mask", "run": "20261128-2134"}',
            )
        config = load_config()
        if action == "mask":
            return mask_temporary(config, run, seconds=_budget(context))
        return check_health(config, run)
    except KpiError as error:
        log_error(error, event=event)
        reraise(error)


def _budget(context: object) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else max(30.0, float(remaining()) / 1000 - _MARGIN)
