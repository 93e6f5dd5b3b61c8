"""The suspend module's pure core: configuration, calendar and window, rules, plan, request and event parsing,
and the order and waiting of ``apply`` (with an in-memory adapter; the AWS adapters are tested on moto)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.suspend import (
    Calendar,
    Kind,
    Request,
    Resource,
    Selector,
    State,
    SuspendError,
    Verdict,
    build_plan,
    load_config,
    parse_rds_event,
)
from pipeline.suspend.apply import apply_plan
from pipeline.suspend.request import parse_now
from pipeline.suspend.rules import guard, production
from tests.suspending import (
    ACCOUNT,
    FRIDAY_NIGHT,
    LABOUR_THANKSGIVING_0800_JST,
    OPT_IN,
    TUESDAY_MORNING,
    config,
    rds_event,
)

# -- configuration ---------------------------------------------------------------------------------------------


def test_the_suspend_table_is_read_from_kpi_toml_and_variables_override_it(tmp_path: Path) -> None:
    path = tmp_path / "kpi.toml"
    path.write_text(
        '[environments.local]\nlake = ".kpi/lake"\n\n'
        "[suspend]\n"
        'accounts = ["123456789012"]\n'
        'extra_holidays = [2026-12-29, "01-03", {date = "2026-12-30", name = "office closed"}]\n'
        'production_tag = {key = "Stage", values = ["live"]}\n'
        'services = ["rds", "ecs"]\n',
        encoding="utf-8",
    )
    loaded = load_config(path, environ={"KPI_SUSPEND_TIMEZONE": "Europe/Paris"})
    assert loaded.accounts == (ACCOUNT,)
    assert loaded.timezone == "Europe/Paris"
    assert str(loaded.production_tag) == "Stage=live"
    assert loaded.services == ("ecs", "rds")
    assert [(h.year, h.month, h.day, h.name) for h in loaded.extra_holidays] == [
        (2026, 12, 29, "custom holiday (extra_holidays)"),
        (0, 1, 3, "custom holiday (extra_holidays)"),
        (2026, 12, 30, "office closed"),
    ]
    assert loaded.origin == f"{path} [suspend] + KPI_SUSPEND_* variables"


def test_the_lambda_is_configured_by_variables_alone(tmp_path: Path) -> None:
    loaded = load_config(
        tmp_path / "missing.toml",
        environ={
            "KPI_SUSPEND_ACCOUNTS": "123456789012, 210987654321",
            "KPI_SUSPEND_PRODUCTION_TAG_VALUES": "prod,live",
            "KPI_SUSPEND_TOPIC_ARN": "arn:aws:sns:ap-northeast-1:123456789012:suspend",
        },
    )
    assert loaded.accounts == (ACCOUNT, "210987654321")
    assert str(loaded.production_tag) == "Environment=prod|live"
    assert loaded.topic_arn.endswith(":suspend")


def test_without_an_account_allow_list_nothing_runs(tmp_path: Path) -> None:
    with pytest.raises(SuspendError) as caught:
        load_config(tmp_path / "kpi.toml", environ={})
    assert caught.value.message == (
        f"no account allow-list: {tmp_path / 'kpi.toml'} has no [suspend] accounts and KPI_SUSPEND_ACCOUNTS is not set"
    )
    assert "accounts = [" in caught.value.hint


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"acounts": []}, "unknown key 'acounts' (did you mean 'accounts'?)"),
        ({"accounts": [123456789012]}, "accounts: 123456789012 is not quoted"),
        ({"accounts": ["12345"]}, "accounts: '12345' is not a 12-digit AWS account id"),
        ({"timezone": "Asia/Tokio"}, "timezone 'Asia/Tokio' is not an IANA time zone"),
        ({"suspend_at": "0 25 * * 1-5"}, "suspend_at '0 25 * * 1-5' is not a valid cron expression: Bad hour"),
        ({"holidays": "jp"}, "holidays: 'jp' is not a country the holidays package knows (did you mean 'JP'?)"),
        ({"holiday_language": "fr"}, "holiday_language 'fr' is not offered for JP"),
        ({"extra_holidays": ["2026-13-01"]}, "extra_holidays: '2026-13-01' is not a date"),
        ({"services": ["ecs", "rdss"]}, "services: unknown service 'rdss' (did you mean 'rds'?)"),
        (
            {"production_tag": {"key": "Environment", "values": []}},
            "production_tag.values must be a non-empty list of text: the production guard cannot be switched off",
        ),
        ({"opt_in_tag": "aws:suspend"}, "opt_in_tag 'aws:suspend' starts with 'aws:', which AWS reserves"),
    ],
)
def test_a_wrong_key_is_named_with_how_to_fix_it(table: dict[str, Any], message: str) -> None:
    with pytest.raises(SuspendError) as caught:
        config(**table)
    assert caught.value.message == message
    assert caught.value.where == "test [suspend]"
    assert caught.value.hint


# -- calendar ----------------------------------------------------------------------------------------------------


def test_holidays_are_read_on_the_tokyo_calendar_not_the_utc_date() -> None:
    calendar = Calendar(config())
    assert calendar.holiday_at(parse_now(LABOUR_THANKSGIVING_0800_JST)) == "Labor Thanksgiving Day"
    assert calendar.holiday_at(parse_now("2026-11-22T14:59:59Z")) is None  # 23:59 JST on Sunday the 22nd
    assert calendar.holiday_at(parse_now("2026-11-22T15:00:00Z")) == "Labor Thanksgiving Day"  # 00:00 JST
    assert calendar.holiday_at(parse_now("2026-11-23T08:00")) == "Labor Thanksgiving Day"  # naive: Tokyo time
    assert Calendar(config(holiday_language="ja")).holiday_at(parse_now(LABOUR_THANKSGIVING_0800_JST)) == "勤労感謝の日"
    assert Calendar(config(holidays="")).holiday_at(parse_now(LABOUR_THANKSGIVING_0800_JST)) is None


@pytest.mark.parametrize(
    ("now", "inside", "reason"),
    [
        (
            "2026-11-20T20:59:00+09:00",
            False,
            "outside the suspend window: resumed 2026-11-20 08:00 JST (Fri), next suspend 2026-11-20 21:00 JST (Fri)",
        ),
        (
            FRIDAY_NIGHT,
            True,
            "inside the suspend window: suspended 2026-11-20 21:00 JST (Fri), resumes 2026-11-24 08:00 JST (Tue)",
        ),
        (
            "2026-11-23T10:00:00+09:00",  # the Monday holiday: the 08:00 resume did not run
            True,
            "inside the suspend window: suspended 2026-11-20 21:00 JST (Fri), resumes 2026-11-24 08:00 JST (Tue)",
        ),
        (
            TUESDAY_MORNING,
            False,
            "outside the suspend window: resumed 2026-11-24 08:00 JST (Tue), next suspend 2026-11-24 21:00 JST (Tue)",
        ),
    ],
)
def test_the_suspend_window_covers_nights_weekends_and_holidays(now: str, inside: bool, reason: str) -> None:
    window = Calendar(config()).window(parse_now(now))
    assert (window.inside, window.reason) == (inside, reason)


def test_custom_days_and_the_holidays_ahead() -> None:
    calendar = Calendar(config(extra_holidays=["12-29", {"date": "2026-12-28", "name": "office closed"}]))
    ahead = calendar.upcoming(parse_now("2026-12-25T12:00"), days=10)
    assert [(day.isoformat(), name) for day, name in ahead] == [
        ("2026-12-28", "office closed"),
        ("2026-12-29", "custom holiday (extra_holidays)"),
        ("2027-01-01", "New Year's Day"),
    ]
    assert calendar.holiday(datetime(2030, 12, 29).date()) == "custom holiday (extra_holidays)"  # every year


# -- rules and plan -----------------------------------------------------------------------------------------------


def resource(kind: Kind, identifier: str, state: State = State.RUNNING, **fields: Any) -> Resource:
    fields.setdefault("tags", OPT_IN)
    fields.setdefault("engine", "aurora-mysql" if kind == Kind.DB_CLUSTER else "postgres")
    return Resource(kind, identifier, f"arn:{identifier}", state, fields.pop("status", state.value), **fields)


@pytest.mark.parametrize(
    ("made", "reason"),
    [
        (resource(Kind.DB_INSTANCE, "m", parent="c", engine="aurora-mysql"), "member of Aurora cluster c"),
        (resource(Kind.DB_INSTANCE, "r", replica_of="src"), "read replica of src: RDS cannot stop a read replica"),
        (resource(Kind.DB_INSTANCE, "s", engine="sqlserver-se", multi_az=True), "SQL Server Multi-AZ"),
        (resource(Kind.DB_INSTANCE, "d", engine="docdb"), "engine docdb: not an RDS engine this module stops"),
        (resource(Kind.DB_CLUSTER, "g", global_cluster="world"), "member of global database world"),
        (resource(Kind.DB_CLUSTER, "x", replica_of="arn:src"), "cross-Region read replica of arn:src"),
        (resource(Kind.DB_CLUSTER, "n", engine="neptune"), "engine neptune: not an Aurora or RDS cluster"),
        (resource(Kind.DB_CLUSTER, "mm", engine_mode="multimaster"), "engine mode multimaster"),
        (resource(Kind.EC2_INSTANCE, "i-1", instance_store=True), "instance-store root volume"),
    ],
)
def test_what_aws_cannot_stop_is_guarded(made: Resource, reason: str) -> None:
    assert reason in (guard(made) or "")


def test_production_is_recognised_on_the_resource_or_its_cluster_in_any_case() -> None:
    settings = config(production_tag={"key": "Environment", "values": ["prod", "production"]})
    assert production(resource(Kind.EC2_INSTANCE, "i-1", tags={"ENVIRONMENT": "Prod"}), settings)
    member = resource(Kind.ECS_SERVICE, "live/api", parent="live", parent_tags={"Environment": "production"})
    assert (
        production(member, settings) == "production: its cluster live is tagged Environment=production; never touched"
    )
    assert production(resource(Kind.EC2_INSTANCE, "i-2", tags={"Environment": "preprod"}), settings) is None


def plan_for(resources: Sequence[Resource], request: Request, now: str = FRIDAY_NIGHT) -> Any:
    settings = config()
    return build_plan(resources, request, settings, Calendar(settings), parse_now(now))


def test_the_plan_orders_apps_before_databases_on_suspend_and_after_on_start() -> None:
    found = [
        resource(Kind.DB_CLUSTER, "aurora"),
        resource(Kind.EC2_INSTANCE, "i-1"),
        resource(Kind.ECS_SERVICE, "dev/web", capacity={"desired": 2}),
        resource(Kind.DB_INSTANCE, "pg"),
        resource(Kind.ASG, "web", capacity={"min": 1, "desired": 1, "max": 2}),
        resource(Kind.EC2_INSTANCE, "i-2", tags={}),  # not opted in: not in the plan at all
    ]
    suspend = plan_for(found, Request("suspend"))
    assert [s.resource.id for s in suspend.steps] == ["dev/web", "web", "i-1", "pg", "aurora"]
    stopped = [resource(r.kind, r.id, State.STOPPED, tags=r.tags, capacity=r.capacity) for r in found]
    start = plan_for(stopped, Request("start"), TUESDAY_MORNING)
    assert [s.resource.id for s in start.steps] == ["aurora", "pg", "i-1", "web", "dev/web"]
    databases = plan_for(found, Request("suspend", phase="databases"))
    assert [s.resource.id for s in databases.steps] == ["pg", "aurora"]


def test_states_that_are_not_yet_settled_wait_for_a_rerun() -> None:
    starting = resource(Kind.DB_CLUSTER, "aurora", State.STARTING)
    stopping = resource(Kind.DB_CLUSTER, "aurora", State.STOPPING)
    busy = resource(Kind.DB_INSTANCE, "pg", State.BUSY, status="backing-up")
    assert [(s.verdict, s.reason) for s in plan_for([starting, busy], Request("suspend")).steps] == [
        (Verdict.WAIT, "backing-up: it can be stopped once it is running"),
        (Verdict.WAIT, "starting: it can be stopped once it is running"),
    ]
    assert [(s.verdict, s.reason) for s in plan_for([stopping], Request("start"), TUESDAY_MORNING).steps] == [
        (Verdict.WAIT, "stopping: it can be started once it is stopped")
    ]
    assert [(s.verdict, s.reason) for s in plan_for([starting], Request("start"), TUESDAY_MORNING).steps] == [
        (Verdict.ALREADY, "already starting")
    ]


def test_a_start_restores_only_what_a_suspend_stored() -> None:
    bare = resource(Kind.ECS_SERVICE, "dev/web", State.STOPPED, capacity={"desired": 0})
    broken = resource(
        Kind.ASG,
        "web",
        State.STOPPED,
        capacity={"min": 0, "desired": 0, "max": 0},
        tags={
            **OPT_IN,
            "kpi:suspend:min-size": "1",
            "kpi:suspend:desired-capacity": "two",
            "kpi:suspend:max-size": "4",
        },
    )
    steps = plan_for([bare, broken], Request("start"), TUESDAY_MORNING).steps
    assert [(s.resource.id, s.verdict, s.reason) for s in steps] == [
        ("web", Verdict.FAIL, "tag kpi:suspend:desired-capacity=two is not a count: fix or remove it"),
        (
            "dev/web",
            Verdict.SKIP,
            "no kpi:suspend:desired-count tag: nothing stored to restore (not suspended by this module); left as is",
        ),
    ]


def test_stored_counts_left_by_a_finished_start_are_not_reused() -> None:
    stale = {"kpi:suspend:desired-count": "1", "kpi:suspend:last-action": "start@2026-11-19T23:00:00Z"}
    running = resource(Kind.ECS_SERVICE, "dev/web", capacity={"desired": 5}, tags={**OPT_IN, **stale})
    (step,) = plan_for([running], Request("suspend")).steps
    assert step.store == {
        "kpi:suspend:desired-count": "5",
        "kpi:suspend:last-action": "suspend@2026-11-20T12:00:00Z",
    }


def test_explicit_identifiers_select_without_the_tag_and_unknown_ones_are_missing() -> None:
    found = [resource(Kind.DB_CLUSTER, "dev-aurora", tags={}), resource(Kind.EC2_INSTANCE, "i-1")]
    plan = plan_for(found, Request("suspend", ids=(Selector("dev-aurora", Kind.DB_CLUSTER), Selector("nope"))))
    assert [s.resource.id for s in plan.steps] == ["dev-aurora"]
    assert plan.missing == (Selector("nope"),)
    tagged = plan_for(
        [resource(Kind.EC2_INSTANCE, "i-3", tags={**OPT_IN, "Team": "web"}), *found],
        Request("suspend", tags=(("Team", "web"),)),
    )
    assert [s.resource.id for s in tagged.steps] == ["i-3"]


# -- requests and events --------------------------------------------------------------------------------------


def test_the_original_event_and_its_mistakes() -> None:
    request = Request.from_event({"action": "suspend", "dbClusterIdentifiers": ["dev-aurora"]})
    assert request == Request("suspend", "all", (Selector("dev-aurora", Kind.DB_CLUSTER),))
    assert request.to_event() == {"action": "suspend", "phase": "all", "dbClusterIdentifiers": ["dev-aurora"]}
    mistakes: list[tuple[dict[str, Any], str]] = [
        ({"dbClusterIdentifiers": ["x"]}, "the event has no 'action'"),
        ({"action": "stop"}, "action 'stop' is not one of 'suspend', 'start'"),
        ({"action": "start", "phase": "db"}, "phase 'db' is not one of 'apps', 'databases', 'all'"),
        ({"action": "start", "dbClusterIdentifiers": "dev-aurora"}, "'dbClusterIdentifiers' must be a list"),
        ({"action": "start", "dryRun": "yes"}, "'dryRun' must be true or false"),
        ({"action": "start", "now": "tomorrow"}, "'now' 'tomorrow' is not an ISO date-time"),
    ]
    for event, message in mistakes:
        with pytest.raises(SuspendError) as caught:
            Request.from_event(event)
        assert caught.value.message.startswith(message)


def test_rds_events_are_read_from_their_detail() -> None:
    auto = parse_rds_event(rds_event("dev-aurora", time="2026-11-21T03:00:00Z"))
    assert (auto.event_id, auto.identifier, auto.kind, auto.automatic) == (
        "RDS-EVENT-0153",
        "dev-aurora",
        Kind.DB_CLUSTER,
        True,
    )
    assert auto.time == datetime(2026, 11, 21, 3, tzinfo=UTC)
    instance = parse_rds_event(rds_event("dev-pg", cluster=False))
    assert (instance.event_id, instance.kind) == ("RDS-EVENT-0154", Kind.DB_INSTANCE)
    broken = rds_event("dev-pg")
    del broken["detail"]["SourceIdentifier"]
    with pytest.raises(SuspendError, match="the RDS event's detail has no 'SourceIdentifier'"):
        parse_rds_event(broken)


# -- apply: order and waiting, with an in-memory adapter -------------------------------------------------------


class Recorder:
    """An adapter that records calls instead of making them."""

    service = "memory"
    kinds: tuple[Kind, ...] = tuple(Kind)

    def __init__(self) -> None:
        self.calls: list[str] = []

    def discover(self) -> list[Resource]:
        return []

    def suspend(self, resource: Resource) -> None:
        self.calls.append(f"suspend {resource.id}")

    def start(self, resource: Resource, restore: Mapping[str, int]) -> None:
        self.calls.append(f"start {resource.id}")

    def tag(self, resource: Resource, tags: Mapping[str, str]) -> None:
        self.calls.append(f"tag {resource.id}")

    def untag(self, resource: Resource, keys: Sequence[str]) -> None:
        self.calls.append(f"untag {resource.id}")


def stopped_environment() -> list[Resource]:
    return [
        resource(Kind.DB_CLUSTER, "aurora", State.STOPPED),
        resource(Kind.EC2_INSTANCE, "i-1", State.STOPPED),
    ]


def test_apps_start_only_once_their_databases_are_available() -> None:
    plan = plan_for(stopped_environment(), Request("start"), TUESDAY_MORNING)
    recorder, answers, slept = Recorder(), [["aurora"], ["aurora"], []], list[float]()
    clock = iter(range(0, 1000, 15))
    report = apply_plan(
        plan,
        dict.fromkeys(Kind, recorder),
        config(),
        check=lambda: answers.pop(0),
        wait_seconds=600,
        poll_seconds=15,
        sleep=slept.append,
        clock=lambda: float(next(clock)),
    )
    assert recorder.calls == ["start aurora", "tag aurora", "start i-1", "tag i-1"]
    assert slept == [15, 15]
    assert report.ok
    assert report.pending == []


def test_apps_are_held_back_when_the_databases_do_not_come_up_in_time() -> None:
    plan = plan_for(stopped_environment(), Request("start"), TUESDAY_MORNING)
    recorder = Recorder()
    report = apply_plan(plan, dict.fromkeys(Kind, recorder), config(), check=lambda: ["aurora"], wait_seconds=0)
    assert recorder.calls == ["start aurora", "tag aurora"]
    assert report.pending == ["aurora"]
    assert report.skipped == [
        {
            "id": "i-1",
            "type": "ec2-instance",
            "reason": "not started: databases not available yet (aurora); run again",
        }
    ]
    assert not report.ok


def test_the_second_lock_refuses_production_even_if_a_plan_said_otherwise() -> None:
    from pipeline.suspend import Plan, Step

    prod = resource(Kind.EC2_INSTANCE, "i-prod", tags={"Environment": "prod"})
    forged = Plan("suspend", "all", parse_now(FRIDAY_NIGHT), steps=(Step(prod, Verdict.ACT, before="running"),))
    recorder = Recorder()
    report = apply_plan(forged, dict.fromkeys(Kind, recorder), config())
    assert recorder.calls == []
    assert report.failed == [
        {"id": "i-prod", "type": "ec2-instance", "error": "refused: production: tagged Environment=prod; never touched"}
    ]


def test_a_cluster_is_available_only_once_its_instances_are() -> None:
    """moto changes states at once; AWS shows the cluster ``available`` while its instances still start."""
    from pipeline.suspend import AwsClients
    from pipeline.suspend.targets.rds import RdsTarget

    cluster = {
        "DBClusterIdentifier": "dev-aurora",
        "DBClusterArn": "arn:aws:rds:ap-northeast-1:123456789012:cluster:dev-aurora",
        "Status": "available",
        "Engine": "aurora-mysql",
        "EngineMode": "provisioned",
        "DBClusterMembers": [{"DBInstanceIdentifier": "dev-aurora-1"}, {"DBInstanceIdentifier": "dev-aurora-2"}],
    }
    states = {"dev-aurora-1": "available", "dev-aurora-2": "starting"}
    offline = AwsClients(boto3.Session(region_name="ap-northeast-1", aws_access_key_id="x", aws_secret_access_key="x"))
    seen = RdsTarget(offline)._cluster(cluster, {"dev-aurora": {}}, states, {})
    assert (seen.state, seen.status) == (State.STARTING, "available (dev-aurora-2: starting)")


def test_a_lambda_start_of_both_tiers_waits_within_the_invocation() -> None:
    from pipeline.lambdas.suspend import _wait_budget

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    assert _wait_budget(Request("start"), Context()) == 840.0
    assert _wait_budget(Request("start", phase="databases"), Context()) == 0.0
    assert _wait_budget(Request("suspend"), Context()) == 0.0
    assert _wait_budget(Request("start"), None) == 0.0
