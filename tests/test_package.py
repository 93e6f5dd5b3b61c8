"""The Lambda packages of ``python -m infra.package``: within budget, holding what each handler needs and nothing
it must not, and working — every handler (the exporter's zip also serves the clone-database Lambda; the loader's,
the backfill planner; the ops zip, the suspend and clone Lambdas) imports from its unzipped package alone, the
exporter and the loader run from theirs, MySQL → S3 → BigQuery, and the clone Lambdas find their configuration and
rule files in theirs.

How "working" is checked, and why so: the zips hold CPython 3.12 manylinux wheels for Lambda (pyarrow's
``lib.cpython-312-x86_64-linux-gnu.so``, cryptography, grpc, PyYAML's C loader), which this project's Python 3.11
venv cannot load, and borrowing the venv's own binaries would test the venv's wheels, not the packaged ones.
So these tests run a real CPython 3.12 of this machine (``KPI_LAMBDA_PYTHON``, ``python3.12`` on PATH, pyenv or
uv; they fail saying so when there is none) in isolated mode (``-I -S``: no site-packages, no user site, no
``PYTHON*`` variables) with ``sys.path`` = the unzipped package first, as in Lambda, then a stand-in for Lambda's
runtime (boto3 and botocore, pip-installed for 3.12, since the packages leave them to the runtime), then the
standard library, and ``-B``, as /var/task is read-only; every module loaded must come from one of the three.
Binary wheels for Lambda's Amazon Linux 2023 (glibc 2.34) load on this Debian (glibc 2.36) when the architecture
matches, so the packages are built for this machine's architecture (x86_64 here); arm64 is the same build with
other wheels (``--arch arm64``).

The packages are built with ``.pyc`` files (``--compile``, by that same 3.12), the variant a deploy should use
and the bigger one for the budgets, into ``build/lambda/test`` so that a developer's own ``build/lambda`` is
left alone. The first run downloads about 100 MB from PyPI (pip's cache makes later ones local) and takes
about half a minute; after that the packages are up to date in about a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

import infra.package as package
from infra.package import FUNCTIONS, Built, Options
from pipeline.clone.rules import load_rule_folder
from tests.aws import MotoServer
from tests.bigquery import PROJECT, BigQueryEmulator
from tests.conftest import ROOT, MySqlServer, demo_schema_statements

# Infrastructure (Lambda zips built with their dependencies and run in a fresh interpreter): `make test-fast`
# leaves it out. One xdist worker runs the whole module: its fixtures build into OUT, which workers must not share.
pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("package")]

ARCH = package.machine_arch() or "x86_64"
OUT = ROOT / "build" / "lambda" / "test"
# What Lambda's Python runtime provides beside the standard library: the only modules that may come from it.
RUNTIME_PROVIDES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}


@pytest.fixture(scope="module")
def lambda_python() -> str:
    python = package.find_python("3.12")
    if python is None:
        pytest.fail(
            "No CPython 3.12 on this machine to run the Lambda packages' cp312 wheels: install one "
            "(`uv python install 3.12`, `pyenv install 3.12`, Debian's python3.12) or set KPI_LAMBDA_PYTHON.",
            pytrace=False,
        )
    return python


@pytest.fixture(scope="module")
def options(lambda_python: str) -> Options:
    version = package.python_version(lambda_python)
    return Options(arch=ARCH, out=OUT, quiet=True, compiler=lambda_python, compiler_version=version)


@pytest.fixture(scope="module")
def built(options: Options) -> dict[str, Built]:
    return {b.function.name: b for b in package.build_all(options)}


@pytest.fixture(scope="module")
def runtime(options: Options) -> Path:
    return package.lambda_runtime(options)


@pytest.fixture(scope="module")
def unpacked(built: dict[str, Built], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each zip unpacked, as Lambda unpacks it into /var/task."""
    found = {}
    for name, b in built.items():
        folder = tmp_path_factory.mktemp(f"task-{name}")
        with zipfile.ZipFile(b.path) as archive:
            archive.extractall(folder)
        found[name] = folder
    return found


def names(b: Built) -> list[str]:
    with zipfile.ZipFile(b.path) as archive:
        return archive.namelist()


def top_levels(b: Built) -> set[str]:
    return {name.split("/", 1)[0].removesuffix(".py") for name in names(b)}


def run_in_lambda(
    python: str, task: Path, runtime: Path, code: str, *, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``code`` in a CPython 3.12 that sees the package, the runtime's boto3 and the standard library only."""
    prelude = f"import sys; sys.path[:0] = [{str(task)!r}, {str(runtime)!r}]\n"
    return subprocess.run(
        [python, "-I", "-S", "-B", "-c", prelude + code],
        cwd=task,  # Lambda's working directory is /var/task: KPI_QUERIES=queries is relative to it
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# ---------------------------------------------------------------------------------------------- what they hold


def test_every_package_is_within_its_budget(built: dict[str, Built]) -> None:
    for b in built.values():
        assert not b.over_budget, package.over_budget_message(b)
        assert b.unzipped < package.LAMBDA_LIMIT_MIB * package.MIB
    assert built["exporter"].function.budget_mib == 200
    assert built["loader"].function.budget_mib == 80
    assert built["ops"].function.budget_mib == 30


def test_the_packages_hold_their_handlers_and_the_kpi_files(built: dict[str, Built]) -> None:
    kpi_files = sorted(
        f"queries/{p.relative_to(ROOT / 'queries').as_posix()}" for p in (ROOT / "queries").rglob("*.sql")
    )
    assert kpi_files
    loader = ("pipeline.lambdas.loader", "pipeline.lambdas.planner", "pipeline.lambdas.freshness")
    assert FUNCTIONS["loader"].modules == loader
    assert FUNCTIONS["ops"].modules == ("pipeline.lambdas.suspend", "pipeline.lambdas.clone")
    assert FUNCTIONS["exporter"].modules == ("pipeline.lambdas.exporter", "pipeline.lambdas.clone_database")
    ops = names(built["ops"])
    assert not [n for n in ops if n.startswith("queries/")]  # the suspend Lambda reads no KPI file …
    with zipfile.ZipFile(built["ops"].path) as archive:  # … but kpi.toml, for its [suspend] table
        assert archive.read("kpi.toml") == (ROOT / "kpi.toml").read_bytes()
    assert "kpi.toml" not in names(built["exporter"]) + names(built["loader"])  # configured by variables only
    # KPI_CLONE_RULES=masking: the clone-database Lambda's rule files, in the exporter's zip alone
    rule_files = sorted(f"masking/{p.name}" for p in (ROOT / "masking").glob("*.yaml"))
    assert rule_files
    assert sorted(n for n in names(built["exporter"]) if n.startswith("masking/")) == rule_files
    assert not [n for n in names(built["loader"]) + ops if n.startswith("masking/")]
    for b in built.values():
        listing = names(b)
        for module in b.function.modules:  # the loader's zip serves the backfill planner as well
            folder, _, name = module.replace(".", "/").rpartition("/")
            assert f"{folder}/{name}.py" in listing
            assert f"{folder}/__pycache__/{name}.cpython-312.pyc" in listing
        assert not [n for n in listing if n.startswith("pipeline/") and "/tests/" in n]
        # KPI_QUERIES=queries: the exporter renders them; the planner and the freshness Lambda read their headers
        # (the loader too, after a load failed for good: the KPI's owner, for the alert)
        if b.function.queries:
            assert sorted(n for n in listing if n.startswith("queries/")) == kpi_files


def test_the_exporter_holds_the_c_reader_built_for_its_arch_and_loads_it(
    built: dict[str, Built], unpacked: dict[str, Path], runtime: Path, lambda_python: str
) -> None:
    machine = package.ARCHES[ARCH]
    readers = {name: [n for n in names(b) if "_mysql_wire" in n or n.endswith(".c")] for name, b in built.items()}
    assert readers == {"exporter": [f"pipeline/sources/_mysql_wire.{machine}.so"], "loader": [], "ops": []}
    code = "from pipeline.sources import mysql_native; print(mysql_native.load() is not None)"
    done = run_in_lambda(lambda_python, unpacked["exporter"], runtime, code)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


def test_the_packages_leave_out_what_lambda_provides_and_what_they_must_not_hold(built: dict[str, Built]) -> None:
    exporter, loader, ops = (top_levels(built[name]) for name in ("exporter", "loader", "ops"))
    for tops in (exporter, loader, ops):
        assert not tops & {"boto3", "botocore", "pandas", "duckdb", "click", "rich"}
    assert "holidays" not in exporter | loader  # the suspend calendar's (ops); scoring reads a table generated from it
    assert not ops & {"pyarrow", "numpy", "pymysql", "sqlglot", "google", "yaml", "queries"}
    assert {"holidays", "tzdata", "cronsim", "pipeline", "kpi.toml"} <= ops
    assert not loader & {"pyarrow", "numpy", "pymysql"}
    assert not exporter & {"numpy", "google"}  # pyarrow without NumPy; BigQuery is the loader's
    assert {"pyarrow", "pymysql", "sqlglot", "yaml", "cronsim", "tzdata", "pipeline", "queries"} <= exporter
    assert {"google", "sqlglot", "tzdata", "yaml", "cronsim", "pipeline", "queries"} <= loader
    for b in built.values():
        assert package.absent_violations(b) == []
        assert not [n for n in names(b) if n.endswith((".pyx", ".pxd", ".h", "/RECORD")) or "/tests/" in n]
        assert not [n for n in names(b) if n.startswith("pyarrow/include/")]


def test_the_zips_are_reproducible_sorted_dated_1980_and_readable_by_lambdas_user(built: dict[str, Built]) -> None:
    for b in built.values():
        with zipfile.ZipFile(b.path) as archive:
            infos = archive.infolist()
        own = ("pipeline/", "queries/", "masking/", "kpi.toml")
        ours = [i.filename for i in infos if i.filename.startswith(own)]
        theirs = [i.filename for i in infos if not i.filename.startswith(own)]
        assert [i.filename for i in infos] == theirs + ours  # the cached dependencies, then our files appended
        assert theirs == sorted(theirs)
        assert ours == sorted(ours)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}
        # compiled for /var/task: tracebacks in Lambda name its paths, and no path of this machine is in the zip
        handler = b.function.module.rpartition(".")[2]  # the ops zip's handler is pipeline.lambdas.suspend
        with zipfile.ZipFile(b.path) as archive:
            pyc = archive.read(f"pipeline/lambdas/__pycache__/{handler}.cpython-312.pyc")
        assert f"/var/task/pipeline/lambdas/{handler}.py".encode() in pyc
        assert str(ROOT).encode() not in pyc


def test_a_second_build_changes_nothing_and_takes_no_time(built: dict[str, Built], options: Options) -> None:
    before = {name: b.sha256 for name, b in built.items()}
    again = {b.function.name: b for b in package.build_all(options)}
    assert {name: b.sha256 for name, b in again.items()} == before
    assert {b.cached for b in again.values()} == {"everything"}
    assert all(b.seconds < 5 for b in again.values())


# ---------------------------------------------------------------------------------- how the lists are decided


def test_every_dependency_of_pyproject_is_in_or_out_of_each_function_with_its_version() -> None:
    dependencies = package.project_dependencies()
    assert package.requirements(FUNCTIONS["exporter"], dependencies) == [
        f"cronsim{dependencies['cronsim']}",
        "faker==40.63.0",  # the clone's fakes (the clone-database Lambda, and the ECS masking task)
        f"pyarrow{dependencies['pyarrow']}",
        "pymysql[rsa]==1.2.4",
        f"pyyaml{dependencies['pyyaml']}",
        f"sqlglot{dependencies['sqlglot']}",
        f"tzdata{dependencies['tzdata']}",
    ]
    assert package.requirements(FUNCTIONS["loader"], dependencies) == [
        f"cronsim{dependencies['cronsim']}",
        f"google-cloud-bigquery{dependencies['google-cloud-bigquery']}",
        f"pyyaml{dependencies['pyyaml']}",
        f"sqlglot{dependencies['sqlglot']}",
        f"tzdata{dependencies['tzdata']}",
    ]
    assert package.requirements(FUNCTIONS["ops"], dependencies) == [
        f"cronsim{dependencies['cronsim']}",
        f"holidays{dependencies['holidays']}",
        f"tzdata{dependencies['tzdata']}",
    ]
    loader = FUNCTIONS["loader"]
    undecided = replace(loader, exclude={name: why for name, why in loader.exclude.items() if name != "rich"})
    with pytest.raises(SystemExit, match=r"rich \(pyproject\.toml\) is neither in nor out"):
        package.requirements(undecided, dependencies)
    with pytest.raises(SystemExit, match="pandas is not a dependency"):
        package.requirements(replace(loader, include={"pandas": "no"}), dependencies)


def test_a_package_over_its_budget_fails_the_build_naming_it_and_its_biggest_packages(
    built: dict[str, Built], options: Options, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(package.FUNCTIONS, "loader", replace(FUNCTIONS["loader"], budget_mib=10))
    monkeypatch.setenv("KPI_LAMBDA_PYTHON", str(options.compiler))
    assert package.main(["loader", "--arch", ARCH, "--out", str(OUT), "--compile"]) == 1
    printed = capsys.readouterr()
    assert "| loader | " in printed.out
    assert "**over**" in printed.out
    assert "error: the loader package" in printed.err
    assert "over its budget of 10 MB" in printed.err
    assert "Biggest: grpc" in printed.err  # the biggest packages, named with their sizes


# ------------------------------------------------------------------------------------------ running them, 3.12


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_handler_and_what_its_first_call_imports_load_from_its_package_alone(
    function: str, unpacked: dict[str, Path], runtime: Path, lambda_python: str
) -> None:
    f = FUNCTIONS[function]
    code = f"""
import importlib, json, sys
for name in {[*f.modules, *f.runtime_modules]!r}:
    importlib.import_module(name)
print(json.dumps({{n: getattr(m, "__file__", None) for n, m in sys.modules.items() if m is not None}}))
"""
    done = run_in_lambda(lambda_python, unpacked[function], runtime, code)
    assert done.returncode == 0, done.stderr
    files: dict[str, str | None] = json.loads(done.stdout)
    task, stdlib = str(unpacked[function]), stdlib_of(lambda_python)
    origins: dict[str, set[str]] = {"task": set(), "runtime": set(), "stdlib": set()}
    for name, file in files.items():
        if file is None:
            continue  # built-in modules and namespace packages
        roots = {"task": task, "runtime": str(runtime), "stdlib": stdlib}
        where = next((kind for kind, root in roots.items() if file.startswith(root + "/")), None)
        assert where, f"{name} came from {file}, outside the package, the runtime and the standard library"
        origins[where].add(name.split(".", 1)[0])
    assert origins["runtime"] <= RUNTIME_PROVIDES
    for module in f.modules:
        assert files[module] == f"{task}/{module.replace('.', '/')}.py"
    expected = {
        "exporter": {"pyarrow", "pymysql", "sqlglot", "yaml", "cronsim"},  # pymysql and yaml: clone_database too
        "loader": {"google", "sqlglot", "yaml", "cronsim"},  # the last two for the planner
        "ops": {"holidays", "cronsim"},
    }
    assert expected[function] <= origins["task"]
    forbidden = {"pandas", "numpy", "duckdb"} | (set() if function == "exporter" else {"pyarrow"})
    forbidden |= {"pymysql", "sqlglot", "google", "yaml"} if function == "ops" else set()
    forbidden |= {"holidays"} if function == "loader" else set()  # its scoring reads pipeline.core.jp_holiday_table
    assert not origins["task"] & forbidden


def stdlib_of(python: str) -> str:
    """Where the interpreter's standard library is (``lib-dynload``, its C modules, is inside)."""
    probe = "import sysconfig; print(sysconfig.get_paths()['stdlib'])"
    return subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.mysql
def test_the_packaged_handlers_export_from_mysql_to_s3_and_load_into_bigquery(
    unpacked: dict[str, Path],
    runtime: Path,
    lambda_python: str,
    mysql_db: MySqlServer,
    s3_bucket: str,
    bq_url: str,
    bq_dataset: str,
    bigquery_emulator: BigQueryEmulator,
) -> None:
    """The whole flow through the packages as Lambda would run them: the exporter's event (a snapshot KPI of the
    bundled queries/, users_by_plan), then the S3 notification of its manifest to the loader."""
    with mysql_db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        for statement in demo_schema_statements():
            cursor.execute(statement)
        cursor.execute(
            "INSERT INTO users (id, email, country, plan, created_at) VALUES"
            " (1, 'a@example.com', 'JP', 'free', '2024-03-01 10:00:00'),"
            " (2, 'b@example.com', 'JP', 'free', '2024-03-01 11:00:00'),"
            " (3, 'c@example.com', 'JP', 'pro', '2024-03-02 09:00:00'),"
            " (4, 'd@example.com', 'US', 'pro', '2024-03-02 12:00:00')"
        )
    credentials = mysql_db.user + (f":{mysql_db.password}" if mysql_db.password else "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}  # aws_env points boto3 at moto
    env |= {"KPI_SOURCE": f"mysql://{credentials}@{mysql_db.host}:{mysql_db.port}/{mysql_db.database}"}
    env |= {"KPI_LAKE": f"s3://{s3_bucket}", "KPI_WAREHOUSE": bq_url}

    run_id = "20240302T000000000Z-abcdef"
    request = {"kpi": "users_by_plan", "run_id": run_id}
    exported = invoke(lambda_python, unpacked["exporter"], runtime, "exporter", request, env)
    (partition,) = exported["partitions"]
    assert (partition["kpi"], partition["rows"], partition["run_id"]) == ("users_by_plan", 3, run_id)

    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]
    (manifest_key,) = [o["Key"] for o in listed if o["Key"].endswith("/_manifest.json")]
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": s3_bucket}, "object": {"key": manifest_key}},
            }
        ]
    }
    loaded = invoke(lambda_python, unpacked["loader"], runtime, "loader", event, env)
    (outcome,) = loaded["manifests"]
    assert (outcome["kpi"], outcome["run_id"], outcome["loaded"]) == ("users_by_plan", run_id, True)

    client = bigquery_emulator.client()
    rows = client.query(f"SELECT country, plan, users FROM `{PROJECT}.{bq_dataset}.users_by_plan` ORDER BY 1, 2")
    assert [tuple(row.values()) for row in rows.result()] == [("JP", "free", 2), ("JP", "pro", 1), ("US", "pro", 1)]


def test_the_packaged_suspend_handler_stops_an_opted_in_aurora_cluster_on_moto(
    unpacked: dict[str, Path], runtime: Path, lambda_python: str, aws_env: MotoServer
) -> None:
    """The ops package as Lambda would run it, against the moto server over HTTP: its configuration from the
    variables on top of the bundled kpi.toml, its calendar (holidays, tzdata's zones), the account allow-list
    (sts), discovery and the stop of a tagged cluster, then the databases check of the resume state machine."""
    rds = boto3.client("rds")
    cluster = f"dev-aurora-{uuid.uuid4().hex[:8]}"
    rds.create_db_cluster(
        DBClusterIdentifier=cluster,
        Engine="aurora-mysql",
        MasterUsername="admin",
        MasterUserPassword="not-a-secret-1",
        Tags=[{"Key": "kpi:suspend", "Value": "true"}],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}  # aws_env points boto3 at moto
    env |= {"KPI_SUSPEND_ACCOUNTS": "123456789012", "KPI_SUSPEND_TIMEZONE": "Asia/Tokyo"}
    event = {"action": "suspend", "phase": "databases", "dbClusterIdentifiers": [cluster]}
    report = invoke(lambda_python, unpacked["ops"], runtime, "ops", event, env)
    assert report["ok"], report
    assert [(a["id"], a["type"], a["to"]) for a in report["acted"]] == [(cluster, "db-cluster", "stopped")]
    assert report["at"].endswith("+09:00")  # read in Asia/Tokyo, with tzdata's zone from the package
    (described,) = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"]
    assert described["Status"] == "stopped"
    check = invoke(lambda_python, unpacked["ops"], runtime, "ops", {"action": "check", "phase": "databases"}, env)
    assert set(check) == {"databases_available", "pending", "holiday"}


# A clone configuration as infra/template.yaml passes it to both clone Lambdas (KPI_CLONE_<KEY>).
CLONE_VARIABLES = {
    "KPI_CLONE_SOURCE_ACCOUNT": "123456789012",
    "KPI_CLONE_SOURCE_CLUSTER": "shop-prod",
    "KPI_CLONE_SUBNET_GROUP": "shop-prod-private",
    "KPI_CLONE_WORKER_SECURITY_GROUP": "sg-0123456789abcdef0",
    "KPI_CLONE_MASKING_KEY_SECRET": "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kpi/clone-key-AbCdEf",
    "KPI_CLONE_TARGET_ACCOUNT": "210987654321",
    "KPI_CLONE_TARGET_ROLE_ARN": "arn:aws:iam::210987654321:role/kpi-clone-staging",
    "KPI_CLONE_TARGET_SUBNET_GROUP": "shop-staging-private",
    "KPI_CLONE_TARGET_SECURITY_GROUPS": "sg-0abcdef0123456789",
    "KPI_CLONE_HOSTED_ZONE_ID": "Z0123456789ABC",
    "KPI_CLONE_RECORD_NAME": "db.staging.internal",
    "KPI_CLONE_RULES": "masking",
}


def test_the_packaged_clone_handlers_find_their_configuration_and_rule_files(
    unpacked: dict[str, Path], runtime: Path, lambda_python: str
) -> None:
    """The clone Lambda (ops zip) reads its configuration from the variables and answers an unknown action with
    a UsageError, before any AWS call; the clone-database Lambda (exporter zip) parses the bundled rule files of
    masking/ (KPI_CLONE_RULES, relative to /var/task) with the packaged PyYAML."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")} | CLONE_VARIABLES
    code = """
import json
from pipeline.errors import UsageError
from pipeline.lambdas.clone import handler
try:
    handler({"action": "nothing"})
except UsageError as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
"""
    done = run_in_lambda(lambda_python, unpacked["ops"], runtime, code, env=env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["error"] == "UsageError"
    assert answer["message"].startswith("unknown clone action 'nothing'")  # the configuration was read first

    code = """
import json, os
from pipeline.lambdas.clone_database import handler
from pipeline.clone.rules import load_rule_folder
print(json.dumps(sorted(load_rule_folder(os.environ["KPI_CLONE_RULES"]))))
"""
    done = run_in_lambda(lambda_python, unpacked["exporter"], runtime, code, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == sorted(load_rule_folder(ROOT / "masking"))

    # the `fake` rules' Faker, with only the locales the package keeps, draws what the development one does
    from pipeline.clone.fakes import fake

    kinds = [
        ("name", "ja_JP"),
        ("kana_name", "ja_JP"),
        ("address", "ja_JP"),
        ("company", "en_US"),
        ("postcode", "en_US"),
    ]
    code = f"""
import json
from pipeline.clone.fakes import fake
print(json.dumps([fake(kind, locale, "ab" * 32, suffix=8) for kind, locale in {kinds!r}], ensure_ascii=False))
"""
    done = run_in_lambda(lambda_python, unpacked["exporter"], runtime, code, env=env)
    assert done.returncode == 0, done.stderr
    drawn = [fake(kind, locale, "ab" * 32, suffix=8) for kind, locale in kinds]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == drawn


def invoke(python: str, task: Path, runtime: Path, function: str, event: dict[str, Any], env: Mapping[str, str]) -> Any:
    """What Lambda does with the handler, less the sandbox: import it, call it with the event, JSON back."""
    code = f"""
import json
from {FUNCTIONS[function].module} import handler
print(json.dumps(handler(json.loads({json.dumps(event)!r}))))
"""
    done = run_in_lambda(python, task, runtime, code, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
