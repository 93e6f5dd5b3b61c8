"""Alerts delivered for real: Slack is a loopback HTTP server (tests/slack.py) whose webhook URL is stored in moto's
Secrets Manager; SNS is moto's, read back through an SQS queue subscribed to the topic (as an operator's queue
would receive it). Delivery failures are reported and never raised; no webhook URL reaches a log or a message."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.core.alert_routing import Destination, Routing
from pipeline.core.alerts import Alert
from pipeline.core.anomaly import Anomaly
from pipeline.flows.alerts import Delivered, anomaly_alerts, send_alerts
from pipeline.flows.dashboard import report_url
from tests.aws import MotoServer
from tests.exporting import DAILY, DAILY_SQL, make_kpi
from tests.slack import SlackStandIn

NOW = datetime(2026, 12, 3, 0, 5, tzinfo=UTC)


@pytest.fixture
def slack(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # loopback only, whatever proxy the machine has
    with SlackStandIn() as server:
        yield server


def slack_secret(slack: SlackStandIn, name: str) -> str:
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=slack.url)
    return name


def sns_topic_with_queue(name: str) -> tuple[str, str]:
    """A topic and an SQS queue subscribed to it; returns (topic ARN, queue URL)."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue


def published(queue: str) -> list[dict[str, Any]]:
    """The SNS notifications the queue received (their Subject and Message)."""
    answer = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def alerts() -> list[Alert]:
    return [
        Alert.failed("daily_sales", "growth", "2026-12-01", "source refused: timeout", "https://r/#kpi-daily_sales"),
        Alert.failed("daily_sales", "growth", "2026-12-02", "source refused: timeout", "https://r/#kpi-daily_sales"),
        Alert.anomaly("daily_sales", "growth", "2026-12-02", "sales", "paid", 100.0, 200.0, 300.0),
        Alert.stale("users_by_plan", "finance", "2026-11-28", None),
        Alert.failed("hourly_orders", "ops", "2026-12-02T03", "boom"),
    ]


def test_one_message_per_owner_to_slack_and_sns_and_unrouted_reported(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pipeline")
    topic, queue = sns_topic_with_queue("kpi-finance")
    routing = Routing(
        {"growth": Destination("slack", slack_secret(slack, "kpi/alerts/growth")), "finance": Destination("sns", topic)}
    )
    report = send_alerts(alerts(), routing, NOW, context="kpi run (production)")

    assert report.sent == (
        Delivered("finance", f"sns:{topic}", 1, True),
        Delivered("growth", "slack:secretsmanager:kpi/alerts/growth", 3, True),
    )
    assert report.unrouted == ("ops",)
    assert not report.ok
    assert len(slack.received) == 1  # one message for growth's three alerts
    assert slack.received[0] == {
        "text": "*kpi run (production): 2 failed partitions, 1 anomaly for growth* (2026-12-03 00:05 UTC)\n"
        "• failed: `daily_sales` 2026-12-01 … 2026-12-02 (2 partitions): source refused: timeout "
        "<https://r/#kpi-daily_sales|open>\n"
        "• anomaly: `daily_sales` 2026-12-02: sales [paid] = 100, expected 200–300: below the expected range",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": "kpi run (production): 2 failed partitions, 1 anomaly for growth",
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*failed*: `daily_sales` 2026-12-01 … 2026-12-02 (2 partitions): source refused: timeout "
                    "<https://r/#kpi-daily_sales|open>",
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*anomaly*: `daily_sales` 2026-12-02: sales [paid] = 100, expected 200–300: below the "
                    "expected range",
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "2026-12-03 00:05 UTC"}]},
        ],
    }
    (notification,) = published(queue)
    assert notification["Subject"] == "kpi: 1 stale KPI: users_by_plan"
    assert notification["Message"] == (
        "kpi run (production): 1 stale KPI for finance (2026-12-03 00:05 UTC)\n\n"
        "- stale: users_by_plan 2026-11-28: newest data too old (past freshness.error_after)"
    )
    assert "s3cr3tXYZtoken" not in caplog.text
    assert "alert for owner 'growth' sent to slack:secretsmanager:kpi/alerts/growth: 3 alert(s)" in caplog.text


def test_the_default_destination_takes_other_owners_one_message_each(slack: SlackStandIn) -> None:
    routing = Routing({}, Destination("slack", slack_secret(slack, "kpi/alerts/default")))
    report = send_alerts(alerts(), routing, NOW, context="kpi run (local)")
    assert [(d.owner, d.ok) for d in report.sent] == [("finance", True), ("growth", True), ("ops", True)]
    assert [m["text"].splitlines()[0] for m in slack.received] == [
        "*kpi run (local): 1 stale KPI for finance* (2026-12-03 00:05 UTC)",
        "*kpi run (local): 2 failed partitions, 1 anomaly for growth* (2026-12-03 00:05 UTC)",
        "*kpi run (local): 1 failed partition for ops* (2026-12-03 00:05 UTC)",
    ]


@pytest.mark.parametrize("failure", ["status 500", "timeout", "unknown secret", "not a URL", "sns denied"])
def test_a_delivery_failure_is_reported_never_raised_and_names_no_secret(
    slack: SlackStandIn, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="pipeline")
    secret = slack_secret(slack, f"kpi/alerts/{failure.replace(' ', '-')}")
    destination = Destination("slack", secret)
    timeout = 5.0
    if failure == "status 500":
        slack.status = 500
    elif failure == "timeout":
        slack.hang.set()
        timeout = 0.3
    elif failure == "unknown secret":
        destination = Destination("slack", "kpi/alerts/nobody-made-this")
    elif failure == "not a URL":
        boto3.client("secretsmanager").put_secret_value(SecretId=secret, SecretString='{"token": "xoxb-s3cr3t"}')
    else:
        destination = Destination("sns", "arn:aws:sns:ap-northeast-1:123456789012:no-such-topic")
    routing = Routing({"growth": destination}, timeout=timeout)

    report = send_alerts(alerts()[:1], routing, NOW, context="kpi run (production)")

    (delivered,) = report.sent
    assert not delivered.ok
    expected = {
        "status 500": "Slack answered HTTP 500",
        "timeout": "Slack did not answer within 0.3s",
        "unknown secret": "cannot read the Slack webhook secret kpi/alerts/nobody-made-this: ResourceNotFoundException",
        "not a URL": f"the secret {secret} does not hold a webhook URL",
        "sns denied": "SNS refused the message: NotFound",
    }[failure]
    assert delivered.error.startswith(expected), delivered.error
    assert f"not delivered: {expected}" in caplog.text
    for text in (delivered.error, caplog.text, json.dumps(report.as_dict())):
        assert "s3cr3t" not in text
        assert slack.url not in text


def test_nothing_is_sent_without_routing_or_alerts(slack: SlackStandIn) -> None:
    routing = Routing({"growth": Destination("slack", slack_secret(slack, "kpi/alerts/quiet"))})
    assert send_alerts([], routing, NOW, context="kpi run").sent == ()
    assert send_alerts(alerts(), Routing(), NOW, context="kpi run").sent == ()
    assert slack.received == []


def test_the_anomaly_detectors_findings_reach_their_owner_with_a_looker_studio_link(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    kpi = make_kpi(tmp_path / "q", "daily", DAILY.replace("lookback: 2", "owner: growth"), DAILY_SQL)
    routing = Routing({"growth": Destination("slack", slack_secret(slack, "kpi/alerts/anomalies"))})
    warehouse = "bigquery://acme-analytics/kpi"
    found = [
        Anomaly("daily", "2026-05-04", "orders", None, 12.0, 40.0, 61.5, -5.1, "drop"),
        Anomaly("daily", "2026-05-05", "orders", None, 130.0, 40.0, 61.5, 6.3, "spike"),
    ]
    alerts = anomaly_alerts(found, {"daily": kpi}, warehouse, routing)
    report = send_alerts(alerts, routing, NOW, context="kpi run (production)")
    assert [(d.owner, d.alerts, d.ok) for d in report.sent] == [("growth", 2, True)]
    (message,) = slack.received
    link = report_url(kpi, warehouse)
    assert link.startswith("https://lookerstudio.google.com/reporting/create?")
    # the run's moment (00:05 UTC) in the KPI's zone, Asia/Tokyo: the owner reads it in the KPI's time
    assert message["text"].splitlines() == [
        "*kpi run (production): 2 anomalies for growth* (2026-12-03 09:05 JST)",
        f"• anomaly: `daily` 2026-05-04: orders = 12, expected 40–61.5: below the expected range <{link}|open>",
        f"• anomaly: `daily` 2026-05-05: orders = 130, expected 40–61.5: above the expected range <{link}|open>",
    ]
    assert [(b["type"], (b.get("text") or b["elements"][0])["text"]) for b in message["blocks"]] == [
        ("header", "kpi run (production): 2 anomalies for growth"),
        (
            "section",
            f"*anomaly*: `daily` 2026-05-04: orders = 12, expected 40–61.5: below the expected range <{link}|open>",
        ),
        (
            "section",
            f"*anomaly*: `daily` 2026-05-05: orders = 130, expected 40–61.5: above the expected range <{link}|open>",
        ),
        ("context", "2026-12-03 09:05 JST"),
    ]


def test_a_bad_nights_message_reaches_slack_within_its_limits_and_escaped(slack: SlackStandIn) -> None:
    """What Slack receives for 300 failures of 100 KPIs: 43 blocks (at most 50), each text within its limit, the
    user text escaped, the fallback text beside them."""
    routing = Routing({}, Destination("slack", slack_secret(slack, "kpi/alerts/night")))
    reason = "source <shop> refused & closed: " + "x" * 4000
    failures = [
        Alert.failed(f"kpi_{n:03d}&co", "ops", f"2026-12-0{day}", f"{reason} {n}", "https://r/#k", zone="Asia/Tokyo")
        for n in range(100)
        for day in (1, 2, 3)
    ]
    report = send_alerts(failures, routing, NOW, context="kpi backfill (production)")
    assert [(d.owner, d.alerts, d.ok) for d in report.sent] == [("ops", 300, True)]
    (message,) = slack.received
    blocks = message["blocks"]
    assert len(blocks) == 43 <= 50
    assert [b["type"] for b in blocks] == ["header"] + ["section"] * 40 + ["context", "context"]
    assert blocks[0]["text"] == {
        "type": "plain_text",
        "text": "kpi backfill (production): 300 failed partitions for ops",
    }
    sections = [b["text"]["text"] for b in blocks[1:41]]
    assert all(len(text) <= 3000 for text in sections)
    assert sections[0].startswith(
        "*failed*: `kpi_000&amp;co` 2026-12-01 … 2026-12-03 (3 partitions): "
        "source &lt;shop&gt; refused &amp; closed: xxx"
    )
    assert all(text.endswith("… <https://r/#k|open>") for text in sections)
    assert [b["elements"][0]["text"] for b in blocks[41:]] == [
        "… and 60 more (see the run's output)",
        "2026-12-03 09:05 JST",
    ]
    assert message["text"].startswith(
        "*kpi backfill (production): 300 failed partitions for ops* (2026-12-03 09:05 JST)\n"
    )
