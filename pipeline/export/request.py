"""An export as callers describe it — a KPI name and dates — turned into a call of :func:`export`.

The CLI and the Lambda handler both go through :func:`run_export`, so that ``kpi export`` on a laptop and the
exporter Lambda behave the same for the same request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import catalog
from pipeline.core.lake import execution_run_id
from pipeline.core.manifest import Manifest
from pipeline.core.selection import end_moment, moment
from pipeline.errors import UsageError
from pipeline.export.flow import export
from pipeline.flows.run import Asked, intervals_to_run
from pipeline.settings import Environment
from pipeline.sources import open_source
from pipeline.stores import open_store

_EVENT_KEYS = {"kpi", "date", "start", "end", "run_id", "params", "execution", "started_at"}
_EVENT_FLAGS = {"allow_incomplete", "allow_before_start"}


@dataclass(frozen=True)
class ExportRequest:
    kpi: str
    date: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    run_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    due: bool = False  # without dates: the latest complete partition and its lookback, not only the latest
    allow_incomplete: bool = False  # export partitions not over yet (refused by default: see refuse_unsafe)
    allow_before_start: bool = False

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ExportRequest:
        """``{"kpi": NAME, "date": D | "start": S, "end": E, "run_id"?: ID, "params"?: {…}}`` (Step Functions), and
        ``"allow_incomplete": true`` / ``"allow_before_start": true`` for what a run refuses by default.

        Without dates, what is due (as ``kpi run``). A state machine passes ``execution`` and ``started_at`` (its
        execution's name and start time) instead of a run id: retries of a state then reuse one run id."""
        unknown = sorted(set(event) - _EVENT_KEYS - _EVENT_FLAGS)
        if unknown or not isinstance(event.get("kpi"), str):
            raise UsageError(
                f"the export event {'has unknown keys ' + ', '.join(unknown) if unknown else 'names no kpi'}",
                hint='send {"kpi": "daily_sales", "date": "2024-03-01"} (or "start"/"end", "run_id", "params")',
            )
        params = event.get("params") or {}
        run_id = event.get("run_id")
        if run_id is None and event.get("execution") and event.get("started_at"):
            started = datetime.fromisoformat(str(event["started_at"]).replace("Z", "+00:00"))
            run_id = execution_run_id(started, f"{event['execution']}/{event['kpi']}/{event.get('start', '')}")
        dated = any(event.get(key) for key in ("date", "start", "end"))
        return cls(
            kpi=event["kpi"],
            date=moment(event.get("date")),
            start=moment(event.get("start")),
            end=end_moment(event.get("end")),
            run_id=run_id,
            params={str(k): str(v) for k, v in params.items()},
            due=not dated,
            allow_incomplete=event.get("allow_incomplete") is True,
            allow_before_start=event.get("allow_before_start") is True,
        )


def run_export(request: ExportRequest, *, queries: Path, environment: Environment) -> list[Manifest]:
    """The KPI's source is the one its header names (``source:``), in ``environment``."""
    kpi = catalog.load_one((queries,), request.kpi)
    asked = Asked(
        date=request.date,
        start=request.start,
        end=request.end,
        due=request.due,
        allow_incomplete=request.allow_incomplete,
        allow_before_start=request.allow_before_start,
    )
    intervals = intervals_to_run(kpi, asked, datetime.now(kpi.zone))
    if kpi.incremental and not intervals:
        return []  # nothing due yet: the header's start is in the future
    return export(
        kpi,
        intervals,
        source=open_source(
            environment.source(kpi.source, kpi=kpi.name).url, explain_max_rows=environment.explain_max_rows
        ),
        store=open_store(environment.lake),
        run_id=request.run_id,
        params=request.params,
    )
