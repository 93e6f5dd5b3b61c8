"""The deployable template: ``infra/template.yaml`` + one EventBridge Scheduler schedule per (cron, timezone).

``python -m infra.build [--queries queries] [--out build/template.yaml] [--arch x86_64|arm64]
[--lambda-dir build/lambda] [--gcp-wif-config FILE]``

The KPI files are read with the project's own catalog (every file must pass ``kpi check``). Enabled KPIs with a
``schedule`` are grouped by their EventBridge cron expression and ``timezone``; each group becomes an
``AWS::Scheduler::Schedule`` (logical id from a hash of the expression and the zone, so it stays put when KPIs
join or leave the group) that starts the export state machine with ``{"kpis": [...]}``, in the KPIs' zone. So
dropping a KPI file into ``queries/`` and deploying is all an analyst does.

The 5-field cron of a header (read by cronsim, as ``kpi check`` does) becomes EventBridge's
``cron(minute hour day-of-month month day-of-week year)``: one of the two day fields must be ``?``, day-of-week
counts 1-7 from Sunday instead of 0-6 (written here as names: ``MON-FRI``), and cron's "either day field matches"
rule has no equivalent. What EventBridge cannot express is refused, naming the KPI.

Also written: the Lambda zips of ``--arch`` as ``CodeUri`` (the ``Architecture`` parameter pinned to it), the
state machines' ``DefinitionUri`` (every ``${…}`` placeholder of an ASL file must be substituted), and the
Workload Identity Federation config as a layer (``/opt/gcp-wif.json``) — or, without ``--gcp-wif-config``, no
layer and only ``GcpCredentialsMode=secret``. Paths are relative to the output file, as SAM resolves them.

The source template uses CloudFormation's short tags (``!Ref``, ``!Sub``…); they are read into the long form
(``{"Ref": …}``, ``{"Fn::Sub": …}``), so the output is plain YAML every tool reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline import catalog
from pipeline.core.spec import Kpi
from pipeline.errors import KpiError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
DEFAULT_QUERIES = Path("queries")
DEFAULT_OUT = Path("build") / "template.yaml"
DEFAULT_LAMBDA_DIR = Path("build") / "lambda"
ARCHITECTURES = ("x86_64", "arm64")
WIF_LAYER = "GcpWifConfigLayer"
WIF_FILE = "gcp-wif.json"  # at the layer's root: /opt/gcp-wif.json in the function
EXPORT_STATE_MACHINE = "ExportStateMachine"
PACKAGES = ("exporter", "loader", "ops")  # the zips of infra/package.py the template's functions run from
_CODE_URI = re.compile(r"^lambda/(?P<package>[a-z]+)-[a-z0-9_]+\.zip$")


class BuildError(Exception):
    """A KPI or an input the template cannot be built from; the message says which and what to do."""


# ------------------------------------------------------------------------------------------------ cron → EventBridge

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # cron 0-6 (and 7 = SUN); EventBridge 1-7


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # symbolic values, the first one worth ``low``

    def value(self, text: str) -> int:
        if text in self.names:
            return self.names.index(text) + self.low
        if not text.isdigit() or not self.low <= int(text) <= self.high:
            raise ValueError(f"{self.name} {text!r} is not {self.low}-{self.high}")
        return int(text)

    def parse(self, text: str) -> set[int]:
        """The values ``text`` selects, as cronsim reads it (``a/n`` runs to the end, ``*/n`` steps the range)."""
        if text == "*":
            return set(range(self.low, self.high + 1))
        if "," in text:
            return set().union(*(self.parse(term) for term in text.split(",")))
        if "/" in text:
            term, step_text = text.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{self.name} step {step_text!r} is not a positive number")
            items = self.parse(term)
            if len(items) == 1:
                return set(range(items.pop(), self.high + 1, int(step_text)))
            return set(sorted(items)[:: int(step_text)])
        if "-" in text:
            first, last = (self.value(part) for part in text.split("-", 1))
            if last < first:
                raise ValueError(f"{self.name} range {text!r} runs backwards")
            return set(range(first, last + 1))
        return {self.value(text)}

    def render(self, text: str) -> str:
        """EventBridge's spelling of the values: ``*``, ``5``, ``8-17``, a list, or — where the header steps —
        ``0/15`` (EventBridge's steps run to the field's end, so only a step that does is written as one)."""
        ordered = sorted(self.parse(text))
        if ordered == list(range(self.low, self.high + 1)):
            return "*"
        if len(ordered) == 1:
            return str(ordered[0])
        if ordered == list(range(ordered[0], ordered[-1] + 1)):
            return f"{ordered[0]}-{ordered[-1]}"
        step = ordered[1] - ordered[0]
        if "/" in text and len(ordered) >= 3 and ordered == list(range(ordered[0], self.high + 1, step)):
            return f"{ordered[0]}/{step}"
        return ",".join(str(v) for v in ordered)


_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DOW = _Field("day-of-week", 0, 7, _DAYS)
_EVERY_DAY = set(range(7))


def _days_of_week(values: set[int]) -> str:
    """Names, Sunday first: ``MON-FRI`` for a run, ``SUN,SAT`` otherwise (no wrap-around ranges)."""
    ordered = sorted({v % 7 for v in values})
    if len(ordered) == 1:
        return _DAYS[ordered[0]]
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{_DAYS[ordered[0]]}-{_DAYS[ordered[-1]]}"
    return ",".join(_DAYS[v] for v in ordered)


def _special_day_of_week(text: str) -> str:
    """``5L`` (last Friday) and ``1#2`` (second Monday), which EventBridge counts from 1 = Sunday."""
    if "," in text or "-" in text or "/" in text:
        raise ValueError(f"day-of-week {text!r}: EventBridge takes L and # only alone")
    if text.endswith("L"):
        if not text[:-1].isdigit():
            raise ValueError(f"day-of-week {text!r}: L follows a day number, as in 5L")
        return f"{_DOW.value(text[:-1]) % 7 + 1}L"
    day, _, nth = text.partition("#")
    if not nth.isdigit() or not 1 <= int(nth) <= 5:
        raise ValueError(f"day-of-week {text!r}: # is followed by 1-5, as in 1#2")
    return f"{_DOW.value(day) % 7 + 1}#{nth}"


def eventbridge_cron(expression: str, *, kpi: str) -> str:
    """EventBridge's ``cron(…)`` for a header's cron expression; BuildError naming ``kpi`` when there is none."""
    try:
        return _convert(expression)
    except ValueError as error:
        raise BuildError(f"KPI {kpi}: schedule '{expression}' cannot be an EventBridge schedule: {error}") from None


def _convert(expression: str) -> str:
    fields = expression.upper().split()
    if len(fields) == 6:  # cronsim's optional seconds field
        if fields[0] != "0":
            raise ValueError("EventBridge schedules have no seconds (write 5 fields)")
        fields = fields[1:]
    if len(fields) != 5:
        raise ValueError("a cron expression has 5 fields: minute hour day-of-month month day-of-week")
    minute, hour, dom_text, month, dow_text = fields
    if "?" in expression:
        raise ValueError("write * rather than ? (the conversion picks the ? field)")

    dom: set[int] | str  # a set of days, or EventBridge's spelling of L
    if dom_text == "L":
        dom = "L"
    elif "L" in dom_text or "W" in dom_text:
        raise ValueError(f"day-of-month {dom_text!r}: only a plain L (last day of the month) is supported")
    else:
        dom = _DOM.parse(dom_text)
    dow: set[int] | str
    if "L" in dow_text or "#" in dow_text:
        dow = _special_day_of_week(dow_text)
    else:
        dow = {v % 7 for v in _DOW.parse(dow_text)}

    every_dom = dom == set(range(1, 32))
    every_dow = dow == _EVERY_DAY
    # Debian cron (and cronsim): a day field starting with * makes the two an AND, otherwise an OR.
    either = not (dom_text.startswith("*") or dow_text.startswith("*"))
    if either and (every_dom or every_dow):
        day_of_month, day_of_week = "*", "?"  # one of them matches any day
    elif every_dow:
        day_of_month, day_of_week = dom if isinstance(dom, str) else _DOM.render(dom_text), "?"
    elif every_dom:
        day_of_month, day_of_week = "?", dow if isinstance(dow, str) else _days_of_week(dow)
    else:
        rule = "either may match" if either else "both must match"
        raise ValueError(
            f"it restricts both day-of-month ({dom_text}) and day-of-week ({dow_text}; {rule}), "
            "and EventBridge takes only one of them: restrict one, or split the KPI's runs"
        )
    return f"cron({_MINUTE.render(minute)} {_HOUR.render(hour)} {day_of_month} {_MONTH.render(month)} {day_of_week} *)"


# ------------------------------------------------------------------------------------------------------ schedules


@dataclass(frozen=True)
class Schedule:
    """One EventBridge schedule: the KPIs that share a cron expression and a timezone."""

    expression: str  # cron(…)
    timezone: str
    crons: tuple[str, ...]  # the headers' own spellings, for the description
    kpis: tuple[str, ...]

    @property
    def logical_id(self) -> str:
        digest = hashlib.sha256(f"{self.expression} {self.timezone}".encode()).hexdigest()[:8].upper()
        return "Schedule" + re.sub(r"[^A-Za-z0-9]", "", self.timezone) + digest

    @property
    def input(self) -> str:
        return json.dumps({"kpis": list(self.kpis)})

    def resource(self) -> dict[str, Any]:
        description = f"{', '.join(self.kpis)}: {' | '.join(self.crons)} ({self.timezone})"
        return {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "GroupName": {"Ref": "ScheduleGroup"},
                "Description": description if len(description) <= 512 else description[:511] + "…",
                "ScheduleExpression": self.expression,
                "ScheduleExpressionTimezone": self.timezone,
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "State": "ENABLED",
                "Target": {
                    "Arn": {"Ref": EXPORT_STATE_MACHINE},
                    "RoleArn": {"Fn::GetAtt": ["SchedulerRole", "Arn"]},
                    "Input": self.input,
                    "RetryPolicy": {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 3600},
                    "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}},
                },
            },
        }


def schedules(kpis: Iterable[Kpi]) -> list[Schedule]:
    """The schedules of the enabled KPIs that have one; BuildError listing every KPI EventBridge cannot run."""
    groups: dict[tuple[str, str], list[Kpi]] = {}
    problems: list[str] = []
    for kpi in sorted(kpis, key=lambda k: k.name):
        if not kpi.enabled or kpi.schedule is None:
            continue
        try:
            expression = eventbridge_cron(kpi.schedule, kpi=kpi.name)
        except BuildError as error:
            problems.append(f"{kpi.path}: {error}")
            continue
        groups.setdefault((expression, kpi.timezone), []).append(kpi)
    if problems:
        raise BuildError("\n".join(problems))
    ordered = sorted(groups.items(), key=lambda item: (item[0][1], item[0][0]))
    return [
        Schedule(
            expression, zone, tuple(dict.fromkeys(str(k.schedule) for k in members)), tuple(k.name for k in members)
        )
        for (expression, zone), members in ordered
    ]


def catalog_schedules(queries: Path) -> list[Schedule]:
    found = catalog.load((queries,))
    if not found.ok:
        shown = "\n".join(str(problem) for problem in found.problems)
        raise BuildError(f"the KPI files have problems (run `kpi check {queries}`):\n{shown}")
    return schedules(found.kpis.values())


# ------------------------------------------------------------------------------------------------------ YAML


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags, read into their long form."""


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_tag)


def read_template(path: Path = TEMPLATE) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # a SafeLoader: no Python objects
    except (OSError, yaml.YAMLError) as error:
        raise BuildError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict) or "Resources" not in data:
        raise BuildError(f"{path} is not a CloudFormation template")
    return data


def dump_template(template: dict[str, Any]) -> str:
    return yaml.safe_dump(template, sort_keys=False, allow_unicode=True, width=200)


# ------------------------------------------------------------------------------------------------------ building


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _placeholders(asl: Path) -> set[str]:
    try:
        text = asl.read_text(encoding="utf-8")
        json.loads(text)
    except (OSError, ValueError) as error:
        raise BuildError(f"cannot read the state machine {asl}: {error}") from None
    return set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))


def read_wif_config(path: Path) -> dict[str, Any]:
    """A Workload Identity Federation credential config for AWS (``gcloud iam workload-identity-pools
    create-cred-config … --aws``); anything else (a service-account key above all) is refused."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BuildError(f"cannot read the GCP credential config {path}: {error}") from None
    source = data.get("credential_source") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("type") != "external_account"
        or not isinstance(source, dict)
        or not str(source.get("environment_id", "")).startswith("aws")
    ):
        raise BuildError(
            f"{path} is not a Workload Identity Federation config for AWS (type external_account, "
            "credential_source.environment_id aws1); create it with `gcloud iam workload-identity-pools "
            "create-cred-config … --aws` — a service-account key goes to Secrets Manager instead"
        )
    return data


def build(
    *,
    queries: Path = DEFAULT_QUERIES,
    out: Path = DEFAULT_OUT,
    arch: str = "x86_64",
    lambda_dir: Path = DEFAULT_LAMBDA_DIR,
    wif_config: Path | None = None,
    template_path: Path = TEMPLATE,
) -> tuple[dict[str, Any], list[Schedule]]:
    """Write ``out`` (and, with a WIF config, its layer folder beside it); the template and its schedules."""
    if arch not in ARCHITECTURES:
        raise BuildError(f"architecture {arch!r}: choose {' or '.join(ARCHITECTURES)}")
    template = read_template(template_path)
    found = catalog_schedules(queries)
    wif = read_wif_config(wif_config) if wif_config else None
    base = out.parent
    resources: dict[str, Any] = template["Resources"]
    parameters: dict[str, Any] = template["Parameters"]

    parameters["Architecture"].update(
        Default=arch,
        AllowedValues=[arch],
        ConstraintDescription=f"this template was built for {arch}: rebuild with --arch (make deploy ARCH=…)",
    )
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            match = _CODE_URI.match(str(properties.get("CodeUri", "")))
            if not match:
                raise BuildError(f"{template_path}: {logical_id}'s CodeUri is not lambda/<package>-<arch>.zip")
            properties["CodeUri"] = _relative(lambda_dir / f"{match['package']}-{arch}.zip", base)
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            asl = template_path.parent / properties["DefinitionUri"]
            missing = _placeholders(asl) - set(properties.get("DefinitionSubstitutions", {}))
            if missing:
                shown = ", ".join(f"${{{name}}}" for name in sorted(missing))
                raise BuildError(f"{asl} uses {shown}, which {logical_id}'s DefinitionSubstitutions lack")
            properties["DefinitionUri"] = _relative(asl, base)

    if wif is None:
        resources.pop(WIF_LAYER)
        for resource in resources.values():
            if WIF_LAYER in json.dumps(resource.get("Properties", {}).get("Layers", "")):
                del resource["Properties"]["Layers"]
        parameters["GcpCredentialsMode"].update(
            Default="secret",
            AllowedValues=["secret"],
            ConstraintDescription="built without --gcp-wif-config: Workload Identity Federation needs its config",
        )
    else:
        layer = base / "gcp-wif"
        layer.mkdir(parents=True, exist_ok=True)
        (layer / WIF_FILE).write_text(json.dumps(wif, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        resources[WIF_LAYER]["Properties"]["Content"] = _relative(layer, base)

    _clone_mask_task(resources, arch)
    for schedule in found:
        if schedule.logical_id in resources:
            raise BuildError(f"{template_path} already has a resource {schedule.logical_id}")
        resources[schedule.logical_id] = schedule.resource()

    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Generated by `python -m infra.build` from {template_path.name} and {queries}/ — do not edit.\n"
    out.write_text(header + dump_template(template), encoding="utf-8")
    return template, found


def _clone_mask_task(resources: dict[str, Any], arch: str) -> None:
    """The clone's ECS masking task runs the clone-database Lambda's code, from the same package: it gets that
    Lambda's variables, copied here so that the two can never be configured apart, and its architecture."""
    task, function = resources.get("CloneMaskTaskDefinition"), resources.get("CloneDatabaseFunction")
    if task is None or function is None:
        return
    variables = function["Properties"]["Environment"]["Variables"]
    (container,) = task["Properties"]["ContainerDefinitions"]
    container["Environment"] = [{"Name": name, "Value": value} for name, value in variables.items()]
    task["Properties"]["RuntimePlatform"]["CpuArchitecture"] = {"x86_64": "X86_64", "arm64": "ARM64"}[arch]


# ------------------------------------------------------------------------------------------------ command line


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.build",
        description="Write the deployable SAM template: infra/template.yaml plus a schedule per KPI cron.",
    )
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help="KPI files (queries)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the template to write (build/template.yaml)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="x86_64", help="the zips' architecture (x86_64)")
    parser.add_argument("--lambda-dir", type=Path, default=DEFAULT_LAMBDA_DIR, help="the zips (build/lambda)")
    parser.add_argument(
        "--gcp-wif-config",
        type=Path,
        metavar="FILE",
        help="Workload Identity Federation config (gcloud … create-cred-config --aws); without it, only "
        "GcpCredentialsMode=secret can be deployed",
    )
    parser.add_argument(
        "--allow-missing-zips", action="store_true", help="write the template even if `make package` has not run"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        missing = [
            path
            for path in (args.lambda_dir / f"{package}-{args.arch}.zip" for package in PACKAGES)
            if not path.is_file()
        ]
        if missing and not args.allow_missing_zips:
            shown = ", ".join(str(path) for path in missing)
            raise BuildError(f"no {shown}: build the Lambda packages first (make package ARCH={args.arch})")
        _, found = build(
            queries=args.queries,
            out=args.out,
            arch=args.arch,
            lambda_dir=args.lambda_dir,
            wif_config=args.gcp_wif_config,
        )
    except (BuildError, KpiError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for schedule in found:
        print(f"{schedule.expression} {schedule.timezone}: {', '.join(schedule.kpis)}")
    credentials = "Workload Identity Federation or a key" if args.gcp_wif_config else "a key in Secrets Manager only"
    print(f"wrote {args.out}: {len(found)} schedule(s), {args.arch}, BigQuery credentials: {credentials}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
