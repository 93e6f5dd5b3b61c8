"""``kpi suspend`` as an operator uses it, on moto's server: the plan table, apply, JSON, exit codes, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from tests.aws import MotoServer
from tests.suspending import FRIDAY_NIGHT, LABOUR_THANKSGIVING_0800_JST, OPT_IN, PROD, DevEnvironment

KPI_TOML = """\
[environments.local]
lake = ".kpi/lake"

[suspend]
accounts = ["123456789012"]
timezone = "Asia/Tokyo"
suspend_at = "0 21 * * 1-5"
resume_at = "0 8 * * 1-5"
extra_holidays = [{date = "2026-12-29", name = "year-end closure"}]
"""


@pytest.fixture
def project(aws_env: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DevEnvironment:
    aws_env.reset()
    for key in list(os.environ):
        if key.startswith("KPI_SUSPEND_"):
            monkeypatch.delenv(key)
    (tmp_path / "kpi.toml").write_text(KPI_TOML, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    return DevEnvironment()


def test_plan_shows_each_resource_with_its_action_or_the_reason_it_is_left(
    runner: CliRunner, project: DevEnvironment
) -> None:
    project.service("web", desired=3, scaling=(2, 6), tags=OPT_IN)
    prod = project.instance({**OPT_IN, **PROD})
    result = runner.invoke(cli, ["suspend", "plan", "--action", "suspend", "--now", FRIDAY_NIGHT])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].strip() == "kpi suspend plan: suspend all (123456789012 ap-northeast-1, 2026-11-20 21:00 JST)"
    assert any(
        "dev/web" in line and "stop: desired 3 (min 2, max 6) → desired 0 (min 0, max 0)" in line for line in lines
    )
    assert any(prod in line and "skip: production: tagged Environment=prod; never touched" in line for line in lines)
    assert lines[-1] == "1 to stop, 1 left as they are; nothing was touched"
    assert project.service_state("dev/web")["desired"] == 3


def test_apply_reports_as_json_and_a_holiday_start_does_nothing(runner: CliRunner, project: DevEnvironment) -> None:
    app = project.instance(OPT_IN)
    result = runner.invoke(cli, ["suspend", "apply", "--action", "suspend", "--now", FRIDAY_NIGHT, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["acted"] == [{"id": app, "type": "ec2-instance", "from": "running", "to": "stopped"}]
    assert report["ok"] is True

    holiday = runner.invoke(cli, ["suspend", "apply", "--action", "start", "--now", LABOUR_THANKSGIVING_0800_JST])
    assert holiday.exit_code == 0, holiday.output
    assert holiday.output.splitlines()[1] == "Labor Thanksgiving Day: a start does nothing on a holiday"
    assert project.instance_state(app) == "stopped"

    closure = runner.invoke(cli, ["suspend", "plan", "--action", "start", "--now", "2026-12-29T08:00"])
    assert "2026-12-29 is year-end closure: a start does nothing on a holiday" in closure.output


def test_apply_exits_1_when_something_needs_attention(runner: CliRunner, project: DevEnvironment) -> None:
    result = runner.invoke(cli, ["suspend", "apply", "--action", "suspend", "--id", "i-0123456789abcdef0"])
    assert result.exit_code == 1
    assert "failed: not found in this account and region" in result.output
    assert "needs attention" in result.output.splitlines()[-1]


def test_check_and_calendar(runner: CliRunner, project: DevEnvironment) -> None:
    project.aurora("dev-aurora", tags=OPT_IN, members=0)
    assert runner.invoke(cli, ["suspend", "check"]).output == "databases available\n"
    runner.invoke(cli, ["suspend", "apply", "--action", "suspend", "--now", FRIDAY_NIGHT])
    stopped = runner.invoke(cli, ["suspend", "check", "--json"])
    assert stopped.exit_code == 1
    assert json.loads(stopped.output) == {"databases_available": False, "pending": ["dev-aurora"], "holiday": None}

    calendar = runner.invoke(
        cli, ["suspend", "calendar", "--now", LABOUR_THANKSGIVING_0800_JST, "--days", "7", "--json"]
    )
    assert json.loads(calendar.output) == {
        "timezone": "Asia/Tokyo",
        "now": "2026-11-23T08:00:00+09:00",
        "suspend_at": "0 21 * * 1-5",
        "resume_at": "0 8 * * 1-5",
        "holiday": "Labor Thanksgiving Day",
        "inside_suspend_window": True,
        "window": "inside the suspend window: suspended 2026-11-20 21:00 JST (Fri), resumes 2026-11-24 08:00 JST (Tue)",
        "holidays": [{"date": "2026-11-23", "name": "Labor Thanksgiving Day"}],
    }


def test_a_configuration_mistake_is_one_message_with_a_hint(
    runner: CliRunner, project: DevEnvironment, tmp_path: Path
) -> None:
    (tmp_path / "kpi.toml").write_text('[suspend]\nacounts = ["123456789012"]\n', encoding="utf-8")
    result = runner.invoke(cli, ["suspend", "plan", "--action", "suspend"])
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        "kpi.toml [suspend]: error: unknown key 'acounts' (did you mean 'accounts'?)"
    )
    bad_tag = runner.invoke(cli, ["suspend", "plan", "--action", "suspend", "--tag", "Team"])
    assert bad_tag.exit_code == 2
    assert "--tag 'Team' is not KEY=VALUE" in bad_tag.output
