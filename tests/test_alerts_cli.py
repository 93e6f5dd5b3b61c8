"""kpi run, kpi backfill and kpi status --alert send one message per owner to a loopback Slack stand-in (its webhook
URL in moto's Secrets Manager); the commands' results and exit codes are the same whether delivery works or not."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import duckdb
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import UsageError
from tests.aws import MotoServer
from tests.conftest import ROOT
from tests.exporting import DAILY, DAILY_SQL, make_kpi
from tests.slack import SlackStandIn

NOW = "2024-03-10T00:30+09:00"
SECRET = f"kpi/alerts/growth-{uuid.uuid4().hex[:8]}"  # moto's server lives for the session: one name per run


@pytest.fixture
def slack(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with SlackStandIn() as server:
        boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=server.url)
        yield server
        boto3.client("secretsmanager").delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack: SlackStandIn) -> Path:
    """A shop with orders through 2024; `daily` and `broken` (a missing table) owned by growth, `other` by
    finance (no destination, no default: unrouted); kpi.toml routes growth to Slack."""
    shop = tmp_path / "shop.duckdb"
    with duckdb.connect(str(shop)) as db:
        db.execute(
            "CREATE TABLE orders AS SELECT i AS id, TIMESTAMP '2024-01-01 00:30' + INTERVAL (7 * i) HOUR AS created_at "
            "FROM range(0, 1252) t(i)"
        )
    owned = DAILY.replace("lookback: 2", "lookback: 0\nowner: growth")
    make_kpi(tmp_path / "queries", "daily", owned, DAILY_SQL)
    make_kpi(tmp_path / "queries", "broken", owned, DAILY_SQL.replace("FROM orders", "FROM no_such_table"))
    (tmp_path / "kpi.toml").write_text(
        '[alerts]\nreport = "https://kpi.example/report.html"\n'
        f'[alerts.owners]\ngrowth = "slack:secretsmanager:{SECRET}"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_SOURCE", f"duckdb:///{shop}")
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    for name in ("KPI_QUERIES", "KPI_ENV", "KPI_CONFIG", "KPI_ALERTS_DEFAULT", "KPI_ALERTS_OWNERS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_failed_run_alerts_the_owner_once_and_exits_as_before(project: Path, slack: SlackStandIn) -> None:
    result = CliRunner().invoke(cli, ["run", "--start", "2024-03-01", "--end", "2024-03-03", "--json", "--now", NOW])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["alerts"] == {
        "ok": True,
        "messages": [
            {
                "owner": "growth",
                "destination": f"slack:secretsmanager:{SECRET}",
                "alerts": 3,
                "ok": True,
                "error": "",
            }
        ],
        "unrouted": [],
    }
    (message,) = slack.received
    head, line = message["text"].splitlines()
    assert head == "*kpi run (local): 3 failed partitions for growth* (2024-03-10 00:30 JST)"
    assert line.startswith("• failed: `broken` 2024-03-01 … 2024-03-03 (3 partitions): ")
    assert "no_such_table" in line
    assert line.endswith("<https://kpi.example/report.html#kpi-broken|open>")

    fine = CliRunner().invoke(cli, ["run", "daily", "--date", "2024-03-04", "--json", "--now", NOW])
    assert fine.exit_code == 0, fine.output
    assert "alerts" not in json.loads(fine.stdout)  # nothing failed: nothing sent
    assert len(slack.received) == 1


def test_a_failing_delivery_changes_nothing_but_a_line_on_stderr(project: Path, slack: SlackStandIn) -> None:
    slack.status = 500
    result = CliRunner().invoke(cli, ["backfill", "broken", "--start", "2024-03-01", "--end", "2024-03-02"])
    assert result.exit_code == 1
    assert "failed: broken 2024-03-01 … 2024-03-02 (2 partitions, source)" in result.stdout
    assert (
        f"alert NOT sent to growth (slack:secretsmanager:{SECRET}): Slack answered HTTP 500 (check the "
        "webhook" in result.stderr
    )
    assert "T000/B000" not in result.output
    assert len(slack.received) == 1


def test_status_alert_sends_the_stale_kpis_and_reports_the_unrouted(project: Path, slack: SlackStandIn) -> None:
    make_kpi(project / "queries", "other", DAILY.replace("lookback: 2", "owner: finance"), DAILY_SQL)
    (project / "queries" / "broken.sql").unlink()
    loaded = CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-02"])
    assert loaded.exit_code == 0, loaded.output
    quiet = CliRunner().invoke(cli, ["status", "--json", "--now", NOW])  # without --alert: nothing is sent
    assert quiet.exit_code == 1
    assert slack.received == []

    result = CliRunner().invoke(cli, ["status", "--alert", "--now", NOW])
    assert result.exit_code == 1  # stale, as without --alert
    (message,) = slack.received
    assert message["text"].splitlines() == [
        "*kpi status (local): 1 stale KPI for growth* (2024-03-10 00:30 JST)",
        "• stale: `daily` 2024-03-02: newest data 7d 0h old (past freshness.error_after) "
        "<https://kpi.example/report.html#kpi-daily|open>",
    ]
    assert f"alert sent to growth (slack:secretsmanager:{SECRET}): 1 alert(s)" in result.stderr
    assert "alert NOT sent to finance: no destination for this owner and no default" in result.stderr


def test_the_loader_alerts_the_owner_of_a_load_that_failed_for_good(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_bucket: str,
    slack: SlackStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.errors import StoreError
    from pipeline.lambdas.loader import handler as loader
    from tests.loading import HEADER, SQL

    make_kpi(tmp_path / "q", "daily", HEADER + "owner: growth\n", SQL)
    damaged = "lake/daily/day=2024-03-02/run=r1/_manifest.json"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=damaged, Body=b'{"manifest_version": 1, "kpi": "daily"}')
    for name, value in {
        "KPI_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "KPI_QUERIES": str(tmp_path / "q"),
        "KPI_CONFIG": str(tmp_path / "none.toml"),  # configured by variables alone, as deployed
        "KPI_ALERTS_OWNERS": f"growth=slack:secretsmanager:{SECRET}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KPI_ENV", raising=False)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": s3_bucket}, "object": {"key": damaged}},
            }
        ]
    }

    with pytest.raises(StoreError, match="the manifest cannot be read"):  # the loader's answer, as without alerts
        loader(event)

    (message,) = slack.received
    head, line = message["text"].splitlines()
    assert head.startswith("*kpi loader: 1 failed partition for growth* (")
    assert line.startswith("• failed: `daily` 2024-03-02: ")
    assert "cannot be read" in line
    logged = [json.loads(entry) for entry in capsys.readouterr().out.splitlines() if '"alerts"' in entry]
    assert logged == [
        {
            "level": "info",
            "alerts": {
                "ok": True,
                "messages": [
                    {
                        "owner": "growth",
                        "destination": f"slack:secretsmanager:{SECRET}",
                        "alerts": 1,
                        "ok": True,
                        "error": "",
                    }
                ],
                "unrouted": [],
            },
        }
    ]
    assert "T000" not in json.dumps(logged)


def test_the_freshness_lambda_alerts_the_owners_of_stale_kpis(
    project: Path, monkeypatch: pytest.MonkeyPatch, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.lambdas.freshness import handler as freshness

    (project / "queries" / "broken.sql").unlink()
    make_kpi(project / "queries", "other", DAILY.replace("lookback: 2", "owner: finance"), DAILY_SQL)
    assert CliRunner().invoke(cli, ["backfill", "daily", "--start", "2024-03-01", "--end", "2024-03-09"]).exit_code == 0
    monkeypatch.setenv("KPI_QUERIES", str(project / "queries"))
    monkeypatch.setenv("KPI_CONFIG", str(project / "none.toml"))  # configured by variables alone, as deployed
    monkeypatch.setenv("KPI_ALERTS_OWNERS", f"growth=slack:secretsmanager:{SECRET}")

    fresh = freshness({"now": NOW})  # daily's newest day ended half an hour ago; other was never loaded
    assert fresh["stale"] == [{"kpi": "other", "owner": "finance", "partition": None, "age_hours": None}]
    assert fresh["alerts"] == {"ok": False, "messages": [], "unrouted": ["finance"]}
    assert slack.received == []

    answer = freshness({"now": "2024-03-13T09:00+09:00"})
    assert answer["stale"] == [
        {"kpi": "daily", "owner": "growth", "partition": "2024-03-09", "age_hours": 81.0},
        {"kpi": "other", "owner": "finance", "partition": None, "age_hours": None},
    ]
    (message,) = slack.received
    # the Lambda's moment is UTC; Slack shows it in the KPI's zone (Asia/Tokyo), as `kpi status --alert` does
    assert message["text"].splitlines() == [
        "*kpi freshness: 1 stale KPI for growth* (2024-03-13 09:00 JST)",
        "• stale: `daily` 2024-03-09: newest data 3d 9h old (past freshness.error_after) "
        "(" + str(project / "report.html") + "#kpi-daily)",
    ]
    assert message["blocks"][-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "2024-03-13 09:00 JST"}],
    }
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [entry["level"] for entry in logged] == ["warning", "warning"]  # finance is unrouted both times
    assert SECRET in json.dumps(logged[-1])
    assert "T000" not in json.dumps(logged)


def test_the_freshness_lambda_tells_owners_of_a_failed_deployed_backfill_once_or_says_nothing_was_routed(
    project: Path, monkeypatch: pytest.MonkeyPatch, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state machines' owner-alert step, called as Step Functions calls it (the Lambda task's Error and Cause
    of each failed batch); the messages go to the loopback Slack, the webhook's URL read from moto's Secrets
    Manager."""
    from pipeline.lambdas.freshness import handler as freshness

    make_kpi(project / "queries", "other", DAILY.replace("lookback: 2", "owner: finance"), DAILY_SQL)
    monkeypatch.setenv("KPI_QUERIES", str(project / "queries"))
    monkeypatch.setenv("KPI_CONFIG", str(project / "none.toml"))  # configured by variables alone, as deployed
    monkeypatch.setenv("KPI_ALERTS_OWNERS", f"growth=slack:secretsmanager:{SECRET}")
    monkeypatch.setenv("KPI_ALERTS_REPORT", "https://kpi.example/report.html")
    cause = json.dumps({"errorMessage": "StoreError: S3 PutObject failed: SlowDown", "errorType": "RetryableError"})
    event = {
        "failed": [
            {"kpi": "broken", "start": "2024-03-01", "end": "2024-03-03", "error": "RetryableError", "cause": cause},
            {"kpi": "daily", "start": "2024-02-01", "end": "2024-02-29", "error": "States.Timeout", "cause": ""},
            {"kpi": "other", "start": "2024-02-01", "end": "2024-02-02", "error": "States.Timeout", "cause": ""},
        ],
        "execution": "backfill-x1",
        "started_at": "2024-03-10T00:30:00.123Z",
        "context": "kpi backfill (deployed)",
    }
    answer = freshness(event)
    assert answer["failed"] == [
        {"kpi": "broken", "partitions": 3},
        {"kpi": "daily", "partitions": 29},
        {"kpi": "other", "partitions": 2},
    ]
    assert answer["routed"] is True
    assert answer["alerts"] == {
        "ok": False,  # finance has no destination and there is no default
        "messages": [
            {"owner": "growth", "destination": f"slack:secretsmanager:{SECRET}", "alerts": 32, "ok": True, "error": ""}
        ],
        "unrouted": ["finance"],
    }
    (message,) = slack.received  # one message for growth's two KPIs
    assert message["text"].splitlines() == [
        "*kpi backfill (deployed), execution backfill-x1: 32 failed partitions for growth* (2024-03-10 09:30 JST)",
        "• failed: `broken` 2024-03-01 … 2024-03-03 (3 partitions): StoreError: S3 PutObject failed: SlowDown "
        "<https://kpi.example/report.html#kpi-broken|open>",
        "• failed: `daily` 2024-02-01 … 2024-02-29 (29 partitions): States.Timeout "
        "<https://kpi.example/report.html#kpi-daily|open>",
    ]
    (logged,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert (logged["level"], logged["execution"], logged["alerts"]) == ("warning", "backfill-x1", answer["alerts"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```\n{message['text']}\n```" in readme  # the README's example is this message

    for name in ("KPI_ALERTS_OWNERS", "KPI_ALERTS_REPORT"):  # a stack that routes no alerts
        monkeypatch.delenv(name)
    quiet = freshness(event)
    assert (quiet["routed"], quiet["alerts"]) == (False, {"ok": True, "messages": [], "unrouted": []})
    assert len(slack.received) == 1

    with pytest.raises(UsageError) as refused:  # a malformed event fails the step, with what to send
        freshness({"failed": [{"start": "2024-03-01"}]})
    assert refused.value.message == "failed item 1 names no kpi"
    with pytest.raises(UsageError) as refused:
        freshness({**event, "started_at": "yesterday"})
    assert refused.value.message == "started_at 'yesterday' is not an ISO date-time"


def test_status_alert_without_alerts_configured_says_so_and_exits_as_without(project: Path) -> None:
    (project / "kpi.toml").write_text("")
    result = CliRunner().invoke(cli, ["status", "--alert", "--now", NOW])
    assert result.exit_code == 1  # never loaded: stale, as without --alert
    assert result.stderr.splitlines()[-1] == (
        "warning: --alert: the environment 'local' has no alerts configured; nothing was sent (add [alerts] to "
        "kpi.toml: see the README, Alerts)"
    )


@pytest.mark.parametrize(
    ("retryable", "receives", "alerted"), [(True, 1, False), (True, 4, False), (True, 5, True), (False, 1, True)]
)
def test_a_failed_load_alerts_once_when_it_will_not_be_tried_again(
    retryable: bool, receives: int, alerted: bool
) -> None:
    from pipeline.lambdas.loader import failed_for_good

    assert failed_for_good(retryable, receives) is alerted


@pytest.mark.infra  # moto's server and the loader's queue path
def test_the_loader_alerts_a_transient_failure_on_its_last_receive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_bucket: str, slack: SlackStandIn
) -> None:
    """A load retried through the queue (the warehouse file is held by another process: retryable) alerts on the
    receive after which the dead-letter queue takes it, and answers as without alerts: retry."""
    from pipeline.export import export
    from pipeline.lambdas.loader import handler as loader
    from pipeline.sources import open_source
    from pipeline.stores import open_store
    from tests.exporting import days
    from tests.loading import HEADER, SQL, held_open, shop_source

    kpi = make_kpi(tmp_path / "q", "daily", HEADER + "owner: growth\n", SQL)
    store = open_store(f"s3://{s3_bucket}/lake")
    export(kpi, days("2024-03-01", 1), source=open_source(shop_source(tmp_path)), store=store, run_id="r1")
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName=f"load-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    key = "lake/daily/day=2024-03-01/run=r1/_manifest.json"
    body = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": s3_bucket}, "object": {"key": key}},
            }
        ]
    }
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": "5"},  # the last (maxReceiveCount), as Lambda's trigger hands it
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
    }
    for name, value in {
        "KPI_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "KPI_QUERIES": str(tmp_path / "q"),
        "KPI_CONFIG": str(tmp_path / "none.toml"),
        "KPI_ALERTS_OWNERS": f"growth=slack:secretsmanager:{SECRET}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KPI_ENV", raising=False)

    # The loader waits LOCK_WAIT (60 s) for the file lock before it gives up (retryable): this test needs the wait
    # to end, not its length.
    monkeypatch.setattr("pipeline.warehouses.duckdb.LOCK_WAIT", 1.0)
    with held_open(tmp_path / "wh.duckdb"):
        answer = loader({"Records": [record]})

    assert answer["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]  # retried, as without alerts
    assert [(f["error"], f["retryable"]) for f in answer["failed"]] == [("LoadError", True)]
    (alert,) = slack.received
    assert alert["text"].splitlines()[1].startswith("• failed: `daily` 2024-03-01: ")


def test_a_run_whose_load_finds_an_anomaly_alerts_the_owner_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack: SlackStandIn
) -> None:
    """The loads of `kpi run` score their partitions (pipeline.flows.anomalies); the anomalies found go to the
    KPI's owner in the run's one message, with the measure, actual value and expected range."""
    from bench.anomaly_bench import load_series
    from tests.test_anomaly_measured import small

    load_series(tmp_path, small(spike_at=59))[1].close()  # 60 days loaded, the last one a spike
    queries = tmp_path / "queries" / "daily_series.sql"
    queries.write_text(queries.read_text().replace("grain: day", "owner: growth\ngrain: day"))
    (tmp_path / "kpi.toml").write_text(f'[alerts.owners]\ngrowth = "slack:secretsmanager:{SECRET}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_SOURCE", f"duckdb:///{tmp_path / 'source.duckdb'}")
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("KPI_QUERIES", str(tmp_path / "queries"))
    for name in ("KPI_ENV", "KPI_CONFIG", "KPI_ALERTS_DEFAULT", "KPI_ALERTS_OWNERS"):
        monkeypatch.delenv(name, raising=False)
    now = "2026-07-31T09:00+09:00"
    result = CliRunner().invoke(cli, ["run", "daily_series", "--date", "2026-07-30", "--json", "--now", now])
    assert result.exit_code == 0, result.output  # an anomaly is news, not a failure
    document = json.loads(result.stdout)
    ((anomaly,),) = [line["anomalies"] for line in document["kpis"]]
    assert (anomaly["partition"], anomaly["measure"], anomaly["direction"]) == ("2026-07-30", "sales", "spike")
    assert [(m["owner"], m["alerts"], m["ok"]) for m in document["alerts"]["messages"]] == [("growth", 1, True)]
    (message,) = slack.received
    head, line = message["text"].splitlines()
    assert head.startswith("*kpi run (local): 1 anomaly for growth*")
    assert "`daily_series` 2026-07-30" in line
    assert "sales = 163, expected 96.75–106.5: above the expected range" in line
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "context"]
    assert message["blocks"][1]["text"]["text"].startswith(
        "*anomaly*: `daily_series` 2026-07-30: sales = 163, expected 96.75–106.5: above the expected range ("
    )
    assert message["blocks"][2]["elements"][0]["text"] == "2026-07-31 09:00 JST"


@pytest.mark.infra  # moto's S3 and Secrets Manager, the loader Lambda's path
def test_the_loader_alerts_the_anomalies_its_load_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_bucket: str, slack: SlackStandIn
) -> None:
    """Deployed, the loader is where a partition is scored: the anomalies a load finds reach the KPI's owner in
    one message, and the loader's answer is what it would be without alerts."""
    from bench.anomaly_bench import intervals, load_series
    from pipeline.core.lake import manifest_key
    from pipeline.export import export
    from pipeline.lambdas.loader import handler as loader
    from pipeline.sources import open_source
    from pipeline.stores import open_store
    from tests.test_anomaly_measured import small

    series = small(spike_at=59)
    kpi, warehouse, _ = load_series(tmp_path, series)  # 60 days loaded, the last one a spike
    warehouse.close()
    queries = tmp_path / "queries" / "daily_series.sql"
    queries.write_text(queries.read_text().replace("grain: day", "owner: growth\ngrain: day"))
    # The spike's day exported again (a newer run) to the bucket the loader is notified of.
    spike = intervals(series)[-1]
    source = open_source(f"duckdb:///{tmp_path / 'source.duckdb'}")
    (manifest,) = export(kpi, [spike], source=source, store=open_store(f"s3://{s3_bucket}/lake"))
    key = "lake/" + manifest_key(kpi, spike, manifest.run_id)
    for name, value in {
        "KPI_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "KPI_QUERIES": str(tmp_path / "queries"),
        "KPI_CONFIG": str(tmp_path / "none.toml"),  # configured by variables alone, as deployed
        "KPI_ALERTS_OWNERS": f"growth=slack:secretsmanager:{SECRET}",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("KPI_ENV", "KPI_ALERTS_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": s3_bucket}, "object": {"key": key}},
            }
        ]
    }

    (outcome,) = loader(event)["manifests"]

    assert (outcome["partition"], outcome["loaded"]) == ("2026-07-30", True)
    assert [(a["measure"], a["direction"]) for a in outcome["anomalies"]] == [("sales", "spike")]
    (message,) = slack.received
    head, line = message["text"].splitlines()
    assert head.startswith("*kpi loader: 1 anomaly for growth* (")
    assert "`daily_series` 2026-07-30" in line
    assert "sales = 163, expected 96.75–106.5: above the expected range" in line
    assert message["blocks"][2]["elements"][0]["text"].endswith(" JST")  # the Lambda's UTC clock, in the KPI's zone
