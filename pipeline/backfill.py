"""A backfill as its callers name it — KPIs and a range of dates — planned against what the warehouse holds.

``kpi backfill`` runs the plan itself; the backfill state machine asks the planner Lambda for the same plan as
a list of batches and maps the exporter over them. Both skip partitions already loaded from the same SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import catalog
from pipeline.core.plan import BackfillPlan, plan_backfill
from pipeline.core.selection import moment, requested_intervals
from pipeline.core.spec import Kpi
from pipeline.errors import KpiError, UsageError
from pipeline.settings import Environment
from pipeline.warehouses import Warehouse, open_warehouse


def plan_kpi(kpi: Kpi, start: str, end: str, warehouse: Warehouse, *, force: bool = False) -> BackfillPlan:
    now = datetime.now(kpi.zone)
    requested = requested_intervals(kpi, now=now, start=moment(start), end=moment(end))
    loaded = {partition: record.sql_hash for partition, record in warehouse.loads(kpi.name).items()}
    return plan_backfill(kpi, requested, loaded, now=now, force=force)


def plan_batches(
    names: Sequence[str], start: str, end: str, *, queries: Path, environment: Environment, force: bool = False
) -> list[dict[str, Any]]:
    """``[{"kpi", "start", "end", "partitions"}]``: one item per source query, the exporter's event for it."""
    if not names:
        raise UsageError("the backfill names no KPI", hint='send {"kpis": ["daily_sales"], "start": …, "end": …}')
    found = catalog.load((queries,))
    warehouse = open_warehouse(environment.warehouse)
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
