"""The loader's peak memory and speed against the pandas script it replaces — ``python -m bench.load_bench``.

``python -m bench.load_bench`` (``--quick`` for a small run, ``--help`` for sizes) generates its own lake: a DuckDB
source file with an ``orders`` table of one UTC day, a row-level KPI file over it, and ``kpi export`` of that day
into a lake folder — a Parquet partition of 2.5M rows and one of 50M rows (the exporter splits at 256 MB): 53 MB
and 1.06 GB in four files on 2026-11-28, 33 MB and 667 MB in three with the exporter of 2026-12-07, so the large
one no longer reaches the target's 1 GB. The lakes are cached under ``.kpi/bench/load/`` (git-ignored), so only
the first run pays for them. Then, at both sizes, into a fresh warehouse each time:

* ``kpi load <manifest URL>`` into every warehouse target (today the DuckDB file of ``KPI_WAREHOUSE``);
* pandas: ``pd.read_parquet(files)`` then ``INSERT INTO t SELECT * FROM df`` through ``duckdb``, the script
  people write instead.

Each run is a fresh process measured by ``bench/_rss.py`` (wall time and its own peak RSS), and the warehouse's
rows are counted afterwards. It prints Markdown and says whether the loader's target is met: peak RSS flat and
at most 150 MB up to a 1 GB partition. It is a measurement, not a test: the exit code is 0 even when the target
is missed, and 1 only when a run failed or the warehouse lacks rows.

A warehouse target is one function taking the manifest URL (see :data:`WAREHOUSES`): a BigQuery emulator is
another such function and another row per size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from bench._harness import RowsRun, figures, finish, in_scratch, markdown_table, parse_rows, size_label, times
from bench._rss import Measured, measure

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".kpi" / "bench" / "load"  # .kpi/ is git-ignored

# The target of the loader's issue.
TARGET_PEAK_RSS_MIB = 150.0

KPI_NAME = "bench_orders"
DAY = "2024-03-01"
# Every column type the KPI files of the issue use most, 21 bytes a row in Parquet (zstd): 50M rows ≈ 1.06 GB.
KPI_FILE = f"""\
/*---
name: {KPI_NAME}
description: Benchmark orders, every row of one UTC day
grain: day
time_column: created_at
timezone: UTC
start: 2024-01-01
columns:
  id:         {{type: INT64, description: Order id}}
  user_id:    {{type: INT64, description: Buyer}}
  created_at: {{type: DATETIME, description: When the order was placed}}
  status:     {{type: STRING, description: Order status}}
  amount:     {{type: NUMERIC, description: Amount in JPY}}
  note:       {{type: STRING, description: "Free text, NULL in a third of the rows"}}
  is_paid:    {{type: BOOL, description: Whether the order is paid}}
---*/
SELECT id, user_id, created_at, status, amount, note, is_paid
FROM orders
WHERE created_at >= :start AND created_at < :end
"""
# Deterministic values from the row number, all on DAY: timestamps spread over the day by a multiplicative step
# (neighbouring ids far apart in time, as in a real table), users over 100k ids, notes of 15–52 characters and
# NULL in a third of the rows. DuckDB builds 50M rows in about 30 s. Bump GENERATOR when this changes, so that
# cached lakes are rebuilt.
SOURCE_SQL = f"""
CREATE TABLE orders AS
SELECT i AS id,
       (1 + (i * 7919) % 100000)::INTEGER AS user_id,
       TIMESTAMP '{DAY}' + to_microseconds((i * 104729) % 86400000000) AS created_at,
       (['paid', 'paid', 'refunded', 'cancelled'])[1 + i % 4] AS status,
       (((i * 7907) % 1000000) / 100)::DECIMAL(12, 2) AS amount,
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'order note #' || i || ' ' || repeat('x', (i % 32)::INTEGER) END AS note,
       i % 4 < 2 AS is_paid
FROM range(1, ? + 1) AS t(i)
"""
GENERATOR = 1
# The warehouse table as the DuckDB warehouse creates it from the manifest (BigQuery type → DuckDB type), so that
# the pandas script writes into the same column types.
DUCKDB_TABLE = (
    f"CREATE TABLE {KPI_NAME} (id BIGINT, user_id BIGINT, created_at TIMESTAMP, status VARCHAR, "
    "amount DECIMAL(38,9), note VARCHAR, is_paid BOOLEAN)"
)
KPI_LOAD = "**kpi load**"
PANDAS = "pandas `read_parquet` + `INSERT … SELECT * FROM df`"


# ----------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    """The sizes and switches of one benchmark run."""

    small_rows: int
    large_rows: int
    warehouses: tuple[str, ...]
    keep: bool
    regenerate: bool
    kpi: str | None = None  # the `kpi` executable measured; None: the one beside this Python

    @property
    def sizes(self) -> list[int]:
        return sorted({self.small_rows, self.large_rows})


def _rows(text: str) -> int:
    return parse_rows(text, "50000000, 50m, 2.5m")


def parse_args(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load_bench",
        description="Load memory and speed: kpi load against pandas read_parquet + DuckDB INSERT.",
        epilog=f"Lakes are generated once under {CACHE.relative_to(ROOT)}/ and reused; "
        "a full run takes about 70 s (the first one 2 minutes more, to build them).",
    )
    parser.add_argument("--small", type=_rows, default=None, help="rows of the small partition (2.5m ≈ 53 MB)")
    parser.add_argument("--large", type=_rows, default=None, help="rows of the large partition (50m ≈ 1.06 GB)")
    parser.add_argument("--quick", action="store_true", help="250k / 1m rows (5 MB / 21 MB): under a minute")
    parser.add_argument(
        "--warehouse",
        action="append",
        choices=sorted(WAREHOUSES),
        help="warehouse target to measure (repeatable; default every one)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder: warehouses and logs")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the cached lakes")
    parser.add_argument(
        "--kpi",
        default=None,
        help="the kpi executable to measure (default: this venv's); a venv with the runtime dependencies only "
        "(no pandas, no NumPy), as a loader Lambda holds, measures what production pays",
    )
    args = parser.parse_args(argv)
    defaults = (250_000, 1_000_000) if args.quick else (2_500_000, 50_000_000)
    return Config(
        small_rows=args.small or defaults[0],
        large_rows=args.large or defaults[1],
        warehouses=tuple(args.warehouse or WAREHOUSES),
        keep=args.keep,
        regenerate=args.regenerate,
        kpi=args.kpi,
    )


def loader_environment(kpi_command: str) -> str:
    """Which installation of the loader was measured. It matters: pyarrow imports NumPy whenever it is installed,
    and DuckDB's Python client imports pandas (and NumPy) at the first statement with parameters whenever pandas
    is installed — about 90 MB of peak RSS that the loader never uses."""
    python = Path(kpi_command).resolve().parent / "python"
    found = []
    for module, name in (("numpy", "NumPy"), ("pandas", "pandas")):
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, check=False)
        if probe.returncode == 0:
            found.append(name)
    what = "with " + " and ".join(found) if found else "without NumPy and pandas, as a Lambda package"
    where = "this virtual environment" if Path(kpi_command).parent == Path(sys.executable).parent else kpi_command
    return f"{where} ({what})"


# ------------------------------------------------------------------------------------------------------- lakes


@dataclass(frozen=True)
class Lake:
    """A committed partition of ``rows`` rows in a cached lake folder: its manifest is what a load gets."""

    rows: int
    manifest_url: str
    bytes: int
    files: int

    @property
    def label(self) -> str:
        return size_label(self.rows)

    @property
    def megabytes(self) -> float:
        return self.bytes / 1e6


def read_manifest(manifest_url: str) -> dict[str, Any]:
    """The manifest of a local lake, as JSON (a warehouse target needs the KPI, the rows and the files)."""
    data: dict[str, Any] = json.loads(Path(manifest_url).read_text(encoding="utf-8"))
    return data


def ensure_lake(kpi_command: str, rows: int, *, regenerate: bool) -> Lake:
    """Reuse the cached lake of this size when its record and every file are there; else build it.

    The record (``lake.json``) is written last, after ``kpi export`` committed the partition, so an interrupted
    build is rebuilt. The source file is removed once exported: only the lake is reused.
    """
    folder = CACHE / f"orders-{size_label(rows)}-g{GENERATOR}"
    record = folder / "lake.json"
    if record.exists() and not regenerate:
        lake = Lake(**json.loads(record.read_text(encoding="utf-8")))
        manifest = Path(lake.manifest_url)
        if manifest.exists() and all(
            (manifest.parents[3] / f["path"]).exists() for f in read_manifest(lake.manifest_url)["files"]
        ):
            return lake
    print(f"generating the lake of {rows:,} rows in {folder} …", flush=True)
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "queries").mkdir(parents=True)
    source = folder / "source.duckdb"
    with duckdb.connect(str(source)) as db:
        db.execute(SOURCE_SQL, [rows])
    print(f"  source: {time.perf_counter() - started:.1f} s", flush=True)
    (folder / "queries" / f"{KPI_NAME}.sql").write_text(KPI_FILE, encoding="utf-8")
    env = {
        **os.environ,
        "KPI_QUERIES": str(folder / "queries"),
        "KPI_SOURCE": f"duckdb:///{source}",
        "KPI_LAKE": str(folder / "lake"),
    }
    check = subprocess.run([kpi_command, "check"], capture_output=True, text=True, env=env, check=False)
    if check.returncode != 0:
        raise SystemExit(f"the benchmark's KPI file fails kpi check:\n{check.stdout}{check.stderr}")
    export = subprocess.run(
        [kpi_command, "export", KPI_NAME, "--date", DAY, "--json"], capture_output=True, text=True, env=env, check=False
    )
    if export.returncode != 0:
        raise SystemExit(f"kpi export of the benchmark's lake failed:\n{export.stdout}{export.stderr}")
    (committed,) = json.loads(export.stdout)
    manifests = sorted((folder / "lake").rglob(f"run={committed['run_id']}/_manifest.json"))
    if len(manifests) != 1 or committed["rows"] != rows:
        raise SystemExit(f"kpi export committed {committed['rows']:,} rows in {manifests}, expected {rows:,} in one")
    lake = Lake(rows, str(manifests[0]), committed["bytes"], committed["files"])
    source.unlink()
    record.write_text(json.dumps(lake.__dict__, indent=2) + "\n", encoding="utf-8")
    print(
        f"  exported {lake.megabytes:,.0f} MB in {lake.files} file(s); lake ready in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return lake


# ------------------------------------------------------------------------------------------------ contestants


@dataclass
class Result(RowsRun):
    """One measured load of one partition, and what the warehouse held afterwards."""

    contestant: str
    warehouse: str
    rows: int
    parquet_bytes: int
    measured: Measured | None = None
    rows_loaded: int | None = None  # counted in the warehouse after the run
    error: str | None = None
    skipped: str | None = None  # why it did not run (not an error)

    @property
    def lost_rows(self) -> bool:
        return self.ok and self.rows > 0 and self.rows_loaded != self.rows


class Bench:
    """Runs loads in fresh processes inside one scratch folder (warehouses and logs)."""

    def __init__(self, config: Config, scratch: Path) -> None:
        self.config = config
        self.scratch = scratch
        default = shutil.which("kpi", path=str(Path(sys.executable).parent)) or "kpi"
        self.kpi_command = str(Path(config.kpi).absolute()) if config.kpi else default
        self.runs = 0

    def files(self, label: str) -> tuple[Path, Path]:
        """A fresh folder and log file per run."""
        self.runs += 1
        out = self.scratch / f"{self.runs:02d}-{label}"
        out.mkdir()
        return out, out.with_suffix(".log")

    def failed(self, result: Result, log: Path, error: str | None = None) -> Result:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        result.error = error or f"exit {result.measured.returncode if result.measured else '?'}"
        print(f"  {result.contestant} ({result.warehouse}) failed ({result.error}); last lines of {log}:", flush=True)
        print(textwrap.indent("\n".join(tail) or "(no output)", "    "), flush=True)
        return result

    def kpi_load(self, warehouse: str, warehouse_url: str, manifest_url: str, out: Path, log: Path) -> Result:
        """``kpi load <manifest URL>`` into ``warehouse_url`` (``KPI_WAREHOUSE``), measured; it must say loaded."""
        manifest = read_manifest(manifest_url)
        result = Result(KPI_LOAD, warehouse, manifest["rows"], manifest["bytes"])
        env = {**os.environ, "KPI_WAREHOUSE": warehouse_url, "KPI_QUERIES": str(out)}  # no KPI file is read
        outcome = out / "load.json"
        argv = [self.kpi_command, "load", manifest_url, "--json"]
        result.measured = measure(argv, stdout=outcome, stderr=log, env=env)
        if result.measured.returncode != 0:
            return self.failed(result, log)
        said = json.loads(outcome.read_text(encoding="utf-8"))
        if not said.get("loaded"):
            return self.failed(result, log, f"not loaded: {said.get('reason')}")
        return result

    def pandas(self, manifest_url: str) -> Result:
        """The naive script into a fresh DuckDB file, as a child of this module."""
        manifest = read_manifest(manifest_url)
        result = Result(PANDAS, "DuckDB", manifest["rows"], manifest["bytes"])
        out, log = self.files(f"pandas-{size_label(result.rows)}")
        path = out / "warehouse.duckdb"
        argv = [sys.executable, "-m", "bench.load_bench", "_child", "pandas", manifest_url, str(path)]
        result.measured = measure(argv, stdout=log, stderr=log, cwd=ROOT)
        if result.measured.returncode != 0:
            return self.failed(result, log)
        result.rows_loaded = duckdb_rows(path, manifest["kpi"])
        self.discard(path)
        return result

    def import_floor(self) -> Result:
        """The loader's imports alone (pipeline.load, the DuckDB warehouse: DuckDB and pyarrow), in a fresh
        interpreter of the kpi command's environment: a floor under every kpi load figure."""
        result = Result("imports only", "—", 0, 0)
        _, log = self.files("imports")
        python = str(Path(self.kpi_command).resolve().parent / "python")
        code = "import pipeline.load.request, pipeline.warehouses.duckdb"
        result.measured = measure([python, "-c", code], stdout=log, stderr=log, cwd=ROOT)
        return self.failed(result, log) if result.measured.returncode != 0 else result

    def discard(self, path: Path) -> None:
        """A 1 GB partition makes a warehouse of about 0.8 GB: remove it once counted unless --keep."""
        if not self.config.keep:
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()


def duckdb_rows(path: Path, table: str) -> int | None:
    """Rows of ``table`` in a DuckDB file, or None when there is no such table (a load that did not happen)."""
    if not path.exists():
        return None
    with duckdb.connect(str(path), read_only=True) as db:
        try:
            row = db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()
        except duckdb.CatalogException:
            return None
    return int(row[0]) if row else None


# -------------------------------------------------------------------------------------------- warehouse targets


def load_into_duckdb(bench: Bench, manifest_url: str) -> Result:
    """``kpi load`` into a fresh DuckDB warehouse file, then its rows counted."""
    manifest = read_manifest(manifest_url)
    out, log = bench.files(f"kpi-duckdb-{size_label(manifest['rows'])}")
    path = out / "warehouse.duckdb"
    result = bench.kpi_load("DuckDB", f"duckdb:///{path}", manifest_url, out, log)
    if result.ok:
        result.rows_loaded = duckdb_rows(path, manifest["kpi"])
    bench.discard(path)
    return result


def load_into_bigquery(bench: Bench, manifest_url: str) -> Result:
    """The BigQuery warehouse — what the loader Lambda runs — into the BigQuery emulator (tests/bigquery.py),
    measured in a child of the kpi command's environment. The child hands the warehouse the tests'
    BigQueryBridge client (it records the jobs; the staging loads and the transaction run on the emulator); the
    loader's own work (checking the files, streaming them into resumable uploads) is what the figure measures,
    the emulator runs in its own process."""
    from tests.bigquery import PROJECT, BigQueryEmulator

    manifest = read_manifest(manifest_url)
    result = Result(KPI_LOAD, "BigQuery (emulator)", manifest["rows"], manifest["bytes"])
    out, log = bench.files(f"kpi-bigquery-{size_label(manifest['rows'])}")
    python = str(Path(bench.kpi_command).resolve().parent / "python")
    with BigQueryEmulator() as emulator:
        argv = [python, "-m", "bench.load_bench", "_child", "bigquery", manifest_url, emulator.endpoint]
        result.measured = measure(argv, stdout=out / "rows.txt", stderr=log, cwd=ROOT)
        if result.measured.returncode != 0:
            return bench.failed(result, log)
        table = f"{PROJECT}.bench.{manifest['kpi']}"
        (row,) = emulator.client().query(f"SELECT COUNT(*) AS n FROM `{table}`").result()
        result.rows_loaded = int(row["n"])
    return result


# One function per warehouse: (bench, manifest URL) → a measured load whose rows were counted in the warehouse.
WAREHOUSES: dict[str, Callable[[Bench, str], Result]] = {"duckdb": load_into_duckdb, "bigquery": load_into_bigquery}


# ------------------------------------------------------------------------------------- the child: pandas script


def child_pandas(manifest_url: str, warehouse: Path) -> None:
    """What a data scientist writes: every Parquet file of the run folder into one DataFrame, then into DuckDB
    (default settings) through its replacement scan of the local variable ``frame``."""
    import pandas as pd

    files = sorted(str(p) for p in Path(manifest_url).parent.glob("part-*.parquet"))
    # partitioning=None: else pyarrow reads `created_at=2024-03-01` in the path as a second created_at column
    frame = pd.read_parquet(files, partitioning=None)
    with duckdb.connect(str(warehouse)) as db:
        db.execute(DUCKDB_TABLE)
        db.execute(f"INSERT INTO {KPI_NAME} SELECT * FROM frame")
    print(f"{len(frame):,} rows; dtypes: {dict(frame.dtypes.astype(str))}")


def child_main(args: list[str]) -> int:
    """``_child pandas MANIFEST WAREHOUSE``: the peer's run."""
    kind, manifest_url, target = args
    if kind == "pandas":
        child_pandas(manifest_url, Path(target))
    elif kind == "bigquery":
        child_bigquery(manifest_url, target)
    else:
        raise SystemExit(f"unknown child {kind!r}")
    return 0


# What the BigQuery loader Lambda's package does not hold (its size budget).
NOT_IN_BIGQUERY_LAMBDA = ("pyarrow", "pandas", "numpy", "duckdb")


def halt_lambda_absent_imports() -> None:
    """Make the modules the BigQuery loader Lambda lacks unimportable in this process (``import pyarrow`` raises
    ``ModuleNotFoundError: import of pyarrow halted``), so that what the child measures is what the Lambda loads."""
    for absent in NOT_IN_BIGQUERY_LAMBDA:
        sys.modules[absent] = None  # type: ignore[assignment]


def child_bigquery(manifest_url: str, endpoint: str) -> None:
    """The loader's BigQuery path, as the Lambda runs it, against the emulator at ``endpoint``. The loader's
    package holds neither pyarrow, pandas, NumPy nor DuckDB: made unimportable here too, so that
    google-cloud-bigquery does not load them for its optional DataFrame helpers, and so that the test bridge
    (``tests/bigquery.py``) may not need them on this path either."""
    halt_lambda_absent_imports()
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    from pipeline.load import load_manifest, split_manifest_url
    from pipeline.stores import open_store
    from pipeline.warehouses.bigquery import BigQueryWarehouse
    from tests.bigquery import PROJECT, BigQueryBridge

    client = BigQueryBridge(
        project=PROJECT,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=endpoint),
    )
    lake, key = split_manifest_url(manifest_url)
    warehouse = BigQueryWarehouse(f"bigquery://{PROJECT}/bench?endpoint={endpoint}", client=client)
    _, result = load_manifest(open_store(lake), key, warehouse)
    print(result.record.rows if result.record else 0)


# ----------------------------------------------------------------------------------------------------- phases


@dataclass
class Outcome:
    """Everything measured in one benchmark run."""

    lakes: dict[int, Lake]
    loads: dict[str, dict[int, Result]] = field(default_factory=dict)  # warehouse → rows → kpi load
    pandas: dict[int, Result] = field(default_factory=dict)  # rows → the pandas script into DuckDB
    floor: Result | None = None


def progress(result: Result) -> Result:
    """One line per run while the benchmark goes, so a long run shows where it is."""
    if result.measured and result.ok:
        m = result.measured
        what = f"{result.rows:,} rows in {m.seconds:.2f} s" if result.rows else f"{m.seconds:.2f} s"
        where = f" ({result.warehouse})" if result.rows else ""
        print(
            f"  {result.contestant}{where}: {what}, {figures(m)}",
            flush=True,
        )
    return result


def measure_all(bench: Bench, lakes: dict[int, Lake]) -> Outcome:
    outcome = Outcome(lakes)
    outcome.floor = progress(bench.import_floor())
    for rows, lake in lakes.items():
        print(f"\n{rows:,} rows, {lake.megabytes:,.0f} MB of Parquet in {lake.files} file(s)", flush=True)
        for name in bench.config.warehouses:
            outcome.loads.setdefault(name, {})[rows] = progress(WAREHOUSES[name](bench, lake.manifest_url))
        too_big = pandas_too_big(outcome.pandas, rows)
        if too_big:
            print(f"  pandas {too_big}", flush=True)
            outcome.pandas[rows] = Result(PANDAS, "DuckDB", rows, lake.bytes, skipped=too_big)
        else:
            outcome.pandas[rows] = progress(bench.pandas(lake.manifest_url))
    return outcome


def pandas_too_big(done: dict[int, Result], rows: int) -> str | None:
    """Why the pandas script cannot run at ``rows`` here, or None. It holds every row as Python objects (DECIMAL
    becomes ``decimal.Decimal``) and DuckDB copies them again: about 0.6 GB per million rows, so 50M rows would
    need some 30 GB. Extrapolated linearly from its largest run so far; it runs when that fits in 75 % of RAM."""
    runs = [r for r in done.values() if r.ok and r.rows]
    if not runs:
        return None
    largest = max(runs, key=lambda r: r.rows)
    needed_mib = largest.peak_rss_mib * rows / largest.rows
    ram_mib = physical_memory_mib()
    if ram_mib is None or needed_mib <= 0.75 * ram_mib:
        return None
    return (
        f"skipped: needs ≈ {needed_mib / 1024:,.0f} GB (its {largest.peak_rss_mib:,.0f} MB at "
        f"{largest.rows:,} rows, scaled), this machine has {ram_mib / 1024:,.0f} GB"
    )


def physical_memory_mib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Target:
    """The loader's target for one warehouse: what was measured, and whether it is met (None: not measured)."""

    text: str
    value: str
    met: bool | None

    def line(self) -> str:
        verdict = {True: "met", False: "**NOT met**", None: "not measured"}[self.met]
        return f"- {verdict}: {self.text}: {self.value}"


def flatness(runs: dict[int, Result]) -> float | None:
    """Peak RSS at the largest size over peak RSS at the smallest; 1.0 is perfectly flat."""
    small, large = runs.get(min(runs)) if runs else None, runs.get(max(runs)) if runs else None
    if small and large and small.ok and large.ok:
        return large.peak_rss_mib / small.peak_rss_mib
    return None


def targets(config: Config, outcome: Outcome) -> list[Target]:
    small, large = outcome.lakes[config.small_rows], outcome.lakes[config.large_rows]
    found = []
    for name, runs in outcome.loads.items():
        done = [r for r in runs.values() if r.ok]
        peak = max((r.peak_rss_mib for r in done), default=None)
        flat = flatness(runs)
        measured = peak is not None and len(done) == len(runs)
        value = "—" if peak is None else f"{peak:,.0f} MB" + (f" (large/small {flat:.2f})" if flat else "")
        found.append(
            Target(
                f"kpi load into {done[0].warehouse if done else name}: peak RSS flat at ≤ {TARGET_PEAK_RSS_MIB:g} MB "
                f"from {small.megabytes:,.0f} MB to {large.megabytes:,.0f} MB of Parquet",
                value,
                (peak <= TARGET_PEAK_RSS_MIB) if measured and peak is not None else None,
            )
        )
    return found


def ratio(value: float, base: Result | None, r: Result) -> str:
    return times(value if base and base.ok and r.ok and r is not base else None)


def load_table(outcome: Outcome) -> list[str]:
    table = []
    for rows, lake in outcome.lakes.items():
        base = outcome.pandas.get(rows)
        runs = [runs[rows] for runs in outcome.loads.values() if rows in runs] + ([base] if base else [])
        for r in runs:
            head = [r.contestant, r.warehouse, f"{rows:,}", f"{lake.megabytes:,.0f}"]
            if not r.ok:
                table.append([*head, r.error or r.skipped or "not run", "—", "—", "—", "—"])
                continue
            table.append(
                [
                    *head,
                    f"{r.seconds:.2f}",
                    f"{r.rows_per_second:,.0f}",
                    f"{r.peak_rss_mib:,.0f}",
                    ratio(r.seconds / base.seconds if base and base.ok else 0, base, r),
                    ratio(r.peak_rss_mib / base.peak_rss_mib if base and base.ok else 0, base, r),
                ]
            )
    columns = ["loader", "warehouse", "rows>", "Parquet MB>", "seconds>", "rows/s>", "peak RSS MB>"]
    return markdown_table([*columns, "time × pandas>", "RSS × pandas>"], table)


def findings(outcome: Outcome) -> list[str]:
    """Correctness: every row of the partition reached the warehouse."""
    lines = []
    for r in all_runs(outcome):
        if r.ok and r.rows:
            mark = "**MISMATCH**" if r.lost_rows else "ok"
            held = "no table" if r.rows_loaded is None else f"{r.rows_loaded:,}"
            lines.append(f"- {r.contestant} ({r.warehouse}): the warehouse holds {held} of {r.rows:,} rows ({mark})")
    return lines


def floor_lines(outcome: Outcome) -> list[str]:
    lines = []
    if outcome.floor and outcome.floor.ok:
        lines.append(
            f"Imports alone (`import pipeline.load.request, pipeline.warehouses.duckdb`: DuckDB and pyarrow): "
            f"{outcome.floor.seconds:.2f} s, {outcome.floor.peak_rss_mib:,.0f} MB peak RSS — the floor under "
            "every kpi load figure."
        )
    for name, runs in outcome.loads.items():
        flat = flatness(runs)
        if flat is not None:
            small, large = runs[min(runs)], runs[max(runs)]
            lines.append(
                f"Memory flatness, kpi load ({small.warehouse}): {small.peak_rss_mib:,.0f} MB at {small.rows:,} rows "
                f"and {large.peak_rss_mib:,.0f} MB at {large.rows:,} rows: ratio {flat:.3f}."
            )
        elif runs:
            lines.append(f"Memory flatness, kpi load ({name}): not measured (a load failed).")
    return lines


def all_runs(outcome: Outcome) -> list[Result]:
    runs = [r for loads in outcome.loads.values() for r in loads.values()]
    return runs + list(outcome.pandas.values())


def broken(outcome: Outcome) -> list[str]:
    """Runs that failed or lost rows: not a slow result but a wrong one, so the benchmark exits 1."""
    runs = [*all_runs(outcome), *([outcome.floor] if outcome.floor else [])]
    failed = [f"{r.contestant} ({r.warehouse}) at {r.rows:,} rows: {r.error}" for r in runs if r.measured and r.error]
    lost = [
        f"{r.contestant} ({r.warehouse}) at {r.rows:,} rows: the warehouse holds "
        f"{'no table' if r.rows_loaded is None else f'{r.rows_loaded:,} rows'}"
        for r in runs
        if r.lost_rows
    ]
    return failed + lost


def report(config: Config, outcome: Outcome, environment: str) -> str:
    """Markdown to paste into bench/README.md, ending with one line per target."""
    found = targets(config, outcome)
    missed = sum(t.met is False for t in found)
    unmeasured = sum(t.met is None for t in found)
    if missed or unmeasured:
        summary = f"{missed} target(s) NOT met, {unmeasured} not measured (a measurement: missing a target exits 0)."
    else:
        summary = "Every target met."
    return "\n".join(
        [
            "",
            f"## {os.cpu_count()} cores, DuckDB {duckdb.__version__}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d')}",
            "",
            f"One day partition of `{KPI_NAME}` (7 columns, Parquet from `kpi export`) into a fresh warehouse; "
            f"kpi load from {environment}; `× pandas` is kpi load over pandas at the same size:",
            "",
            *load_table(outcome),
            "",
            *findings(outcome),
            "",
            *floor_lines(outcome),
            "",
            "Target of the loader's issue:",
            "",
            *(t.line() for t in found),
            "",
            summary,
        ]
    )


# ------------------------------------------------------------------------------------------------------- main


def run(config: Config, scratch: Path) -> int:
    started = time.perf_counter()
    bench = Bench(config, scratch)
    print(
        f"kpi load benchmark: {os.cpu_count()} cores, Python {platform.python_version()}, DuckDB "
        f"{duckdb.__version__}; kpi {bench.kpi_command}; scratch {scratch}",
        flush=True,
    )
    lakes = {rows: ensure_lake(bench.kpi_command, rows, regenerate=config.regenerate) for rows in config.sizes}
    outcome = measure_all(bench, lakes)
    print(report(config, outcome, loader_environment(bench.kpi_command)), flush=True)
    return finish(started, broken(outcome))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return child_main(argv[1:])
    config = parse_args(argv)
    return in_scratch("kpi-load-bench-", config.keep, lambda scratch: run(config, scratch))


if __name__ == "__main__":
    sys.exit(main())
