"""The clone-database Lambda (production VPC, next to the temporary cluster): the clone's database work.

- ``{"action": "mask", "run": ID}`` → ``{"run", "masked": bool, "databases", "message"}``: masks until a minute
  before the invocation's time is up, then stops between two chunks (``masked`` false: call again);
- ``{"action": "health", "run": ID}`` → ``{"run", "healthy": true, …}``: the staging cluster answers
  ``health_query`` and holds no masking journal.

Configured by ``KPI_CLONE_*`` variables; the masking rule files are packaged under ``KPI_CLONE_RULES``.

The same code runs as an ECS Fargate task (``CloneMaskRunner=ecs``): ``python -m pipeline.lambdas.clone_database
mask RUN`` masks with no time limit, prints the answer as one JSON line and exits 0 — 1 on an error a person must
fix, 75 (EX_TEMPFAIL) on one worth retrying; either is alerted by the state machine, and a rerun resumes.
"""

from __future__ import annotations

import json
import sys
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


def main(argv: list[str] | None = None) -> int:
    """The ECS task's entry point: ``mask RUN``, masking until done (no invocation to run out of)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "mask":
        print(json.dumps({"level": "error", "error": f"usage: mask RUN, got {args!r}"}), file=sys.stderr)
        return 2
    try:
        answer = mask_temporary(load_config(), args[1], seconds=None)
    except KpiError as error:
        log_error(error, event={"action": "mask", "run": args[1], "runner": "ecs"})
        return 75 if error.retryable else 1
    print(json.dumps({"level": "info", "clone_database": answer}, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
