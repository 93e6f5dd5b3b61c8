"""A backfill as its callers name it — KPIs and a range of dates — planned against what the warehouse holds.

``kpi backfill`` runs the plan itself; the backfill state machine asks the planner Lambda for the same plan as
a list of batches and maps the exporter over them. Both skip partitions already loaded from the same SQL.
``kpi backfill --dry-run`` shows the plan's queries as the source would receive them (:func:`plan_queries`); a
range with nothing to run is refused here when it is a mistake (:func:`refuse_empty`), not in the command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import catalog
from pipeline.core.intervals import latest_complete
from pipeline.core.plan import BackfillPlan, plan_backfill
from pipeline.core.selection import end_moment, moment, requested_intervals
from pipeline.core.spec import Kpi
from pipeline.errors import KpiError, UsageError
from pipeline.settings import Environment
from pipeline.warehouses import Warehouse, open_warehouse

if TYPE_CHECKING:
    from pipeline.core.query import Query
    from pipeline.core.render import Rendered


def plan_kpi(
    kpi: Kpi, start: str, end: str, warehouse: Warehouse, *, force: bool = False, now: datetime | None = None
) -> BackfillPlan:
    """The KPI's partitions from ``start`` to ``end`` against what ``warehouse`` holds, at ``now`` (default: the
    wall clock in the KPI's zone): what is over and after the header's start, less what is loaded from this SQL."""
    now = now or datetime.now(kpi.zone)
    requested = requested_intervals(kpi, now=now, start=moment(start), end=end_moment(end))
    loaded = {partition: record.sql_hash for partition, record in warehouse.loads(kpi.name).items()}
    return plan_backfill(kpi, requested, loaded, now=now, force=force)


def plan_range(
    kpi: Kpi, start: str, end: str, warehouse_url: str, *, force: bool = False, now: datetime | None = None
) -> BackfillPlan:
    """:func:`plan_kpi` against the warehouse at ``warehouse_url``, opened read-only for the audit and closed: a
    dry run creates and locks nothing, and a backfill's loads re-check the plan inside their transaction."""
    warehouse = open_warehouse(warehouse_url, read_only=True)
    try:
        return plan_kpi(kpi, start, end, warehouse, force=force, now=now)
    finally:
        warehouse.close()


def plan_batches(
    names: Sequence[str], start: str, end: str, *, queries: Path, environment: Environment, force: bool = False
) -> list[dict[str, Any]]:
    """``[{"kpi", "start", "end", "partitions"}]``: one item per source query, the exporter's event for it."""
    if not names:
        raise UsageError("the backfill names no KPI", hint='send {"kpis": ["daily_sales"], "start": …, "end": …}')
    found = catalog.load((queries,))
    warehouse = open_warehouse(environment.warehouse, read_only=True)  # the planner only reads the audit
    try:
        plans = [plan_kpi(found.get(name), start, end, warehouse, force=force) for name in names]
    finally:
        warehouse.close()
    return [
        {"kpi": plan.kpi, "start": batch[0].partition, "end": batch[-1].partition, "partitions": len(batch)}
        for plan in plans
        for batch in plan.batches
    ]


def start_state_machine(
    environment: Environment, kpi: str, start: str, end: str, *, force: bool = False, now: datetime | None = None
) -> str:
    """Start the deployed backfill state machine (``--via sfn``) with the input its planner expects; its ARN.

    The execution is named after the KPI, the range and the moment, so the Step Functions console lists it
    legibly; "re-run with the same input" there starts the same backfill again, which resumes."""
    import json
    import re

    import boto3
    import botocore.exceptions

    arn = environment.backfill_state_machine
    if not arn:
        raise UsageError(
            f"the environment '{environment.name}' names no backfill state machine",
            hint="set backfill_state_machine = <ARN> (the deploy stack's output BackfillStateMachineArn) in "
            "kpi.toml, or KPI_BACKFILL_STATE_MACHINE",
        )
    stamp = (now or datetime.now()).strftime("%Y%m%dT%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"backfill-{kpi}-{start}-{end}-{stamp}")[-80:]
    payload = {"kpis": [kpi], "start": start, "end": end, "force": force}
    try:
        client = boto3.client("stepfunctions", region_name=arn.split(":")[3] if arn.count(":") >= 5 else None)
        started = client.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise KpiError(
            f"cannot start the backfill state machine: {error}",
            where=arn,
            hint="check the ARN and that your AWS credentials may states:StartExecution on it",
            retryable=isinstance(error, botocore.exceptions.BotoCoreError),
        ) from None
    return str(started["executionArn"])


def plan_queries(
    kpi: Kpi, plan: BackfillPlan, render: Callable[[Query, Mapping[str, Any]], Rendered]
) -> list[dict[str, object]]:
    """Each batch's source query as the source would receive it: first and last partition, their count, the SQL
    and its bound values (as text). ``render`` is the source's (:func:`pipeline.sources.renderer`: no driver is
    imported, and the planner Lambda's package has no pyarrow)."""
    from pipeline.core.intervals import Interval
    from pipeline.core.render import bind_values

    queries: list[dict[str, object]] = []
    for group in plan.batches:
        rendered = render(kpi.query, bind_values(kpi, Interval(group[0].start, group[-1].end, kpi.grain)))
        queries.append(
            {
                "first": group[0].partition,
                "last": group[-1].partition,
                "partitions": len(group),
                "sql": rendered.sql,
                "values": {k: str(v) for k, v in rendered.values.items()},
            }
        )
    return queries


def left_out_of(kpi: Kpi, plan: BackfillPlan) -> list[str]:
    """What the range asked for that no backfill runs, in words: not over yet, before the header's start."""
    left_out = []
    if plan.incomplete:
        left_out.append(f"{len(plan.incomplete)} not over yet (from {plan.incomplete[0]})")
    if plan.before_start:
        left_out.append(f"{len(plan.before_start)} before the header's start ({kpi.start})")
    return left_out


def refuse_empty(kpi: Kpi, plan: BackfillPlan, start: str, end: str, *, now: datetime) -> None:
    """A plan with nothing to run is fine when everything is loaded already; when nothing of the range can run
    at all (all of it in the future or before the header's start) it is a mistake: a UsageError naming the range
    the KPI allows at ``now``."""
    if plan.batches or plan.done:
        return
    latest = latest_complete(kpi.grain, kpi.zone, now, kpi.first_weekday).partition
    raise UsageError(
        f"nothing to do: no partition from {start} to {end} can run — " + " and ".join(left_out_of(kpi, plan)),
        where=kpi.name,
        hint=f"pick a range between the header's start ({kpi.start}) and the latest complete partition ({latest})",
    )
