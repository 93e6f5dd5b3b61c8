"""The suspend module's AWS side: the suspend and resume state machines, their place in the SAM template, the
suspend Lambda's IAM policy, and both machines run on moto's Step Functions interpreter with the real handler
(``pipeline.lambdas.suspend.handler``) against moto's EC2, ECS, Application Auto Scaling, Auto Scaling and RDS.

Two stand-ins, and only these, make the runs possible in a test (each one said where it is used):

- the Wait states wait 0 s instead of 60 (:func:`no_waits`, on the copy a test deploys; the shipped definitions
  keep 60, checked below), or a resume would take minutes;
- moto starts a database at once, where AWS takes minutes: :class:`SlowStart` answers DescribeDBClusters with
  ``starting`` for a cluster a given number of times, at boto3's edge, so that the Wait/Choice loops really loop.

Every AWS call the handler makes during the runs is recorded (:class:`ApiCalls`) and must be one the template's
policy allows: the IAM policy is checked against what the code does, not only against a list.
"""

from __future__ import annotations

import fnmatch
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import boto3
import botocore.client
import botocore.exceptions
import pytest
from moto import mock_aws

from infra.build import eventbridge_cron
from pipeline.suspend import Request, SuspendConfig, load_config
from tests import stepfunctions as sfn_tools
from tests.stepfunctions import ACCOUNT, REGION, LambdaStandIn
from tests.suspending import OPT_IN, PROD, DevEnvironment, rds_event
from tests.test_template import PARAMETERS, as_list, built, resolve, statements

# Infrastructure (the suspend state machines executed on moto): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra

MACHINES = ("suspend.asl.json", "resume.asl.json")
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SUSPEND_ROLE = "SuspendRole"
# What the suspend Lambda may only read (Resource "*"): everything else it may do changes a resource.
READ_VERBS = ("Describe", "List", "Get")
TAGGING = {
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "rds:AddTagsToResource",
    "rds:RemoveTagsFromResource",
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:DeleteTags",
    "ecs:TagResource",
    "ecs:UntagResource",
}


def definition(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(sfn_tools.definition_text(name))
    return parsed


def lambda_tasks(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: state
        for name, state in machine["States"].items()
        if state["Type"] == "Task" and state["Resource"] == LAMBDA_INVOKE
    }


def no_waits(text: str) -> str:
    """The definition as a test runs it: every Wait state waits 0 s instead of 60 (nothing else changes)."""
    machine = json.loads(text)
    waits = [state for state in machine["States"].values() if state["Type"] == "Wait"]
    assert waits
    assert all(state["Seconds"] == 60 for state in waits)
    for state in waits:
        state["Seconds"] = 0
    return json.dumps(machine)


# ------------------------------------------------------------------------------------------------ definitions


@pytest.mark.parametrize("name", MACHINES)
def test_each_lambda_task_sends_what_the_handler_accepts(name: str) -> None:
    """Every payload parses as the handler parses it (dryRun as the Defaults state fills it), and asks for what the
    machine means: a phase, never "all" (the machine waits between the tiers, not the Lambda)."""
    machine = definition(name)
    assert machine["States"]["Defaults"]["Result"] == {"dryRun": False}
    for state_name, task in lambda_tasks(machine).items():
        parameters = task["Parameters"]
        assert parameters["FunctionName"] == "${SuspendFunctionArn}"
        if "Payload.$" in parameters:  # the re-stop: the RDS event as EventBridge delivered it
            assert (state_name, parameters["Payload.$"]) == ("Restop", "$$.Execution.Input")
            continue
        payload = {key.removesuffix(".$"): value for key, value in parameters["Payload"].items()}
        assert payload.get("dryRun", "$.dryRun") == "$.dryRun"
        payload["dryRun"] = False
        if payload["action"] == "check":
            assert payload == {"action": "check", "phase": "databases", "dryRun": False}
            continue
        request = Request.from_event(payload)
        assert request.phase in ("apps", "databases"), state_name
        assert request.ids == ()
        assert request.tags == ()


def test_suspend_stops_apps_before_databases_and_resume_starts_them_after() -> None:
    suspend, resume = definition("suspend.asl.json"), definition("resume.asl.json")

    def phase(machine: dict[str, Any], state: str) -> tuple[str, str]:
        payload = machine["States"][state]["Parameters"]["Payload"]
        return payload["action"], payload["phase"]

    assert phase(suspend, "SuspendApps") == ("suspend", "apps")
    assert suspend["States"]["SuspendApps"]["Next"] == "SuspendDatabases"
    assert phase(suspend, "SuspendDatabases") == ("suspend", "databases")
    assert phase(resume, "StartDatabases") == ("start", "databases")
    assert phase(resume, "StartApps") == ("start", "apps")
    # The only way to StartApps is the check's answer that every database is available.
    into_apps = [
        (name, rule)
        for name, state in resume["States"].items()
        for rule in [*state.get("Choices", []), {"Next": state.get("Next")}, {"Next": state.get("Default")}]
        if rule.get("Next") == "StartApps"
    ]
    assert into_apps == [
        ("Available", {"Variable": "$.check.databases_available", "BooleanEquals": True, "Next": "StartApps"})
    ]
    # A holiday in the report of StartDatabases ends the execution before anything else; so does a database
    # that could not be started (failed).
    holiday, refused = resume["States"]["Holiday"]["Choices"]
    assert holiday == {"Variable": "$.databases.report.holiday", "IsString": True, "Next": "NothingToStart"}
    assert resume["States"]["NothingToStart"]["Type"] == "Succeed"
    assert refused == {"Variable": "$.databases.report.ok", "BooleanEquals": False, "Next": "DatabasesNotStarted"}
    assert resume["States"]["DatabasesNotStarted"]["Type"] == "Fail"


@pytest.mark.parametrize(
    ("name", "wait", "check", "limit"),
    [
        ("resume.asl.json", "WaitForDatabases", "CheckDatabases", "DatabasesNotAvailable"),
        ("suspend.asl.json", "WaitToRestop", "Restop", "StillStarting"),
    ],
)
def test_databases_are_waited_for_by_a_wait_choice_loop_of_30_tries_60_s_apart(
    name: str, wait: str, check: str, limit: str
) -> None:
    machine = definition(name)
    states = machine["States"]
    assert states[wait] == {**states[wait], "Type": "Wait", "Seconds": 60}
    assert states[wait]["Next"].startswith(("Check", "Next"))
    tries = [
        {key: rule[key] for key in ("Variable", "NumericGreaterThanEquals")}
        for state in states.values()
        for choice in state.get("Choices", [])
        for rule in choice.get("And", [choice])
        if rule.get("Variable") == "$.checks.count"
    ]
    assert tries == [{"Variable": "$.checks.count", "NumericGreaterThanEquals": 29}]  # counted from 0: 30 tries
    assert states[limit]["Next"] == "Alert"
    for task in lambda_tasks(machine).values():  # no Lambda waits: each answers at once
        assert "TimeoutSeconds" not in task
        assert "HeartbeatSeconds" not in task
    assert states[check]["Type"] == "Task"


def test_failures_alert_on_the_alert_topic_and_end_the_execution_failed() -> None:
    for name in MACHINES:
        states = definition(name)["States"]
        for task in lambda_tasks({"States": states}).values():
            assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Alert"}]
        assert states["Alert"]["Parameters"]["TopicArn"] == "${AlertTopicArn}"
        assert states["Alert"]["Next"] == "Failed"
        assert states["Failed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


# --------------------------------------------------------------------------------------------------- template


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return built(tmp_path_factory.mktemp("template"))


def test_the_suspend_function_runs_the_ops_package_outside_the_vpc(template: dict[str, Any]) -> None:
    function = template["Resources"]["SuspendFunction"]["Properties"]
    assert function["Handler"] == "pipeline.lambdas.suspend.handler"
    assert function["CodeUri"] == "lambda/ops-arm64.zip"
    assert "VpcConfig" not in function  # AWS APIs only
    assert function["Role"] == {"Fn::GetAtt": [SUSPEND_ROLE, "Arn"]}
    assert function["Timeout"] <= 900


def test_the_function_is_configured_with_the_tags_its_policy_is_written_for(template: dict[str, Any]) -> None:
    """The variables, read by the module's own configuration loader: the opt-in tag, the prefix of its own tags
    and the production tag are the template's parameters — the same ones the IAM policy is written with."""
    raw = template["Resources"]["SuspendFunction"]["Properties"]["Environment"]["Variables"]
    environ = {name: str(resolve(value, PARAMETERS, {})) for name, value in raw.items()}
    config = load_config(Path("/nonexistent/kpi.toml"), environ=environ)
    assert config.accounts == ("123456789012",)
    assert config.opt_in_tag == PARAMETERS["SuspendOptInTagKey"]
    assert config.state_tag("desired-count") == "kpi:suspend:desired-count"
    assert (config.production_tag.key, config.production_tag.values) == ("Environment", ("prod", "production"))
    assert config.topic_arn == PARAMETERS["SuspendReportTopic"]
    assert config.timezone == "Asia/Tokyo"  # as the schedules'


def test_the_schedules_are_japan_time_and_switched_off_by_default(template: dict[str, Any]) -> None:
    parameters, resources = template["Parameters"], template["Resources"]
    assert parameters["SuspendEnabled"]["Default"] == "false"
    assert template["Conditions"]["SuspendOn"] == {"Fn::Equals": [{"Ref": "SuspendEnabled"}, "true"]}
    assert parameters["SuspendSchedule"]["Default"] == "cron(0 21 ? * MON-FRI *)"
    assert parameters["ResumeSchedule"]["Default"] == "cron(0 8 ? * MON-FRI *)"
    # … the module's own default window (kpi.toml [suspend] suspend_at / resume_at), in EventBridge's spelling
    defaults = SuspendConfig(accounts=(ACCOUNT,))
    assert eventbridge_cron(defaults.suspend_at, kpi="[suspend]") == parameters["SuspendSchedule"]["Default"]
    assert eventbridge_cron(defaults.resume_at, kpi="[suspend]") == parameters["ResumeSchedule"]["Default"]
    for schedule, machine, expression in (
        ("SuspendStateMachineSchedule", "SuspendStateMachine", "SuspendSchedule"),
        ("ResumeStateMachineSchedule", "ResumeStateMachine", "ResumeSchedule"),
    ):
        properties = resources[schedule]["Properties"]
        assert properties["ScheduleExpression"] == {"Ref": expression}
        assert properties["ScheduleExpressionTimezone"] == "Asia/Tokyo"
        assert properties["State"] == {"Fn::If": ["SuspendOn", "ENABLED", "DISABLED"]}
        assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert properties["Target"]["Arn"] == {"Ref": machine}
        assert properties["Target"]["RoleArn"] == {"Fn::GetAtt": ["SuspendSchedulerRole", "Arn"]}
        assert json.loads(properties["Target"]["Input"]) == {}


def test_the_tick_of_the_named_schedules_invokes_only_the_suspend_lambda_and_is_off_by_default(
    template: dict[str, Any],
) -> None:
    parameters, resources = template["Parameters"], template["Resources"]
    assert parameters["SuspendTickEnabled"]["Default"] == "false"
    assert template["Conditions"]["SuspendTickOn"] == {
        "Fn::And": [{"Condition": "SuspendOn"}, {"Fn::Equals": [{"Ref": "SuspendTickEnabled"}, "true"]}]
    }
    properties = resources["SuspendTickSchedule"]["Properties"]
    assert properties["State"] == {"Fn::If": ["SuspendTickOn", "ENABLED", "DISABLED"]}
    assert properties["ScheduleExpression"] == "rate(15 minutes)"
    assert SuspendConfig(accounts=(ACCOUNT,)).tick_minutes == 15  # what a tick looks back over
    assert properties["Target"]["Arn"] == {"Fn::GetAtt": ["SuspendFunction", "Arn"]}
    assert json.loads(properties["Target"]["Input"]) == {"action": "tick"}
    (invoke, dead_letters) = resources["SuspendTickRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert invoke["Resource"] == [{"Fn::GetAtt": ["SuspendFunction", "Arn"]}, {"Fn::Sub": "${SuspendFunction.Arn}:*"}]
    assert dead_letters["Resource"] == {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}


def test_aws_automatic_database_starts_go_to_the_suspend_state_machine(template: dict[str, Any]) -> None:
    rule = template["Resources"]["DatabaseAutoStartRule"]["Properties"]
    assert rule["State"] == {"Fn::If": ["SuspendOn", "ENABLED", "DISABLED"]}
    assert rule["EventPattern"] == {
        "source": ["aws.rds"],
        "detail-type": ["RDS DB Cluster Event", "RDS DB Instance Event"],
        "detail": {"EventID": ["RDS-EVENT-0153", "RDS-EVENT-0154"]},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "SuspendStateMachine"}
    assert target["RoleArn"] == {"Fn::GetAtt": ["DatabaseAutoStartRole", "Arn"]}
    event = rds_event("dev-aurora")  # what EventBridge delivers matches the pattern, and the machine's Choice
    assert event["source"] in rule["EventPattern"]["source"]
    assert event["detail"]["EventID"] in rule["EventPattern"]["detail"]["EventID"]
    trigger = definition("suspend.asl.json")["States"]["Trigger"]["Choices"]
    assert {"Variable": "$.source", "StringEquals": "aws.rds", "Next": "CountRestop"} in trigger


def test_who_may_start_the_machines_and_what_they_may_invoke(template: dict[str, Any]) -> None:
    def allowed(role: str, prefix: str) -> list[Any]:
        return [
            resource
            for _, statement, _ in statements(template, role)
            if any(action.startswith(prefix) for action in as_list(statement["Action"]))
            for resource in as_list(statement["Resource"])
        ]

    assert allowed("SuspendStateMachineRole", "lambda:") == [
        {"Fn::GetAtt": ["SuspendFunction", "Arn"]},
        {"Fn::Sub": "${SuspendFunction.Arn}:*"},
    ]
    assert allowed("SuspendStateMachineRole", "sns:") == [{"Ref": "AlertTopic"}]
    assert allowed("SuspendSchedulerRole", "states:") == [{"Ref": "SuspendStateMachine"}, {"Ref": "ResumeStateMachine"}]
    assert allowed("DatabaseAutoStartRole", "states:") == [{"Ref": "SuspendStateMachine"}]
    assert allowed(SUSPEND_ROLE, "sns:") == [{"Ref": "SuspendReportTopic"}]  # reports; alerts are the machines'
    assert allowed(SUSPEND_ROLE, "lambda:") == allowed(SUSPEND_ROLE, "states:") == []


# -------------------------------------------------------------------------------------------------------- IAM


@dataclass(frozen=True)
class SuspendPolicy:
    """The suspend role's statements, as IAM receives them (PARAMETERS' values for the tag keys)."""

    allows: list[dict[str, Any]]
    denies: list[dict[str, Any]]

    @classmethod
    def of(cls, template: dict[str, Any]) -> SuspendPolicy:
        found = [statement for _, statement, _ in statements(template, SUSPEND_ROLE)]
        return cls([s for s in found if s["Effect"] == "Allow"], [s for s in found if s["Effect"] == "Deny"])

    def allowed_actions(self) -> set[str]:
        return {action for statement in self.allows for action in as_list(statement["Action"])}

    def mutating(self) -> set[str]:
        return {a for a in self.allowed_actions() if not is_read(a) and not a.startswith(("logs:", "sns:"))}


def is_read(action: str) -> bool:
    return action.split(":", 1)[1].startswith(READ_VERBS)


def test_every_mutating_suspend_action_is_allowed_only_on_opted_in_resources_of_this_account(
    template: dict[str, Any],
) -> None:
    policy = SuspendPolicy.of(template)
    # opted in: the tag carries a value other than false ("true", or a schedule's name: [suspend.schedules])
    opt_in = {"aws:ResourceTag/kpi:suspend": "?*"}
    not_off = {"aws:ResourceTag/kpi:suspend": "false"}
    assert policy.mutating() >= {
        "ec2:StopInstances",
        "ec2:StartInstances",
        "rds:StopDBCluster",
        "rds:StartDBCluster",
        "rds:StopDBInstance",
        "rds:StartDBInstance",
        "autoscaling:UpdateAutoScalingGroup",
        "ecs:UpdateService",
        "application-autoscaling:RegisterScalableTarget",
        *TAGGING,
    }
    for statement in policy.allows:
        actions = set(as_list(statement["Action"]))
        resources = as_list(statement["Resource"])
        if "*" in resources:  # only reads take any resource
            assert all(is_read(a) for a in actions), statement["Sid"]
            assert "Condition" not in statement
            continue
        if not actions & policy.mutating():
            continue
        # tag-conditioned …
        assert statement["Condition"]["StringLike"] == opt_in, statement["Sid"]
        assert statement["Condition"]["StringNotEqualsIgnoreCase"] == not_off, statement["Sid"]
        # … and narrowed to this partition, Region and account, by the resource type each action acts on
        for resource in resources:
            service = resource.split(":")[2]
            assert resource.startswith(f"arn:aws:{service}:ap-northeast-1:123456789012:"), resource
            assert any(a.startswith(f"{service}:") for a in actions), (resource, actions)
        if actions & TAGGING:  # its own tags only: not the opt-in tag, not anybody else's
            assert actions <= TAGGING, statement["Sid"]
            assert statement["Condition"]["ForAllValues:StringLike"] == {"aws:TagKeys": ["kpi:suspend:*"]}
            assert statement["Condition"]["Null"] == {"aws:TagKeys": "false"}
    assert not any(fnmatch.fnmatchcase("kpi:suspend", pattern) for pattern in ["kpi:suspend:*"])


def test_production_is_denied_whatever_else_the_policy_allows(template: dict[str, Any]) -> None:
    policy = SuspendPolicy.of(template)
    (deny,) = policy.denies
    assert deny["Resource"] == "*"
    assert set(deny["Action"]) == policy.mutating()
    assert deny["Condition"] == {"StringEqualsIgnoreCase": {"aws:ResourceTag/Environment": ["prod", "production"]}}


def test_the_tag_keys_are_parameters_substituted_into_the_policy_text(template: dict[str, Any]) -> None:
    """IAM condition keys cannot be intrinsic functions: the acting policy is JSON text through Fn::Sub, and with
    other parameters the keys follow (here: another opt-in tag, another production tag)."""
    (act,) = [
        p
        for p in template["Resources"][SUSPEND_ROLE]["Properties"]["Policies"]
        if isinstance(p["PolicyDocument"], dict) and "Fn::Sub" in p["PolicyDocument"]
    ]
    other = {**PARAMETERS, "SuspendOptInTagKey": "team:nightly-off", "ProductionTagKey": "stage"}
    text = resolve(act["PolicyDocument"], other | {"ProductionTagValues": "live"}, {})
    document = json.loads(text)
    conditions = json.dumps([s.get("Condition", {}) for s in document["Statement"]])
    assert "aws:ResourceTag/team:nightly-off" in conditions
    assert '"team:nightly-off:*"' in conditions
    assert '"aws:ResourceTag/stage": ["live"]' in conditions
    assert "kpi:suspend" not in conditions


# ---------------------------------------------------------------------------------- running them on moto


@dataclass
class ApiCalls:
    """Every AWS API call made in this process while installed: (IAM service prefix, operation, parameters).
    Also plays AWS's slowness: :meth:`slow_start` makes DescribeDBClusters answer ``starting`` for a cluster."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    starting: dict[str, int] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)

    def slow_start(self, cluster: str, times: int) -> None:
        self.starting[cluster] = times

    def refuse(self, operation: str) -> None:
        """AWS answers ``operation`` with AccessDenied (as IAM would, for a resource without the opt-in tag)."""
        self.refused.add(operation)

    @contextmanager
    def installed(self) -> Iterator[ApiCalls]:
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def make_api_call(client: Any, operation: str, parameters: dict[str, Any]) -> Any:
            recorder.calls.append((client.meta.service_model.signing_name, operation, dict(parameters)))
            if operation in recorder.refused:
                error = {"Error": {"Code": "AccessDenied", "Message": f"not authorized to perform {operation}"}}
                raise botocore.exceptions.ClientError(error, operation)
            answer = original(client, operation, parameters)
            if operation == "DescribeDBClusters":
                for cluster in answer.get("DBClusters", []):
                    left = recorder.starting.get(cluster["DBClusterIdentifier"], 0)
                    if left > 0 and cluster["Status"] == "available":
                        recorder.starting[cluster["DBClusterIdentifier"]] = left - 1
                        cluster["Status"] = "starting"  # what AWS shows for minutes after a start
            return answer

        with mock.patch.object(botocore.client.BaseClient, "_make_api_call", make_api_call):
            yield self

    def iam_actions(self) -> set[str]:
        """The actions the suspend Lambda needed: Step Functions' own calls (Lambda, SNS alerts) left out."""
        return {f"{service}:{operation}" for service, operation, _ in self.calls if service not in ("lambda", "states")}


@dataclass
class Aws:
    """moto in-process with what the template deploys for the suspend module: the suspend function (our handler,
    run by :class:`LambdaStandIn`), its report topic and the alert topic (each read through an SQS queue)."""

    tmp: Path
    role: str
    substitutions: dict[str, str]
    reports_queue: str
    alerts_queue: str
    dev: DevEnvironment

    def configure(self, **table: Any) -> None:
        """kpi.toml's [suspend] table, as the ops package bundles it (KPI_CONFIG points here)."""
        values = {"accounts": [ACCOUNT], "holidays": "", **table}  # no national holidays: any day works
        lines = ["[suspend]", *(f"{key} = {toml_value(value)}" for key, value in values.items())]
        (self.tmp / "kpi.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def deploy(self, name: str) -> str:
        text = sfn_tools.substitute(sfn_tools.definition_text(f"{name}.asl.json"), self.substitutions)
        sfn = boto3.client("stepfunctions")
        return sfn_tools.create_state_machine(sfn, f"{name}-{uuid.uuid4().hex[:6]}", no_waits(text), self.role)

    def run(self, machine: str, payload: dict[str, Any]) -> dict[str, Any]:
        sfn = boto3.client("stepfunctions")
        return sfn_tools.run_execution(sfn, machine, f"x-{uuid.uuid4().hex[:8]}", payload, timeout=120)

    def messages(self, queue: str) -> list[dict[str, str]]:
        sqs, found = boto3.client("sqs"), list[dict[str, str]]()
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                body = json.loads(message["Body"])
                found.append({"subject": body.get("Subject", ""), "message": body["Message"]})
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return found


def toml_value(value: Any) -> str:
    """Strings, lists and inline tables of them, in TOML (their JSON spelling, but for the tables)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(value)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # in-process moto, not the session's moto server
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name in [n for n in os.environ if n.startswith("KPI_SUSPEND_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KPI_CONFIG", str(tmp_path / "kpi.toml"))
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        queues = {}
        for name in ("suspend-reports", "alerts"):
            topic = sns.create_topic(Name=name)["TopicArn"]
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "false"})
            queues[name] = (topic, url)
        monkeypatch.setenv("KPI_SUSPEND_TOPIC_ARN", queues["suspend-reports"][0])  # the template's variable
        role = sfn_tools.lambda_role(boto3.client("iam"))
        function = sfn_tools.create_function(
            boto3.client("lambda"), "kpi-suspend", "pipeline.lambdas.suspend.handler", role
        )
        found = Aws(
            tmp=tmp_path,
            role=role,
            substitutions={"SuspendFunctionArn": function, "AlertTopicArn": queues["alerts"][0]},
            reports_queue=queues["suspend-reports"][1],
            alerts_queue=queues["alerts"][1],
            dev=DevEnvironment(),
        )
        found.configure()
        yield found


def payloads(lambdas: LambdaStandIn) -> list[tuple[str, str]]:
    return [
        (str(i.event.get("action", i.event.get("source"))), str(i.event.get("phase", ""))) for i in lambdas.invocations
    ]


def test_suspend_then_resume_stops_everything_opted_in_and_brings_it_back_databases_first(
    aws: Aws, template: dict[str, Any]
) -> None:
    dev = aws.dev
    instance = dev.instance(OPT_IN)
    untagged = dev.instance({})
    production = dev.instance({**OPT_IN, **PROD})
    service = dev.service("web", desired=3, scaling=(2, 6), tags=OPT_IN)
    group = dev.group("workers", sizes=(1, 2, 4), tags=OPT_IN)
    cluster = dev.aurora("dev-aurora", tags=OPT_IN)
    before = dev.snapshot()
    suspend, resume = aws.deploy("suspend"), aws.deploy("resume")

    api = ApiCalls()
    with LambdaStandIn().installed() as lambdas, api.installed():
        suspended = aws.run(suspend, {})
    assert suspended["status"] == "SUCCEEDED", suspended.get("cause")
    assert payloads(lambdas) == [("suspend", "apps"), ("suspend", "databases")]
    assert dev.instance_state(instance) == "stopped"
    assert dev.service_state(service)["desired"] == 0
    assert dev.group_state(group)["sizes"] == (0, 0, 0)
    assert dev.cluster_status(cluster) == "stopped"
    assert (dev.instance_state(untagged), dev.instance_state(production)) == ("running", "running")

    api.slow_start(cluster, 3)  # the start phase's own look, then two checks of the loop: "starting"
    with LambdaStandIn().installed() as lambdas, api.installed():
        resumed = aws.run(resume, {})
    assert resumed["status"] == "SUCCEEDED", resumed.get("cause")
    assert payloads(lambdas) == [
        ("start", "databases"),
        ("check", "databases"),
        ("check", "databases"),
        ("check", "databases"),  # available: only now the apps
        ("start", "apps"),
    ]
    output = json.loads(resumed["output"])
    assert output["checks"] == {"count": 2}
    assert output["databases"]["report"]["pending"] == [cluster]
    assert [a["id"] for a in output["apps"]["report"]["acted"]] == [instance, group, service]  # suspend's reverse
    assert dev.snapshot() == before  # back exactly: capacities, scaling limits, tags (the last action aside)

    subjects = [m["subject"] for m in aws.messages(aws.reports_queue)]
    assert [s.split(":")[0] for s in subjects] == [
        "kpi suspend suspend apps",
        "kpi suspend suspend databases",
        "kpi suspend start databases",
        "kpi suspend start apps",
    ]
    assert aws.messages(aws.alerts_queue) == []

    # Every call the handler made is one the template's policy allows (conditions: the tests above).
    needed = api.iam_actions()
    assert {"ec2:StopInstances", "rds:StartDBCluster", "ecs:UpdateService", "sts:GetCallerIdentity"} <= needed
    assert needed - SuspendPolicy.of(template).allowed_actions() == set()
    assert needed & TAGGING  # its own tags: written on suspend, cleared on start
    tagged = [params for _, op, params in api.calls if op in ("CreateTags", "AddTagsToResource", "TagResource")]
    keys = {t.get("Key", t.get("key")) for params in tagged for t in params.get("Tags", params.get("tags", []))}
    assert keys
    assert all(fnmatch.fnmatchcase(key, "kpi:suspend:*") for key in keys)


def test_a_resume_on_a_holiday_starts_nothing(aws: Aws) -> None:
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    days = [str(today), str(today + timedelta(days=1))]  # should the day turn in Tokyo during the test
    aws.configure(extra_holidays=[{"date": day, "name": "office closed"} for day in days])
    instance = aws.dev.instance(OPT_IN)
    cluster = aws.dev.aurora("dev-aurora", tags=OPT_IN)
    boto3.client("ec2").stop_instances(InstanceIds=[instance])
    boto3.client("rds").stop_db_cluster(DBClusterIdentifier=cluster)
    resume = aws.deploy("resume")
    with LambdaStandIn().installed() as lambdas:
        execution = aws.run(resume, {})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert payloads(lambdas) == [("start", "databases")]
    assert json.loads(execution["output"])["databases"]["report"]["holiday"] == "office closed"
    assert aws.dev.cluster_status(cluster) == "stopped"
    assert aws.dev.instance_state(instance) == "stopped"
    (report,) = aws.messages(aws.reports_queue)
    assert report["subject"] == "kpi suspend start: holiday, nothing done"


def test_databases_that_never_become_available_are_alerted_after_30_checks_and_no_app_starts(aws: Aws) -> None:
    instance = aws.dev.instance(OPT_IN)
    cluster = aws.dev.aurora("dev-aurora", tags=OPT_IN)
    boto3.client("ec2").stop_instances(InstanceIds=[instance])
    boto3.client("rds").stop_db_cluster(DBClusterIdentifier=cluster)
    resume = aws.deploy("resume")
    api = ApiCalls()
    api.slow_start(cluster, 1000)
    with LambdaStandIn().installed() as lambdas, api.installed():
        execution = aws.run(resume, {})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "DatabasesNotAvailable"
    assert f'still pending: ["{cluster}"]' in execution["cause"]
    assert payloads(lambdas).count(("check", "databases")) == 30
    assert ("start", "apps") not in payloads(lambdas)
    assert aws.dev.instance_state(instance) == "stopped"
    (alert,) = aws.messages(aws.alerts_queue)
    assert alert["subject"] == "kpi-pipeline: the resume failed"
    assert "DatabasesNotAvailable" in alert["message"]


def test_a_database_that_cannot_be_started_fails_the_resume_at_once_and_no_app_starts(aws: Aws) -> None:
    instance = aws.dev.instance(OPT_IN)
    cluster = aws.dev.aurora("dev-aurora", tags=OPT_IN)
    boto3.client("ec2").stop_instances(InstanceIds=[instance])
    boto3.client("rds").stop_db_cluster(DBClusterIdentifier=cluster)
    resume = aws.deploy("resume")
    api = ApiCalls()
    api.refuse("StartDBCluster")
    with LambdaStandIn().installed() as lambdas, api.installed():
        execution = aws.run(resume, {})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "ResumeIncomplete"
    assert "not authorized to perform StartDBCluster" in execution["cause"]
    assert payloads(lambdas) == [("start", "databases")]  # no check loop, no apps
    assert aws.dev.instance_state(instance) == "stopped"
    (report,) = aws.messages(aws.reports_queue)
    assert "NEEDS ATTENTION" in report["subject"]


def test_a_database_aws_started_after_7_days_is_stopped_again_once_it_is_available(aws: Aws) -> None:
    """The RDS event (Saturday noon in Tokyo: inside the suspend window) is what EventBridge delivers; the
    cluster is still starting for the first two tries, then stopped by the third."""
    cluster = aws.dev.aurora("dev-aurora", tags=OPT_IN)  # available: AWS has just started it
    suspend = aws.deploy("suspend")
    api = ApiCalls()
    api.slow_start(cluster, 2)
    event = rds_event(cluster, time="2026-11-21T03:00:00Z")
    with LambdaStandIn().installed() as lambdas, api.installed(), sfn_tools.recorded_retry_waits() as waits:
        execution = aws.run(suspend, event)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert waits == []  # no retry: the loop, not Retry, waits for the database
    assert [i.event for i in lambdas.invocations] == [event] * 3  # the event, unchanged, each time
    assert aws.dev.cluster_status(cluster) == "stopped"
    reports = [json.loads(m["message"]) for m in aws.messages(aws.reports_queue)]
    assert [(r["trigger"], r["pending"], [a["id"] for a in r["acted"]]) for r in reports] == [
        ("RDS-EVENT-0153", [cluster], []),
        ("RDS-EVENT-0153", [cluster], []),
        ("RDS-EVENT-0153", [], [cluster]),
    ]
    assert api.iam_actions() >= {"rds:StopDBCluster"}


def test_a_handler_error_that_needs_a_person_is_alerted_at_once_and_fails_the_execution(aws: Aws) -> None:
    aws.configure(accounts=["210987654321"])  # not this account: the handler refuses before touching anything
    instance = aws.dev.instance(OPT_IN)
    suspend = aws.deploy("suspend")
    with LambdaStandIn().installed() as lambdas, sfn_tools.recorded_retry_waits() as waits:
        execution = aws.run(suspend, {"dryRun": False})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "SuspendError"
    assert [i.error for i in lambdas.invocations] == ["SuspendError"]  # not retryable: tried once (the contract)
    assert waits == []
    assert aws.dev.instance_state(instance) == "running"
    (alert,) = aws.messages(aws.alerts_queue)
    assert alert["subject"] == "kpi-pipeline: the suspend failed"
    assert "is not in the allow-list" in alert["message"]
