"""The Lambda deployment packages: ``build/lambda/exporter-<arch>.zip``, ``loader-<arch>.zip`` and ``ops-<arch>.zip``.

``python -m infra.package [--arch x86_64|arm64] [--python 3.12] [--out build/lambda] [--compile]
[exporter|loader|ops]``

For each package: ``pip install --target`` of its runtime dependencies as binary wheels for Lambda's platform
(``--platform manylinux…_<arch> --implementation cp --python-version 3.12 --only-binary=:all:``), with the
versions of pyproject.toml; then files no Lambda ever reads are stripped (C/Cython sources and headers, test
suites, ``__pycache__``, console scripts, ``RECORD``); then our ``pipeline/`` package and the KPI files of
``queries/`` are added. The exporter zip serves the exporter and the clone-database Lambda
(``pipeline.lambdas.clone_database``, with the masking rule files of ``masking/``); the loader zip serves the
loader and the backfill planner (``pipeline.lambdas.planner``); the ops zip serves the suspend Lambda
(``pipeline.lambdas.suspend``, with ``kpi.toml`` for its ``[suspend]`` table) and the clone Lambda
(``pipeline.lambdas.clone``) — infra/template.yaml deploys each from its zip. What each holds, and why, is in
:data:`EXPORTER`, :data:`LOADER` and :data:`OPS`; every dependency of pyproject.toml must be placed in or out of
each.

The zip is deterministic: entries sorted, timestamps fixed at 1980-01-01, modes 0644/0755 — the same inputs
give the same bytes, so the same ``CodeSha256``. ``--compile`` adds ``.pyc`` files written by a local CPython of
Lambda's version (reproducibly: unchecked-hash, one process, a fixed hash seed). Lambda's /var/task is read-only,
so without them each cold start compiles every module it imports: measured by ``python -m bench.cold_import
--lambda``, about 0.5 s more for the exporter and 0.8 s for the loader's first call, for 7 and 15 MB more.

It prints each package's unzipped and zipped size, and exits 1 naming the package and its biggest parts when
one exceeds its budget (the issue's: exporter ≤ 200 MB, loader ≤ 80 MB unzipped; ours: ops ≤ 30 MB; Lambda's own
hard limit is 250 MB), or holds a module it must not. Sizes are MiB (2**20 bytes), as Lambda counts its limit.

Incremental: the installed and stripped dependencies, zipped once, are cached in ``<out>/.cache`` under a hash
of everything that decides them (requirements, platform tags, Python version, bytecode, stripping rules). A
later run copies that zip and appends our own files (about a second), and when ours did not change either it
only checks the zip. Version ranges of pyproject.toml (``pyarrow>=20``) are resolved on the first build of a
requirement set and kept until it changes; ``--refresh`` resolves them again.

Network: pip talks to its configured index (PyPI) and nothing else; nothing here opens a connection itself.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from infra import native

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
DEFAULT_OUT = ROOT / "build" / "lambda"
DEFAULT_PYTHON = "3.12"
CONFIG_FILE = "kpi.toml"  # what pipeline.settings reads from the working directory
MASKING = "masking"  # the clone's rule files, one per database (KPI_CLONE_RULES, relative to /var/task)
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name → the wheel tags' name
MIB = 1024 * 1024
LAMBDA_LIMIT_MIB = 250  # unzipped, function code and layers together
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no build's clock leaks into its bytes
# Bump when the stripping rules or the cache layout change: every cached dependency set is rebuilt.
CACHE_VERSION = 2


# ------------------------------------------------------------------------------------------------ the functions


@dataclass(frozen=True)
class Function:
    """One Lambda package: its handler, which of pyproject.toml's dependencies it holds and why (``include``),
    which it does not and why (``exclude``), its budget, and which top-level modules must never be in it."""

    name: str
    handler: str
    budget_mib: int
    include: Mapping[str, str]  # pyproject dependency (as there, with extras if any) → why it is in
    exclude: Mapping[str, str]  # pyproject dependency → why it is out
    queries: bool = False  # bundle queries/ (KPI_QUERIES=queries, relative to /var/task)
    masking: bool = False  # bundle masking/, the clone's rule files (KPI_CLONE_RULES=masking, relative to /var/task)
    config: bool = False  # bundle kpi.toml at the zip's root (/var/task, Lambda's working directory)
    native: bool = False  # bundle the C reader of pipeline/sources/mysql_wire.c, compiled for the zip's arch
    absent: tuple[str, ...] = ()  # top-level modules the package must not hold (checked after every build)
    # Modules the handler imports only once called (lazily, inside functions): the test imports them as well.
    runtime_modules: tuple[str, ...] = ()
    # Other functions deployed from the same zip (infra/template.yaml), whose needs the package covers as well.
    other_handlers: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def modules(self) -> tuple[str, ...]:
        """Every handler's module: what must import from the package."""
        return tuple(h.rsplit(".", 1)[0] for h in (self.handler, *self.other_handlers))


# What every package leaves to the Lambda Python runtime, which ships boto3 and botocore (with s3transfer,
# jmespath, python-dateutil, urllib3, six): pipeline.stores.s3, pipeline.secrets and RDS IAM tokens import
# boto3 only inside the functions that need it.
IN_RUNTIME = "in the Lambda Python runtime already (boto3, botocore); imported lazily by the S3 store and secrets"
CLI_ONLY = "the `kpi` command line only (pipeline.cli); no handler imports it"
DUCKDB = "the local embedded default only (source and warehouse); the Lambdas talk to MySQL, S3 and BigQuery"
HOLIDAYS = "the suspend calendar (ops package) only; anomaly scoring reads its table (pipeline.core.jp_holiday_table)"

# The exporter's zip also serves the clone-database Lambda (pipeline.lambdas.clone_database, in the VPC as the
# exporter is): it masks the clone's temporary cluster over pymysql, with the rule files of masking/ (PyYAML,
# through pipeline.core.header's parser), and health-checks the staging cluster. Nothing it needs is missing here.
EXPORTER = Function(
    name="exporter",
    handler="pipeline.lambdas.exporter.handler",
    budget_mib=200,
    include={
        "sqlglot": "the SQL gate and rendering of KPI files (pipeline.core.sqlgate, pipeline.core.render)",
        "pyyaml": "KPI file headers (pipeline.core.header); the clone's masking rule files (pipeline.clone.rules)",
        "cronsim": "`schedule:` of KPI headers (pipeline.core.header_rules)",
        "tzdata": "IANA zones for zoneinfo: Lambda's Amazon Linux 2023 image has no /usr/share/zoneinfo",
        # The `rsa` extra is cryptography: pymysql needs it for caching_sha2_password / sha256_password over a
        # connection without TLS (MySQL 8.4's default plugin); about 13 MB, which the budget allows.
        "pymysql[rsa]": "the MySQL wire protocol (pipeline.sources.mysql, mysql_wire; the clone's masking, "
        "pipeline.clone.worker); pinned, we use its internals",
        "pyarrow": "Arrow batches and Parquet/CSV files; without NumPy (pyarrow ≥ 16 does not require it)",
        # Only its en and ja_JP data are kept (FAKER_LOCALES): the other locales are most of its size.
        "faker": "the clone's `fake` rules (pipeline.clone.fakes), for the clone-database Lambda; imported lazily",
    },
    exclude={
        "boto3": IN_RUNTIME,
        "click": CLI_ONLY,
        "rich": CLI_ONLY,
        "duckdb": DUCKDB,
        "google-cloud-bigquery": "the loader's warehouse; the exporter writes to S3 only",
        "holidays": HOLIDAYS,
    },
    queries=True,
    masking=True,  # the clone-database Lambda's rule files (KPI_CLONE_RULES=masking)
    # The exporter's C reader (infra/native.py, zig cc for the arch): about 3× less CPU per row than the
    # pure-Python reader, which stays in the package as the fallback; 16 KB.
    native=True,
    # pandas (a bench extra) with pyarrow exceeds 250 MB; NumPy alone would add ~40 MB and ~50 MB of RSS.
    absent=("boto3", "botocore", "pandas", "numpy", "duckdb", "google", "click", "rich"),
    other_handlers=("pipeline.lambdas.clone_database.handler",),
    runtime_modules=(
        "pipeline.sources.mysql",
        "pipeline.sources.mysql_wire",
        "pipeline.stores.s3",
        "pipeline.secrets",
        "pipeline.catalog",
        "pipeline.core.header",
        "pipeline.core.header_rules",
        "pipeline.core.sqlgate",  # when the one KPI file is parsed (pipeline.catalog.load_one)
        "pipeline.export.files",
        "pyarrow.parquet",
        "pyarrow.csv",
        "pyarrow.compute",
    ),
)

LOADER = Function(
    name="loader",
    handler="pipeline.lambdas.loader.handler",
    budget_mib=80,
    include={
        # Pulls google-auth (ADC, Workload Identity Federation, service-account keys: cryptography), google-api-core
        # (and with it grpcio, which BigQuery's REST client does not use: ~19 MB that works without), requests.
        "google-cloud-bigquery": "the BigQuery warehouse (pipeline.warehouses.bigquery): load jobs, the audit table",
        "sqlglot": "the SQL gate of KPI files, for the backfill planner (pipeline.catalog → pipeline.core.sqlgate, "
        "imported when a file is parsed)",
        "tzdata": "IANA zones for zoneinfo (partition bounds in the KPI's timezone); the image has none",
        # The loader itself reads manifests only; the backfill planner, deployed from this zip, reads KPI files.
        "pyyaml": "KPI file headers, for the backfill planner (pipeline.lambdas.planner → pipeline.catalog)",
        "cronsim": "`schedule:` of KPI headers, for the backfill planner",
    },
    exclude={
        "pyarrow": "the loader uploads files as they are and counts Parquet rows from the footer itself "
        "(pipeline.core.rowcount); pyarrow alone would be over the 80 MB budget",
        "pymysql": "neither the loader nor the planner talks to MySQL (they run outside the VPC)",
        "boto3": IN_RUNTIME,
        "click": CLI_ONLY,
        "rich": CLI_ONLY,
        "duckdb": DUCKDB,
        "faker": "the clone's realistic fakes; only the clone-database Lambda (exporter zip) masks",
        "holidays": "anomaly scoring reads Japan's holidays from pipeline/core/jp_holiday_table.py, generated from "
        "the package (infra/jp_holidays.py): importing it cost a cold start ~0.1 s",
    },
    queries=True,  # for the planner and the freshness Lambda; the loader reads them after a failed load (the owner)
    absent=("boto3", "botocore", "pyarrow", "pandas", "numpy", "duckdb", "pymysql", "click", "rich", "holidays"),
    other_handlers=("pipeline.lambdas.planner.handler", "pipeline.lambdas.freshness.handler"),
    runtime_modules=(
        "pipeline.warehouses.bigquery",
        "pipeline.stores.s3",
        "pipeline.secrets",
        "pipeline.flows.alerts",  # a load that failed for good alerts its owner (pipeline.lambdas.loader)
        "pipeline.core.failed_steps",  # the state machines' owner alerts (pipeline.lambdas.freshness)
        "pipeline.notify.slack",
        "pipeline.notify.sns",
        "google.auth.credentials",
        "google.oauth2.service_account",
        "google.api_core.client_options",
        "pipeline.catalog",
        "pipeline.core.header",
        "pipeline.core.header_rules",
        "pipeline.core.sqlgate",  # when the planner parses a KPI file (a cached KPI needs no sqlglot)
        "pipeline.core.jp_holiday_table",  # when a load's scoring classes its history's days
    ),
)

# The operations Lambdas, outside the VPC, talking to AWS APIs only (boto3, from the runtime), so the zip holds no
# driver, no SQL and no Arrow: the suspend Lambda stops and starts the opted-in EC2, RDS/Aurora, Auto Scaling and
# ECS resources out of office hours (pipeline.lambdas.suspend, driven by the suspend and resume state machines);
# the clone Lambda (pipeline.lambdas.clone, driven by the clone state machine) restores, snapshots, shares and
# deletes clusters and switches a DNS record — its database work is the clone-database Lambda's (exporter zip).
OPS = Function(
    name="ops",
    handler="pipeline.lambdas.suspend.handler",
    budget_mib=30,
    include={
        # Pulls python-dateutil (and six), which the runtime has too; the package's own copies come first.
        "holidays": "public holidays of the suspend calendar (pipeline.suspend): no stop/start on a holiday",
        "tzdata": "IANA zones for zoneinfo (the suspend window's timezone); the image has none",
        "cronsim": "suspend_at and resume_at of the [suspend] table: the suspend window (pipeline.suspend)",
    },
    exclude={
        "pyyaml": "KPI file headers and masking rule files; neither Lambda reads one (their tables are TOML: tomllib)",
        "sqlglot": "the SQL gate of KPI files; neither Lambda reads one",
        "pymysql": "AWS APIs only, never a database's wire protocol (the clone's is the clone-database Lambda's)",
        "pyarrow": "no data files: the Lambdas stop, start, restore and delete resources",
        "google-cloud-bigquery": "the loader's warehouse; nothing of BigQuery is suspended or cloned",
        "boto3": IN_RUNTIME,
        "click": CLI_ONLY,
        "rich": CLI_ONLY,
        "duckdb": DUCKDB,
        "faker": "the clone's realistic fakes; only the clone-database Lambda (exporter zip) masks",
    },
    config=True,  # kpi.toml's [suspend] (and [clone]) table, at /var/task/kpi.toml (the working directory)
    other_handlers=("pipeline.lambdas.clone.handler",),
    absent=(
        "boto3",
        "botocore",
        "pandas",
        "numpy",
        "duckdb",
        "google",
        "click",
        "rich",
        "pyarrow",
        "pymysql",
        "sqlglot",
        "yaml",
    ),
)

FUNCTIONS = {f.name: f for f in (EXPORTER, LOADER, OPS)}

# Files no Lambda reads, stripped from the installed dependencies (our own code is copied as it is). Bytecode
# pip or a wheel brought is stripped too: --compile writes it anew, for Lambda's Python, deterministically.
STRIP_DIRS = {"__pycache__", "tests", "include", "src"}  # src/include: pyarrow's C++ sources and headers
STRIP_DIRS_ONLY_IN = {"include": "pyarrow", "src": "pyarrow"}  # elsewhere a folder named so may be code
STRIP_SUFFIXES = (".pyc", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp", ".c", ".cmake")
STRIP_TOP = {"bin"}  # console scripts, with a shebang of the building machine's Python
# Faker's providers hold one folder per locale; the clone's fakes are ja_JP and en_US (which build on en).
FAKER_LOCALES = {"en", "en_US", "ja_JP", "en_GB", "la"}  # en_GB, la: the bank and lorem providers fall back to them


# ------------------------------------------------------------------------------------------------ requirements


def normalize(name: str) -> str:
    """PEP 503: ``PyYAML`` and ``pyyaml``, ``google_cloud_bigquery`` and ``google-cloud-bigquery`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*([^;]*?)\s*(?:;(.*))?$")


def project_dependencies(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """``[project] dependencies`` of pyproject.toml: normalized name → its version specifier (``==1.2.4``)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for line in data["project"]["dependencies"]:
        match = _REQUIREMENT.match(line)
        if not match:
            raise SystemExit(f"{pyproject}: cannot read the dependency {line!r}")
        name, _extras, spec, marker = match.groups()
        if marker:
            raise SystemExit(f"{pyproject}: {line!r} has an environment marker; decide it in infra/package.py")
        found[normalize(name)] = spec.replace(" ", "")
    return found


def requirements(function: Function, dependencies: Mapping[str, str]) -> list[str]:
    """The pip requirements of a function, with pyproject's versions; SystemExit when the two lists disagree.

    Every dependency of pyproject.toml must be either in or out of every function, so that adding one is a
    decision about the Lambda packages too, not a silent omission."""
    named = {normalize(re.split(r"[\[<>=!~ ]", r, maxsplit=1)[0]): r for r in function.include}
    out = {normalize(n) for n in function.exclude}
    unknown = sorted((set(named) | out) - set(dependencies))
    unplaced = sorted(set(dependencies) - set(named) - out)
    both = sorted(set(named) & out)
    if unknown or unplaced or both:
        problems = [
            *(f"{n} is not a dependency in pyproject.toml" for n in unknown),
            *(f"{n} (pyproject.toml) is neither in nor out" for n in unplaced),
            *(f"{n} is both in and out" for n in both),
        ]
        raise SystemExit(f"infra/package.py, the {function.name} function: " + "; ".join(problems))
    return [f"{requirement}{dependencies[name]}" for name, requirement in sorted(named.items())]


def platforms(arch: str, python: str) -> list[str]:
    """Wheel platform tags Lambda's image runs: Python 3.12 and later are on Amazon Linux 2023 (glibc 2.34), older
    ones on Amazon Linux 2 (glibc 2.26). pip expands manylinux2014 to manylinux2010/1 itself, not the
    ``manylinux_2_X`` tags in between, so they are listed one by one."""
    machine = ARCHES[arch]
    glibc = 34 if tuple(int(p) for p in python.split(".")) >= (3, 12) else 26
    return [f"manylinux_2_{minor}_{machine}" for minor in range(glibc, 16, -1)] + [f"manylinux2014_{machine}"]


# ------------------------------------------------------------------------------------------------------ building


@dataclass(frozen=True)
class Options:
    arch: str = "x86_64"
    python: str = DEFAULT_PYTHON
    out: Path = DEFAULT_OUT
    refresh: bool = False
    quiet: bool = False
    compiler: str | None = None  # a CPython of version `python` that writes the .pyc files (--compile)
    compiler_version: str | None = None  # its full version (3.12.1), part of the cache key


@dataclass
class Built:
    """One function's zip and what it measured."""

    function: Function
    arch: str
    path: Path
    unzipped: int  # bytes, the sum of the entries' sizes
    zipped: int
    versions: dict[str, str]  # distribution → version, as resolved
    top: list[tuple[str, int]] = field(default_factory=list)  # top-level entries by unzipped size, biggest first
    seconds: float = 0.0
    cached: str = ""  # what came from the cache: "", "dependencies", "everything"

    @property
    def over_budget(self) -> bool:
        return self.unzipped > self.function.budget_mib * MIB

    @property
    def sha256(self) -> str:
        """Lambda's ``CodeSha256``: base64 of the zip's SHA-256."""
        return base64.b64encode(file_sha256(self.path)).decode()


def say(options: Options, text: str) -> None:
    if not options.quiet:
        print(text, file=sys.stderr, flush=True)


def file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def dependencies_key(reqs: Sequence[str], options: Options) -> str:
    """What decides a set of installed dependencies, hashed: a change to any of it installs them again."""
    data = {
        "requirements": list(reqs),
        "platforms": platforms(options.arch, options.python),
        "python": options.python,
        "compiled_by": options.compiler_version,
        "strip": [
            sorted(STRIP_DIRS),
            sorted(STRIP_DIRS_ONLY_IN.items()),
            list(STRIP_SUFFIXES),
            sorted(STRIP_TOP),
            sorted(FAKER_LOCALES),
        ],
        "v": CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def install(reqs: Sequence[str], target: Path, arch: str, python: str) -> None:
    """``pip install --target`` of binary wheels for Lambda's platform (never a source build: it would compile
    for this machine)."""
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"]
    argv += ["--target", str(target), "--no-compile", "--only-binary=:all:", "--implementation", "cp"]
    argv += ["--python-version", python]
    for tag in platforms(arch, python):
        argv += ["--platform", tag]
    done = subprocess.run([*argv, *reqs], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pip could not install {' '.join(reqs)} for {arch}, Python {python}:\n{done.stderr}")


def strip(site: Path) -> int:
    """Delete what no Lambda reads; returns the bytes saved."""
    saved = 0

    def gone(path: Path) -> None:
        nonlocal saved
        if path.is_dir():
            saved += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path)
        else:
            saved += path.stat().st_size
            path.unlink()

    for name in STRIP_TOP:
        if (site / name).exists():
            gone(site / name)
    for folder, dirs, files in os.walk(site, topdown=True):
        here = Path(folder)
        top = here.relative_to(site).parts[:1]
        for name in list(dirs):
            if name in STRIP_DIRS and (name not in STRIP_DIRS_ONLY_IN or top == (STRIP_DIRS_ONLY_IN[name],)):
                gone(here / name)
                dirs.remove(name)
        if here.parent == site / "faker" / "providers":  # here is faker/providers/<provider>: its folders are locales
            for name in [d for d in dirs if d != "__pycache__" and d not in FAKER_LOCALES]:
                gone(here / name)
                dirs.remove(name)
        for name in files:
            if name.endswith(STRIP_SUFFIXES) or (name == "RECORD" and here.name.endswith(".dist-info")):
                gone(here / name)  # RECORD lists hashes of files just deleted: only pip uninstall reads it
    return saved


def compile_tree(tree: Path, options: Options) -> None:
    """``.pyc`` files next to the sources, for Lambda's Python: /var/task is read-only, so without them every cold
    start compiles every module it imports (a second or more here). ``unchecked-hash`` pycs are never compared
    with their source (the zip cannot change under them) and hold no timestamp; the file names in them are
    /var/task's, as in Lambda's tracebacks. One process and a fixed hash seed: the bytes are reproducible
    (parallel workers and random set ordering are not)."""
    assert options.compiler is not None
    argv = [options.compiler, "-s", "-S", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
    argv += ["-s", str(tree), "-p", "/var/task", str(tree)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    done = subprocess.run(argv, env={**env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{options.compiler} could not compile {tree}:\n{done.stdout}{done.stderr}")


def resolved_versions(site: Path) -> dict[str, str]:
    """Distribution → version, from the ``*.dist-info`` folder names pip wrote."""
    found = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        found[normalize(name)] = version
    return dict(sorted(found.items()))


def tree_entries(root: Path, prefix: str = "", pattern: str = "*", *, bytecode: bool = False) -> list[tuple[str, Path]]:
    """(name in the zip, file) of every file under root; bytecode only when asked (what compile_tree wrote)."""
    entries = []
    for path in root.rglob(pattern):
        relative = path.relative_to(root)
        if path.is_file() and (bytecode or ("__pycache__" not in relative.parts and path.suffix != ".pyc")):
            entries.append((prefix + relative.as_posix(), path))
    return entries


def write_entries(archive: zipfile.ZipFile, entries: Iterable[tuple[str, Path]]) -> None:
    """Entries sorted by name, each with the fixed date and a mode Lambda's sandbox user can read."""
    for name, path in sorted(entries):
        mode = path.stat().st_mode
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.create_system = 3  # Unix, so that the mode below counts
        info.external_attr = (stat.S_IFREG | (0o755 if mode & 0o111 else 0o644)) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = path.stat().st_size  # decides zip64 up front
        with path.open("rb") as source, archive.open(info, "w") as target:
            shutil.copyfileobj(source, target, 1 << 20)


def own_sources(function: Function) -> list[tuple[str, Path]]:
    """Our code: the whole ``pipeline`` package (a megabyte), the KPI files (``*.sql``, as the catalog reads
    them) of ``queries/`` for a package whose functions read them, the masking rule files (``*.yaml``, as
    :func:`pipeline.clone.rules.load_rule_folder` reads them) of ``masking/`` for the one that masks, and
    ``kpi.toml`` for one that reads its configuration from there (the ops package: the ``[suspend]`` table)."""
    entries = [(name, path) for name, path in tree_entries(ROOT / "pipeline", "pipeline/") if not _native_file(path)]
    if function.queries:
        entries += tree_entries(ROOT / "queries", "queries/", "*.sql")
    if function.masking:
        rules = tree_entries(ROOT / MASKING, f"{MASKING}/", "*.yaml")
        if not rules:
            raise SystemExit(f"the {function.name} package bundles the masking rules, and {ROOT / MASKING} has none")
        entries += rules
    if function.config:
        config = ROOT / CONFIG_FILE
        if not config.is_file():
            raise SystemExit(f"the {function.name} package bundles {CONFIG_FILE}, and there is none at {ROOT}")
        entries.append((CONFIG_FILE, config))
    return entries


def _native_file(path: Path) -> bool:
    """The C reader's source and this machine's builds of it: a package holds its own arch's build only."""
    return path.name == native.SOURCE.name or re.fullmatch(native.LIBRARY.format(machine=r"\w+"), path.name) is not None


def native_entries(function: Function, options: Options) -> list[tuple[str, Path]]:
    """The C reader compiled for the package's architecture (cached in ``<out>/.cache/native-<arch>``)."""
    if not function.native:
        return []
    machine = ARCHES[options.arch]
    try:
        library = native.build(machine, options.out / ".cache" / f"native-{machine}", portable=True)
    except native.BuildError as error:
        raise SystemExit(f"the {function.name} package holds the C reader: {error}") from None
    return [(f"pipeline/sources/{library.name}", library)]


def entries_hash(entries: Sequence[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(entries):
        executable = path.stat().st_mode & 0o111 != 0
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0" + bytes([executable]))
    return digest.hexdigest()


def own_entries(function: Function, options: Options, sources: Sequence[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Our files as they go into the zip: as they are, or copied and compiled (--compile)."""
    if options.compiler is None:
        return list(sources)
    staging = options.out / ".cache" / f"{function.name}-{options.arch}-own"
    shutil.rmtree(staging, ignore_errors=True)
    for name, path in sources:
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, staging / name)
    compile_tree(staging, options)
    return tree_entries(staging, bytecode=True)


def build_dependencies(function: Function, reqs: Sequence[str], options: Options) -> tuple[Path, dict[str, str], bool]:
    """The zip of a function's stripped dependencies, their versions, and whether they came from the cache."""
    key = dependencies_key(reqs, options)
    label = f"{function.name}-{options.arch}-py{options.python}{'-pyc' if options.compiler else ''}"
    cache = options.out / ".cache"
    folder = cache / f"{label}-{key}"
    if (folder / "stamp.json").is_file() and not options.refresh:
        return folder / "dependencies.zip", json.loads((folder / "stamp.json").read_text())["versions"], True
    say(options, f"{function.name} ({options.arch}): pip install {' '.join(reqs)} …")
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{label}-*"):  # earlier requirement sets of this function, arch and bytecode choice
        if old.is_dir() and re.fullmatch(rf"{re.escape(label)}-[0-9a-f]{{16}}", old.name):
            shutil.rmtree(old, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=cache))
    try:
        site = work / "site"
        install(reqs, site, options.arch, options.python)
        saved = strip(site)
        if options.compiler:
            compile_tree(site, options)
        versions = resolved_versions(site)
        with zipfile.ZipFile(work / "dependencies.zip", "w") as archive:
            write_entries(archive, tree_entries(site, bytecode=True))
        shutil.rmtree(site)
        record = {
            "key": key,
            "requirements": list(reqs),
            "platforms": platforms(options.arch, options.python),
            "python": options.python,
            "compiled_by": options.compiler_version,
            "versions": versions,
            "stripped_bytes": saved,
        }
        (work / "stamp.json").write_text(json.dumps(record, indent=2) + "\n")
        try:
            work.rename(folder)  # the stamp appears with its zip, never before
        except OSError:
            if not (folder / "stamp.json").is_file():
                raise
            # Another build of the same key (same requirements, platform, Python, bytecode) finished first: its
            # folder is what this one would have been. Seen once in `make test`: "Directory not empty".
            shutil.rmtree(work, ignore_errors=True)
            versions = json.loads((folder / "stamp.json").read_text())["versions"]
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(options, f"{function.name} ({options.arch}): stripped {saved / MIB:.1f} MB of sources, headers and tests")
    return folder / "dependencies.zip", versions, False


def build(function: Function, options: Options, dependencies: Mapping[str, str]) -> Built:
    """The function's zip: the cached dependencies' zip, copied, then our files appended (sorted too: the same
    inputs still give the same bytes). Nothing is written when neither changed."""
    started = time.perf_counter()
    reqs = requirements(function, dependencies)
    deps_zip, versions, from_cache = build_dependencies(function, reqs, options)
    sources = own_sources(function) + native_entries(function, options)
    target = options.out / f"{function.name}-{options.arch}.zip"
    stamp_path = options.out / ".cache" / f"{function.name}-{options.arch}.json"
    stamp = {
        "dependencies": dependencies_key(reqs, options),
        "code": entries_hash(sources),
        "compiled_by": options.compiler_version,
    }
    previous = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
    unchanged = from_cache and target.is_file() and previous.get("stamp") == stamp
    if unchanged and previous.get("sha256") == file_sha256(target).hex():
        cached = "everything"
    else:
        cached = "dependencies" if from_cache else ""
        ours = own_entries(function, options, sources)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(deps_zip, partial)
        with zipfile.ZipFile(partial, "a") as archive:
            clash = {name for name, _ in ours} & set(archive.namelist())
            if clash:
                raise SystemExit(f"a dependency of the {function.name} holds files of ours: {sorted(clash)[:5]}")
            write_entries(archive, ours)
        partial.replace(target)
        stamp_path.write_text(json.dumps({"stamp": stamp, "sha256": file_sha256(target).hex()}) + "\n")
    built = measure(function, options.arch, target, versions)
    built.cached, built.seconds = cached, time.perf_counter() - started
    return built


def measure(function: Function, arch: str, path: Path, versions: dict[str, str]) -> Built:
    """Unzipped size (the sum of the entries, as Lambda counts it) and the biggest top-level entries, each
    package's metadata (``*.dist-info``) counted with it."""
    sizes: dict[str, int] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename.split("/", 1)[0]
            if name.endswith(".dist-info"):
                name = normalize(name.removesuffix(".dist-info").rpartition("-")[0]) + " (metadata)"
            sizes[name] = sizes.get(name, 0) + info.file_size
    biggest = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
    return Built(function, arch, path, sum(sizes.values()), path.stat().st_size, versions, biggest)


def build_all(options: Options, names: Sequence[str] = tuple(FUNCTIONS)) -> list[Built]:
    dependencies = project_dependencies()
    options.out.mkdir(parents=True, exist_ok=True)
    return [build(FUNCTIONS[name], options, dependencies) for name in names]


# ------------------------------------------------------------------ what runs the packages here (tests, bench)


def lambda_runtime(options: Options) -> Path:
    """A folder with what Lambda's Python runtime adds to a package (boto3, botocore and their dependencies),
    for running a package on this machine as Lambda would; pure Python, installed once into the cache, and
    compiled when ``options.compiler`` is set (Lambda's runtime carries its .pyc files)."""
    spec = project_dependencies()["boto3"]
    key = dependencies_key([f"boto3{spec}"], options)
    compiled = "-pyc" if options.compiler else ""
    folder = options.out / ".cache" / f"runtime-{options.arch}-py{options.python}{compiled}-{key}"
    if not (folder / "stamp.json").is_file() or options.refresh:
        say(options, f"Lambda's runtime ({options.arch}): pip install boto3{spec} …")
        shutil.rmtree(folder, ignore_errors=True)
        install([f"boto3{spec}"], folder / "site", options.arch, options.python)
        if options.compiler:
            compile_tree(folder / "site", options)
        (folder / "stamp.json").write_text(json.dumps({"versions": resolved_versions(folder / "site")}) + "\n")
    return folder / "site"


def python_version(executable: str) -> str | None:
    """``3.12.1`` for a CPython, None for anything else or nothing runnable."""
    probe = "import sys, platform; print(platform.python_implementation(), platform.python_version())"
    try:
        done = subprocess.run([executable, "-I", "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split()
    return words[1] if done.returncode == 0 and len(words) == 2 and words[0] == "CPython" else None


def find_python(version: str = DEFAULT_PYTHON) -> str | None:
    """A CPython of Lambda's version on this machine, to run or compile for the packages: ``KPI_LAMBDA_PYTHON``,
    ``python3.12`` on PATH, then pyenv's and uv's installations, newest first. None when there is none."""
    candidates = [os.environ.get("KPI_LAMBDA_PYTHON"), shutil.which(f"python{version}")]
    installed = [
        *(Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions").glob(
            f"{version}.*/bin/python{version}"
        ),
        *(Path.home() / ".local" / "share" / "uv" / "python").glob(f"cpython-{version}.*/bin/python{version}"),
    ]

    def micro(path: Path) -> int:
        found = re.search(rf"{re.escape(version)}\.(\d+)", str(path))
        return int(found.group(1)) if found else -1

    candidates += [str(p) for p in sorted(installed, key=micro, reverse=True)]
    for candidate in candidates:
        found = python_version(candidate) if candidate else None
        if found and found.rsplit(".", 1)[0] == version:
            return candidate
    return None


def machine_arch() -> str | None:
    """This machine's Lambda architecture, if it is one of them (the packages' binaries run only there)."""
    machine = platform.machine().lower()
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)


# ------------------------------------------------------------------------------------------------------- report


def mb(size: int) -> str:
    return f"{size / MIB:,.1f}"


def table(results: Sequence[Built]) -> str:
    lines = [
        "| function | arch | unzipped MB | zipped MB | budget MB | biggest (unzipped MB) |",
        "|---|---|--:|--:|--:|---|",
    ]
    for b in results:
        verdict = " **over**" if b.over_budget else ""
        biggest = ", ".join(f"{name} {mb(size)}" for name, size in b.top[:3])
        lines.append(
            f"| {b.function.name} | {b.arch} | {mb(b.unzipped)}{verdict} | {mb(b.zipped)} | "
            f"{b.function.budget_mib} | {biggest} |"
        )
    return "\n".join(lines)


def over_budget_message(b: Built) -> str:
    biggest = ", ".join(f"{name} {mb(size)} MB" for name, size in b.top[:5])
    return (
        f"the {b.function.name} package ({b.arch}) is {mb(b.unzipped)} MB unzipped, over its budget of "
        f"{b.function.budget_mib} MB (Lambda's limit: {LAMBDA_LIMIT_MIB} MB). Biggest: {biggest}. "
        f"See {b.path}; what each function holds and why is in infra/package.py."
    )


def absent_violations(b: Built) -> list[str]:
    """Top-level modules the package must not hold but does (a dependency started pulling one in)."""
    with zipfile.ZipFile(b.path) as archive:
        tops = {name.split("/", 1)[0].removesuffix(".py") for name in archive.namelist()}
    return sorted(set(b.function.absent) & tops)


def parse_args(argv: Sequence[str]) -> tuple[Options, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m infra.package",
        description="Build the Lambda zips (exporter, loader, ops), and check them against their budgets.",
        epilog="The first build downloads about 100 MB from PyPI; later ones take seconds (cache in OUT/.cache).",
    )
    parser.add_argument("functions", nargs="*", metavar="FUNCTION", help=f"{', '.join(FUNCTIONS)} (default: all)")
    parser.add_argument("--arch", choices=sorted(ARCHES), default="x86_64", help="Lambda architecture (x86_64)")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help=f"Lambda's Python version ({DEFAULT_PYTHON})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the zips go (build/lambda)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="ship .pyc files, written by a local CPython of --python's version (KPI_LAMBDA_PYTHON, PATH, pyenv, "
        "uv): about a second less per cold start, ~10 MB more",
    )
    parser.add_argument("--refresh", action="store_true", help="install the dependencies again: newest in range")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"3\.\d{1,2}", args.python):
        parser.error(f"--python takes a version like 3.12, not {args.python!r}")
    unknown = sorted(set(args.functions) - set(FUNCTIONS))
    if unknown:
        parser.error(f"no function {', '.join(unknown)}: choose from {', '.join(FUNCTIONS)}")
    options = Options(args.arch, args.python, args.out.resolve(), refresh=args.refresh)
    if args.compile:
        compiler = find_python(args.python)
        if compiler is None:
            parser.error(
                f"--compile needs CPython {args.python} on this machine (none on PATH, in pyenv or uv); "
                f"install one (`uv python install {args.python}`) or set KPI_LAMBDA_PYTHON"
            )
        options = replace(options, compiler=compiler, compiler_version=python_version(compiler))
    return options, list(dict.fromkeys(args.functions)) or list(FUNCTIONS)


def main(argv: Sequence[str] | None = None) -> int:
    options, names = parse_args(sys.argv[1:] if argv is None else argv)
    results = build_all(options, names)
    print(table(results))
    print()
    compiled = f", .pyc by CPython {options.compiler_version}" if options.compiler else ", no .pyc"
    for b in results:
        how = {"": "built", "dependencies": "dependencies from the cache", "everything": "unchanged"}[b.cached]
        shown = b.path.relative_to(Path.cwd()) if b.path.is_relative_to(Path.cwd()) else b.path
        versions = ", ".join(f"{name} {version}" for name, version in b.versions.items())
        print(f"- {shown}: {how} in {b.seconds:.1f} s, CodeSha256 {b.sha256}")
        print(f"  Python {options.python}{compiled}: {versions}")
    failures = [over_budget_message(b) for b in results if b.over_budget]
    failures += [
        f"the {b.function.name} package ({b.arch}) holds {', '.join(found)}, which it must not (infra/package.py)"
        for b in results
        if (found := absent_violations(b))
    ]
    for failure in failures:
        print(f"\nerror: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
