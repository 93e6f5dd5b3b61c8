"""The SAM template and its build: cfn-lint clean, schedules from queries/, cron → EventBridge, least privilege.

The cron conversion is checked two ways: a table of the expected spellings, and — for every convertible case —
the EventBridge expression's own semantics (a small interpreter of AWS's documented cron fields) against
cronsim's, the library `kpi check` and the runner read headers with: same days over two years, same times of day.
"""

from __future__ import annotations

import calendar
import importlib
import json
import re
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cronsim import CronSim

from infra import build as infra_build
from infra import package as infra_package
from infra.build import BuildError, Schedule, eventbridge_cron
from pipeline.sources.mysql import parse_mysql_url
from pipeline.warehouses.bigquery import parse_bigquery_url
from tests.conftest import ROOT

# Infrastructure (the SAM template built and checked with cfn-lint and statelint): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra

WIF_CONFIG = {
    "type": "external_account",
    "audience": "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/kpi-aws/providers/aws",
    "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
    "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
    "kpi-loader@acme.iam.gserviceaccount.com:generateAccessToken",
    "token_url": "https://sts.googleapis.com/v1/token",
    "credential_source": {
        "environment_id": "aws1",
        "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
        "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
    },
}
# Resource "*" is allowed only for actions that take no narrower resource: a state machine's log delivery.
ALLOWED_ON_ANY_RESOURCE = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# … and the suspend Lambda's reads: which resources exist, their state and tags; none takes a narrower resource in
# a useful way (they list the region), and none changes anything.
SUSPEND_READS = {
    "ec2:DescribeInstances",
    "rds:DescribeDBClusters",
    "rds:DescribeDBInstances",
    "rds:DescribeGlobalClusters",
    "rds:ListTagsForResource",
    "autoscaling:DescribeAutoScalingGroups",
    "ecs:ListClusters",
    "ecs:DescribeClusters",
    "ecs:ListServices",
    "ecs:DescribeServices",
    "ecs:ListTagsForResource",
    "application-autoscaling:DescribeScalableTargets",
    "pricing:GetProducts",  # the savings report: AWS Price List prices (public, account-less data)
    "sts:GetCallerIdentity",
}
# … and the clone Lambda's: which account its credentials are of, and its security group found by name (EC2's
# Describe* take no resource). Its RDS reads are narrowed to this account and Region.
CLONE_READS = {"sts:GetCallerIdentity", "ec2:DescribeSecurityGroups"}
NO_VALUE = {"Ref": "AWS::NoValue"}
STAGING_TEMPLATE = ROOT / "infra" / "clone-staging.yaml"


def built(tmp_path: Path, *, wif: bool = True, arch: str = "arm64", queries: Path | None = None) -> dict[str, Any]:
    """Build into tmp_path (as `make deploy` would into build/) and read the result back as plain YAML."""
    config = None
    if wif:
        config = tmp_path / "gcp-wif-source.json"
        config.write_text(json.dumps(WIF_CONFIG), encoding="utf-8")
    out = tmp_path / "build" / "template.yaml"
    lambdas = tmp_path / "build" / "lambda"
    infra_build.build(queries=queries or ROOT / "queries", out=out, arch=arch, lambda_dir=lambdas, wif_config=config)
    template = yaml.safe_load(out.read_text(encoding="utf-8"))  # plain YAML: no CloudFormation tags left
    assert isinstance(template, dict)
    return template


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return built(tmp_path_factory.mktemp("template"))


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


# ------------------------------------------------------------------------------------------------------- cfn-lint


def cfn_lint(path: Path) -> tuple[list[str], list[str]]:
    """cfn-lint's errors, and its warnings and informational findings, as `RULE line: message`."""
    api: Any = importlib.import_module("cfnlint.api")  # cfn-lint has no type information
    config = api.ManualArgs(include_checks=["I"], regions=["ap-northeast-1", "us-east-1"])
    findings = [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in api.lint_file(path, config)]
    errors = [f for f in findings if f.startswith("E")]
    return errors, [f for f in findings if f not in errors]


@pytest.mark.parametrize("wif", [True, False], ids=["workload-identity", "key-secret-only"])
def test_the_built_template_passes_cfn_lint(tmp_path: Path, wif: bool) -> None:
    built(tmp_path, wif=wif)
    errors, others = cfn_lint(tmp_path / "build" / "template.yaml")
    assert errors == []
    for finding in others:
        warnings.warn(f"cfn-lint: {finding}", stacklevel=1)


def test_the_staging_template_of_the_clone_passes_cfn_lint() -> None:
    """infra/clone-staging.yaml: plain CloudFormation, deployed as it is in the staging account (no build)."""
    errors, others = cfn_lint(STAGING_TEMPLATE)
    assert errors == []
    assert others == []


def test_the_source_template_reads_into_long_form_intrinsics() -> None:
    source = infra_build.read_template()
    exporter = source["Resources"]["ExporterFunction"]["Properties"]
    assert exporter["Role"] == {"Fn::GetAtt": ["ExporterRole", "Arn"]}
    assert exporter["ReservedConcurrentExecutions"] == {"Ref": "ExporterConcurrency"}
    assert set(exporter["Environment"]["Variables"]["KPI_SOURCE"]) == {"Fn::Sub"}
    assert source["AWSTemplateFormatVersion"] == "2010-09-09"  # a string, not a YAML date
    assert "!Ref" not in infra_build.dump_template(source)


# ---------------------------------------------------------------------------------------------- cron → EventBridge

CONVERSIONS = [
    ("0 6 * * *", "cron(0 6 * * ? *)"),
    ("10 * * * *", "cron(10 * * * ? *)"),
    ("30 6 * * 1-5", "cron(30 6 ? * MON-FRI *)"),
    ("30 6 * * mon-fri", "cron(30 6 ? * MON-FRI *)"),
    ("0 7 1 * *", "cron(0 7 1 * ? *)"),
    ("*/15 * * * *", "cron(0/15 * * * ? *)"),
    ("5-50/15 * * * *", "cron(5/15 * * * ? *)"),
    ("0 */6 * * *", "cron(0 0/6 * * ? *)"),
    ("0 9-17 * * 1-5", "cron(0 9-17 ? * MON-FRI *)"),
    ("0,30 8,20 * * *", "cron(0,30 8,20 * * ? *)"),
    ("0 6 1,15 * *", "cron(0 6 1,15 * ? *)"),
    ("0 6 */2 * *", "cron(0 6 1/2 * ? *)"),
    ("0 0 1 1,4,7,10 *", "cron(0 0 1 1,4,7,10 ? *)"),
    ("0 0 1 jan-mar *", "cron(0 0 1 1-3 ? *)"),
    ("0 6 * * 0", "cron(0 6 ? * SUN *)"),
    ("0 6 * * 7", "cron(0 6 ? * SUN *)"),
    ("0 6 * * 6,0", "cron(0 6 ? * SUN,SAT *)"),
    ("0 6 * * 5-7", "cron(0 6 ? * SUN,FRI,SAT *)"),  # no wrap-around range: a list
    ("0 6 * * */2", "cron(0 6 ? * SUN,TUE,THU,SAT *)"),
    ("0 6 * * 1,3,5", "cron(0 6 ? * MON,WED,FRI *)"),
    ("0 6 * * 0-6", "cron(0 6 * * ? *)"),
    ("0 6 1-31 * 1-5", "cron(0 6 * * ? *)"),  # cron's OR: every day of the month matches
    ("0 6 1-5 * 0-6", "cron(0 6 * * ? *)"),  # … or every day of the week
    ("0 6 L * 0-6", "cron(0 6 * * ? *)"),
    ("0 6 L * *", "cron(0 6 L * ? *)"),
    ("0 6 * * 5L", "cron(0 6 ? * 6L *)"),  # the last Friday; EventBridge counts Sunday as 1
    ("0 6 * * 1#2", "cron(0 6 ? * 2#2 *)"),  # the second Monday
    ("0 6 * * 7L", "cron(0 6 ? * 1L *)"),  # the last Sunday
    ("0 6 * * fri#5", "cron(0 6 ? * 6#5 *)"),
    ("0 6 L 2 *", "cron(0 6 L 2 ? *)"),
    ("0 0 6 * * *", "cron(0 6 * * ? *)"),  # cronsim's seconds field, when 0
]


@pytest.mark.parametrize(("cron", "expected"), CONVERSIONS)
def test_cron_becomes_eventbridge_cron(cron: str, expected: str) -> None:
    assert eventbridge_cron(cron, kpi="k") == expected


REFUSED = [
    ("0 6 1 * 1", "restricts both day-of-month (1) and day-of-week (1; either may match)"),
    ("0 6 */2 * 1", "restricts both day-of-month (*/2) and day-of-week (1; both must match)"),
    ("30 0 6 * * *", "EventBridge schedules have no seconds"),
    ("0 6 LW * *", "only a plain L"),
    ("0 6 * * 1#2,3", "EventBridge takes L and # only alone"),
    ("0 6 * *", "a cron expression has 5 fields"),
    ("0 25 * * *", "hour '25' is not 0-23"),
]


@pytest.mark.parametrize(("cron", "reason"), REFUSED)
def test_what_eventbridge_cannot_express_is_refused_naming_the_kpi(cron: str, reason: str) -> None:
    with pytest.raises(BuildError) as raised:
        eventbridge_cron(cron, kpi="weekly_refunds")
    message = str(raised.value)
    assert message.startswith(f"KPI weekly_refunds: schedule '{cron}' cannot be an EventBridge schedule: ")
    assert reason in message


# An interpreter of EventBridge's cron fields, as AWS documents them: day-of-week 1-7 = SUN-SAT (or names), `?`
# for any, `a/n` from a to the field's end, `L` (last day of the month), `nL` (last weekday n), `n#k` (k-th).
_EB_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_EB_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def _eb_values(text: str, low: int, high: int, names: list[str]) -> set[int]:
    def one(value: str) -> int:
        return names.index(value) + low if value in names else int(value)

    found: set[int] = set()
    for term in text.split(","):
        if term in ("*", "?"):
            found |= set(range(low, high + 1))
        elif "/" in term:
            start, step = term.split("/")
            found |= set(range(low if start == "*" else one(start), high + 1, int(step)))
        elif "-" in term:
            first, last = term.split("-")
            found |= set(range(one(first), one(last) + 1))
        else:
            found.add(one(term))
    return found


def _eb_day_matches(day: date, dom: str, month: str, dow: str) -> bool:
    if day.month not in _eb_values(month, 1, 12, _EB_MONTHS):
        return False
    last = calendar.monthrange(day.year, day.month)[1]
    weekday = day.isoweekday() % 7 + 1  # SUN = 1
    dom_ok = day.day == last if dom == "L" else dom == "?" or day.day in _eb_values(dom, 1, 31, [])
    if dow.endswith("L"):
        dow_ok = weekday == int(dow[:-1]) and day.day + 7 > last
    elif "#" in dow:
        number, nth = dow.split("#")
        dow_ok = weekday == int(number) and (day.day - 1) // 7 + 1 == int(nth)
    else:
        dow_ok = dow == "?" or weekday in _eb_values(dow, 1, 7, _EB_DAYS)
    return dom_ok and dow_ok


def _cronsim_times(expression: str, start: datetime, end: datetime) -> Iterator[datetime]:
    for moment in CronSim(expression, start - timedelta(minutes=1)):
        if moment >= end:
            return
        yield moment


@pytest.mark.parametrize(("cron", "expected"), CONVERSIONS)
def test_eventbridge_fires_when_cron_does(cron: str, expected: str) -> None:
    """Days over two years (leap day, five-Friday months) and times over a day: the same set on both sides."""
    minute, hour, dom, month, dow, _year = expected.removeprefix("cron(").removesuffix(")").split()
    fields = cron.split()[-5:]
    start, end = datetime(2024, 1, 1), datetime(2026, 1, 1)
    cron_days = {t.date() for t in _cronsim_times(f"0 0 {' '.join(fields[2:])}", start, end)}
    eb_days = {
        start.date() + timedelta(days=n)
        for n in range((end - start).days)
        if _eb_day_matches(start.date() + timedelta(days=n), dom, month, dow)
    }
    assert eb_days == cron_days
    cron_times = {
        (t.hour, t.minute) for t in _cronsim_times(f"{fields[0]} {fields[1]} * * *", start, start.replace(day=2))
    }
    eb_times = {(h, m) for h in _eb_values(hour, 0, 23, []) for m in _eb_values(minute, 0, 59, [])}
    assert eb_times == cron_times


# ---------------------------------------------------------------------------------------------------- schedules


def test_the_repository_queries_make_five_schedules_in_japan_time(template: dict[str, Any]) -> None:
    # The headers of queries/: daily_sales and users_by_plan "0 6 * * *", hourly_orders "10 * * * *",
    # large_orders "30 6 * * *", monthly_active_buyers "0 7 1 * *", weekly_buyers "0 6 * * 1"; all in the default
    # timezone Asia/Tokyo.
    schedules = {  # the KPIs' (the suspend module's own two: tests/test_suspend_infra.py)
        name: s
        for name, s in resources_of(template, "AWS::Scheduler::Schedule").items()
        if s["Properties"]["Target"]["Arn"] == {"Ref": "ExportStateMachine"}
    }
    found = {
        p["ScheduleExpression"]: (p["ScheduleExpressionTimezone"], json.loads(p["Target"]["Input"]))
        for p in (s["Properties"] for s in schedules.values())
    }
    assert found == {
        "cron(0 6 * * ? *)": ("Asia/Tokyo", {"kpis": ["daily_sales", "users_by_plan"]}),
        "cron(10 * * * ? *)": ("Asia/Tokyo", {"kpis": ["hourly_orders"]}),
        "cron(30 6 * * ? *)": ("Asia/Tokyo", {"kpis": ["large_orders"]}),
        "cron(0 7 1 * ? *)": ("Asia/Tokyo", {"kpis": ["monthly_active_buyers"]}),
        "cron(0 6 ? * MON *)": ("Asia/Tokyo", {"kpis": ["weekly_buyers"]}),
    }
    for logical_id, schedule in schedules.items():
        assert re.fullmatch(r"ScheduleAsiaTokyo[0-9A-F]{8}", logical_id)
        properties = schedule["Properties"]
        assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}  # the string OFF, not YAML's false
        assert properties["State"] == "ENABLED"
        assert properties["GroupName"] == {"Ref": "ScheduleGroup"}
        target = properties["Target"]
        assert target["Arn"] == {"Ref": "ExportStateMachine"}
        assert target["RoleArn"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}


def _kpi_file(
    folder: Path, name: str, *, schedule: str | None, timezone: str = "Asia/Tokyo", enabled: bool = True
) -> None:
    text = (ROOT / "queries" / "daily_sales.sql").read_text(encoding="utf-8")
    text = text.replace("name: daily_sales", f"name: {name}")
    text = text.replace("timezone: Asia/Tokyo", f"timezone: {timezone}" + ("" if enabled else "\nenabled: false"))
    text = text.replace('schedule: "0 6 * * *"', f'schedule: "{schedule}"' if schedule else "")
    (folder / f"{name}.sql").write_text(text, encoding="utf-8")


def test_kpis_are_grouped_by_eventbridge_expression_and_timezone(tmp_path: Path) -> None:
    queries = tmp_path / "queries"
    queries.mkdir()
    _kpi_file(queries, "tokyo_six", schedule="0 6 * * *")
    _kpi_file(queries, "tokyo_six_too", schedule="0 6 * * 0-6")  # spelled differently, runs the same
    _kpi_file(queries, "berlin_six", schedule="0 6 * * *", timezone="Europe/Berlin")
    _kpi_file(queries, "switched_off", schedule="0 6 * * *", enabled=False)
    _kpi_file(queries, "on_demand", schedule=None)
    found = infra_build.catalog_schedules(queries)
    assert [(s.expression, s.timezone, s.kpis) for s in found] == [
        ("cron(0 6 * * ? *)", "Asia/Tokyo", ("tokyo_six", "tokyo_six_too")),
        ("cron(0 6 * * ? *)", "Europe/Berlin", ("berlin_six",)),
    ]
    assert found[0].crons == ("0 6 * * *", "0 6 * * 0-6")
    assert found[0].logical_id != found[1].logical_id
    assert found[0].logical_id == Schedule("cron(0 6 * * ? *)", "Asia/Tokyo", (), ("other",)).logical_id  # stable

    template = built(tmp_path, queries=queries)
    zones = {
        p["Properties"]["ScheduleExpressionTimezone"]
        for p in resources_of(template, "AWS::Scheduler::Schedule").values()
        if p["Properties"]["Target"]["Arn"] == {"Ref": "ExportStateMachine"}
    }
    assert zones == {"Asia/Tokyo", "Europe/Berlin"}


def test_every_kpi_eventbridge_cannot_run_is_named(tmp_path: Path) -> None:
    queries = tmp_path / "queries"
    queries.mkdir()
    _kpi_file(queries, "first_monday_or_first", schedule="0 6 1 * 1")
    _kpi_file(queries, "with_seconds", schedule="30 0 6 * * *")
    _kpi_file(queries, "fine", schedule="0 6 * * *")
    with pytest.raises(BuildError) as raised:
        infra_build.catalog_schedules(queries)
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert "KPI first_monday_or_first: schedule '0 6 1 * 1'" in lines[0]
    assert "KPI with_seconds: schedule '30 0 6 * * *'" in lines[1]


def test_a_broken_kpi_file_stops_the_build(tmp_path: Path) -> None:
    queries = tmp_path / "queries"
    queries.mkdir()
    _kpi_file(queries, "broken", schedule="0 25 * * *")
    with pytest.raises(BuildError, match=r"the KPI files have problems \(run `kpi check"):
        infra_build.catalog_schedules(queries)


# ---------------------------------------------------------------------------------------------- functions, wiring


def resolve(value: Any, parameters: dict[str, str], conditions: dict[str, bool]) -> Any:
    """Enough of CloudFormation to read the functions' variables and the policies: Ref, Fn::Sub, Fn::If, Fn::Join,
    Fn::Split, Fn::Select."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return parameters[argument]
        if key == "Fn::If":
            name, yes, no = argument
            return resolve(yes if conditions[name] else no, parameters, conditions)
        if key == "Fn::Sub":
            text, names = (argument, {}) if isinstance(argument, str) else argument
            local = {**parameters, **{k: resolve(v, parameters, conditions) for k, v in names.items()}}
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(local[m[1]]), text)
        if key == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in resolve(items, parameters, conditions))
        if key == "Fn::Split":
            separator, text = argument
            return str(resolve(text, parameters, conditions)).split(separator)
        if key == "Fn::Select":
            index, items = argument
            return resolve(items, parameters, conditions)[int(index)]
    return value


PARAMETERS = {
    "DbHost": "shop.cluster-ro-abc.ap-northeast-1.rds.amazonaws.com",
    "DbPort": "3306",
    "DbName": "shop",
    "DbUser": "kpi_reader",
    "DbSslCaPath": "",
    "DbSecretArn": "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:rds!cluster-1a2b-AbCdEf",
    "BigQueryProject": "acme-analytics",
    "BigQueryDataset": "kpi",
    "BigQueryLocation": "asia-northeast1",
    "GcpKeySecretArn": "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kpi/bigquery-key-AbCdEf",
    "LakeBucket": "kpi-lake-123456789012-ap-northeast-1-prod",
    "AWS::NoValue": "<none>",
    "AWS::Partition": "aws",
    "AWS::Region": "ap-northeast-1",
    "AWS::AccountId": "123456789012",
    "SuspendAccounts": "123456789012",
    "SuspendOptInTagKey": "kpi:suspend",
    "ProductionTagKey": "Environment",
    "ProductionTagValues": "prod,production",
    "SuspendReportTopic": "arn:aws:sns:ap-northeast-1:123456789012:kpi-pipeline-prod-SuspendReportTopic-AbC",
    "CloneSourceCluster": "shop-prod",
    "CloneSnapshot": "latest",
    "CloneSubnetGroup": "shop-prod-private",
    "CloneWorkerSecurityGroupId": "sg-0123456789abcdef0",
    "CloneMaskingKeySecretArn": "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kpi/clone-key-AbCdEf",
    "CloneKmsKeyArn": "arn:aws:kms:ap-northeast-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "CloneSourceKmsKeyArn": "",
    "CloneInstanceClass": "db.r6g.large",
    "CloneClusterParameterGroup": "",
    "CloneDatabases": "shop",
    "CloneStagingLogins": "shop_app,shop_batch",
    "CloneKeepLogins": "",
    "CloneLoginStatements": "ALTER USER shop_batch IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
    "CloneTargetAccount": "210987654321",
    "CloneTargetRoleArn": "arn:aws:iam::210987654321:role/kpi-clone-staging",
    "CloneTargetSubnetGroup": "shop-staging-private",
    "CloneTargetSecurityGroupIds": "sg-0abcdef0123456789,sg-0fedcba9876543210",
    "CloneTargetClusterPrefix": "staging-db",
    "CloneTargetInstanceClass": "db.r6g.large",
    "CloneTargetClusterParameterGroup": "",
    "CloneTargetKmsKeyArn": "",
    "CloneTargetExternalId": "",
    "CloneHostedZoneId": "Z0123456789ABC",
    "CloneRecordName": "db.staging.internal",
    "CloneRecordTtl": "60",
    "CloneHealthQuery": "SELECT 1",
    "CloneGraceHours": "24",
    "CloneMinIntervalHours": "12",
    "ClonePollSeconds": "60",
    "AlertsDefault": "sns:arn:aws:sns:ap-northeast-1:123456789012:kpi-data-team",
    "AlertsOwners": "growth=slack:secretsmanager:arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kpi/g-AbC",
}


def variables(template: dict[str, Any], function: str, **conditions: bool) -> dict[str, str]:
    raw = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    values = {k: resolve(v, PARAMETERS, conditions) for k, v in raw.items()}
    return {k: v for k, v in values.items() if v != "<none>"}


def test_the_exporter_reads_aurora_over_tls_with_the_secret_and_writes_the_lake(template: dict[str, Any]) -> None:
    env = variables(template, "ExporterFunction", HasDbUser=True, HasDbSslCa=False)
    assert env["KPI_QUERIES"] == "queries"
    assert env["KPI_LAKE"] == "s3://kpi-lake-123456789012-ap-northeast-1-prod/lake"
    source = parse_mysql_url(env["KPI_SOURCE"])
    assert (source.host, source.port, source.database, source.user) == (
        PARAMETERS["DbHost"],
        3306,
        "shop",
        "kpi_reader",
    )
    assert source.ssl
    assert source.secret == PARAMETERS["DbSecretArn"]
    assert source.password == ""
    without_user = parse_mysql_url(
        variables(template, "ExporterFunction", HasDbUser=False, HasDbSslCa=True)["KPI_SOURCE"]
    )
    assert without_user.user == ""
    exporter = template["Resources"]["ExporterFunction"]["Properties"]
    assert exporter["Handler"] == "pipeline.lambdas.exporter.handler"
    assert (exporter["Timeout"], exporter["MemorySize"]) == (900, 1024)
    assert exporter["VpcConfig"] == {
        "SubnetIds": {"Ref": "VpcSubnetIds"},
        "SecurityGroupIds": [{"Ref": "VpcSecurityGroupId"}],
    }


@pytest.mark.parametrize("function", ["LoaderFunction", "PlannerFunction", "FreshnessFunction"])
def test_loader_and_planner_reach_bigquery_by_federation_or_by_key(template: dict[str, Any], function: str) -> None:
    federated = variables(template, function, UseWif=True, UseKeySecret=False)
    target = parse_bigquery_url(federated["KPI_WAREHOUSE"])
    assert (target.project, target.dataset, target.location, target.secret) == (
        "acme-analytics",
        "kpi",
        "asia-northeast1",
        None,
    )
    assert federated["GOOGLE_APPLICATION_CREDENTIALS"] == "/opt/gcp-wif.json"
    keyed = variables(template, function, UseWif=False, UseKeySecret=True)
    assert parse_bigquery_url(keyed["KPI_WAREHOUSE"]).secret == PARAMETERS["GcpKeySecretArn"]
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in keyed
    properties = template["Resources"][function]["Properties"]
    assert "VpcConfig" not in properties  # outside the VPC: BigQuery is on the internet
    assert properties["Layers"] == {"Fn::If": ["UseWif", [{"Ref": "GcpWifConfigLayer"}], NO_VALUE]}


def test_the_code_is_the_zips_of_the_chosen_architecture(tmp_path: Path) -> None:
    template = built(tmp_path, arch="arm64")
    functions = resources_of(template, "AWS::Serverless::Function")
    uris = {name: f["Properties"]["CodeUri"] for name, f in functions.items()}
    assert uris == {
        "ExporterFunction": "lambda/exporter-arm64.zip",
        "LoaderFunction": "lambda/loader-arm64.zip",
        "PlannerFunction": "lambda/loader-arm64.zip",
        "FreshnessFunction": "lambda/loader-arm64.zip",
        "SuspendFunction": "lambda/ops-arm64.zip",
        "CloneFunction": "lambda/ops-arm64.zip",
        "CloneDatabaseFunction": "lambda/exporter-arm64.zip",
    }
    handlers = {f["Properties"]["Handler"] for f in functions.values()}
    assert handlers == {
        "pipeline.lambdas.exporter.handler",
        "pipeline.lambdas.loader.handler",
        "pipeline.lambdas.planner.handler",
        "pipeline.lambdas.freshness.handler",
        "pipeline.lambdas.suspend.handler",
        "pipeline.lambdas.clone.handler",
        "pipeline.lambdas.clone_database.handler",
    }
    for handler in handlers:  # each names a function that exists, in the zip infra/package.py serves it from
        module, _, name = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), handler
    served = {h: f["Properties"]["CodeUri"] for f in functions.values() for h in [f["Properties"]["Handler"]]}
    for package in infra_package.FUNCTIONS.values():
        for handler in (package.handler, *package.other_handlers):
            assert served[handler] == f"lambda/{package.name}-arm64.zip", handler
    architecture = template["Parameters"]["Architecture"]
    assert (architecture["Default"], architecture["AllowedValues"]) == ("arm64", ["arm64"])
    assert template["Globals"]["Function"] == {"Runtime": "python3.12", "Architectures": [{"Ref": "Architecture"}]}
    machines = resources_of(template, "AWS::Serverless::StateMachine")
    kpis = {
        "ExporterFunctionArn",
        "PlannerFunctionArn",
        "OwnerAlertFunctionArn",
        "AlertTopicArn",
        "BackfillConcurrency",
    }
    suspend = {"SuspendFunctionArn", "AlertTopicArn"}
    clone = {"CloneFunctionArn", "CloneDatabaseFunctionArn", "AlertTopicArn", "CloneMaskRunner"}
    clone |= {"CloneMaskClusterArn", "CloneMaskTaskDefinitionArn", "CloneMaskSubnets", "CloneMaskSecurityGroups"}
    expected = {"export": kpis, "backfill": kpis, "suspend": suspend, "resume": suspend, "clone": clone}
    assert len(machines) == len(expected)
    for machine in machines.values():
        uri = (tmp_path / "build" / machine["Properties"]["DefinitionUri"]).resolve()
        assert uri.parent == ROOT / "infra" / "statemachines"
        assert set(machine["Properties"]["DefinitionSubstitutions"]) == expected[uri.name.removesuffix(".asl.json")]


def test_the_loader_is_fed_by_a_queue_of_manifest_events_with_a_dead_letter_queue(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    event = resources["LoaderFunction"]["Properties"]["Events"]["Manifests"]
    assert event == {
        "Type": "SQS",
        "Properties": {
            "Queue": {"Fn::GetAtt": ["LoadQueue", "Arn"]},
            "BatchSize": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],  # the handler's partial batch responses
            "ScalingConfig": {"MaximumConcurrency": {"Ref": "LoaderConcurrency"}},
        },
    }
    queue = resources["LoadQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["LoadDeadLetterQueue", "Arn"]}
    # Outlasts one load (never two loaders on one message), by a minute: a failed load is retried after the
    # handler's own backoff, so a transient failure costs minutes, not the 90 of a 6 × timeout.
    timeout = resources["LoaderFunction"]["Properties"]["Timeout"]
    assert timeout < queue["VisibilityTimeout"] <= timeout + 60
    (notification,) = resources["LakeBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Queue"] == {"Fn::GetAtt": ["LoadQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": "lake/"},
        {"Name": "suffix", "Value": "_batch.json"},  # the batch index: one load (one transaction) per export job
    ]
    (allow,) = resources["LoadQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert set(allow["Condition"]) == {"ArnEquals", "StringEquals"}  # this bucket, this account
    assert resources["LakeBucket"]["DependsOn"] == "LoadQueuePolicy"


def test_the_lake_bucket_is_private_encrypted_tls_only_and_kept(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["LakeBucket"]
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = bucket["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    for lifecycle in properties["LifecycleConfiguration"]["Rules"]:  # committed partitions never expire
        assert not {"ExpirationInDays", "ExpirationDate", "Transitions"} & set(lifecycle)
    (deny,) = template["Resources"]["LakeBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [{"Fn::GetAtt": ["LakeBucket", "Arn"]}, {"Fn::Sub": "${LakeBucket.Arn}/*"}]


def test_alarms_cover_every_function_the_dead_letter_queues_and_failed_executions(template: dict[str, Any]) -> None:
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    watched = {(a["Properties"]["MetricName"], json.dumps(a["Properties"]["Dimensions"][0]["Value"])) for a in alarms}
    assert watched == {
        ("Errors", '{"Ref": "ExporterFunction"}'),
        ("Errors", '{"Ref": "LoaderFunction"}'),
        ("Errors", '{"Ref": "PlannerFunction"}'),
        ("Errors", '{"Ref": "FreshnessFunction"}'),
        ("Errors", '{"Ref": "SuspendFunction"}'),
        ("ApproximateNumberOfMessagesVisible", '{"Fn::GetAtt": ["LoadDeadLetterQueue", "QueueName"]}'),
        ("ApproximateNumberOfMessagesVisible", '{"Fn::GetAtt": ["ScheduleDeadLetterQueue", "QueueName"]}'),
        ("ExecutionsFailed", '{"Ref": "ExportStateMachine"}'),
        ("ExecutionsFailed", '{"Ref": "BackfillStateMachine"}'),
        ("ExecutionsFailed", '{"Ref": "SuspendStateMachine"}'),
        ("ExecutionsFailed", '{"Ref": "ResumeStateMachine"}'),
        ("Errors", '{"Ref": "CloneFunction"}'),
        ("Errors", '{"Ref": "CloneDatabaseFunction"}'),
        ("ExecutionsFailed", '{"Ref": "CloneStateMachine"}'),
    }
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlertTopic"}] for a in alarms)
    subscription = template["Resources"]["AlertSubscription"]["Properties"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", {"Ref": "AlertEmail"})


def test_outputs_name_what_an_operator_needs(template: dict[str, Any]) -> None:
    assert {
        "LakeBucketName",
        "ExportStateMachineArn",
        "BackfillStateMachineArn",
        "AlertTopicArn",
        "ExporterFunctionName",
        "LoaderFunctionName",
        "PlannerFunctionName",
        "SuspendStateMachineArn",
        "ResumeStateMachineArn",
        "SuspendReportTopicArn",
        "CloneStateMachineArn",  # `kpi clone run` reads it (state_machine of [clone])
        "CloneRoleArn",  # infra/clone-staging.yaml trusts it
    } <= set(template["Outputs"])


# ------------------------------------------------------------------------------------------------ least privilege


def statements(template: dict[str, Any], role: str | None = None) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(role, statement, the condition it is under or "") of every identity policy, both branches of an Fn::If."""
    for name, resource in resources_of(template, "AWS::IAM::Role").items():
        if role is not None and name != role:
            continue
        for policy in resource["Properties"].get("Policies", []):
            for item in policy_document(policy["PolicyDocument"])["Statement"]:
                if "Fn::If" in item:
                    condition, yes, no = item["Fn::If"]
                    yield from ((name, branch, condition) for branch in (yes, no) if branch != NO_VALUE)
                else:
                    yield name, item, ""
    assert not resources_of(template, "AWS::IAM::Policy")
    assert not resources_of(template, "AWS::IAM::ManagedPolicy")


def policy_document(document: Any) -> dict[str, Any]:
    """A policy document as IAM receives it: the object itself, or — where a condition key holds a parameter (the
    suspend role's tag keys) — JSON text through Fn::Sub, read here with PARAMETERS' values."""
    if isinstance(document, dict) and set(document) == {"Fn::Sub"}:
        text = resolve(document, PARAMETERS, {})
        assert isinstance(text, str)
        parsed = json.loads(text)
        assert isinstance(parsed, dict)
        return parsed
    assert isinstance(document, dict)
    return document


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_function_lets_sam_generate_its_role(template: dict[str, Any]) -> None:
    for kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
        for name, resource in resources_of(template, kind).items():
            assert "Role" in resource["Properties"], name
            assert "Policies" not in resource["Properties"], name


def test_nothing_is_allowed_on_any_resource_but_log_delivery(template: dict[str, Any]) -> None:
    for role, statement, _ in statements(template):
        actions = set(as_list(statement["Action"]))
        assert not any("*" in action for action in actions), (role, actions)
        if statement["Effect"] == "Deny":  # narrows what is allowed: the suspend role's production guard
            assert (role, statement["Sid"], set(statement["Condition"])) == (
                "SuspendRole",
                "NeverProduction",
                {"StringEqualsIgnoreCase"},
            )
            continue
        assert statement["Effect"] == "Allow"
        if "*" in as_list(statement["Resource"]):
            # ECR's login (GetAuthorizationToken) takes no narrower resource: the clone's Fargate masking task pulls
            allowed = {
                "SuspendRole": SUSPEND_READS,
                "CloneRole": CLONE_READS,
                "CloneMaskExecutionRole": {"ecr:GetAuthorizationToken"},
            }.get(role, ALLOWED_ON_ANY_RESOURCE)
            assert actions <= allowed, (role, actions)
    managed = {
        name: r["Properties"].get("ManagedPolicyArns", [])
        for name, r in resources_of(template, "AWS::IAM::Role").items()
    }
    vpc_access = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"}
    in_the_vpc = {"ExporterRole": [vpc_access], "CloneDatabaseRole": [vpc_access]}
    assert {name: arns for name, arns in managed.items() if arns} == in_the_vpc


def s3_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for _, s, _ in statements(template, role) if any(a.startswith("s3:") for a in as_list(s["Action"]))]


def test_the_exporter_may_touch_only_the_lake_prefix_and_read_only_its_secret(template: dict[str, Any]) -> None:
    lake_objects = {"Fn::Sub": "${LakeBucket.Arn}/lake/*"}
    for statement in s3_statements(template, "ExporterRole"):
        actions = set(as_list(statement["Action"]))
        if actions == {"s3:ListBucket"}:
            assert statement["Resource"] == {"Fn::GetAtt": ["LakeBucket", "Arn"]}
            assert statement["Condition"] == {"StringLike": {"s3:prefix": ["lake/", "lake/*"]}}
        elif actions == {"s3:ListBucketMultipartUploads"}:  # a retry finds the uploads its killed attempt left
            assert statement["Resource"] == {"Fn::GetAtt": ["LakeBucket", "Arn"]}
        else:
            assert actions <= {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
            assert statement["Resource"] == lake_objects
    secrets = [s for _, s, _ in statements(template, "ExporterRole") if "secretsmanager:GetSecretValue" in s["Action"]]
    assert [(s["Action"], s["Resource"]) for s in secrets] == [
        ("secretsmanager:GetSecretValue", {"Ref": "DbSecretArn"})
    ]


def test_the_loader_reads_the_lake_and_its_queue_and_the_planner_nothing_on_s3(template: dict[str, Any]) -> None:
    loader = s3_statements(template, "LoaderRole")
    assert {a for s in loader for a in as_list(s["Action"])} == {"s3:GetObject", "s3:ListBucket"}
    assert {json.dumps(s["Resource"]) for s in loader} == {
        '{"Fn::Sub": "${LakeBucket.Arn}/lake/*"}',
        '{"Fn::GetAtt": ["LakeBucket", "Arn"]}',
    }
    queue = [
        s for _, s, _ in statements(template, "LoaderRole") if any(a.startswith("sqs:") for a in as_list(s["Action"]))
    ]
    assert [(s["Resource"], set(as_list(s["Action"]))) for s in queue] == [
        (
            {"Fn::GetAtt": ["LoadQueue", "Arn"]},
            {
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ChangeMessageVisibility",  # the backoff of a failed load
            },
        ),
        ({"Fn::GetAtt": ["LoadDeadLetterQueue", "Arn"]}, {"sqs:GetQueueUrl", "sqs:SendMessage"}),  # failed for good
    ]
    assert s3_statements(template, "PlannerRole") == []
    for role in ("LoaderRole", "PlannerRole"):
        secrets = [(s, c) for _, s, c in statements(template, role) if str(s["Action"]).startswith("secretsmanager")]
        alerts = [("secretsmanager:GetSecretValue", {"Ref": "AlertSlackSecretArns"}, "HasAlertSecrets")]
        assert [(s["Action"], s["Resource"], c) for s, c in secrets] == (alerts if role == "LoaderRole" else []) + [
            ("secretsmanager:GetSecretValue", {"Fn::Sub": "${GcpKeySecretArn}"}, "UseKeySecret")
        ]


def test_the_loader_alerts_owners_where_the_parameters_say_and_may_reach_only_those(template: dict[str, Any]) -> None:
    """The alerts configuration reaches the loader as KPI_ALERTS_* (read by pipeline.core.alert_routing); IAM
    allows the named webhook secrets and topics only, and nothing at all when none is named."""
    for function in ("LoaderFunction", "FreshnessFunction"):
        env = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert (env["KPI_ALERTS_DEFAULT"], env["KPI_ALERTS_OWNERS"], env["KPI_QUERIES"]) == (
            {"Ref": "AlertsDefault"},
            {"Ref": "AlertsOwners"},
            "queries",
        )
    published = [(r, s, c) for r, s, c in statements(template) if "sns:Publish" in as_list(s["Action"])]
    assert [(r, s["Resource"], c) for r, s, c in published if s.get("Sid") == "AlertTopics"] == [
        ("LoaderRole", {"Ref": "AlertTopicArns"}, "HasAlertTopics"),
        ("FreshnessRole", {"Ref": "AlertTopicArns"}, "HasAlertTopics"),
    ]
    freshness = [(s["Action"], s["Resource"], c) for _, s, c in statements(template, "FreshnessRole")]
    assert freshness == [
        (["logs:CreateLogStream", "logs:PutLogEvents"], {"Fn::GetAtt": ["FreshnessLogGroup", "Arn"]}, ""),
        ("secretsmanager:GetSecretValue", {"Fn::Sub": "${GcpKeySecretArn}"}, "UseKeySecret"),
        ("kms:Decrypt", {"Ref": "SecretsKmsKeyArn"}, "HasSecretsKmsKey"),
        ("secretsmanager:GetSecretValue", {"Ref": "AlertSlackSecretArns"}, "HasAlertSecrets"),
        ("sns:Publish", {"Ref": "AlertTopicArns"}, "HasAlertTopics"),
    ]
    schedule = template["Resources"]["FreshnessSchedule"]["Properties"]
    assert schedule["State"] == {"Fn::If": ["AlertsOn", "ENABLED", "DISABLED"]}
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == (
        {"Ref": "FreshnessAlertSchedule"},
        "Asia/Tokyo",
    )
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["FreshnessFunction", "Arn"]}
    assert template["Parameters"]["FreshnessAlertSchedule"]["Default"] == "cron(0 9 * * ? *)"
    conditions = template["Conditions"]
    assert conditions["HasAlertSecrets"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "AlertSlackSecretArns"}]}, ""]}]
    }
    assert conditions["HasAlertTopics"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "AlertTopicArns"}]}, ""]}]
    }
    owners = re.compile(template["Parameters"]["AlertsOwners"]["AllowedPattern"])
    default = re.compile(template["Parameters"]["AlertsDefault"]["AllowedPattern"])
    topic = "sns:arn:aws:sns:ap-northeast-1:123456789012:kpi-growth"
    webhook = "slack:secretsmanager:arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kpi/alerts/fin-AbC"
    for text in ("", f"growth={topic}", f"growth={topic},finance={webhook}"):
        assert owners.fullmatch(text), text
    for text in ("growth", f"growth={topic},", "growth=https://hooks.slack.com/services/T/B/x", f"a b={topic}"):
        assert not owners.fullmatch(text), text
    for text in (topic, webhook, ""):
        assert default.fullmatch(text), text
    assert not default.fullmatch("https://hooks.slack.com/services/T/B/x")
    from pipeline.lambdas.loader import LAST_RECEIVE  # alerts on the receive after which the DLQ takes it

    redrive = template["Resources"]["LoadQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == LAST_RECEIVE


def test_state_machines_invoke_only_their_functions_and_start_only_themselves(template: dict[str, Any]) -> None:
    def allowed(role: str, prefix: str) -> list[Any]:
        return [
            r
            for _, s, _ in statements(template, role)
            if any(a.startswith(prefix) for a in as_list(s["Action"]))
            for r in as_list(s["Resource"])
        ]

    # The owner-alert step (AlertOwners) of both machines invokes the freshness function, outside the VPC.
    owner_alerts = [{"Fn::GetAtt": ["FreshnessFunction", "Arn"]}, {"Fn::Sub": "${FreshnessFunction.Arn}:*"}]
    assert allowed("ExportStateMachineRole", "lambda:") == [
        {"Fn::GetAtt": ["ExporterFunction", "Arn"]},
        {"Fn::Sub": "${ExporterFunction.Arn}:*"},
        *owner_alerts,
    ]
    assert allowed("ExportStateMachineRole", "states:") == []
    assert allowed("BackfillStateMachineRole", "lambda:") == [
        {"Fn::GetAtt": ["PlannerFunction", "Arn"]},
        {"Fn::Sub": "${PlannerFunction.Arn}:*"},
        {"Fn::GetAtt": ["ExporterFunction", "Arn"]},
        {"Fn::Sub": "${ExporterFunction.Arn}:*"},
        *owner_alerts,
    ]
    for machine in ("ExportStateMachine", "BackfillStateMachine"):
        substitutions = template["Resources"][machine]["Properties"]["DefinitionSubstitutions"]
        assert substitutions["OwnerAlertFunctionArn"] == {"Fn::GetAtt": ["FreshnessFunction", "Arn"]}
    assert "VpcConfig" not in template["Resources"]["FreshnessFunction"]["Properties"]  # it reaches Slack and SNS
    own = [r["Fn::Sub"] for r in allowed("BackfillStateMachineRole", "states:")]
    assert own == [
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-backfill",
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-backfill/*",
    ]
    assert template["Resources"]["BackfillStateMachine"]["Properties"]["Name"] == {
        "Fn::Sub": "${AWS::StackName}-backfill"
    }
    for role in ("ExportStateMachineRole", "BackfillStateMachineRole"):
        assert allowed(role, "sns:") == [{"Ref": "AlertTopic"}]
    assert allowed("SchedulerRole", "states:") == [{"Ref": "ExportStateMachine"}]


# ------------------------------------------------------------------------------------- credentials, command line


def test_without_a_wif_config_only_the_key_secret_mode_can_be_deployed(tmp_path: Path) -> None:
    template = built(tmp_path, wif=False)
    assert "GcpWifConfigLayer" not in template["Resources"]
    for function in ("LoaderFunction", "PlannerFunction", "FreshnessFunction"):
        assert "Layers" not in template["Resources"][function]["Properties"]
    mode = template["Parameters"]["GcpCredentialsMode"]
    assert (mode["Default"], mode["AllowedValues"]) == ("secret", ["secret"])
    assert not (tmp_path / "build" / "gcp-wif").exists()


def test_the_wif_config_becomes_a_layer_beside_the_template(tmp_path: Path) -> None:
    template = built(tmp_path, wif=True)
    layer = template["Resources"]["GcpWifConfigLayer"]
    assert layer["Condition"] == "UseWif"
    assert layer["Properties"]["Content"] == "gcp-wif"
    assert json.loads((tmp_path / "build" / "gcp-wif" / "gcp-wif.json").read_text(encoding="utf-8")) == WIF_CONFIG
    assert template["Parameters"]["GcpCredentialsMode"]["AllowedValues"] == ["wif", "secret"]


def test_a_service_account_key_is_refused_as_wif_config(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}), "utf-8")
    with pytest.raises(BuildError, match="is not a Workload Identity Federation config for AWS"):
        infra_build.build(out=tmp_path / "t.yaml", queries=ROOT / "queries", wif_config=key)
    assert not (tmp_path / "t.yaml").exists()


def test_the_command_wants_the_zips_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "build" / "template.yaml"
    argv = ["--queries", str(ROOT / "queries"), "--out", str(out), "--lambda-dir", str(tmp_path / "lambda")]
    assert infra_build.main([*argv, "--arch", "arm64"]) == 1
    assert "make package ARCH=arm64" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "lambda").mkdir()
    for package in infra_build.PACKAGES:
        (tmp_path / "lambda" / f"{package}-arm64.zip").write_bytes(b"PK")
    assert infra_build.main([*argv, "--arch", "arm64"]) == 0
    printed = capsys.readouterr().out
    assert "cron(0 6 * * ? *) Asia/Tokyo: daily_sales, users_by_plan" in printed
    assert f"wrote {out}: 5 schedule(s), arm64" in printed
    code_uri = yaml.safe_load(out.read_text(encoding="utf-8"))["Resources"]["ExporterFunction"]["Properties"]["CodeUri"]
    assert code_uri == "../lambda/exporter-arm64.zip"
