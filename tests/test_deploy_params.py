"""`make deploy`'s parameters file: read by infra/params.py, refused with FILE:LINE, handed to `sam deploy` intact.

The SAM CLI is not installed here, so the bridge is the process edge: `python -m infra.params FILE -- SAM …` is
run with a stand-in for `sam` (a script that records its argv and exits 3), and the recorded argv is compared
word for word with what SAM must receive — one `ParameterKey=K,ParameterValue="V"` word per parameter, `"` in V
written `\\"` (how SAM decodes that form: the module's docstring, with its sources).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from infra.params import (
    Parameter,
    ParamsError,
    deploy_command,
    read_params,
    sam_override,
    sam_overrides,
    template_parameters,
)
from tests.conftest import ROOT

EXAMPLE = ROOT / "infra" / "params" / "example.env"
PARAMETERS = template_parameters()
ROUTES = (
    "growth=slack:secretsmanager:arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kpi/alerts/growth-AbCdEf,"
    "finance=sns:arn:aws:sns:ap-northeast-1:123456789012:kpi-finance"
)
LOGINS = "ALTER USER shop_app IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'; SET @note = \"a #1, b=2\""


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The messages name the template as make deploy sees it, from the repository's root."""
    monkeypatch.chdir(ROOT)


def _write(tmp_path: Path, text: str, name: str = "test.env") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ParamsError) as caught:
        read_params(path, PARAMETERS)
    return [str(problem) for problem in caught.value.problems]


def test_values_with_spaces_hash_equals_and_commas_arrive_intact(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "# a comment\n"
        "   # an indented comment\n"
        "\n"
        "AlertEmail=kpi-alerts+ops@example.com\n"
        f"AlertsOwners={ROUTES}\n"
        "FreshnessAlertSchedule=cron(0 9 * * ? *)\n"
        f"CloneLoginStatements={LOGINS}\n"
        "  DbHost =  shop.cluster-ro-xxxx.ap-northeast-1.rds.amazonaws.com  \r\n"
        "VpcSubnetIds=subnet-0123456789abcdef0,subnet-0fedcba9876543210\n"
        "CloneHealthQuery=SELECT 1 -- # not a comment\n"
        "DbSslCaPath=certs\\rds.pem\n",
    )

    params = read_params(path, PARAMETERS)

    assert params == [
        Parameter("AlertEmail", "kpi-alerts+ops@example.com", 4),
        Parameter("AlertsOwners", ROUTES, 5),
        Parameter("FreshnessAlertSchedule", "cron(0 9 * * ? *)", 6),
        Parameter("CloneLoginStatements", LOGINS, 7),
        Parameter("DbHost", "shop.cluster-ro-xxxx.ap-northeast-1.rds.amazonaws.com", 8),
        Parameter("VpcSubnetIds", "subnet-0123456789abcdef0,subnet-0fedcba9876543210", 9),
        Parameter("CloneHealthQuery", "SELECT 1 -- # not a comment", 10),
        Parameter("DbSslCaPath", "certs\\rds.pem", 11),
    ]
    assert sam_overrides(params) == [
        'ParameterKey=AlertEmail,ParameterValue="kpi-alerts+ops@example.com"',
        f'ParameterKey=AlertsOwners,ParameterValue="{ROUTES}"',
        'ParameterKey=FreshnessAlertSchedule,ParameterValue="cron(0 9 * * ? *)"',
        'ParameterKey=CloneLoginStatements,ParameterValue="ALTER USER shop_app IDENTIFIED WITH '
        'AWSAuthenticationPlugin AS \'RDS\'; SET @note = \\"a #1, b=2\\""',
        'ParameterKey=DbHost,ParameterValue="shop.cluster-ro-xxxx.ap-northeast-1.rds.amazonaws.com"',
        'ParameterKey=VpcSubnetIds,ParameterValue="subnet-0123456789abcdef0,subnet-0fedcba9876543210"',
        'ParameterKey=CloneHealthQuery,ParameterValue="SELECT 1 -- # not a comment"',
        'ParameterKey=DbSslCaPath,ParameterValue="certs\\rds.pem"',
    ]


def test_make_deploy_runs_sam_with_the_files_values_as_single_words(tmp_path: Path) -> None:
    """The real exec path: no shell between the file and sam, sam's exit status is make's."""
    record = tmp_path / "argv.json"
    fake_sam = tmp_path / "sam"
    fake_sam.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\nsys.exit(3)\n",
        encoding="utf-8",
    )
    fake_sam.chmod(0o755)
    params = _write(tmp_path, f"AlertsOwners={ROUTES}\n# DbPort=3307\nCloneLoginStatements={LOGINS}\n")
    command = [
        str(fake_sam),
        "deploy",
        "--stack-name",
        "kpi-pipeline-prod",
        "--parameter-overrides",
        "Stage=prod",
        "Architecture=arm64",
    ]

    done = subprocess.run(
        [sys.executable, "-m", "infra.params", str(params), "--", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    expected = [
        "deploy",
        "--stack-name",
        "kpi-pipeline-prod",
        "--parameter-overrides",
        "Stage=prod",
        "Architecture=arm64",
        f'ParameterKey=AlertsOwners,ParameterValue="{ROUTES}"',
        sam_override("CloneLoginStatements", LOGINS),
    ]
    assert done.returncode == 3, done.stderr
    assert json.loads(record.read_text(encoding="utf-8")) == expected
    assert done.stderr == shlex.join([str(fake_sam), *expected]) + "\n"  # what is run, as the operator sees it


def test_without_a_command_it_prints_the_words_sam_would_get(tmp_path: Path) -> None:
    params = _write(tmp_path, "DbName=shop\nCloneHealthQuery=SELECT 1\n")

    done = subprocess.run(
        [sys.executable, "-m", "infra.params", str(params)], cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        'ParameterKey=DbName,ParameterValue="shop"\nParameterKey=CloneHealthQuery,ParameterValue="SELECT 1"\n'
    )


def test_unknown_key_is_refused_with_the_nearest_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "DbName=shop\nDbHots=shop.example.com\ndbname=shop\nColour=blue\n")

    assert _problems(path) == [
        f"{path}:2: DbHots is not a parameter of infra/template.yaml: did you mean DbHost?",
        f"{path}:3: dbname is not a parameter of infra/template.yaml: did you mean DbName?",
        f"{path}:4: Colour is not a parameter of infra/template.yaml: the names are those under Parameters: in "
        "infra/template.yaml",
    ]


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "DbHost=a.example.com\n# DbHost=b.example.com\nDbName=shop\nDbHost=c.example.com\n")

    assert _problems(path) == [
        f"{path}:4: DbHost is given twice (first on line 1): keep one of the two lines",
    ]


def test_an_empty_value_is_refused_saying_what_leaving_it_out_gives(tmp_path: Path) -> None:
    path = _write(tmp_path, "DbName=\nDbPort=   \nVpcId=\n")

    assert _problems(path) == [
        f"{path}:1: DbName has no value: give one (it has no default)",
        f"{path}:2: DbPort has no value: give one, or leave the line out for its default (3306)",
        f'{path}:3: VpcId has no value: give one, or leave the line out for its default ("")',
    ]


def test_values_the_templates_constraints_refuse_are_refused_before_anything_is_packaged(tmp_path: Path) -> None:
    """AllowedValues (with the nearest), a Number's form and bounds, MinLength, AllowedPattern (with the
    template's ConstraintDescription): what CloudFormation would refuse only after the upload, without a line."""
    path = _write(
        tmp_path,
        "AlertEmail=kpi-alerts(at)example.com\nLogRetentionDays=45\nDbPort=70000\nCreateVpcEndpoints=True\n"
        "ExporterConcurrency=eight\nBigQueryDataset=my-kpi\nDbName=shop\nLoaderConcurrency=1\nCloneGraceHours=1.5\n"
        "LakeBucketName=Kpi_Lake\nCloneSnapshot=lastest\n",
    )

    assert _problems(path) == [
        f"{path}:1: AlertEmail=kpi-alerts(at)example.com is not what the template allows: an e-mail address",
        f"{path}:2: LogRetentionDays=45 is not one of the values the template allows: 7, 14, 30, 60, 90, 180, 365, "
        "731, 1827, 3653",
        f"{path}:3: DbPort=70000 is above its maximum, 65535",
        f"{path}:4: CreateVpcEndpoints=True is not one of the values the template allows: true, false "
        "(did you mean true?)",
        f"{path}:5: ExporterConcurrency=eight is not a number (the template's ExporterConcurrency is a Number): write "
        "digits, e.g. its default: ExporterConcurrency=8",
        f"{path}:6: BigQueryDataset=my-kpi is not what the template allows: a BigQuery dataset name: letters, digits "
        "and _ only",
        f"{path}:8: LoaderConcurrency=1 is below its minimum, 2",
        f"{path}:10: LakeBucketName=Kpi_Lake is not what the template allows: empty, or an S3 bucket name: 3–63 "
        "lower-case letters, digits, . and -, starting and ending with a letter or digit",
        f"{path}:11: CloneSnapshot=lastest is not one of the values the template allows: latest, take, clone "
        "(did you mean latest?)",
    ]


def test_ec2_ids_are_checked_for_their_shape_each_in_a_list(tmp_path: Path) -> None:
    """A subnet list with a space after its comma, a cut security group: CloudFormation would look each up in
    the account after the upload; their shape is known before."""
    path = _write(
        tmp_path,
        "VpcSubnetIds=subnet-0123456789abcdef0, subnet-0fedcba9876543210\nVpcSecurityGroupId=sg-12345\nDbName=shop\n",
    )
    ok = _write(
        tmp_path, "VpcSubnetIds=subnet-01234567,subnet-0fedcba9876543210\nVpcSecurityGroupId=sg-0a1b2c3d\n", "ok.env"
    )

    assert _problems(path) == [
        f"{path}:1: VpcSubnetIds: ' subnet-0fedcba9876543210' is not an ID of the form subnet- and 8 or 17 "
        "hexadecimal digits, comma-separated without spaces",
        f"{path}:2: VpcSecurityGroupId: 'sg-12345' is not an ID of the form sg- and 8 or 17 hexadecimal digits",
    ]
    assert [p.key for p in read_params(ok, PARAMETERS)] == ["VpcSubnetIds", "VpcSecurityGroupId"]


def test_every_default_of_the_template_passes_its_own_constraints_and_every_pattern_compiles(tmp_path: Path) -> None:
    """The checks read the template as CloudFormation does: a file giving each parameter its Default (those
    not empty; an empty value is refused on its own) is accepted whole, and every AllowedPattern (a Java regex in
    CloudFormation) reads in Python, with a ConstraintDescription to show."""
    patterns = {name: spec["AllowedPattern"] for name, spec in PARAMETERS.items() if "AllowedPattern" in spec}
    assert len(patterns) >= 30
    for name, pattern in patterns.items():
        re.compile(pattern)
        assert PARAMETERS[name].get("ConstraintDescription"), name
    defaults = {
        name: str(spec["Default"])
        for name, spec in PARAMETERS.items()
        if str(spec.get("Default", "")) and name not in ("Stage", "Architecture")
    }
    assert len(defaults) >= 20
    path = _write(tmp_path, "".join(f"{name}={value}\n" for name, value in defaults.items()))
    assert [(p.key, p.value) for p in read_params(path, PARAMETERS)] == list(defaults.items())


def test_a_line_without_equals_or_key_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "DbName=shop\nDbHost shop.example.com\n=shop\n")

    assert _problems(path) == [
        f"{path}:2: 'DbHost shop.example.com' is not Key=Value: write a parameter's name, =, then its value"
        " (a comment starts with #)",
        f"{path}:3: no parameter name before the =: write Key=Value",
    ]


def test_stage_and_architecture_are_left_to_make_deploy(tmp_path: Path) -> None:
    path = _write(tmp_path, "Stage=prod\nDbName=shop\nArchitecture=arm64\n")

    assert _problems(path) == [
        f"{path}:1: Stage is set by make deploy (STAGE=…), not here: remove this line",
        f"{path}:3: Architecture is set by make deploy (ARCH=…), not here: remove this line",
    ]


def test_quoted_values_and_backslashes_sam_would_change_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'CloneHealthQuery="SELECT 1"\n'
        "CloneRecordName='db.staging.internal'\n"
        "DbSslCaPath=certs\\ rds.pem\n"
        "VpcId=vpc-0123\\\n"
        "CloneLoginStatements=SET @a = \\'x'\n",
    )
    quoted = (
        "'s value is wrapped in quotes, which would be passed on as part of it: write {}=… without them (the value "
        "is everything after the first =, spaces and # included)"
    )
    backslash = (
        "'s value has a backslash before a space or a quote or at its end, which sam deploy --parameter-overrides "
        "cannot pass on as written: remove or move that backslash"
    )

    assert _problems(path) == [
        f"{path}:1: CloneHealthQuery" + quoted.format("CloneHealthQuery"),
        f"{path}:2: CloneRecordName" + quoted.format("CloneRecordName"),
        f"{path}:3: DbSslCaPath" + backslash,
        f"{path}:4: VpcId" + backslash,
        f"{path}:5: CloneLoginStatements" + backslash,
    ]


def test_the_command_line_reports_every_problem_and_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, "DbHots=x\nStage=prod\nDbName=\n")

    done = subprocess.run(
        [sys.executable, "-m", "infra.params", str(path), "--", "sam", "deploy", "--parameter-overrides"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        f"{path}:1: DbHots is not a parameter of infra/template.yaml: did you mean DbHost?",
        f"{path}:2: Stage is set by make deploy (STAGE=…), not here: remove this line",
        f"{path}:3: DbName has no value: give one (it has no default)",
    ]


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.env"
    path.write_bytes(b"DbName=caf\xe9\n")

    (problem,) = _problems(path)

    assert problem.startswith(f"{path}: cannot read it (")
    assert problem.endswith("): it must be a UTF-8 text file")


def test_the_overrides_go_after_the_commands_own_parameter_overrides() -> None:
    params = [Parameter("DbName", "shop", 1)]

    assert deploy_command(["sam", "deploy", "--parameter-overrides", "Stage=prod"], params) == [
        "sam",
        "deploy",
        "--parameter-overrides",
        "Stage=prod",
        'ParameterKey=DbName,ParameterValue="shop"',
    ]
    with pytest.raises(ValueError, match="must end with its --parameter-overrides"):
        deploy_command(["sam", "deploy", "--parameter-overrides", "Stage=prod", "--no-confirm-changeset"], params)


def test_example_env_is_valid_and_names_only_template_parameters(tmp_path: Path) -> None:
    """As shipped, and with every commented `# Key=Value` line uncommented: every key a Parameter, each once."""
    text = EXAMPLE.read_text(encoding="utf-8")
    commented = re.findall(r"^#\s*([A-Za-z][A-Za-z0-9]*)=", text, flags=re.MULTILINE)
    uncommented = re.sub(r"^#\s*(?=[A-Za-z][A-Za-z0-9]*=)", "", text, flags=re.MULTILINE)

    shipped = read_params(EXAMPLE, PARAMETERS)
    everything = read_params(_write(tmp_path, uncommented), PARAMETERS)

    assert [param.key for param in shipped][:3] == ["AlertEmail", "VpcSubnetIds", "VpcSecurityGroupId"]
    assert len(commented) >= 30
    assert sorted(set(commented) - set(PARAMETERS)) == []
    assert len(everything) == len(shipped) + len(commented)


def test_make_deploy_passes_the_file_through_infra_params() -> None:
    """The Makefile's deploy recipe, as `make -n` prints it: sam started by infra.params, after Stage and Arch."""
    # run as an operator would: not as a sub-make of `make test`, whose MAKEFLAGS/MAKELEVEL add "Entering directory"
    alone = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "deploy", "STAGE=prod", "ARCH=arm64", "SAM=sam"],
        cwd=ROOT,
        env=alone,
        capture_output=True,
        text=True,
        check=True,
    )
    recipe = " ".join(done.stdout.replace("\\\n", " ").split())

    assert recipe.endswith(
        ".venv/bin/python -m infra.params infra/params/prod.env -- sam deploy --template-file build/template.yaml "
        "--stack-name kpi-pipeline-prod --resolve-s3 --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM "
        "--no-fail-on-empty-changeset --parameter-overrides Stage=prod Architecture=arm64"
    )
    assert "sed " not in recipe
    checked = recipe.index(".venv/bin/python -m infra.params infra/params/prod.env >/dev/null")
    assert checked < recipe.index("infra.package --arch arm64")  # a wrong value is told before the packaging
