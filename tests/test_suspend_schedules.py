"""Per-resource schedules chosen by tag value, maintenance windows, and the savings report (pure parts; the
tick and the savings command run on moto in tests/test_suspend_aws.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from pipeline.aws import AwsClients
from pipeline.suspend import Calendar, Kind, Request, Selector, SuspendError, Verdict, build_plan
from pipeline.suspend.request import parse_now
from pipeline.suspend.rules import maintenance_span
from pipeline.suspend.savings import PriceBook, savings_report
from tests.suspending import FRIDAY_NIGHT, config
from tests.test_suspend_core import resource

LATE = {"late": {"suspend_at": "0 23 * * 1-5"}, "london": {"timezone": "Europe/London", "holidays": "GB"}}


def test_named_schedules_are_read_checked_and_inherit_the_global_keys() -> None:
    settings = config(schedules=LATE)
    late, london = settings.schedule("late"), settings.schedule("london")
    assert (late.timezone, late.suspend_at, late.resume_at, late.holidays) == (
        "Asia/Tokyo",
        "0 23 * * 1-5",
        "0 8 * * 1-5",
        "JP",
    )
    assert (london.timezone, london.holidays, london.suspend_at) == ("Europe/London", "GB", "0 21 * * 1-5")
    assert [s.name for s in settings.all_schedules()] == ["default", "late", "london"]
    with pytest.raises(SuspendError, match=r"suspend_at '0 25 \* \* \*' is not a valid cron") as raised:
        config(schedules={"bad": {"suspend_at": "0 25 * * *"}})
    assert raised.value.where == "test [suspend] schedules.bad"
    with pytest.raises(SuspendError, match="unknown key 'resume'"):
        config(schedules={"bad": {"resume": "0 8 * * *"}})
    with pytest.raises(SuspendError, match="schedule name 'true' cannot be a tag value here"):
        config(schedules={"true": {}})
    with pytest.raises(SuspendError, match="no schedule 'nope'"):
        settings.schedule("nope")


def test_the_tag_value_picks_the_schedule_and_an_unknown_one_is_reported() -> None:
    settings = config(schedules=LATE)
    found = [
        resource(Kind.EC2_INSTANCE, "i-default", tags={"kpi:suspend": "true"}),
        resource(Kind.EC2_INSTANCE, "i-late", tags={"kpi:suspend": "late"}),
        resource(Kind.EC2_INSTANCE, "i-typo", tags={"kpi:suspend": "lat"}),
        resource(Kind.EC2_INSTANCE, "i-off", tags={"kpi:suspend": "false"}),
    ]
    now = parse_now(FRIDAY_NIGHT)
    plan = build_plan(found, Request("suspend"), settings, Calendar(settings), now)
    assert {s.resource.id: s.verdict for s in plan.steps} == {"i-default": Verdict.ACT, "i-typo": Verdict.SKIP}
    (typo,) = [s for s in plan.steps if s.resource.id == "i-typo"]
    assert (
        typo.reason
        == "kpi:suspend=lat names no schedule of [suspend.schedules] (known: true, late, london); left as is"
    )
    late = build_plan(
        found, Request("suspend", schedule="late"), settings, Calendar(settings, settings.schedule("late")), now
    )
    assert [s.resource.id for s in late.steps] == ["i-late"]


def test_each_schedule_fires_in_its_own_zone_with_its_own_holidays() -> None:
    settings = config(schedules=LATE)
    default, late, london = (Calendar(settings, s) for s in settings.all_schedules())
    friday_2100 = parse_now("2026-11-20T21:00:00+09:00")
    since = parse_now("2026-11-20T20:45:00+09:00")
    assert (default.fired(since, friday_2100), late.fired(since, friday_2100)) == ("suspend", None)
    friday_2300 = parse_now("2026-11-20T23:00:00+09:00")
    assert late.fired(parse_now("2026-11-20T22:45:00+09:00"), friday_2300) == "suspend"
    # 08:00 on Mon 23 Nov is a holiday in Tokyo (no start), a working day in London (08:00 GMT = 17:00 JST)
    tokyo_monday = parse_now("2026-11-23T08:00:00+09:00")
    assert default.fired(parse_now("2026-11-23T07:45:00+09:00"), tokyo_monday) is None
    london_monday = parse_now("2026-11-23T08:00:00+00:00")
    assert london.fired(parse_now("2026-11-23T07:45:00+00:00"), london_monday) == "start"
    # 25 Dec is a holiday in London, not in Tokyo
    assert london.fired(parse_now("2026-12-25T07:45:00+00:00"), parse_now("2026-12-25T08:00:00+00:00")) is None
    assert default.fired(parse_now("2026-12-25T07:45:00+09:00"), parse_now("2026-12-25T08:00:00+09:00")) == "start"


def test_maintenance_windows_are_read_in_utc_across_the_week_end() -> None:
    at = datetime(2026, 11, 22, 23, 45, tzinfo=UTC)  # Sunday 23:45 UTC
    assert maintenance_span("sun:23:30-mon:00:30", at) == (
        datetime(2026, 11, 22, 23, 30, tzinfo=UTC),
        datetime(2026, 11, 23, 0, 30, tzinfo=UTC),
    )
    assert maintenance_span("mon:03:00-mon:03:30", at) == (
        datetime(2026, 11, 23, 3, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 3, 30, tzinfo=UTC),
    )
    friday = maintenance_span("fri:01:00-fri:01:30", at)
    assert friday is not None
    assert friday[0] == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert maintenance_span("someday", at) is None


def test_a_database_is_never_stopped_during_its_maintenance_window() -> None:
    settings = config()
    window = "fri:11:55-fri:12:30"  # 20:55-21:30 JST on Friday: the 21:00 suspend falls inside
    aurora = resource(Kind.DB_CLUSTER, "dev-aurora", maintenance_window=window)
    app = resource(Kind.EC2_INSTANCE, "i-1", maintenance_window=window)  # (only databases have one)
    plan = build_plan([aurora, app], Request("suspend"), settings, Calendar(settings), parse_now(FRIDAY_NIGHT))
    steps = {s.resource.id: s for s in plan.steps}
    assert steps["i-1"].verdict == Verdict.ACT
    assert steps["dev-aurora"].verdict == Verdict.WAIT
    assert steps["dev-aurora"].reason.startswith("in its maintenance window fri:11:55-fri:12:30 (UTC)")
    assert "the next tick after 2026-11-20 21:30 JST (Fri) stops it" in steps["dev-aurora"].reason
    assert steps["dev-aurora"].record == {"kpi:suspend:deferred": "suspend@2026-11-20T12:00:00Z"}
    later = resource(
        Kind.DB_CLUSTER,
        "dev-aurora",
        maintenance_window=window,
        tags={"kpi:suspend": "true", "kpi:suspend:deferred": "x"},
    )
    (step,) = build_plan(
        [later], Request("suspend"), settings, Calendar(settings), parse_now("2026-11-20T21:45:00+09:00")
    ).steps
    assert (step.verdict, step.clear) == (Verdict.ACT, ("kpi:suspend:deferred",))


# -- savings ------------------------------------------------------------------------------------------------


def test_savings_against_a_hand_computed_week() -> None:
    """Mon 16 to Sat 21 Nov 2026 (no holiday), 21:00-08:00 JST on weekdays: 8 h (the weekend's end on Monday) +
    4 × 11 h + 3 h (Friday 21:00 to midnight) = 55 h. 23:00-08:00 ('late'): 8 + 4 × 9 + 1 = 45 h."""
    settings = config(schedules=LATE)
    since, until = parse_now("2026-11-16T00:00:00+09:00"), parse_now("2026-11-21T00:00:00+09:00")
    found = [
        resource(Kind.DB_CLUSTER, "aurora", engine="aurora-mysql"),
        resource(Kind.DB_INSTANCE, "aurora-1", parent="aurora", engine="aurora-mysql", size="db.r6g.large"),
        resource(Kind.DB_INSTANCE, "aurora-2", parent="aurora", engine="aurora-mysql", size="db.r6g.large"),
        resource(Kind.DB_INSTANCE, "pg", engine="postgres", size="db.t3.micro", multi_az=True),
        resource(Kind.EC2_INSTANCE, "i-late", size="t3.micro", tags={"kpi:suspend": "late"}),
        resource(Kind.ASG, "web", size="t3.small", capacity={"min": 1, "desired": 2, "max": 4}),
        resource(Kind.EC2_INSTANCE, "i-prod", size="t3.micro", tags={"kpi:suspend": "true", "Environment": "prod"}),
        resource(Kind.ECS_SERVICE, "dev/web", capacity={"desired": 2}),
    ]
    report = savings_report(found, settings, since, until)
    rows = {row["id"]: row for row in report.rows}
    assert set(rows) == {"aurora", "pg", "i-late", "web", "dev/web"}  # members counted with their cluster
    assert rows["aurora"]["stopped_hours"] == 55
    assert rows["aurora"]["hourly_usd"] == pytest.approx(2 * 0.313)  # both members
    assert rows["aurora"]["saved_usd"] == pytest.approx(34.43)
    assert rows["aurora"]["basis"] == "2 members: db.r6g.large, db.r6g.large"
    assert rows["pg"]["hourly_usd"] == pytest.approx(2 * 0.027)  # Multi-AZ: the standby is billed too
    assert rows["pg"]["saved_usd"] == pytest.approx(2.97)
    assert (rows["i-late"]["stopped_hours"], rows["i-late"]["saved_usd"]) == (45, pytest.approx(0.61))
    assert rows["web"]["saved_usd"] == pytest.approx(2.99)  # 2 × 0.0272 × 55 = 2.992
    assert rows["dev/web"]["saved_usd"] is None
    assert report.summary() == {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "stopped_hours": 55 * 4 + 45,
        "saved_usd": pytest.approx(34.43 + 2.97 + 0.61 + 2.99, abs=0.02),
        "resources": 5,
        "unpriced": ["dev/web"],
    }
    assert {row["priced_by"] for row in report.rows} == {"offline table", "unknown"}


def test_the_price_list_api_is_asked_first_and_the_offline_table_answers_when_it_cannot() -> None:
    """The Price List API cannot run here: botocore's Stubber stands in for the one HTTP call
    (pricing:GetProducts) and asserts exactly what is sent."""
    session = boto3.Session(region_name="ap-northeast-1", aws_access_key_id="x", aws_secret_access_key="y")
    clients = AwsClients(session)
    pricing = clients("pricing")
    product = {"terms": {"OnDemand": {"t": {"priceDimensions": {"d": {"pricePerUnit": {"USD": "0.3300000000"}}}}}}}
    with Stubber(pricing) as stub:
        stub.add_response(
            "get_products",
            {"PriceList": [json.dumps(product)], "FormatVersion": "aws_v1"},
            {
                "ServiceCode": "AmazonRDS",
                "Filters": [
                    {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "db.r6g.large"},
                    {"Type": "TERM_MATCH", "Field": "location", "Value": "Asia Pacific (Tokyo)"},
                    {"Type": "TERM_MATCH", "Field": "databaseEngine", "Value": "Aurora MySQL"},
                    {"Type": "TERM_MATCH", "Field": "deploymentOption", "Value": "Single-AZ"},
                ],
                "MaxResults": 10,
            },
        )
        stub.add_client_error("get_products", "AccessDeniedException", "no pricing:GetProducts")
        book = PriceBook("ap-northeast-1", clients)
        assert book.hourly("rds", "db.r6g.large", "aurora-mysql") == (0.33, "price list")
        assert book.hourly("rds", "db.r6g.large", "aurora-mysql") == (0.33, "price list")  # asked once
        assert book.hourly("ec2", "t3.micro") == (0.0136, "offline table")  # refused: the table, from now on
        assert book.hourly("ec2", "t3.nano") == (None, "unknown")
        stub.assert_no_pending_responses()


def test_aws_seven_day_restart_is_judged_by_the_resources_own_schedule() -> None:
    """At 22:00 JST on a Friday the global window is in force (21:00), the late one (23:00) is not yet."""
    settings = config(schedules=LATE)
    late = resource(Kind.DB_CLUSTER, "late-aurora", tags={"kpi:suspend": "late"})
    now = parse_now("2026-11-20T22:00:00+09:00")
    request = Request("suspend", "databases", (Selector("late-aurora", Kind.DB_CLUSTER),), now=now, restart=True)
    (step,) = build_plan([late], request, settings, Calendar(settings), now).steps
    assert step.verdict == Verdict.SKIP
    assert step.reason.startswith("schedule late: outside the suspend window")
    later = parse_now("2026-11-20T23:30:00+09:00")
    (step,) = build_plan([late], request, settings, Calendar(settings), later).steps
    assert step.verdict == Verdict.ACT
