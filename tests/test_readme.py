"""The README is part of the product: it must document every header key, masking rule, [clone] key and command,
and the examples checked here are what the commands print."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.header_rules import COLUMN_KEYS, HEADER_KEYS
from tests.conftest import ROOT


def test_readme_documents_every_header_key() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [key for key in HEADER_KEYS if f"| `{key}` |" not in readme]
    assert missing == []
    assert all(f"`{key}`" in readme for key in COLUMN_KEYS)


def test_readme_documents_every_masking_rule_and_clone_key() -> None:
    from dataclasses import fields

    from pipeline.clone.config import CloneConfig
    from pipeline.clone.model import Strategy

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Cloning production into staging") :]
    rules = [s.value for s in Strategy if f"| `{s.value}` |" not in section and f"| `{{{s.value}:" not in section]
    assert rules == []
    keys = [f.name for f in fields(CloneConfig) if f.name != "origin" and f"\n{f.name} = " not in section]
    assert keys == []


def test_readme_lists_every_command() -> None:
    from pipeline.cli import COMMANDS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Commands") : readme.index("## For operators")]
    assert [name for name in COMMANDS if f"| `kpi {name}" not in table] == []


def test_readme_failure_and_removal_examples_are_what_the_commands_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's `large_orders` examples, replayed on a shop with 3, 2, 2 and 3 large orders on its four days:
    the failed line of `kpi run`, and `kpi status`'s warning and `kpi remove`'s lines after a future load."""
    import duckdb
    from click.testing import CliRunner

    from pipeline.cli import cli
    from tests.exporting import make_kpi

    with duckdb.connect(str(tmp_path / "shop.duckdb")) as db:
        db.execute("CREATE TABLE orders (created_at TIMESTAMP, country VARCHAR)")
        for day, count in (("2026-11-29", 3), ("2026-11-30", 2), ("2026-12-01", 2), ("2026-12-02", 3)):
            db.execute(f"INSERT INTO orders SELECT TIMESTAMP '{day} 10:00', 'JP' || range FROM range({count})")
    header = (
        "grain: day\ntime_column: order_date\nstart: 2024-01-01\nchecks: {min_rows: 3}\ncolumns:\n"
        "  order_date: {type: DATE}\n  country: {type: STRING}\n  large_orders: {type: INT64}"
    )
    sql = (
        "SELECT CAST(created_at AS DATE) AS order_date, country, COUNT(*) AS large_orders FROM orders "
        "WHERE created_at >= :start AND created_at < :end GROUP BY 1, 2"
    )
    make_kpi(tmp_path / "queries", "large_orders", header, sql)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_SOURCE", f"duckdb:///{tmp_path / 'shop.duckdb'}")
    monkeypatch.setenv("KPI_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    for name in ("KPI_QUERIES", "KPI_ENV", "KPI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()

    ran = CliRunner().invoke(cli, ["run", "large_orders", "--start", "2026-11-29", "--end", "2026-12-02"])
    assert ran.exit_code == 1
    failed = ran.output.split("┘\n", 1)[1].splitlines()
    assert failed[0].startswith("failed: large_orders 2026-11-30 … 2026-12-01 (2 partitions, checks): ")
    assert all(line in readme for line in failed), failed

    make_kpi(tmp_path / "queries", "large_orders", header.replace("checks: {min_rows: 3}\n", ""), sql)
    future = ["run", "large_orders", "--date", "2027-05-01", "--allow-incomplete"]
    assert CliRunner().invoke(cli, future).exit_code == 0
    warning = CliRunner().invoke(cli, ["status", "large_orders"]).output.splitlines()[-1]
    assert warning.startswith("warning: ")
    assert warning in readme
    removed = CliRunner().invoke(cli, ["remove", "large_orders", "--date", "2027-05-01", "--yes"])
    assert removed.output.splitlines()[-1] in readme
    again = CliRunner().invoke(cli, ["remove", "large_orders", "--date", "2027-05-01"])
    assert again.output.splitlines() == [line for line in readme if line.startswith("nothing to remove: 1 partition")]


def test_readme_alerts_table_is_valid_and_its_messages_are_what_the_renderer_writes() -> None:
    """The [alerts] example reads as written and documents every key; the Slack and SNS messages of the demo run
    (a source without its `orders` table) are what pipeline.core.alerts renders for those failures today."""
    import json
    import re
    import tomllib
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pipeline.core.alert_routing import KEYS, routing
    from pipeline.core.alerts import Alert, by_owner, render

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Alerts: one message per owner") : readme.index("### Undoing a load")]
    table = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert table is not None
    read = routing(tomllib.loads(table[1])["alerts"], "README")
    assert sorted(read.owners) == ["finance-team", "growth-team"]
    assert [key for key in KEYS if f"`{key}" not in section] == []

    reason = "duckdb://.kpi/shop-after-migration.duckdb: Catalog Error: Table with name orders does not exist!"
    failed = {
        "daily_sales": ("growth-team", ["2026-11-30", "2026-12-01", "2026-12-02"]),
        "monthly_active_buyers": ("growth-team", ["2026-10", "2026-11"]),
        "weekly_buyers": ("growth-team", ["2026-11-16", "2026-11-23"]),
        "hourly_orders": ("ops-team", ["2026-12-03T06", "2026-12-03T07", "2026-12-03T08"]),
    }
    alerts = [
        Alert.failed(kpi, owner, partition, reason, f".kpi/report.html#kpi-{kpi}")
        for kpi, (owner, partitions) in failed.items()
        for partition in partitions
    ]
    now = datetime(2026, 12, 3, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    grouped = by_owner(alerts)
    slack = render("growth-team", grouped["growth-team"], context="kpi run (local)", now=now)
    assert f"```\n{slack.text}\n```" in section
    payload = re.search(r"```json\n(.*?)```", section, re.DOTALL)  # the Block Kit JSON the webhook received
    assert payload is not None
    shown = json.loads(payload[1])
    assert shown["blocks"] == list(slack.blocks)
    assert slack.text.startswith(shown["text"].removesuffix("…"))  # trimmed: the whole text is shown below it
    sns = render("ops-team", grouped["ops-team"], context="kpi run (local)", now=now)
    assert f"```\nSubject: {sns.subject}\n\n{sns.body}\n```" in section


README_DEMO_NOW = "2026-12-03T00:00+09:00"  # the moment the README's demo examples replay: data up to 2026-12-02


def test_readme_anomalies_example_and_report_text_are_what_the_demo_of_its_day_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's data moves with the day it runs (its last day is yesterday, its outage four days before), so
    its anomalies do too: the README's are replayed with `kpi demo --now` at the moment it names — `kpi
    anomalies daily_sales` exactly as printed, the report's note under the charts and one ring's tooltip."""
    import html
    import shutil

    from click.testing import CliRunner

    from pipeline.cli import cli
    from pipeline.warehouses.duckdb import DuckDbWarehouse

    shutil.copytree(ROOT / "queries", tmp_path / "queries")
    shutil.copy(ROOT / "kpi.toml", tmp_path / "kpi.toml")
    for name in ("KPI_SOURCE", "KPI_LAKE", "KPI_WAREHOUSE", "KPI_QUERIES", "KPI_ENV", "KPI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`kpi demo --now {README_DEMO_NOW}` in an empty folder replays" in readme

    demo = CliRunner().invoke(cli, ["demo", "--now", README_DEMO_NOW, "--json"])
    assert demo.exit_code == 0, demo.output
    printed = CliRunner().invoke(cli, ["anomalies", "daily_sales"])
    assert printed.exit_code == 0, printed.output
    assert f"```\n$ kpi anomalies daily_sales\n{printed.output}```\n" in readme

    warehouse = DuckDbWarehouse(str(tmp_path / ".kpi" / "warehouse.duckdb"), read_only=True)
    scores = warehouse.scores("daily_sales", "2026-01-01", "2026-12-03")
    warehouse.close()
    assert len({s.score.partition for s in scores}) == 32  # "the 32 demo days scored"
    assert {s.score.partition for s in scores if s.score.anomalous} == {"2026-11-29"}  # "the only one flagged"
    assert "The outage day is the only one flagged in the 32 demo days scored" in readme

    page = html.unescape((tmp_path / ".kpi" / "report.html").read_text(encoding="utf-8"))
    section = readme[readme.index("### Anomalies: `kpi anomalies`") :]
    quoted = section[section.index("> Ringed: ") :].split("\n\n", 1)[0]
    note = " ".join(line.removeprefix("> ") for line in quoted.splitlines())
    assert f'<p class="chart-caption marks-note">{note}</p>' in page
    tooltip = "2026-11-29 · paid: 306 — drop: 7.5σ below expected (expected 389.48 to 671.88)"
    assert f"(the tooltip:\n`{tooltip}`)" in section
    assert f"<title>{tooltip}</title>" in page
