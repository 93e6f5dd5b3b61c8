"""The state machines under test: their definitions (checked by statelint and by our own structural check) and a
way to run them on moto's Step Functions interpreter with our real Lambda handlers.

moto executes a definition when its config says ``execute_state_machine``; its Lambda backend would run each
invocation in a Docker container, which these machines do not have. :class:`LambdaStandIn` replaces exactly that
container run (``LambdaFunction._invoke_lambda``) with an in-process call of the function's ``Handler``, answered
the way the Python runtime answers: the handler's JSON result, or ``{"errorType": <exception class>, …}`` with the
function-error flag, which Step Functions turns into the error name its Retry and Catch match. Nothing of ours is
mocked: the handlers run for real against moto's S3 and DuckDB files.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import threading
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

STATEMACHINES = Path(__file__).resolve().parent.parent / "infra" / "statemachines"

# Every ``${…}`` a definition may hold: the DefinitionSubstitutions the template passes (anything else would reach
# AWS as literal text).
SUBSTITUTIONS = {
    "export.asl.json": {"ExporterFunctionArn", "OwnerAlertFunctionArn", "AlertTopicArn"},
    "backfill.asl.json": {
        "PlannerFunctionArn",
        "ExporterFunctionArn",
        "OwnerAlertFunctionArn",
        "AlertTopicArn",
        "BackfillConcurrency",
    },
    "suspend.asl.json": {"SuspendFunctionArn", "AlertTopicArn"},
    "resume.asl.json": {"SuspendFunctionArn", "AlertTopicArn"},
    "clone.asl.json": {
        "CloneFunctionArn",
        "CloneDatabaseFunctionArn",
        "AlertTopicArn",
        "CloneMaskRunner",
        "CloneMaskClusterArn",
        "CloneMaskTaskDefinitionArn",
        "CloneMaskSubnets",
        "CloneMaskSecurityGroups",
    },
}
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
TERMINAL_TYPES = {"Succeed", "Fail"}
REGION = "ap-northeast-1"
ACCOUNT = "123456789012"


def definition_text(name: str) -> str:
    return (STATEMACHINES / name).read_text(encoding="utf-8")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def substitute(text: str, values: dict[str, str]) -> str:
    """What CloudFormation's DefinitionSubstitutions do: replace each ``${Key}`` in the text, as text."""
    missing = placeholders(text) - set(values)
    if missing:
        raise KeyError(f"no substitution for {', '.join(sorted(missing))}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def sample_substitutions() -> dict[str, str]:
    """Values shaped like the deployed ones (for linting the definition as AWS receives it)."""
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:kpi-pipeline"
    return {
        "ExporterFunctionArn": f"{arn}-exporter",
        "PlannerFunctionArn": f"{arn}-planner",
        "OwnerAlertFunctionArn": f"{arn}-freshness",
        "SuspendFunctionArn": f"{arn}-suspend",
        "CloneFunctionArn": f"{arn}-clone",
        "CloneDatabaseFunctionArn": f"{arn}-clone-database",
        "AlertTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:kpi-pipeline-alerts",
        "BackfillConcurrency": "2",
        "CloneMaskRunner": "ecs",
        "CloneMaskClusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/kpi-pipeline-clone-mask",
        "CloneMaskTaskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/kpi-pipeline-clone-mask:1",
        "CloneMaskSubnets": "subnet-0a1b2c3d,subnet-4e5f6a7b",
        "CloneMaskSecurityGroups": "sg-0123456789abcdef0,sg-0fedcba9876543210",
    }


# -- our own structural check ------------------------------------------------------------------------------------


def structural_problems(definition: dict[str, Any], allowed: set[str] | None = None) -> list[str]:
    """What would make a definition wrong whatever statelint says: transitions to states that do not exist,
    states that cannot be reached from ``StartAt``, a machine (or Map/Parallel body) without a terminal state,
    and placeholders outside ``allowed`` (when given). Map ``ItemProcessor``/``Iterator`` and Parallel
    ``Branches`` are checked as machines of their own: their transitions stay inside them."""
    problems = _machine_problems(definition, "")
    if allowed is not None:
        for name in sorted(placeholders(json.dumps(definition)) - allowed):
            problems.append(f"the placeholder ${{{name}}} is not one of the substitutions {sorted(allowed)}")
    return problems


def _machine_problems(machine: dict[str, Any], where: str) -> list[str]:
    scope = where or "the state machine"
    states: dict[str, Any] = machine.get("States") or {}
    start = machine.get("StartAt")
    if not states:
        return [f"{scope} has no States"]
    problems: list[str] = []
    if start not in states:
        problems.append(f"{scope}: StartAt {start!r} is not a state")
    edges: dict[str, list[str]] = {}
    for name, state in states.items():
        path = f"{where}{name}"
        targets = _transitions(state)
        for target in targets:
            if target not in states:
                problems.append(f"{path}: goes to {target!r}, which is not a state of {scope}")
        kind = state.get("Type")
        if kind not in TERMINAL_TYPES | {"Choice"} and not state.get("End") and not state.get("Next"):
            problems.append(f"{path}: a {kind} state needs Next or End")
        if kind == "Choice" and not state.get("Choices"):
            problems.append(f"{path}: a Choice state needs Choices")
        edges[name] = [t for t in targets if t in states]
        for index, branch in enumerate(state.get("Branches") or []):
            problems += _machine_problems(branch, f"{path}.Branches[{index}].")
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                problems += _machine_problems(state[key], f"{path}.{key}.")
    reached = _reachable(start, edges) if start in states else set()
    for name in states:
        if name not in reached:
            problems.append(f"{where}{name}: cannot be reached from StartAt {start!r}")
    if not any(_is_terminal(states[name]) for name in reached):
        problems.append(f"{scope}: no reachable state ends it (End, Succeed or Fail)")
    return problems


def _transitions(state: dict[str, Any]) -> list[str]:
    targets = [state["Next"]] if "Next" in state else []
    if "Default" in state:
        targets.append(state["Default"])
    targets += [rule["Next"] for rule in state.get("Choices") or [] if "Next" in rule]
    targets += [catcher["Next"] for catcher in state.get("Catch") or [] if "Next" in catcher]
    return [str(target) for target in targets]


def _reachable(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _is_terminal(state: dict[str, Any]) -> bool:
    return state.get("Type") in TERMINAL_TYPES or state.get("End") is True


# -- statelint ---------------------------------------------------------------------------------------------------


def statelint_problems(text: str) -> list[str]:
    """statelint's findings on a definition (JSON text). Raises ImportError where statelint is not installed."""
    linter = importlib.import_module("statelint.linter")
    config = importlib.import_module("statelint.config")
    problems: list[Any] = linter.Linter.validate(text, config.Config(None, False, False))
    return [str(problem) for problem in problems]


# -- running on moto ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    function: str  # the function's name
    event: dict[str, Any]
    error: str = ""  # errorType of a failed invocation


Injection = Callable[[str, dict[str, Any]], BaseException | None]
"""Called with (function name, event) after the handler returned; an exception it returns fails the invocation
as if the runtime had raised it (the handler's work is done, its answer lost: what a retry must cope with)."""


@dataclass
class LambdaStandIn:
    """moto's Lambda container run, replaced by an in-process call of the function's real ``Handler``.

    Invocations run one at a time (the handlers share this process's environment variables and boto3's default
    session, which is not thread-safe); ``peak`` counts how many Step Functions had in flight at once."""

    inject: Injection | None = None
    invocations: list[Invocation] = field(default_factory=list)
    peak: int = 0
    _in_flight: int = 0
    _count: threading.Lock = field(default_factory=threading.Lock)
    _run: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, function: str) -> list[Invocation]:
        return [i for i in self.invocations if i.function == function]

    @contextmanager
    def installed(self) -> Iterator[LambdaStandIn]:
        stand_in = self

        def invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
            return stand_in._invoke(str(function.function_name), str(function.handler), event or {})

        with mock.patch("moto.awslambda.models.LambdaFunction._invoke_lambda", invoke_lambda):
            yield self

    def _invoke(self, function: str, handler: str, event: dict[str, Any]) -> tuple[str, bool, str]:
        with self._count:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
        try:
            with self._run:
                module, _, name = handler.rpartition(".")
                entry: Callable[[dict[str, Any], object], Any] = getattr(importlib.import_module(module), name)
                try:
                    result = entry(event, None)
                    failure = self.inject(function, event) if self.inject else None
                    if failure is not None:
                        raise failure
                except Exception as error:  # the runtime's answer to an unhandled exception
                    self.invocations.append(Invocation(function, event, type(error).__name__))
                    return json.dumps(_runtime_error(error)), True, ""
                self.invocations.append(Invocation(function, event))
                return json.dumps(result), False, ""
        finally:
            with self._count:
                self._in_flight -= 1


def _runtime_error(error: BaseException) -> dict[str, Any]:
    """The payload AWS Lambda's Python runtime returns for an exception the handler raised."""
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": "00000000-0000-0000-0000-000000000000",
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


@contextmanager
def recorded_retry_waits() -> Iterator[list[float]]:
    """moto's Retry waits with ``time.sleep``; record each wait instead of sleeping it (so a 30 s backoff costs
    nothing, and the test can check the backoff Step Functions asked for)."""
    waits: list[float] = []
    clock = mock.Mock(wraps=time)
    clock.sleep = waits.append
    with mock.patch("moto.stepfunctions.parser.asl.component.common.retry.retrier_decl.time", clock):
        yield waits


def lambda_role(iam: Any) -> str:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    return str(iam.create_role(RoleName="kpi-lambda", AssumeRolePolicyDocument=json.dumps(document))["Role"]["Arn"])


def create_function(client: Any, name: str, handler: str, role: str) -> str:
    """A Lambda function whose ``Handler`` is one of ours (the code zip is a placeholder: the stand-in imports
    the handler from this checkout, as the deployed package would hold it)."""
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("README", "kpi-pipeline is imported from the test's checkout")
    created = client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler=handler,
        Code={"ZipFile": package.getvalue()},
        Timeout=900,
    )
    return str(created["FunctionArn"])


def create_state_machine(sfn: Any, name: str, definition: str, role: str) -> str:
    return str(sfn.create_state_machine(name=name, definition=definition, roleArn=role)["stateMachineArn"])


def run_execution(sfn: Any, machine: str, name: str, payload: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Start an execution and wait for it to end; ``describe_execution``'s answer."""
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"the execution {name} still runs after {timeout} s")
        time.sleep(0.05)


def history_errors(sfn: Any, execution: str) -> Counter[str]:
    """How often each error was reported by a task of the execution (retried attempts included)."""
    found: Counter[str] = Counter()
    for event in sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]:
        for key, details in event.items():
            if key.endswith("FailedEventDetails") and isinstance(details, dict) and details.get("error"):
                found[details["error"]] += 1
    return found
