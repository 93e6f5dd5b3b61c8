"""The alert model, its grouping (one message per owner), its rendering, and the [alerts] table of kpi.toml."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.core.alert_routing import Destination, Routing
from pipeline.core.alerts import MAX_LINES, SUBJECT_LIMIT, Alert, by_owner, from_anomaly, number, render, subject
from pipeline.core.anomaly import Anomaly
from pipeline.core.slack_blocks import FALLBACK_LIMIT, HEADER_LIMIT, MAX_BLOCKS, TEXT_LIMIT, clip, link
from pipeline.errors import UsageError
from pipeline.settings import load_environment

NOW = datetime(2026, 12, 3, 9, 5, tzinfo=ZoneInfo("Asia/Tokyo"))
LOOKER = "https://lookerstudio.google.com/reporting/create?c.reportName=Sales&ds.ds0.tableId=daily_sales"


def test_one_group_per_owner_in_message_order() -> None:
    alerts = [
        Alert.anomaly("daily_sales", "growth", "2026-12-02", "sales", "paid", 10.0, 20.0, 30.0),
        Alert.failed("users_by_plan", "finance", "2026-12-02", "boom"),
        Alert.stale("hourly_orders", "growth", "2026-12-01T23", timedelta(hours=30)),
        Alert.failed("daily_sales", "growth", "2026-12-01", "source down"),
    ]
    grouped = by_owner(alerts)
    assert list(grouped) == ["finance", "growth"]
    assert [(a.kind, a.kpi) for a in grouped["growth"]] == [
        ("failed", "daily_sales"),
        ("stale", "hourly_orders"),
        ("anomaly", "daily_sales"),
    ]


@pytest.mark.parametrize(
    ("alert", "slack_line", "plain_line"),
    [
        (
            Alert.failed("daily_sales", "growth", "2026-12-02", "source refused: timeout\n  second line", LOOKER),
            f"• failed: `daily_sales` 2026-12-02: source refused: timeout <{LOOKER}|open>",
            "- failed: daily_sales 2026-12-02: source refused: timeout",
        ),
        (
            Alert.stale("hourly_orders", "ops", "2026-12-01T23", timedelta(hours=50), ".kpi/report.html#kpi-x"),
            "• stale: `hourly_orders` 2026-12-01T23: newest data 2d 2h old (past freshness.error_after)"
            " (.kpi/report.html#kpi-x)",
            "- stale: hourly_orders 2026-12-01T23: newest data 2d 2h old (past freshness.error_after)",
        ),
        (
            Alert.stale("weekly", "ops", None, None),
            "• stale: `weekly`: never loaded",
            "- stale: weekly: never loaded",
        ),
        (
            Alert.anomaly("daily_sales", "growth", "2026-12-02", "sales", "paid", 3_340_000, 2_800_000, 3_100_000),
            "• anomaly: `daily_sales` 2026-12-02: sales [paid] = 3,340,000, expected 2,800,000–3,100,000: "
            "above the expected range",
            "- anomaly: daily_sales 2026-12-02: sales [paid] = 3,340,000, expected 2,800,000–3,100,000: "
            "above the expected range",
        ),
        (
            Alert.anomaly("conv", "growth", "2026-12-02", "rate", "", 0.0123, 0.02, 0.031),
            "• anomaly: `conv` 2026-12-02: rate = 0.0123, expected 0.02–0.031: below the expected range",
            "- anomaly: conv 2026-12-02: rate = 0.0123, expected 0.02–0.031: below the expected range",
        ),
        (
            Alert.failed("a<b>&c", "growth", "2026-12-02", "x < y & z"),
            "• failed: `a&lt;b&gt;&amp;c` 2026-12-02: x &lt; y &amp; z",
            "- failed: a<b>&c 2026-12-02: x < y & z",
        ),
    ],
)
def test_each_kind_renders_kpi_partition_values_and_link(alert: Alert, slack_line: str, plain_line: str) -> None:
    message = render(alert.owner, [alert], context="kpi run (production)", now=NOW)
    head, line = message.text.splitlines()
    one = {"failed": "1 failed partition", "stale": "1 stale KPI", "anomaly": "1 anomaly"}[alert.kind]
    assert head == f"*kpi run (production): {one} for {alert.owner}* (2026-12-03 09:05 JST)"
    assert line == slack_line
    body = message.body.splitlines()
    assert body[0] == f"kpi run (production): {one} for {alert.owner} (2026-12-03 09:05 JST)"
    assert body[2] == plain_line
    if alert.link:
        assert body[3] == f"    {alert.link}"


def test_failures_sharing_a_reason_are_one_line_with_their_span() -> None:
    alerts = [Alert.failed("daily_sales", "growth", f"2026-11-{day:02d}", "source down") for day in range(1, 31)]
    alerts.append(Alert.failed("daily_sales", "growth", "2026-12-01", "check min_rows failed"))
    message = render("growth", by_owner(alerts)["growth"], context="kpi backfill daily_sales (local)", now=NOW)
    assert message.text.splitlines()[1:] == [
        "• failed: `daily_sales` 2026-11-01 … 2026-11-30 (30 partitions): source down",
        "• failed: `daily_sales` 2026-12-01: check min_rows failed",
    ]
    assert message.subject == "kpi: 31 failed partitions: daily_sales"


def test_a_long_message_is_cut_and_says_how_much_more() -> None:
    alerts = [Alert.stale(f"kpi_{n:03d}", "ops", "2026-12-01", timedelta(days=3)) for n in range(MAX_LINES + 5)]
    message = render("ops", alerts, context="kpi status (production)", now=NOW)
    lines = message.text.splitlines()
    assert len(lines) == 1 + MAX_LINES + 1
    assert lines[-1] == "… and 5 more (see the run's output)"
    assert len(message.subject) < SUBJECT_LIMIT
    assert message.subject.endswith("...")


def texts(blocks: tuple[dict[str, object], ...] | list[dict[str, object]]) -> list[tuple[str, str]]:
    """(type, text) of each block: a header's or section's text, a context's one element's."""
    out = []
    for block in blocks:
        text = block["text"] if "text" in block else block["elements"][0]  # type: ignore[index]
        out.append((str(block["type"]), str(text["text"])))  # type: ignore[index]
    return out


def test_a_message_is_block_kit_a_header_a_section_per_line_and_the_time() -> None:
    alerts = [
        Alert.failed("daily_sales", "growth", "2026-12-01", "source down", LOOKER),
        Alert.failed("daily_sales", "growth", "2026-12-02", "source down", LOOKER),
        Alert.stale("hourly_orders", "growth", "2026-12-01T23", timedelta(hours=50), ".kpi/report.html#kpi-h"),
        Alert.anomaly("conv", "growth", "2026-12-02", "rate", "", 0.0123, 0.02, 0.031, "http://kpi.internal/r#c"),
    ]
    message = render("growth", by_owner(alerts)["growth"], context="kpi run (production)", now=NOW)
    assert [b["type"] for b in message.blocks] == ["header", "section", "section", "section", "context"]
    assert message.blocks[0]["text"]["type"] == "plain_text"
    assert {b["text"]["type"] for b in message.blocks[1:4]} == {"mrkdwn"}
    assert texts(message.blocks) == [
        ("header", "kpi run (production): 2 failed partitions, 1 stale KPI, 1 anomaly for growth"),
        ("section", f"*failed*: `daily_sales` 2026-12-01 … 2026-12-02 (2 partitions): source down <{LOOKER}|open>"),
        # a local path cannot be opened from Slack: it stays text
        (
            "section",
            "*stale*: `hourly_orders` 2026-12-01T23: newest data 2d 2h old (past freshness.error_after)"
            " (.kpi/report.html#kpi-h)",
        ),
        (
            "section",
            "*anomaly*: `conv` 2026-12-02: rate = 0.0123, expected 0.02–0.031: below the expected range"
            " <http://kpi.internal/r#c|open>",
        ),
        ("context", "2026-12-03 09:05 JST"),
    ]
    assert (
        message.text.splitlines()[0]
        == "*kpi run (production): 2 failed partitions, 1 stale KPI, 1 anomaly for growth* (2026-12-03 09:05 JST)"
    )


def test_many_alerts_stay_within_slacks_block_limit_with_and_n_more() -> None:
    alerts = [Alert.stale(f"kpi_{n:03d}", "ops", "2026-12-01", timedelta(days=3)) for n in range(MAX_LINES + 60)]
    message = render("ops", alerts, context="kpi status (production)", now=NOW)
    assert len(message.blocks) == 1 + MAX_LINES + 2 <= MAX_BLOCKS
    assert [b["type"] for b in message.blocks].count("section") == MAX_LINES
    assert texts(message.blocks)[-2:] == [
        ("context", "… and 60 more (see the run's output)"),
        ("context", "2026-12-03 09:05 JST"),
    ]
    assert texts(message.blocks)[MAX_LINES] == (
        "section",
        f"*stale*: `kpi_{MAX_LINES - 1:03d}` 2026-12-01: newest data 3d 0h old (past freshness.error_after)",
    )


def test_long_texts_are_cut_to_slacks_limits_keeping_the_link_and_the_entities_whole() -> None:
    reason = "Binder Error: " + "a & b < c; " * 600  # 6,614 characters, 10,814 escaped
    context = "kpi backfill " + " ".join(f"kpi_{n}" for n in range(40)) + " (production)"
    alert = Alert.failed("daily_sales", "growth", "2026-12-02", reason, LOOKER)
    message = render("growth", [alert], context=context, now=NOW)
    (_, title), (_, line), _ = texts(message.blocks)
    assert len(title) == HEADER_LIMIT
    assert title.startswith("kpi backfill kpi_0 kpi_1 ")
    assert title.endswith("…")
    assert len(line) <= TEXT_LIMIT
    assert line.startswith("*failed*: `daily_sales` 2026-12-02: Binder Error: a &amp; b &lt; c; a &amp; b")
    assert line.endswith(f"… <{LOOKER}|open>")
    cut = line.removesuffix(f"… <{LOOKER}|open>")
    assert "&" not in cut.replace("&amp;", "").replace("&lt;", "")  # no entity cut in half


def test_the_fallback_text_of_many_long_errors_stays_under_slacks_limit() -> None:
    """Forty failed KPIs whose errors' first lines are long: each section is cut to its 3,000 characters, and the
    top-level ``text`` (the notification's fallback, which Slack refuses over 40,000) to a share of it per line."""
    reason = "Binder Error: " + "a & b < c; " * 600
    alerts = [Alert.failed(f"kpi_{n:03d}", "growth", "2026-12-02", reason, LOOKER) for n in range(MAX_LINES + 3)]
    message = render("growth", alerts, context="kpi run (production)", now=NOW)
    assert len(message.text) <= FALLBACK_LIMIT
    lines = message.text.splitlines()
    assert len(lines) == 1 + MAX_LINES + 1  # the head, the lines, "… and 3 more"
    assert all(line.endswith(f"… <{LOOKER}|open>") for line in lines[1:-1])  # each cut, its link kept
    assert lines[1].startswith("• failed: `kpi_000` 2026-12-02: Binder Error: a &amp; b &lt; c;")
    assert lines[-1] == "… and 3 more (see the run's output)"


@pytest.mark.parametrize(
    ("escaped", "limit", "expected"),
    [
        ("abcdef", 6, "abcdef"),
        ("abcdefg", 6, "abcde…"),
        ("abc&amp;def", 6, "abc…"),  # "&am" would show as text: cut before the entity
        ("ab&amp;def", 8, "ab&amp;…"),
        ("&lt;&lt;&lt;", 5, "&lt;…"),
    ],
)
def test_clip_never_cuts_an_entity(escaped: str, limit: int, expected: str) -> None:
    assert clip(escaped, limit) == expected
    assert len(clip(escaped, limit)) <= limit


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://r.example/x?a=1&b=2", "<https://r.example/x?a=1&b=2|open>"),
        ("https://r.example/a b|c", "<https://r.example/a%20b%7Cc|open>"),  # | would end the URL early
        ("/srv/kpi/report.html#kpi-a&b", "/srv/kpi/report.html#kpi-a&amp;b"),
    ],
)
def test_links_are_slack_links_only_for_web_urls(url: str, shown: str) -> None:
    assert link(url, "open") == shown


def test_user_text_is_escaped_in_every_block() -> None:
    alert = Alert.failed("a<b>&c", "R&D <team>", "2026-12-02", "x < y & z")
    message = render("R&D <team>", [alert], context="kpi run (a&b)", now=NOW)
    assert texts(message.blocks)[:2] == [
        ("header", "kpi run (a&amp;b): 1 failed partition for R&amp;D &lt;team&gt;"),
        ("section", "*failed*: `a&lt;b&gt;&amp;c` 2026-12-02: x &lt; y &amp; z"),
    ]


def test_slack_shows_the_time_in_the_zone_the_kpis_share_sns_as_given() -> None:
    utc = NOW.astimezone(ZoneInfo("UTC"))
    tokyo = Alert.failed("daily_sales", "growth", "2026-12-02", "boom", zone="Asia/Tokyo")
    message = render("growth", [tokyo], context="kpi loader", now=utc)
    assert texts(message.blocks)[-1] == ("context", "2026-12-03 09:05 JST")
    assert message.text.splitlines()[0].endswith("(2026-12-03 09:05 JST)")
    assert message.body.splitlines()[0].endswith("(2026-12-03 00:05 UTC)")  # SNS: unchanged
    berlin = Alert.failed("weekly", "growth", "2026-11-30", "boom", zone="Europe/Berlin")
    mixed = render("growth", [tokyo, berlin], context="kpi loader", now=utc)
    assert texts(mixed.blocks)[-1] == ("context", "2026-12-03 00:05 UTC")  # no one zone: as given


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 failed: daily_sales", "kpi: 1 failed: daily_sales"),
        ("売上 failed\nnext", "kpi: ?? failed next"),  # SNS: ASCII, no line breaks
        ("x" * 200, "kpi: " + "x" * (SUBJECT_LIMIT - 4 - 5) + "..."),
    ],
)
def test_sns_subject_is_ascii_one_line_under_100(text: str, expected: str) -> None:
    assert subject(text) == expected
    assert len(subject(text)) < SUBJECT_LIMIT


@pytest.mark.parametrize(
    ("value", "shown"),
    [(3340000.0, "3,340,000"), (1234.567, "1,234.6"), (12.345, "12.35"), (61.5, "61.5"), (0.01234, "0.01234")],
)
def test_numbers(value: float, shown: str) -> None:
    assert number(value) == shown


def test_an_anomaly_of_the_detector_becomes_an_alert() -> None:
    found = Anomaly("daily_sales", "2026-05-06", "sales", None, 120.0, 200.0, 260.0, -4.2, "drop")
    assert from_anomaly(found, "growth", "https://r/#kpi-daily_sales") == Alert(
        "anomaly",
        "daily_sales",
        "growth",
        "2026-05-06",
        "below the expected range",
        "https://r/#kpi-daily_sales",
        "sales",
        "",
        120.0,
        200.0,
        260.0,
    )


# -- kpi.toml [alerts] ----------------------------------------------------------------------------------------

ALERTS = """
[alerts]
default = "slack:secretsmanager:kpi/alerts/data-team"
timeout_seconds = 3
[alerts.owners]
growth = "sns:arn:aws:sns:ap-northeast-1:123456789012:kpi-growth"

[environments.production]
warehouse = "bigquery://acme/kpi"
[environments.production.alerts]
default = "sns:arn:aws:sns:ap-northeast-1:123456789012:kpi-prod"
"""


def test_alerts_table_shared_and_per_environment(tmp_path: Path) -> None:
    path = tmp_path / "kpi.toml"
    path.write_text(ALERTS)
    local = load_environment("local", config=path, environ={}).alerts
    assert local.default == Destination("slack", "kpi/alerts/data-team")
    assert local.destination("growth") == Destination("sns", "arn:aws:sns:ap-northeast-1:123456789012:kpi-growth")
    assert local.destination("finance") == local.default
    assert local.timeout == 3.0
    production = load_environment("production", config=path, environ={}).alerts
    assert production.owners == {}  # an environment's table replaces the shared one whole
    assert str(production.destination("growth")) == "sns:arn:aws:sns:ap-northeast-1:123456789012:kpi-prod"


def test_without_alerts_nothing_is_configured(tmp_path: Path) -> None:
    assert not load_environment(config=tmp_path / "none.toml", environ={}).alerts.configured


def test_variables_configure_the_lambdas() -> None:
    environ = {
        "KPI_ALERTS_DEFAULT": "sns:arn:aws:sns:ap-northeast-1:123456789012:kpi",
        "KPI_ALERTS_OWNERS": "growth=slack:secretsmanager:kpi/growth, finance=sns:arn:aws:sns:us-east-1:1:fin",
    }
    routing = load_environment(config=Path("/nonexistent/kpi.toml"), environ=environ).alerts
    assert routing.owners == {
        "growth": Destination("slack", "kpi/growth"),
        "finance": Destination("sns", "arn:aws:sns:us-east-1:1:fin"),
    }
    assert routing.destination("finance") is not None
    assert routing.owners["finance"].region == "us-east-1"
    assert routing == Routing(routing.owners, routing.default, 5.0, "", "KPI_ALERTS_* variables")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('default = "https://hooks.slack.com/services/T0/B0/XYZ"', "default is a webhook URL; it is a secret"),
        ('default = "slack:https://hooks.slack.com/x"', "default is a webhook URL"),
        ('default = "slack:vault:kpi/x"', "default: a Slack destination is slack:secretsmanager:SECRET-ID"),
        ('default = "sns:arn:aws:s3:::bucket"', "default: 'arn:aws:s3:::bucket' is not an SNS topic ARN"),
        ('default = "email:ops@example.com"', "default: unknown destination kind 'email'"),
        ("default = 3", "default must be text"),
        ("[alerts.owners]\ngrowth = 'slack:'", "owners.growth: a Slack destination"),
        ("timeout_seconds = 0", r"timeout_seconds must be a number of seconds in \(0, 60\]"),
        ("defualt = 'sns:arn:aws:sns:r:1:t'", "unknown key 'defualt' .*did you mean 'default'"),
        ("owners = 'growth'", "owners must be a table"),
    ],
)
def test_bad_alerts_table_names_the_key(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "kpi.toml"
    path.write_text(f"[alerts]\n{table}\n")
    with pytest.raises(UsageError, match=message) as caught:
        load_environment(config=path, environ={})
    assert caught.value.where == f"{path} [alerts]"
    assert "XYZ" not in str(caught.value)  # the refused webhook URL is not echoed


@pytest.mark.parametrize(
    ("warehouse", "report", "expected"),
    [
        ("bigquery://acme-analytics/kpi?location=asia-northeast1", "https://kpi.example/", "looker"),
        ("duckdb://.kpi/warehouse.duckdb", "https://kpi.example/r.html", "https://kpi.example/r.html#kpi-daily"),
        ("duckdb://.kpi/warehouse.duckdb", "", ".kpi/report.html#kpi-daily"),
        ("/srv/kpi/wh.duckdb", "", "/srv/kpi/report.html#kpi-daily"),
        ("wh.duckdb", "", "report.html#kpi-daily"),
        ("postgres://db/kpi", "", ""),
    ],
)
def test_links_open_looker_studio_else_the_report(tmp_path: Path, warehouse: str, report: str, expected: str) -> None:
    from pipeline.flows.alerts import kpi_link
    from pipeline.flows.dashboard import report_url
    from tests.exporting import DAILY, DAILY_SQL, make_kpi

    kpi = make_kpi(tmp_path / "q", "daily", DAILY, DAILY_SQL)
    link = kpi_link(kpi, warehouse, Routing(report=report))
    assert link == (report_url(kpi, warehouse) if expected == "looker" else expected)
