"""The clone module's AWS side: the clone state machine, its place in the SAM template, the IAM policies of the
two clone Lambdas and of the staging role (infra/clone-staging.yaml) — checked against the definitions, and
against what the code really calls.

The machine runs on moto's in-process Step Functions interpreter with the real handlers
(``pipeline.lambdas.clone`` and ``pipeline.lambdas.clone_database``, tests/stepfunctions.py's LambdaStandIn),
which run the real workflow and worker against moto (tests/cloning.py's two accounts) and MariaDB. Two stand-ins
only, both at the network edge: tests.cloning.SharedRestore for staging's restore of production's shared
snapshot (moto cannot restore across accounts), and tests.cloning.Loopback for the MySQL connection to a
cluster endpoint (moto's endpoints resolve nowhere). Failures are made by the stand-in's ``inject`` (an
invocation that did its work and then failed) or by the data itself (a column no rule covers). A whole clone
is run with every AWS API call recorded: each must be an action the template's (or the staging template's)
policy for that caller allows.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.client
import pytest
from moto import mock_aws

from infra import build as infra_build
from pipeline.clone.config import CloneConfig, load_config
from pipeline.clone.names import Names, Tags
from pipeline.clone.workflow import Progress
from pipeline.lambdas.errorlog import RetryableError
from tests import stepfunctions as sfn_tools
from tests.clone_masking import email_of
from tests.cloning import (
    SOURCE,
    STAGING,
    Accounts,
    Loopback,
    SharedRestore,
    clone_database,
    clone_variables,
    reader,
    record_target,
    set_up_accounts,
)
from tests.conftest import MySqlServer
from tests.stepfunctions import REGION, LambdaStandIn
from tests.test_clone_masking import assert_masked_exactly_once
from tests.test_template import (
    NO_VALUE,
    PARAMETERS,
    STAGING_TEMPLATE,
    as_list,
    built,
    resolve,
    resources_of,
    statements,
    variables,
)

# Infrastructure (the clone state machine executed on moto): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
NEXT_VALUES = {"wait", "mask", "health", "done"}  # Progress.next, as pipeline.clone.workflow documents it
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
CLONE_ROLES = ("CloneRole", "CloneDatabaseRole")
CREATED_BY = {"aws:ResourceTag/kpi:clone:created-by": "kpi-pipeline"}


def definition() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(sfn_tools.definition_text("clone.asl.json"))
    return parsed


def lambda_tasks(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: state
        for name, state in machine["States"].items()
        if state["Type"] == "Task" and state["Resource"] == LAMBDA_INVOKE
    }


# ------------------------------------------------------------------------------------------------- definition


def test_a_new_clone_starts_and_a_run_id_resumes() -> None:
    states = definition()["States"]
    assert definition()["StartAt"] == "Trigger"
    assert states["Trigger"]["Choices"] == [{"Variable": "$.run", "IsPresent": True, "Next": "Resume"}]
    assert states["Trigger"]["Default"] == "NewClone"
    assert states["NewClone"] == {**states["NewClone"], "Parameters": {"run": "", "health": {}}, "Next": "Start"}
    assert states["Resume"] == {**states["Resume"], "Parameters": {"run.$": "$.run", "health": {}}, "Next": "Start"}


def test_each_task_sends_what_its_handler_accepts() -> None:
    tasks = lambda_tasks(definition())
    payloads = {
        name: (task["Parameters"]["FunctionName"], task["Parameters"]["Payload"]) for name, task in tasks.items()
    }
    assert payloads == {
        "Start": ("${CloneFunctionArn}", {"action": "start", "run.$": "$.run"}),  # "" for a new clone
        "Advance": ("${CloneFunctionArn}", {"action": "advance", "run.$": "$.run", "health.$": "$.health"}),
        "Mask": ("${CloneDatabaseFunctionArn}", {"action": "mask", "run.$": "$.run"}),
        "Health": ("${CloneDatabaseFunctionArn}", {"action": "health", "run.$": "$.run"}),
    }


def test_run_and_health_are_in_the_state_whenever_advance_reads_them() -> None:
    """A JSONPath to a missing field fails an execution outright (States.Runtime: no Catch, no alert), so every
    way into Advance must carry $.run and $.health: the clone Lambda's answers reset health to {} and keep the
    run (ResultPath $), the database tasks add their answers beside them, the health answer is used once."""
    states = definition()["States"]
    for name in ("Start", "Advance"):
        selector = states[name]["ResultSelector"]
        assert states[name]["ResultPath"] == "$"
        assert selector == {
            "run.$": "$.Payload.run",
            "phase.$": "$.Payload.phase",
            "next.$": "$.Payload.next",
            "wait.$": "$.Payload.wait",
            "message.$": "$.Payload.message",
            "health": {},
        }
        assert states[name]["Next"] == "WhatNext"
    assert states["Mask"]["ResultPath"] == "$.mask"
    assert states["Health"]["ResultPath"] == "$.health"
    assert states["Health"]["ResultSelector"]["healthy.$"] == "$.Payload.healthy"
    into_advance = sorted(name for name, state in states.items() if state.get("Next") == "Advance")
    assert into_advance == ["Health", "Mask", "MaskTask", "WaitForAws"]
    assert states["MaskTask"]["ResultPath"] == "$.mask"
    assert sorted(name for name, state in states.items() if state.get("Next") == "Start") == ["NewClone", "Resume"]
    assert states["WaitForAws"] == {**states["WaitForAws"], "Type": "Wait", "SecondsPath": "$.wait"}


def test_every_answer_of_the_clone_lambda_has_its_state_and_nothing_else_loops() -> None:
    choices = definition()["States"]["WhatNext"]
    rules = {rule["StringEquals"]: rule["Next"] for rule in choices["Choices"]}
    assert all(rule["Variable"] == "$.next" for rule in choices["Choices"])
    assert set(rules) == NEXT_VALUES
    assert rules == {"done": "Done", "mask": "MaskWhere", "health": "Health", "wait": "WaitForAws"}
    assert choices["Default"] == "UnknownStep"
    assert definition()["States"]["UnknownStep"]["Next"] == "Alert"
    assert set(Progress.__dataclass_fields__) == {"run", "phase", "next", "wait", "message"}


def test_the_mask_runs_where_the_stack_says_in_the_lambda_or_as_one_fargate_task() -> None:
    """CloneMaskRunner (lambda | ecs) is substituted into the definition; a Choice sends mask to the Lambda's
    slices or to ecs:runTask.sync, which waits for the one task that masks with no time limit."""
    states = definition()["States"]
    assert states["MaskWhere"] == {**states["MaskWhere"], "Result": "${CloneMaskRunner}", "ResultPath": "$.runner"}
    assert states["MaskRunner"]["Choices"] == [{"Variable": "$.runner", "StringEquals": "ecs", "Next": "MaskTask"}]
    assert states["MaskRunner"]["Default"] == "Mask"
    task = states["MaskTask"]
    assert task["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    assert task["Parameters"] == {
        "Cluster": "${CloneMaskClusterArn}",
        "TaskDefinition": "${CloneMaskTaskDefinitionArn}",
        "LaunchType": "FARGATE",
        "NetworkConfiguration": {
            "AwsvpcConfiguration": {
                "Subnets.$": "States.StringSplit('${CloneMaskSubnets}', ',')",
                "SecurityGroups.$": "States.StringSplit('${CloneMaskSecurityGroups}', ',')",
                "AssignPublicIp": "DISABLED",
            }
        },
        "Overrides": {"ContainerOverrides": [{"Name": "mask", "Command.$": "States.Array('mask', $.run)"}]},
    }
    assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Alert"}]
    assert task["Next"] == "Advance"


def test_transient_failures_are_retried_with_backoff_and_the_others_alerted() -> None:
    states = definition()["States"]
    for name, task in lambda_tasks(definition()).items():
        service, retryable = task["Retry"]
        assert set(service["ErrorEquals"]) == LAMBDA_SERVICE_ERRORS, name
        assert retryable["ErrorEquals"] == [RetryableError.__name__], name  # the handlers' name for "try again"
        assert retryable["BackoffRate"] > 1
        assert retryable["MaxAttempts"] >= 3
        assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Alert"}]
        assert "TimeoutSeconds" not in task  # the Lambdas' own timeouts; the mask stops itself 90 s before
    assert states["Alert"]["Parameters"]["TopicArn"] == "${AlertTopicArn}"
    assert "$.run" in states["Alert"]["Parameters"]["Message.$"]  # the run to resume
    assert states["Alert"]["Next"] == "Failed"
    assert states["Failed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


# ---------------------------------------------------------------------------------------------------- template


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return built(tmp_path_factory.mktemp("template"))


def test_nothing_of_the_clone_is_deployed_unless_it_is_enabled(template: dict[str, Any]) -> None:
    assert template["Parameters"]["CloneEnabled"]["Default"] == "false"
    assert template["Conditions"]["CloneOn"] == {"Fn::Equals": [{"Ref": "CloneEnabled"}, "true"]}
    clone = {name: r for name, r in template["Resources"].items() if name.startswith("Clone")}
    assert set(clone) >= {
        "CloneFunction",
        "CloneDatabaseFunction",
        "CloneRole",
        "CloneDatabaseRole",
        "CloneStateMachine",
        "CloneStateMachineRole",
        "CloneFailedAlarm",
    }
    ecs = {name for name in clone if name.startswith("CloneMask")}  # the Fargate masking task's: CloneOn and ecs
    assert ecs == {"CloneMaskCluster", "CloneMaskTaskDefinition", "CloneMaskLogGroup", "CloneMaskExecutionRole"}
    assert template["Conditions"]["CloneMaskOnEcs"] == {
        "Fn::And": [{"Condition": "CloneOn"}, {"Fn::Equals": [{"Ref": "CloneMaskRunner"}, "ecs"]}]
    }
    assert {name: r.get("Condition") for name, r in clone.items()} == {
        name: "CloneMaskOnEcs" if name in ecs else "CloneOn" for name in clone
    }
    assert template["Resources"]["RdsApiEndpoint"]["Condition"] == "CreateCloneEndpoints"
    outputs = {name: o for name, o in template["Outputs"].items() if name.startswith("Clone")}
    assert {o.get("Condition") for o in outputs.values()} == {"CloneOn"}
    rule = template["Rules"]["CloneNeedsItsSettings"]
    required = {
        a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in rule["Assertions"] if "Fn::Not" in a["Assert"]
    }
    assert {
        f"Clone{key}" for key in ("SourceCluster", "MaskingKeySecretArn", "TargetRoleArn", "RecordName")
    } <= required


def test_both_functions_get_every_key_of_clone_as_a_variable(template: dict[str, Any]) -> None:
    """The variables, read by the module's own configuration loader: every key of [clone] (but the CLI's
    state_machine) comes from a parameter, the masking key as its secret's ARN."""
    clone = variables(template, "CloneFunction")
    database = variables(template, "CloneDatabaseFunction")
    assert database == {**clone, "KPI_CLONE_RULES": "masking"}
    keys = {f.name for f in fields(CloneConfig)} - {"origin", "state_machine", "rules"}
    assert set(clone) == {f"KPI_CLONE_{key.upper()}" for key in keys}
    config = load_config(Path("/nonexistent/kpi.toml"), environ=database)
    assert config.source_account == PARAMETERS["AWS::AccountId"]
    assert config.target_role_arn == PARAMETERS["CloneTargetRoleArn"]
    assert config.masking_key_secret == PARAMETERS["CloneMaskingKeySecretArn"]
    assert config.target_security_groups == tuple(PARAMETERS["CloneTargetSecurityGroupIds"].split(","))
    assert (config.record_ttl, config.poll_seconds, config.rules) == (60, 60, "masking")
    assert config.target_cluster_prefix == template["Parameters"]["CloneTargetClusterPrefix"]["Default"]
    staging = infra_build.read_template(STAGING_TEMPLATE)
    assert staging["Parameters"]["ClusterPrefix"]["Default"] == config.target_cluster_prefix


def test_the_clone_lambda_runs_outside_the_vpc_and_the_database_lambda_beside_the_exporter(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    clone, database = resources["CloneFunction"]["Properties"], resources["CloneDatabaseFunction"]["Properties"]
    assert (clone["Handler"], clone["CodeUri"]) == ("pipeline.lambdas.clone.handler", "lambda/ops-arm64.zip")
    assert "VpcConfig" not in clone  # AWS APIs only
    assert clone["Timeout"] <= 900
    assert (database["Handler"], database["CodeUri"]) == (
        "pipeline.lambdas.clone_database.handler",
        "lambda/exporter-arm64.zip",
    )
    assert (database["Timeout"], database["MemorySize"] >= 512) == (900, True)
    exporter = resources["ExporterFunction"]["Properties"]["VpcConfig"]
    assert database["VpcConfig"] == {
        "SubnetIds": exporter["SubnetIds"],
        "SecurityGroupIds": [*exporter["SecurityGroupIds"], {"Fn::Sub": "${CloneWorkerSecurityGroupId}"}],
    }
    machine = resources["CloneStateMachine"]["Properties"]
    assert machine["DefinitionSubstitutions"] == {
        "CloneFunctionArn": {"Fn::GetAtt": ["CloneFunction", "Arn"]},
        "CloneDatabaseFunctionArn": {"Fn::GetAtt": ["CloneDatabaseFunction", "Arn"]},
        "AlertTopicArn": {"Ref": "AlertTopic"},
        # the Fargate masking task runs where the Lambda does: its subnets and security groups
        "CloneMaskRunner": {"Ref": "CloneMaskRunner"},
        "CloneMaskClusterArn": {"Fn::If": ["CloneMaskOnEcs", {"Fn::GetAtt": ["CloneMaskCluster", "Arn"]}, "none"]},
        "CloneMaskTaskDefinitionArn": {"Fn::If": ["CloneMaskOnEcs", {"Ref": "CloneMaskTaskDefinition"}, "none"]},
        "CloneMaskSubnets": {"Fn::Join": [",", exporter["SubnetIds"]]},
        "CloneMaskSecurityGroups": {"Fn::Sub": "${VpcSecurityGroupId},${CloneWorkerSecurityGroupId}"},
    }
    assert exporter["SecurityGroupIds"] == [{"Ref": "VpcSecurityGroupId"}]
    task = resources["CloneMaskTaskDefinition"]["Properties"]
    assert (task["RequiresCompatibilities"], task["NetworkMode"]) == (["FARGATE"], "awsvpc")
    assert task["TaskRoleArn"] == {"Fn::GetAtt": ["CloneDatabaseRole", "Arn"]}  # the Lambda's permissions exactly
    assert task["RuntimePlatform"] == {"OperatingSystemFamily": "LINUX", "CpuArchitecture": "ARM64"}  # --arch
    (container,) = task["ContainerDefinitions"]
    assert container["Name"] == "mask"  # the name the state machine's ContainerOverrides use
    lambda_variables = template["Resources"]["CloneDatabaseFunction"]["Properties"]["Environment"]["Variables"]
    assert {e["Name"]: e["Value"] for e in container["Environment"]} == lambda_variables  # infra/build.py copies
    trust = resources["CloneDatabaseRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"]["Service"] for s in trust] == [["lambda.amazonaws.com", "ecs-tasks.amazonaws.com"]]
    assert machine["Logging"]["Level"] == "ERROR"


def allowed(template: dict[str, Any], role: str, prefix: str) -> list[Any]:
    """The resources of the role's statements with an action starting with ``prefix``, parameters resolved."""
    return [
        resolved(resource)
        for _, statement, _ in statements(template, role)
        if any(action.startswith(prefix) for action in as_list(statement["Action"]))
        for resource in as_list(statement["Resource"])
    ]


def resolved(value: Any) -> Any:
    try:
        return resolve(value, PARAMETERS, {})
    except KeyError:  # an attribute of a resource (${CloneFunction.Arn}): as written
        return value


def test_the_state_machine_invokes_only_the_clone_lambdas(template: dict[str, Any]) -> None:
    assert allowed(template, "CloneStateMachineRole", "lambda:") == [
        {"Fn::GetAtt": ["CloneFunction", "Arn"]},
        {"Fn::Sub": "${CloneFunction.Arn}:*"},
        {"Fn::GetAtt": ["CloneDatabaseFunction", "Arn"]},
        {"Fn::Sub": "${CloneDatabaseFunction.Arn}:*"},
    ]
    assert allowed(template, "CloneStateMachineRole", "sns:") == [{"Ref": "AlertTopic"}]
    for role in CLONE_ROLES:
        assert allowed(template, role, "lambda:") == allowed(template, role, "states:") == []


def test_production_reaches_staging_only_through_the_one_role_and_never_touches_dns(template: dict[str, Any]) -> None:
    assert allowed(template, "CloneRole", "sts:AssumeRole") == [PARAMETERS["CloneTargetRoleArn"]]
    for role in resources_of(template, "AWS::IAM::Role"):
        assert allowed(template, role, "route53:") == [], role
        if role != "CloneRole":
            assert allowed(template, role, "sts:AssumeRole") == [], role


def rds_arn(kind: str, name: str, account: str = "123456789012") -> str:
    return f"arn:aws:rds:ap-northeast-1:{account}:{kind}:{name}"


def test_production_rds_changes_only_what_the_module_created_or_names_kpi_clone(template: dict[str, Any]) -> None:
    """Modify, share and delete: only kpi-clone-* resources carrying the module's tag. Create, restore and copy:
    only into kpi-clone-* names; the production cluster is only a source (a snapshot of it, a clone of it).
    Tags: kpi:clone:* keys only."""
    source = rds_arn("cluster", PARAMETERS["CloneSourceCluster"])
    kpi_clone = {rds_arn(kind, "kpi-clone-*") for kind in ("cluster", "db", "cluster-snapshot")}
    used_as_is = {rds_arn(kind, "*") for kind in ("cluster-pg", "pg", "og")} | {
        rds_arn("subgrp", PARAMETERS["CloneSubnetGroup"])
    }
    for role in CLONE_ROLES:
        for _, statement, _ in statements(template, role):
            actions = {a for a in as_list(statement["Action"]) if a.startswith("rds:")}
            writes = {a for a in actions if not a.split(":")[1].startswith(("Describe", "List"))}
            if not writes:
                continue
            resources = {resolve(r, PARAMETERS, {}) for r in as_list(statement["Resource"])}
            condition = statement.get("Condition", {})
            if writes & {"rds:AddTagsToResource"}:
                assert writes == {"rds:AddTagsToResource"}, statement["Sid"]
                assert condition["ForAllValues:StringLike"]["aws:TagKeys"] in (["kpi:clone:*"], ["kpi:clone:masked*"])
                assert condition["Null"] == {"aws:TagKeys": "false"}
                assert resources <= kpi_clone, statement["Sid"]
            elif any(a.split(":")[1].startswith(("Modify", "Delete")) for a in writes):
                assert all(a.split(":")[1].startswith(("Modify", "Delete")) for a in writes), statement["Sid"]
                assert condition == {"StringEquals": CREATED_BY}, statement["Sid"]
                assert resources <= kpi_clone, statement["Sid"]
            else:  # creating: into kpi-clone-* names; the production cluster and its snapshots only as sources
                assert all(a.split(":")[1].startswith(("Create", "Restore", "Copy")) for a in writes)
                sources = {source}
                if writes & {"rds:RestoreDBClusterFromSnapshot"}:
                    sources.add(rds_arn("cluster-snapshot", "*"))
                assert resources <= kpi_clone | sources | used_as_is, statement["Sid"]
                assert resources & kpi_clone, statement["Sid"]


def test_secrets_and_keys_are_those_of_the_clone_only(template: dict[str, Any]) -> None:
    own = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kpi-clone/*"
    key = PARAMETERS["CloneMaskingKeySecretArn"]
    assert set(allowed(template, "CloneRole", "secretsmanager:")) == {own}
    # The clone Lambda never reads the key; of passwords, only the secrets it wrote itself (kpi-clone/*, tagged as
    # the module's): the staging logins' new passwords, which it copies to staging right before the DNS switch.
    reads = [
        s for _, s, _ in statements(template, "CloneRole") if "secretsmanager:GetSecretValue" in as_list(s["Action"])
    ]
    assert [(as_list(s["Action"]), resolved(s["Resource"]), s["Condition"]) for s in reads] == [
        (["secretsmanager:GetSecretValue"], own, {"StringEquals": CREATED_BY})
    ]
    assert set(allowed(template, "CloneDatabaseRole", "secretsmanager:")) == {own, key}
    for _, statement, _ in statements(template, "CloneRole"):
        actions = set(as_list(statement["Action"]))
        if not any(a.startswith("kms:") for a in actions):
            continue
        if actions == {"kms:DescribeKey"}:  # which kind of key a snapshot has: read only
            assert statement["Resource"] == {
                "Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"
            }
            continue
        assert statement["Resource"] in ({"Ref": "CloneKmsKeyArn"}, {"Ref": "CloneSourceKmsKeyArn"})
        assert statement["Condition"] == {
            "StringEquals": {"kms:ViaService": {"Fn::Sub": "rds.${AWS::Region}.amazonaws.com"}}
        }


# ---------------------------------------------------------------------------------------------- staging template


@pytest.fixture(scope="module")
def staging() -> dict[str, Any]:
    return infra_build.read_template(STAGING_TEMPLATE)


STAGING_PARAMETERS = {
    **PARAMETERS,
    "AWS::AccountId": "210987654321",
    "ProductionCloneRoleArn": "arn:aws:iam::123456789012:role/kpi-pipeline-prod-clone",
    "ClusterPrefix": "staging-db",
    "CloneKmsKeyArn": PARAMETERS["CloneKmsKeyArn"],
    "RecordName": "db.staging.internal",
    "HostedZoneId": "Z0123456789ABC",
    "ExternalId": "",
    "TargetKmsKeyArn": "arn:aws:kms:ap-northeast-1:210987654321:key/abcd1234-12ab-34cd-56ef-1234567890ab",
}


def staging_statements(staging: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in staging["Resources"]["CloneRole"]["Properties"]["Policies"]:
        for item in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in item:
                found += [branch for branch in item["Fn::If"][1:] if branch != NO_VALUE]
            else:
                found.append(item)
    return found


def test_the_staging_role_trusts_the_production_clone_role_alone(staging: dict[str, Any]) -> None:
    (trust,) = staging["Resources"]["CloneRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert resolve(trust["Principal"]["AWS"], {**STAGING_PARAMETERS, "Production": "123456789012"}, {}) == (
        "arn:aws:iam::123456789012:root"
    )
    assert trust["Condition"]["ArnEquals"] == {"aws:PrincipalArn": {"Ref": "ProductionCloneRoleArn"}}
    assert trust["Condition"]["StringEquals"]["Fn::If"][0] == "HasExternalId"


def test_the_staging_role_may_change_only_its_own_clusters_secrets_and_the_one_record(staging: dict[str, Any]) -> None:
    for statement in staging_statements(staging):
        actions = set(as_list(statement["Action"]))
        assert not any("*" in action for action in actions)
        resources = [resolve(r, STAGING_PARAMETERS, {"CreateZone": False}) for r in as_list(statement["Resource"])]
        condition = statement.get("Condition", {})
        if "*" in resources:
            assert actions == {"sts:GetCallerIdentity"}
            continue
        verbs = {a.split(":")[1] for a in actions}
        if verbs & {"ModifyDBCluster", "DeleteDBCluster", "DeleteDBInstance", "PutSecretValue", "DeleteSecret"}:
            assert condition == {"StringEquals": CREATED_BY}, statement["Sid"]
        if "AddTagsToResource" in verbs:
            assert condition["ForAllValues:StringLike"] == {"aws:TagKeys": ["kpi:clone:*"]}
            assert {"aws:ResourceTag/kpi:clone:created-by", "aws:RequestTag/kpi:clone:created-by"} & set(
                condition["StringEquals"]
            )
        if verbs & {"RestoreDBClusterFromSnapshot", "CreateDBInstance"}:
            created = [r for r in resources if r.split(":")[5] in ("cluster", "db")]
            assert created, statement["Sid"]
            assert all(r.endswith(":staging-db-*") for r in created), statement["Sid"]
            snapshots = [r for r in resources if r.split(":")[5] == "cluster-snapshot"]
            assert snapshots in ([], [rds_arn("cluster-snapshot", "kpi-clone-*")])  # production's, shared
        if any(a.startswith("secretsmanager:") for a in actions):
            assert resources == ["arn:aws:secretsmanager:ap-northeast-1:210987654321:secret:kpi-clone/*"]
        if any(a.startswith("route53:") for a in actions):
            assert resources == ["arn:aws:route53:::hostedzone/Z0123456789ABC"]
            if "route53:ChangeResourceRecordSets" in actions:
                assert condition == {
                    "ForAllValues:StringEquals": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [{"Ref": "RecordName"}],
                        "route53:ChangeResourceRecordSetsRecordTypes": ["CNAME"],
                        "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
                    }
                }
        if any(a.startswith("kms:") for a in actions):
            assert resources in ([PARAMETERS["CloneKmsKeyArn"]], [STAGING_PARAMETERS["TargetKmsKeyArn"]])
            assert "kms:ViaService" in condition["StringEquals"]


# ------------------------------------------------------------------------------------- the machine, on moto


FUNCTIONS = {
    "kpi-clone": "pipeline.lambdas.clone.handler",
    "kpi-clone-database": "pipeline.lambdas.clone_database.handler",
}
CLONE, DATABASE = FUNCTIONS
KEY = b"k" * 32  # the masking key set_up_accounts stores
GONE = "20261001-0000"  # a run id nothing exists of


@dataclass
class Machine:
    """The clone state machine on moto's in-process Step Functions, its two Lambdas the real handlers, and the
    world they work on: both accounts (tests/cloning.py) and the shop database on MariaDB behind every cluster
    endpoint. ``restore`` is the stand-in for staging's restore of the shared snapshot."""

    arn: str
    alerts_queue: str
    accounts: Accounts
    database: str
    loopback: Loopback
    restore: SharedRestore

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        sfn = boto3.client("stepfunctions")
        return sfn_tools.run_execution(sfn, self.arn, f"x-{uuid.uuid4().hex[:8]}", payload)

    def alerts(self) -> list[dict[str, str]]:
        sqs, found = boto3.client("sqs"), list[dict[str, str]]()
        while messages := sqs.receive_message(QueueUrl=self.alerts_queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                body = json.loads(message["Body"])
                found.append({"subject": body.get("Subject", ""), "message": body["Message"]})
                sqs.delete_message(QueueUrl=self.alerts_queue, ReceiptHandle=message["ReceiptHandle"])
        return found

    def assert_masked_exactly_once(self) -> None:
        connection = reader(self.loopback)
        try:
            assert_masked_exactly_once(connection, KEY)
        finally:
            connection.close()

    def staging_endpoint(self, run: str) -> str:
        found = self.accounts.staging("rds").describe_db_clusters(DBClusterIdentifier=Names(run).staging_cluster)
        return str(found["DBClusters"][0]["Endpoint"])

    def production_clusters(self) -> list[str]:
        found = self.accounts.production("rds").describe_db_clusters()["DBClusters"]
        return sorted(c["DBClusterIdentifier"] for c in found)

    def production_snapshots(self) -> set[str]:
        rds = self.accounts.production("rds")
        found = rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
        return {s["DBClusterSnapshotIdentifier"] for s in found}


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster_server: MySqlServer) -> Iterator[Machine]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # in-process moto, not the session's moto server
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # ~0.3 s per account and region, unused here
    for name in [n for n in os.environ if n.startswith("KPI_CLONE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KPI_CONFIG", str(tmp_path / "kpi.toml"))  # none: the variables alone, as deployed
    shop = clone_database(cluster_server)
    database, loopback = next(shop)
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            accounts = set_up_accounts(tmp_path, database)
            # in-process moto answers the assumed role's calls as the staging account, as its server does
            assert accounts.staging("sts").get_caller_identity()["Account"] == STAGING
            config = accounts.config()
            for name, value in clone_variables(config).items():
                monkeypatch.setenv(name, value)
            assert load_config() == replace(config, origin="KPI_CLONE_* variables")  # what the handlers read
            sns, sqs = boto3.client("sns"), boto3.client("sqs")
            topic = sns.create_topic(Name="alerts")["TopicArn"]
            queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
            role = sfn_tools.lambda_role(boto3.client("iam"))
            functions = boto3.client("lambda")
            substitutions = {
                "CloneFunctionArn": sfn_tools.create_function(functions, CLONE, FUNCTIONS[CLONE], role),
                "CloneDatabaseFunctionArn": sfn_tools.create_function(functions, DATABASE, FUNCTIONS[DATABASE], role),
                "AlertTopicArn": topic,
                # the Lambda runner: moto 5's ecs:runTask.sync hands botocore its own StartedBy in AWS's
                # casing and fails, so the ECS task is asserted by configuration (above) and its entry point
                # runs on moto's server in tests/test_clone_aws.py
                "CloneMaskRunner": "lambda",
                **dict.fromkeys(
                    (
                        "CloneMaskClusterArn",
                        "CloneMaskTaskDefinitionArn",
                        "CloneMaskSubnets",
                        "CloneMaskSecurityGroups",
                    ),
                    "none",
                ),
            }
            text = sfn_tools.substitute(sfn_tools.definition_text("clone.asl.json"), substitutions)
            sfn = boto3.client("stepfunctions")
            state_machine = sfn_tools.create_state_machine(sfn, f"clone-{uuid.uuid4().hex[:6]}", text, role)
            restore = SharedRestore(accounts)
            # the two stand-ins, both at the network edge: the cross-account restore moto cannot serve, and the
            # MySQL connection to a cluster endpoint (moto's resolve nowhere)
            with (
                mock.patch("pipeline.clone.cloud.restore_shared_snapshot", restore),
                mock.patch("pipeline.clone.worker.connect_mysql", loopback),
            ):
                yield Machine(state_machine, queue, accounts, database, loopback, restore)
    finally:
        next(shop, None)


def actions(lambdas: LambdaStandIn) -> list[str]:
    return [str(i.event["action"]) for i in lambdas.invocations]


def after_health(lambdas: LambdaStandIn) -> list[dict[str, Any]]:
    """The events of the invocations right after a health check."""
    events = [i.event for i in lambdas.invocations]
    return [events[n + 1] for n, event in enumerate(events[:-1]) if event["action"] == "health"]


@pytest.mark.mysql
def test_a_new_clone_masks_switches_the_record_and_succeeds(machine: Machine) -> None:
    with LambdaStandIn().installed() as lambdas:
        execution = machine.run({})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    run = output["run"]
    assert (output["next"], output["health"]) == ("done", {})

    # the clone Lambda started a new run, and every later step carried its id
    first, *rest = lambdas.invocations
    assert (first.function, first.event) == (CLONE, {"action": "start", "run": ""})
    assert {i.event["run"] for i in rest} == {run}
    assert [i.error for i in lambdas.invocations] == [""] * len(lambdas.invocations)
    # the database Lambda masked once and checked health once; the health answer reached Advance, once
    assert [i.event for i in lambdas.calls(DATABASE)] == [
        {"action": "mask", "run": run},
        {"action": "health", "run": run},
    ]
    healthy = {"action": "advance", "run": run, "health": {"healthy": True, "databases": [machine.database]}}
    assert after_health(lambdas) == [healthy]
    advances = [i.event for i in rest if i.function == CLONE]
    assert {event["action"] for event in advances} == {"advance"}
    assert [event for event in advances if event["health"] != {}] == [healthy]  # then reset to {}
    assert actions(lambdas).index("mask") < actions(lambdas).index("health")

    # the data is masked exactly once; staging restored the shared copy; the record points to the new cluster
    machine.assert_masked_exactly_once()
    (restored,) = machine.restore.calls
    assert (restored["snapshot"], restored["shared"]) == (Names(run).shared_snapshot, [STAGING])
    assert restored["tags"][Tags.MASKED_ALL] == "true"
    assert record_target(machine.accounts) == machine.staging_endpoint(run)
    assert machine.production_clusters() == [SOURCE]  # the temporary cluster is gone
    assert machine.alerts() == []


class TimedOut(Exception):
    """The Lambda's runtime gave up after the handler had done its work: its answer is lost, and Step Functions
    sees an error it does not retry (as a Lambda timeout)."""


@pytest.mark.mysql
def test_a_run_id_resumes_that_run_through_the_start_guard(machine: Machine) -> None:
    def lose_the_mask_answer(function: str, event: dict[str, Any]) -> BaseException | None:
        return TimedOut("the mask finished, its answer was lost") if event["action"] == "mask" else None

    # the first execution fails half-way: the database is masked, the execution alerted and failed
    with LambdaStandIn(inject=lose_the_mask_answer).installed() as lambdas:
        execution = machine.run({})
    assert (execution["status"], execution["error"]) == ("FAILED", "TimedOut")
    (mask,) = lambdas.calls(DATABASE)
    run = mask.event["run"]
    (alert,) = machine.alerts()
    assert alert["message"].startswith(f"The clone run {run} failed in execution x-")
    assert f"kpi clone run --run {run}" in alert["message"]
    assert machine.restore.calls == []

    # a second execution with the run id finishes it: nothing is masked again
    with LambdaStandIn().installed() as lambdas:
        execution = machine.run({"run": run})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert lambdas.invocations[0].event == {"action": "start", "run": run}
    assert {i.event["run"] for i in lambdas.invocations} == {run}
    assert "mask" not in actions(lambdas)  # the temporary cluster is tagged masked
    assert [i.event["action"] for i in lambdas.calls(DATABASE)] == ["health"]
    machine.assert_masked_exactly_once()
    assert len(machine.restore.calls) == 1
    assert record_target(machine.accounts) == machine.staging_endpoint(run)
    assert machine.alerts() == []

    # a run id with nothing left to resume: refused by the guard, alerted, not retried
    with LambdaStandIn().installed() as lambdas, sfn_tools.recorded_retry_waits() as waits:
        execution = machine.run({"run": GONE})
    assert (execution["status"], execution["error"]) == ("FAILED", "CloneError")
    assert f"clone {GONE} has nothing left to resume" in execution["cause"]
    assert [(i.event, i.error) for i in lambdas.invocations] == [({"action": "start", "run": GONE}, "CloneError")]
    assert waits == []
    (alert,) = machine.alerts()
    assert alert["message"].startswith(f"The clone run {GONE} failed")


@pytest.mark.mysql
def test_a_transient_failure_is_retried_and_the_clone_still_finishes(machine: Machine) -> None:
    """The mask and the Advance that switches the record each fail once after doing their work (a transient
    failure, as the handlers raise it): both are retried with the same payload, and their work is not redone."""
    failed: set[str] = set()

    def once(function: str, event: dict[str, Any]) -> BaseException | None:
        step = "switch" if event.get("health") else str(event["action"])
        if step in ("mask", "switch") and step not in failed:
            failed.add(step)
            return RetryableError(f"{step}: connection reset")
        return None

    with LambdaStandIn(inject=once).installed() as lambdas, sfn_tools.recorded_retry_waits() as waits:
        execution = machine.run({})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    run = json.loads(execution["output"])["run"]
    errors = [n for n, i in enumerate(lambdas.invocations) if i.error]
    assert [lambdas.invocations[n].error for n in errors] == ["RetryableError"] * 2
    for n in errors:  # retried at once by the machine, with the same payload
        assert lambdas.invocations[n].event == lambdas.invocations[n + 1].event
        assert lambdas.invocations[n + 1].error == ""
    assert [i.event["action"] for i in lambdas.calls(DATABASE)] == ["mask", "mask", "health"]
    healthy = {"action": "advance", "run": run, "health": {"healthy": True, "databases": [machine.database]}}
    assert [i.event for i in lambdas.invocations if i.event.get("health")] == [healthy, healthy]
    assert len(waits) == 2
    assert all(0 <= wait <= 30 for wait in waits)  # the first retry's interval, with full jitter
    machine.assert_masked_exactly_once()
    assert record_target(machine.accounts) == machine.staging_endpoint(run)
    assert len(machine.restore.calls) == 1
    assert machine.alerts() == []


@pytest.mark.mysql
def test_a_failure_a_person_must_fix_is_alerted_at_once_and_nothing_is_shared(machine: Machine) -> None:
    connection = reader(machine.loopback)
    with connection.cursor() as cursor:  # a column production added last week, with no masking rule yet
        cursor.execute("ALTER TABLE users ADD COLUMN line_id VARCHAR(64) NULL")
    connection.close()
    with LambdaStandIn().installed() as lambdas, sfn_tools.recorded_retry_waits() as waits:
        execution = machine.run({})
    assert (execution["status"], execution["error"]) == ("FAILED", "CoverageError")
    assert "users.line_id" in execution["cause"]
    (mask,) = lambdas.calls(DATABASE)  # not retried
    run = mask.event["run"]
    assert (mask.event["action"], mask.error) == ("mask", "CoverageError")
    assert lambdas.invocations[-1] == mask
    assert waits == []
    (alert,) = machine.alerts()
    assert alert["subject"] == "kpi-pipeline: the clone failed"
    assert alert["message"].startswith(f"The clone run {run} failed in execution x-")
    assert f"with CoverageError: {execution['cause']}" in alert["message"]
    assert f"kpi clone run --run {run}" in alert["message"]
    # nothing was masked, snapshotted or shared; the record still points to the old cluster
    connection = reader(machine.loopback)
    with connection.cursor() as cursor:
        cursor.execute("SELECT email FROM users WHERE id = 1")
        assert cursor.fetchone() == (email_of(1),)
    connection.close()
    assert machine.restore.calls == []
    assert Names(run).masked_snapshot not in machine.production_snapshots()
    assert record_target(machine.accounts) == machine.accounts.old_endpoint

    # a new clone meanwhile is refused at the start (the run is still in flight): alerted with no run id yet
    with LambdaStandIn().installed() as lambdas:
        execution = machine.run({})
    assert (execution["status"], execution["error"]) == ("FAILED", "CloneError")
    assert f"clone {run} is still in flight" in execution["cause"]
    assert actions(lambdas) == ["start"]
    (alert,) = machine.alerts()
    assert alert["message"].startswith("The clone run  failed")
    assert machine.restore.calls == []


# ------------------------------------------------------------------------------ the policies against the code


def allowed_actions(found: list[dict[str, Any]]) -> set[str]:
    return {a for s in found if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def implied(service: str, operation: str, parameters: dict[str, Any]) -> set[str]:
    """The IAM actions a call needs: its own, and the tagging action when it tags what it creates."""
    needed = {f"{service}:{operation}"}
    if parameters.get("Tags") and operation.startswith(("Create", "Restore", "Copy")):
        needed.add({"rds": "rds:AddTagsToResource", "secretsmanager": "secretsmanager:TagResource"}[service])
    if parameters.get("TagSpecifications"):
        needed.add("ec2:CreateTags")
    return needed


@dataclass
class Recorder:
    """Every AWS API call made in this process while installed, as (caller, service, operation, parameters):
    the caller is ``clone`` or ``database`` (whichever Lambda's handler runs in the calling thread,
    :meth:`as_caller`) for production's credentials, ``staging`` for the assumed role's, ``aws`` for what
    stands in for AWS itself (Step Functions, the test, the shared restore). The calls go on to moto."""

    production_key: str = ""
    calls: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    _callers: dict[int, str] = field(default_factory=dict)  # by thread: Step Functions runs the handlers

    @property
    def caller(self) -> str:
        return self._callers.get(threading.get_ident(), "aws")

    @contextmanager
    def as_caller(self, caller: str) -> Iterator[None]:
        thread, before = threading.get_ident(), self.caller
        self._callers[thread] = caller
        try:
            yield
        finally:
            self._callers[thread] = before

    @contextmanager
    def installed(self) -> Iterator[Recorder]:
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def make_api_call(client: Any, operation: str, parameters: dict[str, Any]) -> Any:
            key = client._request_signer._credentials.access_key
            caller = recorder.caller
            if caller != "aws" and key != recorder.production_key:
                caller = "staging"
            recorder.calls.append((caller, client.meta.service_model.signing_name, operation, dict(parameters)))
            return original(client, operation, parameters)

        with mock.patch.object(botocore.client.BaseClient, "_make_api_call", make_api_call):
            yield self

    def needed(self, caller: str) -> set[str]:
        return {a for c, service, op, params in self.calls if c == caller for a in implied(service, op, params)}


@dataclass
class RecordedLambdas(LambdaStandIn):
    """The Lambda stand-in, telling the recorder whose handler runs."""

    recorder: Recorder = field(default_factory=Recorder)

    def _invoke(self, function: str, handler: str, event: dict[str, Any]) -> tuple[str, bool, str]:
        with self.recorder.as_caller({CLONE: "clone", DATABASE: "database"}[function]):
            return super()._invoke(function, handler, event)


@pytest.mark.mysql
def test_every_call_of_a_whole_clone_is_allowed_by_the_policy_of_its_caller(
    template: dict[str, Any], staging: dict[str, Any], machine: Machine
) -> None:
    """A whole clone, run by the state machine and the real handlers, every AWS call recorded: the clone
    Lambda's against CloneRole (and the staging role, once assumed), the clone-database Lambda's against
    CloneDatabaseRole. The staging restore of the shared snapshot is played by tests.cloning.SharedRestore;
    the call AWS would authorize is the staging role's rds:RestoreDBClusterFromSnapshot."""
    accounts = machine.accounts
    recorder = Recorder(production_key=accounts.production.session.get_credentials().access_key)

    def restore_shared(rds: Any, snapshot_arn: str, identifier: str, arguments: Any) -> None:
        recorder.calls.append(("staging", "rds", "RestoreDBClusterFromSnapshot", {"Tags": arguments["Tags"]}))
        with recorder.as_caller("aws"):
            machine.restore(rds, snapshot_arn, identifier, arguments)

    with (
        mock.patch("pipeline.clone.cloud.restore_shared_snapshot", restore_shared),
        recorder.installed(),
        RecordedLambdas(recorder=recorder).installed() as lambdas,
    ):
        execution = machine.run({})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert {"mask", "health"} <= set(actions(lambdas))
    assert len(machine.restore.calls) == 1

    production = [s for _, s, _ in statements(template, "CloneRole")]
    worker = [s for _, s, _ in statements(template, "CloneDatabaseRole")]
    assert recorder.needed("clone") >= {"sts:AssumeRole", "rds:CopyDBClusterSnapshot", "ec2:CreateSecurityGroup"}
    assert recorder.needed("clone") - allowed_actions(production) == set()
    assert recorder.needed("database") >= {"rds:AddTagsToResource", "secretsmanager:GetSecretValue"}
    assert recorder.needed("database") - allowed_actions(worker) == set()
    assert recorder.needed("staging") >= {"route53:ChangeResourceRecordSets", "rds:RestoreDBClusterFromSnapshot"}
    assert recorder.needed("staging") - allowed_actions(staging_statements(staging)) == set()

    # what production and staging create or change is named as the policies' resources say
    prefix = f"{accounts.config().target_cluster_prefix}-*"
    for caller, service, operation, parameters in recorder.calls:
        writes = operation.startswith(("Create", "Restore", "Copy", "Modify", "Delete"))
        if caller not in ("clone", "staging") or service != "rds" or not writes:
            continue
        names = [v for k, v in parameters.items() if k in ("DBClusterIdentifier", "DBInstanceIdentifier")]
        names += [
            parameters[k]
            for k in ("DBClusterSnapshotIdentifier", "TargetDBClusterSnapshotIdentifier")
            if k in parameters
        ]
        if operation == "CreateDBClusterSnapshot":
            names = [parameters["DBClusterSnapshotIdentifier"]]  # of the production cluster (or the temporary one)
        pattern = "kpi-clone-*" if caller == "clone" else prefix
        assert all(fnmatch.fnmatchcase(name, pattern) for name in names), (caller, operation, names)
    tags = {t["Key"] for *_, params in recorder.calls for t in params.get("Tags", []) if isinstance(t, dict)}
    assert all(key.startswith("kpi:clone:") for key in tags), tags
