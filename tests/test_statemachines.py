"""The Step Functions state machines in infra/statemachines: valid ASL (statelint and our own structural check),
and run end to end on moto's interpreter with our real handlers — exports, the loader on the S3 events they
cause, retries under one run id, the alert topic when a KPI or a batch fails for good, and the owner-alert step
(the freshness Lambda) telling each failed KPI's owner once per execution, on moto's SNS topics read back through
SQS queues subscribed to them.

Where moto differs from AWS, the test says so: moto's ASL grammar refuses an integer
``ToleratedFailurePercentage`` (``0``; it parses ``0.0``). The shipped definitions keep AWS's form; only the copy
a test deploys is adjusted, by :func:`moto_compatible`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from moto import mock_aws

from pipeline import catalog
from pipeline.core.lake import SNAPSHOT, execution_run_id
from pipeline.core.plan import due_intervals
from pipeline.errors import KpiError, StoreError
from pipeline.lambdas.errorlog import RetryableError, reraise
from pipeline.lambdas.loader import handler as loader
from tests import stepfunctions as sfn_tools
from tests.exporting import duckdb_orders, make_kpi
from tests.loading import HEADER, SHOP_ORDERS, SQL
from tests.stepfunctions import REGION, SUBSTITUTIONS, LambdaStandIn

# Infrastructure (the export and backfill state machines executed on moto): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra

DAILY_HEADER = HEADER.replace("timezone: Asia/Tokyo", "timezone: Asia/Tokyo\nlookback: 2\nowner: finance")
GROWTH_HEADER = HEADER.replace("timezone: Asia/Tokyo", "timezone: Asia/Tokyo\nowner: growth")
BY_STATUS_HEADER = """
grain: none
owner: growth
description: Orders per status, all time
columns:
  status: {type: STRING, description: Status}
  orders: {type: INT64, description: Orders}
"""
BY_STATUS_SQL = "SELECT status, COUNT(*) AS orders FROM orders GROUP BY 1"
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def moto_compatible(text: str) -> str:
    """The definition as moto can run it: its grammar takes ``ToleratedFailurePercentage`` only as a decimal
    number (``0.0``), where AWS takes ``0`` as well. Same value, same meaning."""
    adjusted, count = re.subn(r'("ToleratedFailurePercentage": )(\d+)([,\s])', r"\1\2.0\3", text)
    assert count == text.count('"ToleratedFailurePercentage"')
    return adjusted


# -- the definitions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SUBSTITUTIONS))
def test_each_definition_is_sound_and_uses_exactly_its_substitutions(name: str) -> None:
    text = sfn_tools.definition_text(name)
    assert sfn_tools.structural_problems(json.loads(text), SUBSTITUTIONS[name]) == []
    assert sfn_tools.placeholders(text) == SUBSTITUTIONS[name]
    deployed = json.loads(sfn_tools.substitute(text, sfn_tools.sample_substitutions()))
    assert sfn_tools.placeholders(json.dumps(deployed)) == set()


@pytest.mark.parametrize("name", sorted(SUBSTITUTIONS))
def test_statelint_finds_nothing_in_either_definition(name: str) -> None:
    text = sfn_tools.definition_text(name)
    assert sfn_tools.statelint_problems(text) == []
    assert sfn_tools.statelint_problems(sfn_tools.substitute(text, sfn_tools.sample_substitutions())) == []


def test_the_structural_check_catches_dangling_transitions_unreachable_states_and_stray_placeholders() -> None:
    broken = json.loads(sfn_tools.definition_text("export.asl.json"))
    inner = broken["States"]["ExportEach"]["ItemProcessor"]["States"]
    inner["Alert"]["Next"] = "Nowhere"  # inside the Map's ItemProcessor
    broken["States"]["Orphan"] = {"Type": "Pass", "Next": "Exported"}
    broken["States"]["AnyFailed"]["Default"] = "${ExporterFunctionName}"
    problems = sfn_tools.structural_problems(broken, SUBSTITUTIONS["export.asl.json"])
    assert "ExportEach.ItemProcessor.Alert: goes to 'Nowhere', which is not a state of ExportEach.ItemProcessor." in (
        problems
    )
    assert "Orphan: cannot be reached from StartAt 'ExportEach'" in problems
    assert "Exported: cannot be reached from StartAt 'ExportEach'" in problems  # only the bad Default led there
    assert any("${ExporterFunctionName}" in p and "not one of the substitutions" in p for p in problems)

    endless = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}
    assert sfn_tools.structural_problems(endless) == [
        "the state machine: no reachable state ends it (End, Succeed or Fail)"
    ]
    assert sfn_tools.structural_problems({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r"}}}) == [
        "A: a Task state needs Next or End",
        "the state machine: no reachable state ends it (End, Succeed or Fail)",
    ]
    if _has_statelint():  # statelint agrees on the dangling transition
        assert any("Nowhere" in p for p in sfn_tools.statelint_problems(json.dumps(broken)))


def test_every_lambda_task_retries_only_retryable_errors_with_full_jitter_and_catches_into_the_alert_topic() -> None:
    for name in SUBSTITUTIONS:
        tasks = _tasks(json.loads(sfn_tools.definition_text(name)))
        invokes = [t for t in tasks if t["Resource"] == "arn:aws:states:::lambda:invoke"]
        assert invokes, name
        for task in invokes:
            retried = {error for retrier in task["Retry"] for error in retrier["ErrorEquals"]}
            # The one retry contract: Lambda's own service errors, and what the handler classed as retryable —
            # never an error by its class (SourceError is a SQL error as often as a lost connection), never all.
            assert retried == LAMBDA_SERVICE_ERRORS | {RetryableError.__name__}, name
            assert all(r["JitterStrategy"] == "FULL" and r["BackoffRate"] >= 1 for r in task["Retry"]), name
            assert [c["ErrorEquals"] for c in task["Catch"]] == [["States.ALL"]], name
        for task in tasks:
            if task["Resource"] == "arn:aws:states:::sns:publish":
                assert task["Parameters"]["TopicArn"] == "${AlertTopicArn}"
    # The owner-alert step: after the Map, once, invoking the freshness function; whether it succeeds or not, the
    # execution goes on to its failure (it is never the reason an execution fails, nor one that succeeds).
    for name, after in (("export.asl.json", "ExportFailed"), ("backfill.asl.json", "BatchesFailed")):
        states = json.loads(sfn_tools.definition_text(name))["States"]
        owners = states["AlertOwners"]
        assert owners["Parameters"]["FunctionName"] == "${OwnerAlertFunctionArn}", name
        assert [owners["Next"]] == [c["Next"] for c in owners["Catch"]] == [after], name
        assert sfn_tools.definition_text(name).count("${OwnerAlertFunctionArn}") == 1, name
    batches = json.loads(sfn_tools.definition_text("backfill.asl.json"))["States"]["ExportBatches"]
    assert batches["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert batches["ToleratedFailurePercentage"] == 0
    assert batches["MaxConcurrencyPath"] == "$.plan.concurrency"


# -- running them on moto ----------------------------------------------------------------------------------------


@dataclass
class Aws:
    """moto in-process, with what the template would deploy: the lake bucket (its manifests announced to an SQS
    queue, as the loader is fed), the alert topic (an SQS queue subscribed to read it), the functions, and the
    owners' topics the alert routing names (``KPI_ALERTS_OWNERS``: growth and finance, each read by a queue)."""

    tmp: Path
    bucket: str
    manifests_queue: str
    alerts_queue: str
    owner_queues: dict[str, str]
    substitutions: dict[str, str]
    role: str

    @property
    def lake(self) -> str:
        return f"s3://{self.bucket}/lake"

    def deploy(self, name: str, adjust: Callable[[str], str] = moto_compatible) -> str:
        text = sfn_tools.substitute(sfn_tools.definition_text(f"{name}.asl.json"), self.substitutions)
        sfn = boto3.client("stepfunctions")
        return sfn_tools.create_state_machine(sfn, f"{name}-{uuid.uuid4().hex[:6]}", adjust(text), self.role)

    def run(self, machine: str, payload: dict[str, Any]) -> dict[str, Any]:
        return sfn_tools.run_execution(boto3.client("stepfunctions"), machine, f"x-{uuid.uuid4().hex[:8]}", payload)

    def manifest_keys(self) -> list[str]:
        pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="lake/")
        return sorted(
            o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith("_manifest.json")
        )

    def deliver_manifest_events(self) -> list[dict[str, Any]]:
        """Feed the loader what S3 → SQS announced, ten messages per invocation as the SQS trigger does."""
        sqs, outcomes = boto3.client("sqs"), list[dict[str, Any]]()
        while True:
            messages = sqs.receive_message(QueueUrl=self.manifests_queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return outcomes
            event = {"Records": [{"eventSource": "aws:sqs", "body": m["Body"]} for m in messages]}
            outcomes += loader(event)["manifests"]
            for message in messages:
                sqs.delete_message(QueueUrl=self.manifests_queue, ReceiptHandle=message["ReceiptHandle"])

    def alerts(self, queue: str = "") -> list[dict[str, str]]:
        """What reached the shared alert topic, or (``queue``: an owner) that owner's topic."""
        sqs = boto3.client("sqs")
        url = self.owner_queues[queue] if queue else self.alerts_queue
        found: list[dict[str, str]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                body = json.loads(message["Body"])
                found.append({"subject": body.get("Subject", ""), "message": body["Message"]})
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def warehouse(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.tmp / "wh.duckdb")) as db:
            return db.execute(sql).fetchall()


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    daily = make_kpi(tmp_path / "q", "daily", DAILY_HEADER, SQL)  # owned by finance, by_status by growth
    make_kpi(tmp_path / "q", "by_status", BY_STATUS_HEADER, BY_STATUS_SQL)
    yesterday = (datetime.now(daily.zone) - timedelta(days=1)).date()
    shop = duckdb_orders(tmp_path / "shop.duckdb", *SHOP_ORDERS, f"('{yesterday} 12:00', 'paid', 4.00)")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # in-process moto, not the session's moto server
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    bucket = f"kpi-lake-{uuid.uuid4().hex[:8]}"
    # The functions' configuration: the handlers run in this process, so it is this process's environment.
    monkeypatch.setenv("KPI_QUERIES", str(tmp_path / "q"))
    monkeypatch.setenv("KPI_SOURCE", shop)
    monkeypatch.setenv("KPI_LAKE", f"s3://{bucket}/lake")
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("KPI_ENV", raising=False)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3, sqs, sns = boto3.client("s3"), boto3.client("sqs"), boto3.client("sns")
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        manifests = sqs.create_queue(QueueName="manifests")["QueueUrl"]
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": _queue_arn(sqs, manifests),
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": "_manifest.json"}]}},
                    }
                ]
            },
        )
        alerts = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        topic = sns.create_topic(Name="kpi-pipeline-alerts")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=_queue_arn(sqs, alerts))
        owner_queues, routes = {}, []
        for owner in ("growth", "finance"):
            owner_queues[owner] = sqs.create_queue(QueueName=f"alerts-{owner}")["QueueUrl"]
            owned = sns.create_topic(Name=f"kpi-{owner}")["TopicArn"]
            sns.subscribe(TopicArn=owned, Protocol="sqs", Endpoint=_queue_arn(sqs, owner_queues[owner]))
            routes.append(f"{owner}=sns:{owned}")
        monkeypatch.setenv("KPI_ALERTS_OWNERS", ",".join(routes))  # the freshness function's, as the template sets
        monkeypatch.delenv("KPI_ALERTS_DEFAULT", raising=False)
        role = sfn_tools.lambda_role(boto3.client("iam"))
        functions = boto3.client("lambda")
        yield Aws(
            tmp=tmp_path,
            bucket=bucket,
            manifests_queue=manifests,
            alerts_queue=alerts,
            owner_queues=owner_queues,
            role=role,
            substitutions={
                "ExporterFunctionArn": sfn_tools.create_function(
                    functions, "kpi-exporter", "pipeline.lambdas.exporter.handler", role
                ),
                "PlannerFunctionArn": sfn_tools.create_function(
                    functions, "kpi-planner", "pipeline.lambdas.planner.handler", role
                ),
                "OwnerAlertFunctionArn": sfn_tools.create_function(
                    functions, "kpi-freshness", "pipeline.lambdas.freshness.handler", role
                ),
                "AlertTopicArn": topic,
                "BackfillConcurrency": "2",
            },
        )


def test_export_runs_the_exporter_per_kpi_and_the_loader_loads_each_due_partition_once(aws: Aws) -> None:
    machine = aws.deploy("export")
    kpis = catalog.load((aws.tmp / "q",))
    due = {name: _due(kpis.get(name)) for name in ("daily", "by_status")}
    with LambdaStandIn().installed() as lambdas:
        execution = aws.run(machine, {"kpis": ["daily", "by_status"]})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert [(r["kpi"], r["status"]) for r in output["results"]] == [("daily", "EXPORTED"), ("by_status", "EXPORTED")]
    assert output["anyFailed"] is False
    assert sorted(i.event["kpi"] for i in lambdas.calls("kpi-exporter")) == ["by_status", "daily"]
    assert all(not i.error for i in lambdas.invocations)

    events = {i.event["kpi"]: i.event for i in lambdas.calls("kpi-exporter")}
    for result in output["results"]:
        event = events[result["kpi"]]  # {"kpi", "execution", "started_at"}: the run id follows from them
        started = datetime.fromisoformat(str(event["started_at"]).replace("Z", "+00:00"))
        run_id = execution_run_id(started, f"{event['execution']}/{result['kpi']}/")
        assert {p["run_id"] for p in result["partitions"]} == {run_id}
        assert {p["partition"] for p in result["partitions"]} in due[result["kpi"]]
    keys = aws.manifest_keys()
    assert len(keys) == sum(len(r["partitions"]) for r in output["results"])

    loaded = aws.deliver_manifest_events()
    assert sorted(o["manifest"] for o in loaded) == [f"s3://{aws.bucket}/{key}" for key in keys]
    assert all(o["loaded"] for o in loaded)
    audit = aws.warehouse('SELECT kpi, "partition", COUNT(*) FROM _kpi_loads GROUP BY 1, 2 ORDER BY 1, 2')
    expected = sorted((r["kpi"], p["partition"], 1) for r in output["results"] for p in r["partitions"])
    assert audit == expected
    assert aws.warehouse("SELECT status, orders FROM by_status ORDER BY 1") == [("paid", 4), ("refunded", 1)]
    assert aws.warehouse("SELECT SUM(orders) FROM daily") == [(1,)]  # yesterday's order: the latest complete day
    assert aws.deliver_manifest_events() == []


def test_a_kpi_failing_for_good_is_not_retried_but_alerted_while_the_others_export(aws: Aws) -> None:
    make_kpi(aws.tmp / "q", "broken", GROWTH_HEADER, SQL.replace("FROM orders", "FROM no_such_table"))
    machine = aws.deploy("export")
    with LambdaStandIn().installed() as lambdas, sfn_tools.recorded_retry_waits() as waits:
        execution = aws.run(machine, {"kpis": ["daily", "broken"]})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "KpiExportFailed"
    assert '"daily exported","broken failed with SourceError"' in execution["cause"]
    broken = [i for i in lambdas.calls("kpi-exporter") if i.event["kpi"] == "broken"]
    assert [i.error for i in broken] == ["SourceError"]  # a SQL error: the source is asked once, not three times
    assert waits == []
    assert [i.error for i in lambdas.calls("kpi-exporter") if i.event["kpi"] == "daily"] == [""]
    assert {key.split("/")[1] for key in aws.manifest_keys()} == {"daily"}

    (alert,) = aws.alerts()
    assert alert["subject"] == "kpi-pipeline: the export of broken failed"
    assert alert["message"].startswith("The export of KPI broken failed in execution x-")
    assert "with SourceError:" in alert["message"]
    assert "Table with name no_such_table does not exist" in alert["message"]

    # The owner hears of it once, through the freshness Lambda (outside the VPC); daily's owner of nothing.
    (call,) = lambdas.calls("kpi-freshness")
    assert [(f["kpi"], f["error"]) for f in call.event["failed"]] == [("broken", "SourceError")]
    assert (call.event["execution"], call.event["context"]) == (execution["name"], "kpi run (deployed)")
    (message,) = aws.alerts("growth")
    day = _due_at(broken_kpi(aws), call.event["started_at"])
    assert message["subject"] == "kpi: 1 failed partition: broken"
    head, _, line, link = message["message"].splitlines()
    assert head.startswith(f"kpi run (deployed), execution {execution['name']}: 1 failed partition for growth (")
    assert head.endswith(" JST)")
    assert line.startswith(f"- failed: broken {day}: SourceError: ")
    assert "Table with name no_such_table does not exist" in line
    assert link == f"    {aws.tmp}/report.html#kpi-broken"
    assert aws.alerts("finance") == []


def test_a_backfill_exports_each_partition_once_through_the_distributed_map_even_with_a_retry(aws: Aws) -> None:
    machine = aws.deploy("backfill")
    failed: list[dict[str, Any]] = []

    def lose_first_answer(function: str, event: dict[str, Any]) -> BaseException | None:
        """The March batch's first attempt exports, then fails as if S3 had throttled its last request."""
        if function == "kpi-exporter" and event.get("start") == "2024-03-01" and not failed:
            failed.append(event)
            return raised(StoreError("S3 PutObject failed: SlowDown", retryable=True))
        return None

    with LambdaStandIn(inject=lose_first_answer).installed() as lambdas, sfn_tools.recorded_retry_waits() as waits:
        execution = aws.run(machine, {"kpis": ["daily"], "start": "2024-02-20", "end": "2024-04-10"})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["plan"]["partitions"] == 51
    assert output["plan"]["concurrency"] == 2
    assert output["exported"]["batches"] == 3
    assert output["exported"]["anyFailed"] is False
    assert sorted(r["partitions"] for r in output["exported"]["results"]) == [10, 10, 31]
    assert lambdas.calls("kpi-freshness") == []  # nothing failed: no owner is told anything
    assert len(lambdas.calls("kpi-planner")) == 1
    exports = [(i.event["start"], i.event["end"], i.error) for i in lambdas.calls("kpi-exporter")]
    assert sorted(exports) == [
        ("2024-02-20", "2024-02-29", ""),
        ("2024-03-01", "2024-03-31", ""),
        ("2024-03-01", "2024-03-31", "RetryableError"),
        ("2024-04-01", "2024-04-10", ""),
    ]
    assert lambdas.peak <= 2  # MaxConcurrencyPath from the BackfillConcurrency substitution
    assert len(waits) == 1
    assert 0 <= waits[0] <= 30
    march = [i.event for i in lambdas.calls("kpi-exporter") if i.event["start"] == "2024-03-01"]
    assert march[0] == march[1]  # the retry sent the same event: the same execution name and start time
    started = datetime.fromisoformat(str(march[0]["started_at"]).replace("Z", "+00:00"))
    run_id = execution_run_id(started, f"{march[0]['execution']}/daily/2024-03-01")

    keys = aws.manifest_keys()
    runs: dict[str, set[str]] = {}
    for key in keys:
        _, _, day, run, _ = key.split("/")
        runs.setdefault(day.removeprefix("day="), set()).add(run.removeprefix("run="))
    assert len(runs) == 51
    assert all(len(found) == 1 for found in runs.values())  # no partition exported twice
    assert {day for day, found in runs.items() if found == {run_id}} == {f"2024-03-{d:02}" for d in range(1, 32)}

    loaded = aws.deliver_manifest_events()
    assert len(loaded) == 51
    assert all(o["loaded"] for o in loaded)
    assert aws.warehouse('SELECT COUNT(DISTINCT "partition"), COUNT(*) FROM _kpi_loads') == [(51, 51)]
    assert aws.warehouse("SELECT SUM(orders) FROM daily") == [(4,)]
    assert aws.alerts() == []


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (StoreError("access denied: s3:PutObject (PutObject)"), ["StoreError"]),  # a person must act: no retry
        (StoreError("S3 PutObject failed: SlowDown", retryable=True), ["RetryableError"] * 4),  # 1 + MaxAttempts 3
    ],
)
def test_a_batch_that_keeps_failing_is_alerted_and_fails_the_backfill(
    aws: Aws, error: StoreError, attempts: list[str]
) -> None:
    """The failed batch is recorded by its child execution, the others export, and after the Distributed Map its
    KPI's owner hears of it once (the shared topic still gets the batch's alert and the backfill's)."""
    machine = aws.deploy("backfill")

    def refuse_march(function: str, event: dict[str, Any]) -> BaseException | None:
        if function == "kpi-exporter" and event.get("start") == "2024-03-01":
            return raised(error)
        return None

    with LambdaStandIn(inject=refuse_march).installed() as lambdas, sfn_tools.recorded_retry_waits() as waits:
        execution = aws.run(machine, {"kpis": ["daily"], "start": "2024-02-20", "end": "2024-04-10"})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "KpiBackfillFailed"
    assert execution["cause"].startswith("not every batch exported (each failure was reported on the alert topic")
    assert error.message in execution["cause"]
    march = [i.error for i in lambdas.calls("kpi-exporter") if i.event["start"] == "2024-03-01"]
    assert march == attempts
    others = sorted(
        (i.event["start"], i.error) for i in lambdas.calls("kpi-exporter") if i.event["start"] != "2024-03-01"
    )
    assert others == [("2024-02-20", ""), ("2024-04-01", "")]  # a failed batch does not stop the others
    assert len(waits) == len(attempts) - 1
    subjects = sorted(alert["subject"] for alert in aws.alerts())
    assert subjects == ["kpi-pipeline: a backfill batch of daily failed", "kpi-pipeline: a backfill failed"]

    (call,) = lambdas.calls("kpi-freshness")
    assert [(f["kpi"], f["start"], f["end"], f["error"]) for f in call.event["failed"]] == [
        ("daily", "2024-03-01", "2024-03-31", attempts[0])
    ]
    (message,) = aws.alerts("finance")  # daily's owner
    assert message["subject"] == "kpi: 31 failed partitions: daily"
    head, _, line, link = message["message"].splitlines()
    assert head.startswith(
        f"kpi backfill (deployed), execution {execution['name']}: 31 failed partitions for finance ("
    )
    reason = f"StoreError: {error.message}"  # a RetryableError's message already names the original error
    assert line == f"- failed: daily 2024-03-01 … 2024-03-31 (31 partitions): {reason}"
    assert link == f"    {aws.tmp}/report.html#kpi-daily"
    assert aws.alerts("growth") == []


def test_two_failing_kpis_of_one_owner_make_one_message_naming_both(aws: Aws) -> None:
    make_kpi(aws.tmp / "q", "broken", GROWTH_HEADER, SQL.replace("FROM orders", "FROM no_such_table"))
    make_kpi(aws.tmp / "q", "renamed", GROWTH_HEADER, SQL.replace("FROM orders", "FROM orders_v2"))
    machine = aws.deploy("export")
    with LambdaStandIn().installed() as lambdas:
        execution = aws.run(machine, {"kpis": ["broken", "daily", "renamed"]})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "KpiExportFailed"
    assert len(lambdas.calls("kpi-freshness")) == 1
    assert sorted(a["subject"] for a in aws.alerts()) == [  # the operators' topic: one alert per KPI, as before
        "kpi-pipeline: the export of broken failed",
        "kpi-pipeline: the export of renamed failed",
    ]
    (message,) = aws.alerts("growth")
    assert message["subject"] == "kpi: 2 failed partitions: broken, renamed"
    lines = message["message"].splitlines()
    assert lines[0].startswith(f"kpi run (deployed), execution {execution['name']}: 2 failed partitions for growth")
    failed = [line for line in lines if line.startswith("- failed: ")]
    assert len(failed) == 2  # one line per KPI (and reason), each KPI's due day
    assert failed[0].startswith("- failed: broken ")
    assert "no_such_table does not exist" in failed[0]
    assert failed[1].startswith("- failed: renamed ")
    assert "orders_v2 does not exist" in failed[1]
    assert aws.alerts("finance") == []  # daily exported


def test_the_owner_alert_step_is_retried_like_any_task_and_its_failure_leaves_the_export_failed(aws: Aws) -> None:
    make_kpi(aws.tmp / "q", "broken", GROWTH_HEADER, SQL.replace("FROM orders", "FROM no_such_table"))
    machine = aws.deploy("export")
    answers: list[str] = []

    def throttle_then_fail(function: str, event: dict[str, Any]) -> BaseException | None:
        """The owner-alert Lambda: first a transient failure (retried), then a bug (not retried)."""
        if function != "kpi-freshness":
            return None
        answers.append(function)
        if len(answers) == 1:
            return raised(StoreError("Secrets Manager throttled", retryable=True))
        return RuntimeError("a bug in the alert step")

    with LambdaStandIn(inject=throttle_then_fail).installed() as lambdas, sfn_tools.recorded_retry_waits() as waits:
        execution = aws.run(machine, {"kpis": ["daily", "broken"]})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "KpiExportFailed"  # the original failure, not the alert step's
    assert '"daily exported","broken failed with SourceError"' in execution["cause"]
    assert [i.error for i in lambdas.calls("kpi-freshness")] == ["RetryableError", "RuntimeError"]
    assert len(waits) == 1
    assert 0 <= waits[0] <= 10
    assert [a["subject"] for a in aws.alerts()] == ["kpi-pipeline: the export of broken failed"]


def test_a_backfill_whose_owner_alert_step_fails_still_fails_with_its_batches_and_alerts_the_topic(aws: Aws) -> None:
    machine = aws.deploy("backfill")

    def refuse_march_and_break_the_alert_step(function: str, event: dict[str, Any]) -> BaseException | None:
        if function == "kpi-exporter" and event.get("start") == "2024-03-01":
            return raised(StoreError("access denied: s3:PutObject (PutObject)"))
        return RuntimeError("a bug in the alert step") if function == "kpi-freshness" else None

    with LambdaStandIn(inject=refuse_march_and_break_the_alert_step).installed() as lambdas:
        execution = aws.run(machine, {"kpis": ["daily"], "start": "2024-02-20", "end": "2024-04-10"})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "KpiBackfillFailed"
    assert "access denied: s3:PutObject (PutObject)" in execution["cause"]
    assert [i.error for i in lambdas.calls("kpi-freshness")] == ["RuntimeError"]  # a bug is not retried
    subjects = sorted(alert["subject"] for alert in aws.alerts())
    assert subjects == ["kpi-pipeline: a backfill batch of daily failed", "kpi-pipeline: a backfill failed"]


# -- helpers -----------------------------------------------------------------------------------------------------


def raised(error: KpiError) -> BaseException:
    """What the handler raises for ``error`` (the contract of :func:`pipeline.lambdas.errorlog.reraise`)."""
    try:
        reraise(error)
    except Exception as raised:
        return raised


def broken_kpi(aws: Aws) -> Any:
    return catalog.load((aws.tmp / "q",)).get("broken")


def _due_at(kpi: Any, started_at: str) -> str:
    """The one partition a scheduled export of ``kpi`` (no lookback) was due to write at the execution's start."""
    (interval,) = due_intervals(kpi, datetime.fromisoformat(started_at.replace("Z", "+00:00")))
    return interval.partition


def _due(kpi: Any) -> list[set[str]]:
    """The partitions a scheduled run exports now — and a minute later, should the day turn during the test."""
    if not kpi.incremental:
        return [{SNAPSHOT}]
    now = datetime.now(kpi.zone)
    return [{i.partition for i in due_intervals(kpi, at)} for at in (now, now + timedelta(minutes=1))]


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _tasks(machine: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for state in machine["States"].values():
        if state["Type"] == "Task":
            found.append(state)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                found += _tasks(state[key])
    return found


def _has_statelint() -> bool:
    return importlib.util.find_spec("statelint") is not None
