"""Suspend and start against moto's server on loopback: EC2, ECS, Application Auto Scaling, Auto Scaling, RDS,
SNS. moto accepts calls AWS refuses (stopping an Aurora member instance, stopping Aurora Serverless v1), so the
tests assert that the module's own guards never send them."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import botocore.awsrequest
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.lambdas.suspend import handler
from pipeline.suspend import AwsClients, Request, Selector, SuspendError, run, tick
from pipeline.suspend.request import parse_now
from pipeline.suspend.targets.rds import RdsTarget
from tests.aws import MotoServer, _Body
from tests.suspending import (
    ACCOUNT,
    FRIDAY_NIGHT,
    LABOUR_THANKSGIVING_0800_JST,
    OPT_IN,
    PROD,
    TUESDAY_MORNING,
    DevEnvironment,
    config,
    rds_event,
)

# Infrastructure (suspend and resume on moto's EC2, RDS, ECS and Auto Scaling): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra

SATURDAY_NOON_UTC = "2026-11-21T03:00:00Z"  # 12:00 JST on Saturday: inside the suspend window
TUESDAY_NOON_UTC = "2026-11-24T03:00:00Z"  # 12:00 JST on Tuesday: outside it


@pytest.fixture
def dev(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> DevEnvironment:
    """An empty moto (reset) and no suspend configuration leaking in from the developer's environment."""
    aws_env.reset()
    for key in list(os.environ):
        if key.startswith("KPI_SUSPEND_") or key == "KPI_CONFIG":
            monkeypatch.delenv(key)
    monkeypatch.setenv("KPI_CONFIG", "/nonexistent/kpi.toml")
    monkeypatch.setenv("KPI_SUSPEND_ACCOUNTS", ACCOUNT)
    return DevEnvironment()


def suspend(now: str = FRIDAY_NIGHT, **options: Any) -> Any:
    return run(Request("suspend", now=parse_now(now), **options), config())


def start(now: str = TUESDAY_MORNING, **options: Any) -> Any:
    return run(Request("start", now=parse_now(now), **options), config())


def ids(entries: list[dict[str, str]]) -> list[str]:
    return [entry["id"] for entry in entries]


def reasons(report: Any) -> dict[str, str]:
    return {entry["id"]: entry["reason"] for entry in report.skipped}


def test_a_suspend_then_start_round_trip_leaves_a_mixed_environment_as_it_was(dev: DevEnvironment) -> None:
    app = dev.instance(OPT_IN)
    prod = dev.instance({**OPT_IN, **PROD})
    other = dev.instance({"Name": "not opted in"})
    dev.service("web", desired=3, scaling=(2, 6), tags=OPT_IN)
    dev.service("worker", desired=2, tags=OPT_IN)
    dev.group("web-asg", sizes=(1, 2, 4), tags=OPT_IN)
    dev.aurora("dev-aurora", tags=OPT_IN)
    dev.database("dev-pg", tags=OPT_IN)
    before = dev.snapshot()

    suspended = suspend()
    assert suspended.ok, suspended.failed
    assert [(e["type"], e["id"]) for e in suspended.acted] == [  # apps before databases
        ("ecs-service", "dev/web"),
        ("ecs-service", "dev/worker"),
        ("autoscaling-group", "web-asg"),
        ("ec2-instance", app),
        ("db-instance", "dev-pg"),
        ("db-cluster", "dev-aurora"),
    ]
    assert reasons(suspended) == {
        "dev-aurora-1": "member of Aurora cluster dev-aurora: stopped with the cluster",
        prod: "production: tagged Environment=prod; never touched",
    }
    assert dev.instance_state(app) == "stopped"
    assert dev.instance_state(prod) == dev.instance_state(other) == "running"
    assert dev.service_state("dev/web")["desired"] == 0
    assert dev.group_state("web-asg")["sizes"] == (0, 0, 0)
    assert dev.cluster_status("dev-aurora") == "stopped"
    assert dev.database_status("dev-pg") == "stopped"
    assert dev.instance_tags(app)["kpi:suspend:last-action"] == "suspend@2026-11-20T12:00:00Z"

    started = start()
    assert started.ok, started.failed
    assert [e["id"] for e in started.acted] == [  # databases first, then apps
        "dev-aurora",
        "dev-pg",
        app,
        "web-asg",
        "dev/web",
        "dev/worker",
    ]
    assert started.pending == []
    assert reasons(started)["dev-aurora-1"] == "member of Aurora cluster dev-aurora: started with the cluster"
    assert dev.snapshot() == before
    assert dev.cluster_tags("dev-aurora")["kpi:suspend:last-action"] == "start@2026-11-23T23:00:00Z"


def test_an_ecs_service_at_3_with_autoscaling_2_to_6_comes_back_exactly(dev: DevEnvironment) -> None:
    dev.service("web", desired=3, scaling=(2, 6), tags=OPT_IN)

    report = suspend()
    assert report.acted == [
        {"id": "dev/web", "type": "ecs-service", "from": "desired 3 (min 2, max 6)", "to": "desired 0 (min 0, max 0)"}
    ]
    state = dev.service_state("dev/web")
    assert (state["desired"], state["min"], state["max"]) == (0, 0, 0)
    assert state["tags"] == {
        "kpi:suspend": "true",
        "kpi:suspend:desired-count": "3",
        "kpi:suspend:min-capacity": "2",
        "kpi:suspend:max-capacity": "6",
        "kpi:suspend:last-action": "suspend@2026-11-20T12:00:00Z",
    }

    report = start()
    assert report.acted == [
        {"id": "dev/web", "type": "ecs-service", "from": "desired 0 (min 0, max 0)", "to": "desired 3 (min 2, max 6)"}
    ]
    state = dev.service_state("dev/web")
    assert (state["desired"], state["min"], state["max"]) == (3, 2, 6)
    assert state["tags"] == {"kpi:suspend": "true", "kpi:suspend:last-action": "start@2026-11-23T23:00:00Z"}


def test_applying_twice_changes_nothing_the_second_time(dev: DevEnvironment) -> None:
    dev.service("web", desired=3, scaling=(2, 6), tags=OPT_IN)
    app = dev.instance(OPT_IN)
    dev.aurora("dev-aurora", tags=OPT_IN, members=0)
    suspend()
    stored = dev.service_state("dev/web")["tags"]

    again = suspend()
    assert again.ok
    assert again.acted == []
    assert reasons(again) == {"dev/web": "already stopped", app: "already stopped", "dev-aurora": "already stopped"}
    assert dev.service_state("dev/web")["tags"] == stored  # the zeros were not stored over the real counts

    start()
    again = start()
    assert again.ok
    assert again.acted == []
    assert reasons(again) == {"dev/web": "already running", app: "already running", "dev-aurora": "already available"}


def _refuse(client: Any, operation: str) -> list[int]:
    """Make ``operation`` of an ECS client fail once with AccessDeniedException (at the network edge)."""
    calls: list[int] = []

    def respond(request: botocore.awsrequest.AWSPreparedRequest, **_: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            body = json.dumps({"__type": "AccessDeniedException", "message": "not allowed today"}).encode()
            headers = {"Content-Type": "application/x-amz-json-1.1"}
            return botocore.awsrequest.AWSResponse(request.url, 400, headers, _Body(body))
        return None

    client.meta.events.register(f"before-send.ecs.{operation}", respond)
    return calls


def test_a_rerun_finishes_what_a_failed_run_left(dev: DevEnvironment) -> None:
    dev.service("web", desired=3, scaling=(2, 6), tags=OPT_IN)
    app = dev.instance(OPT_IN)
    clients = AwsClients()
    _refuse(clients("ecs"), "UpdateService")

    first = run(Request("suspend", now=parse_now(FRIDAY_NIGHT)), config(), clients=clients)
    assert not first.ok
    assert first.failed == [
        {"id": "dev/web", "type": "ecs-service", "error": "AccessDeniedException: not allowed today"}
    ]
    assert ids(first.acted) == [app]  # one refusal never stops the others
    half = dev.service_state("dev/web")
    assert (half["desired"], half["min"], half["max"]) == (3, 0, 0)  # scaling zeroed, desired not

    second = suspend()
    assert second.ok
    assert second.acted == [
        {"id": "dev/web", "type": "ecs-service", "from": "desired 3 (min 0, max 0)", "to": "desired 0 (min 0, max 0)"}
    ]
    start()
    back = dev.service_state("dev/web")
    assert (back["desired"], back["min"], back["max"]) == (3, 2, 6)  # the counts stored by the failed run


def test_a_production_cluster_named_in_the_original_event_is_refused(dev: DevEnvironment) -> None:
    dev.aurora("prod-aurora", tags={"environment": " Production "})  # any case, stray spaces: still production
    dev.service("api", desired=2, tags=OPT_IN, cluster="live", cluster_tags=PROD)

    report = handler({"action": "suspend", "dbClusterIdentifiers": ["prod-aurora"]})
    assert report["acted"] == []
    assert report["failed"] == []
    assert report["skipped"] == [
        {
            "id": "prod-aurora",
            "type": "db-cluster",
            "reason": "production: tagged environment= Production ; never touched",
        }
    ]
    assert dev.cluster_status("prod-aurora") == "available"

    by_id = handler({"action": "suspend", "ids": ["live/api"]})
    assert by_id["skipped"] == [
        {
            "id": "live/api",
            "type": "ecs-service",
            "reason": "production: its cluster live is tagged Environment=prod; never touched",
        }
    ]
    assert dev.service_state("live/api")["desired"] == 2


def test_an_aurora_member_instance_is_never_stopped_on_its_own(dev: DevEnvironment) -> None:
    dev.aurora("dev-aurora", tags={}, members=2)
    report = suspend(ids=(Selector("dev-aurora-2"),))
    assert report.skipped == [
        {
            "id": "dev-aurora-2",
            "type": "db-instance",
            "reason": "member of Aurora cluster dev-aurora: stopped with the cluster",
        }
    ]
    assert dev.database_status("dev-aurora-2") == "available"
    # moto would stop it (AWS answers InvalidParameterCombination); the adapter refuses even if asked directly.
    member = next(r for r in RdsTarget(AwsClients()).discover() if r.id == "dev-aurora-2")
    with pytest.raises(SuspendError, match="refusing StopDBInstance on dev-aurora-2: member of cluster dev-aurora"):
        RdsTarget(AwsClients()).suspend(member)
    assert dev.database_status("dev-aurora-2") == "available"


def test_read_replicas_serverless_v1_and_their_sources_are_skipped_with_the_reason(dev: DevEnvironment) -> None:
    dev.database("dev-pg", tags=OPT_IN)
    dev.replica("dev-pg-replica", "dev-pg", tags=OPT_IN)
    dev.aurora("dev-v1", tags=OPT_IN, members=0, engine_mode="serverless")
    report = suspend()
    assert report.ok
    assert report.acted == []
    assert reasons(report) == {
        "dev-pg": "has read replicas (dev-pg-replica): RDS cannot stop it",
        "dev-pg-replica": "read replica of dev-pg: RDS cannot stop a read replica",
        "dev-v1": "engine mode serverless: Aurora Serverless v1 cannot be stopped (it pauses itself when idle)",
    }
    assert dev.cluster_status("dev-v1") == "available"  # moto would have stopped it; AWS would refuse


def test_daemon_services_and_group_instances_are_skipped(dev: DevEnvironment) -> None:
    dev.service("agent", desired=0, tags=OPT_IN, daemon=True)
    dev.group("web-asg", sizes=(1, 1, 2), tags={})
    member = dev.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])["AutoScalingGroups"][0][
        "Instances"
    ][0]["InstanceId"]
    report = suspend(ids=(Selector("dev/agent"), Selector(member)))
    assert reasons(report) == {
        "dev/agent": "DAEMON service: one task per container instance, no desired count; suspend its instances' group",
        member: "member of Auto Scaling group web-asg: stopped with the group",
    }
    assert dev.instance_state(member) == "running"


def test_the_keep_running_tag_is_honoured_until_it_expires(dev: DevEnvironment) -> None:
    late = dev.instance({**OPT_IN, "kpi:keep-running-until": "2026-11-21T09:00"})  # JST wall clock
    today = dev.instance({**OPT_IN, "kpi:keep-running-until": "2026-11-20"})  # a date: the whole day
    expired = dev.instance({**OPT_IN, "kpi:keep-running-until": "2026-11-20T10:00:00Z"})
    broken = dev.instance({**OPT_IN, "kpi:keep-running-until": "tomorrow"})
    report = suspend()
    assert ids(report.acted) == [expired]
    assert reasons(report) == {
        late: "kpi:keep-running-until: kept running until 2026-11-21 09:00 JST (Sat)",
        today: "kpi:keep-running-until: kept running until 2026-11-21 00:00 JST (Sat)",
        broken: "kpi:keep-running-until=tomorrow is not an ISO date-time: left running until the tag is fixed",
    }
    assert sorted(ids(suspend("2026-11-21T10:00:00+09:00").acted)) == sorted([late, today])


def test_an_account_outside_the_allow_list_is_refused_before_anything_is_touched(dev: DevEnvironment) -> None:
    app = dev.instance(OPT_IN)
    with pytest.raises(SuspendError) as caught:
        run(Request("suspend", now=parse_now(FRIDAY_NIGHT)), config(accounts=["111111111111"]))
    assert caught.value.message == ("account 123456789012 is not in the allow-list (111111111111): nothing was touched")
    assert dev.instance_state(app) == "running"


def test_the_original_event_suspends_and_starts_exactly_the_named_clusters(dev: DevEnvironment) -> None:
    dev.aurora("dev-aurora", tags={})  # no opt-in tag: named explicitly
    app = dev.instance(OPT_IN)
    report = handler({"action": "suspend", "dbClusterIdentifiers": ["dev-aurora", "gone-aurora"]})
    assert list(report)[:8] == ["action", "phase", "holiday", "acted", "skipped", "failed", "pending", "ok"]
    assert report["acted"] == [{"id": "dev-aurora", "type": "db-cluster", "from": "available", "to": "stopped"}]
    assert report["failed"] == [
        {"id": "gone-aurora", "type": "db-cluster", "error": "not found in this account and region"}
    ]
    assert report["skipped"] == []  # its member instance is not named: the cluster stops it
    assert report["ok"] is False  # a named cluster that does not exist needs a person
    assert dev.cluster_status("dev-aurora") == "stopped"
    assert dev.instance_state(app) == "running"
    json.dumps(report)

    back = handler({"action": "start", "dbClusterIdentifiers": ["dev-aurora"], "now": TUESDAY_MORNING})
    assert back["ok"]
    assert back["pending"] == []
    assert dev.cluster_status("dev-aurora") == "available"


def test_a_start_on_a_holiday_does_nothing_and_names_it(dev: DevEnvironment) -> None:
    dev.aurora("dev-aurora", tags=OPT_IN, members=0)
    suspend()
    report = handler({"action": "start", "now": LABOUR_THANKSGIVING_0800_JST})
    assert report["holiday"] == "Labor Thanksgiving Day"
    assert (report["acted"], report["skipped"], report["failed"], report["ok"]) == ([], [], [], True)
    assert dev.cluster_status("dev-aurora") == "stopped"
    # the evening before in UTC terms is still the 22nd in Tokyo (a Sunday, no holiday): a start would run
    sunday = handler({"action": "start", "now": "2026-11-22T14:59:00Z", "dryRun": True})
    assert sunday["holiday"] is None
    assert ids(sunday["acted"]) == ["dev-aurora"]


def test_a_custom_holiday_from_the_configuration_stops_the_start(dev: DevEnvironment) -> None:
    dev.aurora("dev-aurora", tags=OPT_IN, members=0)
    suspend()
    closed = config(extra_holidays=[{"date": "2026-12-29", "name": "year-end closure"}, "01-02"])
    report = run(Request("start", now=parse_now("2026-12-29T08:00")), closed)
    assert report.holiday == "year-end closure"
    assert report.acted == []
    report = run(Request("start", now=parse_now("2027-01-02T08:00")), closed)
    assert report.holiday == "custom holiday (extra_holidays)"
    assert dev.cluster_status("dev-aurora") == "stopped"


def test_aws_automatic_start_inside_the_window_is_stopped_again(dev: DevEnvironment) -> None:
    dev.aurora("dev-aurora", tags=OPT_IN, members=0)
    dev.database("dev-pg", tags={})
    suspend()
    handler({"action": "suspend", "ids": ["dev-pg"], "now": FRIDAY_NIGHT})  # named, not opted in
    dev.rds.start_db_cluster(DBClusterIdentifier="dev-aurora")  # what AWS does after seven days
    dev.rds.start_db_instance(DBInstanceIdentifier="dev-pg")

    report = handler(rds_event("dev-aurora", time=SATURDAY_NOON_UTC))
    assert report["acted"] == [{"id": "dev-aurora", "type": "db-cluster", "from": "available", "to": "stopped"}]
    assert report["trigger"] == "RDS-EVENT-0153"
    assert report["window"] == (
        "inside the suspend window: suspended 2026-11-20 21:00 JST (Fri), resumes 2026-11-24 08:00 JST (Tue)"
    )
    assert dev.cluster_status("dev-aurora") == "stopped"

    instance = handler(rds_event("dev-pg", cluster=False, time=SATURDAY_NOON_UTC))
    assert ids(instance["acted"]) == ["dev-pg"]  # suspended by the module last: managed
    assert dev.database_status("dev-pg") == "stopped"


def test_aws_automatic_start_outside_the_window_or_of_an_unmanaged_database_is_left(dev: DevEnvironment) -> None:
    dev.aurora("dev-aurora", tags=OPT_IN, members=0)
    dev.aurora("team-aurora", tags={}, members=0)
    outside = handler(rds_event("dev-aurora", time=TUESDAY_NOON_UTC))
    assert outside["acted"] == []
    assert outside["skipped"] == [
        {
            "id": "dev-aurora",
            "type": "db-cluster",
            "reason": "outside the suspend window: resumed 2026-11-24 08:00 JST (Tue), "
            "next suspend 2026-11-24 21:00 JST (Tue): left running",
        }
    ]
    unmanaged = handler(rds_event("team-aurora", time=SATURDAY_NOON_UTC))
    assert unmanaged["skipped"] == [
        {
            "id": "team-aurora",
            "type": "db-cluster",
            "reason": "not managed: neither kpi:suspend=true nor suspended by this module "
            "(kpi:suspend:last-action); left running",
        }
    ]
    other = handler(rds_event("dev-aurora", event_id="RDS-EVENT-0151", time=SATURDAY_NOON_UTC))
    assert other["skipped"][0]["reason"] == "RDS-EVENT-0151 is not an automatic start (RDS-EVENT-0153/0154): ignored"
    assert dev.cluster_status("dev-aurora") == dev.cluster_status("team-aurora") == "available"


def test_the_state_machine_phases_and_the_check_it_polls(dev: DevEnvironment) -> None:
    dev.aurora("dev-aurora", tags=OPT_IN, members=0)
    dev.service("web", desired=2, tags=OPT_IN)
    suspend()
    assert handler({"action": "check", "phase": "databases", "now": TUESDAY_MORNING}) == {
        "databases_available": False,
        "pending": ["dev-aurora"],
        "holiday": None,
    }
    databases = handler({"action": "start", "phase": "databases", "now": TUESDAY_MORNING})
    assert ids(databases["acted"]) == ["dev-aurora"]
    assert databases["ok"]
    assert dev.service_state("dev/web")["desired"] == 0  # apps wait for their phase
    assert handler({"action": "check", "phase": "databases"})["databases_available"] is True
    apps = handler({"action": "start", "phase": "apps", "now": TUESDAY_MORNING})
    assert ids(apps["acted"]) == ["dev/web"]
    assert dev.service_state("dev/web")["desired"] == 2


def test_a_dry_run_touches_nothing(dev: DevEnvironment) -> None:
    app = dev.instance(OPT_IN)
    dev.service("web", desired=3, scaling=(2, 6), tags=OPT_IN)
    report = handler({"action": "suspend", "dryRun": True, "now": FRIDAY_NIGHT})
    assert report["dryRun"] is True
    assert ids(report["acted"]) == ["dev/web", app]  # apps in order: ECS, groups, instances
    assert dev.instance_state(app) == "running"
    assert dev.service_state("dev/web")["tags"] == OPT_IN


def test_the_report_is_published_to_sns(dev: DevEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="kpi-suspend")["TopicArn"]
    queue = sqs.create_queue(QueueName="kpi-suspend-mail")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("KPI_SUSPEND_TOPIC_ARN", topic)
    app = dev.instance(OPT_IN)

    report = handler({"action": "suspend", "now": FRIDAY_NIGHT})
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == "kpi suspend suspend all: ok - 1 acted, 0 skipped, 0 failed, 0 pending"
    assert json.loads(envelope["Message"]) == report
    assert ids(report["acted"]) == [app]
    # the month so far: 1 Nov 00:00 to Fri 20 Nov 21:00 JST is 32 + 35 (Tue 3 is Culture Day) + 2 × 11 + 59 + 4 × 11
    # + 59 + 4 × 11 = 295 hours stopped by the schedule, at the t3.micro's 0.0136 USD
    assert report["savings"]["stopped_hours"] == 295
    assert report["savings"]["saved_usd"] == pytest.approx(295 * 0.0136, abs=0.01)

    restarted = handler(rds_event("dev-aurora", time=SATURDAY_NOON_UTC))  # reported too, even when it does nothing
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    assert json.loads(json.loads(message["Body"])["Message"]) == restarted
    assert restarted["failed"] == [
        {"id": "dev-aurora", "type": "db-cluster", "error": "not found in this account and region"}
    ]


def test_a_tick_defers_the_suspend_of_a_database_in_its_maintenance_window_and_finishes_it_after(
    dev: DevEnvironment,
) -> None:
    dev.aurora("dev-aurora", tags=OPT_IN)
    window = "fri:11:55-fri:12:30"  # 20:55-21:30 JST on Friday
    dev.rds.modify_db_cluster(DBClusterIdentifier="dev-aurora", PreferredMaintenanceWindow=window)
    app = dev.instance({"kpi:suspend": "late"})  # the late schedule: 23:00
    settings = config(schedules={"late": {"suspend_at": "0 23 * * 1-5"}})

    (first,) = tick(settings, now=parse_now(FRIDAY_NIGHT), notify=False)  # the global schedule fired at 21:00
    assert first.pending == ["dev-aurora"]
    assert dev.cluster_status("dev-aurora") == "available"
    assert dev.cluster_tags("dev-aurora")["kpi:suspend:deferred"] == "suspend@2026-11-20T12:00:00Z"
    assert dev.instance_state(app) == "running"  # not its schedule's time
    assert tick(settings, now=parse_now("2026-11-20T21:15:00+09:00"), notify=False) == []  # still in the window

    (after,) = tick(settings, now=parse_now("2026-11-20T21:45:00+09:00"), notify=False)
    assert ids(after.acted) == ["dev-aurora"]
    assert dev.cluster_status("dev-aurora") == "stopped"
    assert "kpi:suspend:deferred" not in dev.cluster_tags("dev-aurora")
    assert dev.instance_state(app) == "running"
    (late,) = tick(settings, now=parse_now("2026-11-20T23:05:00+09:00"), notify=False)
    assert ids(late.acted) == [app]
    assert dev.instance_state(app) == "stopped"


def test_start_for_maintenance_starts_a_stopped_database_for_its_window_and_stops_it_after(
    dev: DevEnvironment,
) -> None:
    dev.aurora("dev-aurora", tags=OPT_IN)
    dev.rds.modify_db_cluster(DBClusterIdentifier="dev-aurora", PreferredMaintenanceWindow="sat:18:00-sat:18:30")
    settings = config(start_for_maintenance=True)
    suspend()
    assert dev.cluster_status("dev-aurora") == "stopped"
    (started,) = tick(settings, now=parse_now("2026-11-22T02:50:00+09:00"), notify=False)  # Sat 17:50 UTC
    assert ids(started.acted) == ["dev-aurora"]
    assert dev.cluster_status("dev-aurora") == "available"
    assert dev.cluster_tags("dev-aurora")["kpi:suspend:deferred"] == "maintenance@2026-11-21T17:50:00Z"
    assert tick(settings, now=parse_now("2026-11-22T03:10:00+09:00"), notify=False) == []  # in the window
    (stopped,) = tick(settings, now=parse_now("2026-11-22T03:40:00+09:00"), notify=False)
    assert ids(stopped.acted) == ["dev-aurora"]
    assert dev.cluster_status("dev-aurora") == "stopped"


def test_kpi_suspend_savings_reports_each_resource_and_the_total(dev: DevEnvironment) -> None:
    dev.aurora("dev-aurora", tags=OPT_IN, members=2)
    app = dev.instance(OPT_IN)
    result = CliRunner().invoke(
        cli, ["suspend", "savings", "--since", "2026-11-16T00:00", "--now", "2026-11-21T00:00", "--json"]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    rows = {row["id"]: row for row in found["rows"]}
    assert rows["dev-aurora"]["stopped_hours"] == 55  # tests/test_suspend_schedules.py computes it by hand
    assert rows["dev-aurora"]["saved_usd"] == pytest.approx(2 * 0.313 * 55, abs=0.01)
    assert rows[app]["saved_usd"] == pytest.approx(0.0136 * 55, abs=0.01)
    assert rows["dev-aurora"]["priced_by"] == "offline table"  # moto has no Price List API
    assert found["saved_usd"] == pytest.approx(rows["dev-aurora"]["saved_usd"] + rows[app]["saved_usd"], abs=0.01)
    table = CliRunner().invoke(cli, ["suspend", "savings", "--since", "2026-11-16T00:00", "--now", "2026-11-21T00:00"])
    assert "110.0 hours stopped" in table.output


def test_ticks_start_again_for_an_hour_after_resume_at_what_a_start_left_stopped(dev: DevEnvironment) -> None:
    """A tick cannot wait for Aurora to come up, so a start holds the apps back until it has; every tick of the
    next hour starts the schedule again (moto makes a cluster available at once, so here the app is left
    stopped by hand, as a held-back start leaves it)."""
    dev.aurora("dev-aurora", tags=OPT_IN)
    app = dev.instance(OPT_IN)
    suspend()
    settings = config()
    (first,) = tick(settings, now=parse_now(TUESDAY_MORNING), notify=False)
    assert set(ids(first.acted)) == {"dev-aurora", app}
    dev.ec2.stop_instances(InstanceIds=[app])  # what a start that held its apps back leaves
    (again,) = tick(settings, now=parse_now("2026-11-24T08:15:00+09:00"), notify=False)  # within the hour
    assert ids(again.acted) == [app]
    assert dev.instance_state(app) == "running"
    assert tick(settings, now=parse_now("2026-11-24T09:30:00+09:00"), notify=False) == []  # the hour is over
