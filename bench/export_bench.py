"""The exporter's speed and memory against its peers, in one run — ``make bench``.

``python -m bench.export_bench`` (``--quick`` for a small run, ``--help`` for sizes) generates its own data in
the database ``kpi_bench`` on MariaDB, then times ``SELECT`` of 7 columns → Parquet (→ /dev/null for the client)
through every contestant, in ``--rounds`` interleaved rounds (the order rotates each round), medians kept:

* pandas ``read_sql(chunksize)`` + ``ParquetWriter``, dlt with the pyarrow backend, connectorx and polars — the
  peers, from their own virtual environment (``.venv-bench``, ``bench/peers.py``), never the project's;
* the mariadb client with ``--batch --quick`` to /dev/null: the speed limit of server and wire;
* ``kpi export``: this project (``make bench`` measures the one of ``.venv-lambda``: what the Lambda holds).

Each run is a fresh process measured by ``bench/_rss.py`` (wall time, its own peak RSS, CPU), with the load
average beside it. Then peak RSS at a small and a large table for the exporter and for connectorx (which holds
the whole result), and an aggregate KPI (the server does the work) through the exporter and the client. It
prints Markdown to paste into ``bench/README.md`` and says for each target of the issue whether it is met. It is
a measurement, not a test: the exit code is 0 even when a target is missed, and 1 only when a run failed or
lost rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from bench._harness import RowsRun, figures, finish, in_scratch, markdown_table, parse_rows, size_label, times
from bench._rss import Measured, measure

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = "mysql://root@127.0.0.1:3306/kpi_bench"

# The targets of the issue (exporter at the machine's limit).
TARGET_VS_CONNECTORX = 1.0  # rows/s relative to connectorx
MOONSHOT_VS_CLIENT = 0.9  # rows/s relative to the mariadb client, the wire's limit
TARGET_PEAK_RSS_MIB = 250.0
TARGET_FLATNESS = 0.10  # peak RSS at the large size within 10 % of the small size
TARGET_AGGREGATE_VS_CLIENT = 1.05
PEERS_PYTHON = ROOT / ".venv-bench" / "bin" / "python"

COLUMNS = "id, user_id, created_at, status, amount, note, is_paid"
TABLE_DDL = """
CREATE TABLE {table} (
  id         BIGINT        NOT NULL PRIMARY KEY,
  user_id    INT           NOT NULL,
  created_at DATETIME      NOT NULL,
  status     VARCHAR(16)   NOT NULL,
  amount     DECIMAL(12,2) NOT NULL,
  note       VARCHAR(64)   NULL,
  is_paid    TINYINT(1)    NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
# Deterministic values from the sequence number: users spread over 100k ids, timestamps spread over 2024 (a
# multiplicative step, so neighbouring ids are far apart in time), half the rows paid, notes of 8–31
# characters of Japanese text (3 bytes each in UTF-8) and NULL in a third of the rows, as the table.
# Bump GENERATOR when this changes, so old tables are rebuilt.
FILL_SQL = """
INSERT INTO {table} ({columns})
SELECT seq,
       1 + (seq * 7919) % 100000,
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL ((seq * 104729) % 31622400) SECOND,
       ELT(1 + seq % 4, 'paid', 'paid', 'refunded', 'cancelled'),
       ((seq * 7907) % 1000000) / 100,
       IF(seq % 3 = 0, NULL, CONCAT('注文メモ #', seq, ' ', REPEAT('あ', seq % 16))),
       seq % 4 < 2
FROM seq_{low}_to_{high}
"""
GENERATOR = 2
FILL_CHUNK = 1_000_000
AGGREGATE_SELECT = (
    "SELECT DATE(created_at) AS d, status, COUNT(*) AS orders, SUM(amount) AS sales FROM {table} GROUP BY 1, 2"
)
EXPORTER_PARTS = "part-*.parquet"  # <lake>/<kpi>/snapshot/run=<id>/part-00000.parquet, beside _manifest.json

ROW_KPI = """\
/*---
name: {name}
description: Benchmark table, every row ({rows:,} rows)
grain: none
allow_full_scan: true
columns:
  id:         {{type: INT64, description: Row id}}
  user_id:    {{type: INT64, description: User}}
  created_at: {{type: DATETIME, description: When}}
  status:     {{type: STRING, description: Status}}
  amount:     {{type: NUMERIC, description: Amount}}
  note:       {{type: STRING, description: Optional note}}
  is_paid:    {{type: BOOL, description: Paid flag}}
---*/
SELECT {columns} FROM {table}
"""
AGGREGATE_KPI = """\
/*---
name: {name}
description: Benchmark aggregate, orders and sales per day and status over {rows:,} rows (server-bound)
grain: none
allow_full_scan: true
columns:
  d:      {{type: DATE, description: Day}}
  status: {{type: STRING, description: Status}}
  orders: {{type: INT64, description: Number of rows}}
  sales:  {{type: NUMERIC, description: Sum of amount}}
---*/
{select}
"""


# ----------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Source:
    """Where MariaDB is, from a ``mysql://user:password@host:port/database`` URL (the exporter's KPI_SOURCE)."""

    url: str
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, url: str) -> Source:
        parts = urlsplit(url)
        if parts.scheme != "mysql" or not parts.hostname or not parts.path.strip("/"):
            raise SystemExit(f"--source must look like {DEFAULT_SOURCE}, not {url!r}")
        return cls(
            url=url,
            host=parts.hostname,
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.strip("/"),
        )

    def connect(self, *, database: bool = True, **options: Any) -> pymysql.Connection[Any]:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database if database else None,
            charset="utf8mb4",
            **options,
        )


@dataclass(frozen=True)
class Config:
    """The sizes and switches of one benchmark run."""

    source: Source
    speed_rows: int
    small_rows: int
    large_rows: int
    repeat: int
    keep: bool
    regenerate: bool
    kpi: str | None = None  # the `kpi` executable measured; None: the one beside this Python
    rounds: int = 3
    peers_python: Path = PEERS_PYTHON

    @property
    def sizes(self) -> list[int]:
        """Every table size, each once, smallest first (so a quick look at the first table comes early)."""
        return sorted({self.speed_rows, self.small_rows, self.large_rows})


def parse_args(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.export_bench",
        description="Export speed and memory: kpi export against pandas, dlt, connectorx, polars and the client.",
        epilog="Tables are generated once in the database of --source and reused; a full run takes about 12 minutes.",
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"MariaDB/MySQL URL (default {DEFAULT_SOURCE})")
    parser.add_argument("--rows", type=parse_rows, default=None, help="rows of the speed comparison (default 2m)")
    parser.add_argument("--small", type=parse_rows, default=None, help="small size of the memory check (500k)")
    parser.add_argument("--large", type=parse_rows, default=None, help="large size of the memory check (20m)")
    parser.add_argument("--quick", action="store_true", help="200k / 50k / 400k rows: under a minute, to try it")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the speed comparison (3)")
    parser.add_argument("--repeat", type=int, default=3, help="aggregate KPI runs per contestant, best kept (3)")
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=PEERS_PYTHON,
        help="the Python of the peers' virtual environment (default .venv-bench, which `make bench` builds)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the Parquet files, KPI files and logs")
    parser.add_argument("--regenerate", action="store_true", help="drop and rebuild the benchmark tables")
    parser.add_argument(
        "--kpi",
        default=None,
        help="the kpi executable to measure (default: this venv's); `make bench` passes the one of .venv-lambda, "
        "which holds only the runtime dependencies, as the exporter Lambda does (no pandas, no NumPy)",
    )
    args = parser.parse_args(argv)
    defaults = (200_000, 50_000, 400_000) if args.quick else (2_000_000, 500_000, 20_000_000)
    return Config(
        source=Source.parse(args.source),
        speed_rows=args.rows or defaults[0],
        small_rows=args.small or defaults[1],
        large_rows=args.large or defaults[2],
        repeat=max(1, args.repeat),
        keep=args.keep,
        regenerate=args.regenerate,
        kpi=args.kpi,
        rounds=max(1, args.rounds),
        peers_python=args.peers_python,
    )


# ------------------------------------------------------------------------------------------------------- data


def exporter_environment(config: Config) -> str:
    """Which installation of the exporter was measured: NumPy alone adds about 50 MB of peak RSS, because
    pyarrow imports it whenever it is installed, although the exporter never uses it."""
    if not config.kpi:
        return "this virtual environment"
    python = Path(config.kpi).resolve().parent / "python"
    probe = subprocess.run([str(python), "-c", "import numpy"], capture_output=True, check=False)
    numpy = "with NumPy" if probe.returncode == 0 else "without NumPy, as in the Lambda package"
    return f"`{Path(config.kpi).parent.parent.name}` ({numpy})"


def table_for(rows: int) -> str:
    """``bench_rows_2m``, ``bench_rows_500k``: one table per size, so each size is a plain full scan."""
    return f"bench_rows_{size_label(rows)}"


def ensure_database(source: Source) -> str:
    """Create the database and the bookkeeping table; return the server's version for the report."""
    with source.connect(database=False, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{source.database}`")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS `{source.database}`.bench_meta ("
            " table_name VARCHAR(64) PRIMARY KEY, row_count BIGINT NOT NULL, generator INT NOT NULL)"
        )
        cur.execute("SELECT VERSION()")
        row = cur.fetchone()
    return str(row[0]) if row else "?"


def ensure_table(source: Source, rows: int, *, regenerate: bool) -> str:
    """Reuse the table when bench_meta says it was filled completely by this generator; else build it.

    The mark is written only after the last chunk, so an interrupted fill is rebuilt, and checking it costs
    nothing (``COUNT(*)`` of 20M InnoDB rows would take seconds on every run).
    """
    table = table_for(rows)
    with source.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT m.row_count, m.generator FROM bench_meta m JOIN information_schema.TABLES t"
            " ON t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = m.table_name WHERE m.table_name = %s",
            (table,),
        )
        if cur.fetchone() == (rows, GENERATOR) and not regenerate:
            return table
        print(f"generating {table}: {rows:,} rows …", flush=True)
        started = time.perf_counter()
        cur.execute("DELETE FROM bench_meta WHERE table_name = %s", (table,))
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(TABLE_DDL.format(table=table))
        for low in range(1, rows + 1, FILL_CHUNK):
            high = min(rows, low + FILL_CHUNK - 1)
            cur.execute(FILL_SQL.format(table=table, columns=COLUMNS, low=low, high=high))
            if rows > FILL_CHUNK:
                print(f"  {high:>12,} / {rows:,} rows  {time.perf_counter() - started:6.1f} s", flush=True)
        cur.execute("INSERT INTO bench_meta VALUES (%s, %s, %s)", (table, rows, GENERATOR))
        print(f"  {table} ready in {time.perf_counter() - started:.1f} s", flush=True)
    return table


# ------------------------------------------------------------------------------------------------ contestants

EXPORTER = "**kpi export**"
CLIENT = "mariadb client → /dev/null"
PEER_LABELS = {
    "pandas": "pandas `read_sql(chunksize)` + ParquetWriter",
    "dlt": "dlt, pyarrow backend → Parquet",
    "polars": "polars `read_database_uri` → Parquet",
    "connectorx": "connectorx → Parquet",
}


@dataclass
class Result(RowsRun):
    """One measured run of one contestant, and what its output held."""

    contestant: str
    rows: int
    measured: Measured | None = None
    rows_written: int | None = None  # from the Parquet metadata; None where nothing is written
    output_lines: int | None = None  # the client's, when its output was kept
    expected: int | None = None  # rows the output must hold when that is not ``rows`` (an aggregate's groups)
    error: str | None = None
    decimal: str = ""  # what DECIMAL(12,2) became
    load: float = 0.0  # the 1-minute load average when the run started

    @property
    def expected_rows(self) -> int:
        return self.rows if self.expected is None else self.expected

    @property
    def lost_rows(self) -> bool:
        return self.ok and self.rows_written is not None and self.rows_written != self.expected_rows


@dataclass
class Runs:
    """Every run of one contestant at one size; the figures are medians (peak RSS: the highest)."""

    contestant: str
    rows: int
    runs: list[Result] = field(default_factory=list)

    @property
    def done(self) -> list[Result]:
        return [r for r in self.runs if r.ok]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and len(self.done) == len(self.runs)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.done) if self.done else float("nan")

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(r.cpu_seconds for r in self.done) if self.done else float("nan")

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.done else 0.0

    @property
    def peak_rss_mib(self) -> float:
        return max((r.peak_rss_mib for r in self.done), default=float("nan"))

    @property
    def decimal(self) -> str:
        return next((r.decimal for r in self.runs if r.decimal), "—")


class Bench:
    """Runs contestants in fresh processes inside one scratch folder (Parquet, KPI files, logs)."""

    def __init__(self, config: Config, scratch: Path) -> None:
        self.config = config
        self.scratch = scratch
        self.queries = scratch / "queries"
        self.queries.mkdir()
        default = shutil.which("kpi", path=str(Path(sys.executable).parent)) or "kpi"
        self.kpi_command = str(Path(config.kpi).resolve()) if config.kpi else default
        self.client_command = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
        self.runs = 0
        self.loads: list[float] = []

    # --- helpers

    def _files(self, label: str, *, folder: bool = True) -> tuple[Path, Path]:
        """A fresh output folder and log file per run, so a run's output is counted alone."""
        self.runs += 1
        out = self.scratch / f"{self.runs:03d}-{label}"
        if folder:
            out.mkdir()
        return out, out.with_suffix(".log")

    def _measure(self, result: Result, argv: list[str], log: Path, **options: Any) -> Measured:
        result.load = os.getloadavg()[0]
        self.loads.append(result.load)
        stdout = options.pop("stdout", log)
        return measure(argv, stdout=stdout, stderr=log, **options)

    def _failed(self, result: Result, log: Path) -> Result:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        result.error = f"exit {result.measured.returncode if result.measured else '?'}"
        print(f"  {result.contestant} failed ({result.error}); last lines of {log}:", flush=True)
        print(textwrap.indent("\n".join(tail) or "(no output)", "    "), flush=True)
        return result

    # --- contestants

    def peer(self, kind: str, table: str, rows: int) -> Result:
        """One of bench/peers.py, run by the Python of the peers' own virtual environment."""
        result = Result(PEER_LABELS[kind], rows)
        out, log = self._files(kind)
        argv = [str(self.config.peers_python), "-m", "bench.peers", kind, self.config.source.url, table, str(out)]
        result.measured = self._measure(result, argv, log, cwd=ROOT)
        if result.measured.returncode != 0:
            return self._failed(result, log)
        facts = json.loads((out / "report.json").read_text(encoding="utf-8"))
        result.rows_written = parquet_rows(out / "lake" if kind == "dlt" else out)  # dlt also keeps its packages
        result.decimal = str(facts.get("amount", ""))
        shutil.rmtree(out, ignore_errors=True)  # 20M rows of Parquet per run add up
        return result

    def client(self, select: str, rows: int, label: str = CLIENT, *, keep: bool = False) -> Result:
        """``keep`` writes the output to a file and counts its lines: the aggregate's groups, for the exporter."""
        result = Result(label, rows)
        out, log = self._files("client", folder=False)
        output = out.with_suffix(".tsv") if keep else Path(os.devnull)
        source = self.config.source
        argv = [self.client_command, "--batch", "--quick", "--skip-column-names"]
        argv += [f"--host={source.host}", f"--port={source.port}", f"--user={source.user}", source.database]
        argv += ["-e", select]
        env = {**os.environ, "MYSQL_PWD": source.password} if source.password else None
        result.measured = self._measure(result, argv, log, stdout=output, env=env)
        if result.measured.returncode != 0:
            return self._failed(result, log)
        if keep:
            with output.open("rb") as lines:
                result.output_lines = sum(1 for _ in lines)
        return result

    def exporter(self, kpi_name: str, rows: int, label: str = EXPORTER) -> Result:
        result = Result(label, rows)
        lake, log = self._files(f"kpi-{kpi_name}")
        env = {
            **os.environ,
            "KPI_QUERIES": str(self.queries),
            "KPI_SOURCE": self.config.source.url,
            "KPI_LAKE": str(lake),
        }
        result.measured = self._measure(result, [self.kpi_command, "export", kpi_name], log, env=env)
        if result.measured.returncode != 0:
            return self._failed(result, log)
        result.rows_written = parquet_rows(lake, EXPORTER_PARTS)
        result.decimal = parquet_types(lake).get("amount", "")
        shutil.rmtree(lake, ignore_errors=True)
        return result

    # --- the exporter's side

    def exporter_startup(self) -> Result:
        result = Result("start-up only (`kpi export --help`)", 0)
        _, log = self._files("kpi-help", folder=False)
        result.measured = self._measure(result, [self.kpi_command, "export", "--help"], log)
        return self._failed(result, log) if result.measured.returncode != 0 else result

    def write_kpi(self, name: str, text: str) -> None:
        (self.queries / f"{name}.sql").write_text(text, encoding="utf-8")

    def check_kpis(self) -> None:
        """The KPI files must pass ``kpi check`` like any analyst's, or the exporter would refuse them."""
        check = subprocess.run(
            [self.kpi_command, "--queries", str(self.queries), "check"], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise SystemExit(f"the benchmark's KPI files fail kpi check:\n{check.stdout}{check.stderr}")


def parquet_rows(folder: Path, pattern: str = "*.parquet") -> int:
    """Rows in the Parquet files under ``folder``, from the footers alone (cheap even at 20M rows)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in sorted(folder.rglob(pattern)))


def parquet_types(folder: Path) -> dict[str, str]:
    """The Arrow types the exporter wrote (DECIMAL should stay decimal, not float)."""
    import pyarrow.parquet as pq

    files = sorted(folder.rglob(EXPORTER_PARTS))
    if not files:
        return {}
    schema = pq.read_schema(files[0])
    return {name: str(schema.field(name).type) for name in schema.names}


# ----------------------------------------------------------------------------------------------------- phases


@dataclass
class Outcome:
    """Everything measured in one benchmark run."""

    speed: dict[str, Runs]  # contestant key → its runs at the speed size
    memory: dict[tuple[str, int], Runs] = field(default_factory=dict)  # ("kpi" | "connectorx", rows) → runs
    startup: Result | None = None  # `kpi export --help`: imports only, the floor under the exporter's figures
    aggregate_client: list[Result] = field(default_factory=list)  # --repeat runs each, alternating
    aggregate_exporter: list[Result] = field(default_factory=list)


SPEED_ORDER = ["pandas", "dlt", "polars", "connectorx", "client", "kpi"]


def speed_phase(bench: Bench, table: str, rows: int, rounds: int, warm_up: str) -> dict[str, Runs]:
    """The same SELECT through every contestant, ``rounds`` times; the order rotates each round, so that a busy
    moment of a shared machine does not always hit the same contestant. First, untimed: a client run warms the
    server's caches, and an export of the table ``warm_up`` compiles the exporter's bytecode (an editable install
    compiles on first import; the peers' were compiled when pip installed them)."""
    select = f"SELECT {COLUMNS} FROM {table}"
    print(f"\nspeed: {rows:,} rows × 7 columns, {rounds} interleaved rounds", flush=True)
    bench.client(select, rows)
    bench.exporter(warm_up, 0)
    labels = {**PEER_LABELS, "client": CLIENT, "kpi": EXPORTER}
    speed = {key: Runs(labels[key], rows) for key in SPEED_ORDER}
    for round_ in range(rounds):
        order = SPEED_ORDER[round_ % len(SPEED_ORDER) :] + SPEED_ORDER[: round_ % len(SPEED_ORDER)]
        for key in order:
            if key == "client":
                run = bench.client(select, rows)
            elif key == "kpi":
                run = bench.exporter(table, rows)
            else:
                run = bench.peer(key, table, rows)
            speed[key].runs.append(progress(run))
    return speed


def memory_phase(bench: Bench, sizes: list[tuple[str, int]], outcome: Outcome) -> None:
    """Peak RSS of the exporter and of connectorx at each size (the speed size is already measured): the
    exporter streams, so 40× the rows should cost it no more memory; connectorx holds the whole result."""
    print("\nmemory: kpi export and connectorx at " + ", ".join(f"{rows:,}" for _, rows in sizes), flush=True)
    outcome.startup = progress(bench.exporter_startup())
    for table, rows in sizes:
        if rows == bench.config.speed_rows:
            outcome.memory[("kpi", rows)] = outcome.speed["kpi"]
            outcome.memory[("connectorx", rows)] = outcome.speed["connectorx"]
            continue
        outcome.memory[("kpi", rows)] = Runs(EXPORTER, rows, [progress(bench.exporter(table, rows))])
        cx = progress(bench.peer("connectorx", table, rows))
        outcome.memory[("connectorx", rows)] = Runs(PEER_LABELS["connectorx"], rows, [cx])


def aggregate_phase(bench: Bench, kpi: str, select: str, rows: int, repeat: int) -> tuple[list[Result], list[Result]]:
    """A server-bound KPI through the client and the exporter, alternating, ``repeat`` runs each."""
    print(f"\naggregate KPI over {rows:,} rows, best of {repeat}", flush=True)
    bench.client(select, rows)  # warm-up
    client: list[Result] = []
    exporter: list[Result] = []
    for _ in range(repeat):
        client.append(progress(bench.client(select, rows, label="aggregate, mariadb client", keep=True)))
        exporter.append(progress(bench.exporter(kpi, rows, label="aggregate, kpi export")))
        exporter[-1].expected = client[-1].output_lines  # as many groups as the client printed
    return client, exporter


def best(results: list[Result]) -> Result | None:
    """The fastest successful run: the noise of a shared 2-core machine is all on the slow side."""
    done = [r for r in results if r.measured and r.ok]
    return min(done, key=lambda r: r.seconds) if done else None


def progress(result: Result) -> Result:
    """One line per run while the benchmark goes, so a long run shows where it is."""
    if result.measured and result.ok:
        m = result.measured
        speed = (
            f"{result.rows:,} rows in {m.seconds:.2f} s, {result.rows_per_second:,.0f} rows/s" if result.rows else ""
        )
        print(
            f"  {result.contestant}: {speed or f'{m.seconds:.2f} s'}, {figures(m)}, load {result.load:.2f}",
            flush=True,
        )
    return result


# ----------------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Target:
    """One target of the issue: what was measured, and whether it is met (None: not measured)."""

    text: str
    value: str
    met: bool | None

    def line(self) -> str:
        verdict = {True: "met", False: "**NOT met**", None: "not measured"}[self.met]
        return f"- {verdict}: {self.text}: {self.value}"


def ratio(a: Runs, b: Runs) -> float | None:
    """a's rows/s over b's (medians of the same rounds)."""
    return a.rows_per_second / b.rows_per_second if a.ok and b.ok and b.rows_per_second else None


def targets(config: Config, outcome: Outcome) -> list[Target]:
    kpi, cx, client = outcome.speed["kpi"], outcome.speed["connectorx"], outcome.speed["client"]
    vs_cx, vs_client = ratio(kpi, cx), ratio(kpi, client)
    ours = [runs for (who, _), runs in outcome.memory.items() if who == "kpi" and runs.ok]
    peak = max((r.peak_rss_mib for r in ours), default=None)
    flat = flatness(outcome, config)
    aggregate = aggregate_ratio(outcome)

    def target(text: str, value: float | None, shown: str, met: bool) -> Target:
        return Target(text, "—" if value is None else shown, None if value is None else met)

    return [
        target(
            f"rows/s ≥ {TARGET_VS_CONNECTORX:g}× connectorx",
            vs_cx,
            f"{vs_cx or 0:.2f}×",
            (vs_cx or 0) >= TARGET_VS_CONNECTORX,
        ),
        target(
            f"moonshot: rows/s ≥ {MOONSHOT_VS_CLIENT:g}× the mariadb client",
            vs_client,
            f"{vs_client or 0:.2f}×",
            (vs_client or 0) >= MOONSHOT_VS_CLIENT,
        ),
        target(
            f"peak RSS ≤ {TARGET_PEAK_RSS_MIB:g} MB at every size",
            peak,
            f"{peak or 0:,.0f} MB",
            (peak or 0) <= TARGET_PEAK_RSS_MIB,
        ),
        target(
            f"peak RSS flat within {TARGET_FLATNESS:.0%} from {config.small_rows:,} to {config.large_rows:,} rows",
            flat,
            f"{flat or 0:.3f}",
            abs((flat or 0) - 1) <= TARGET_FLATNESS,
        ),
        target(
            f"aggregate KPI wall time ≤ {TARGET_AGGREGATE_VS_CLIENT:g}× the mariadb client",
            aggregate,
            f"{aggregate or 0:.2f}×",
            (aggregate or 0) <= TARGET_AGGREGATE_VS_CLIENT,
        ),
    ]


def flatness(outcome: Outcome, config: Config) -> float | None:
    """The exporter's peak RSS at the large size over the small size; 1.0 is perfectly flat."""
    small, large = outcome.memory.get(("kpi", config.small_rows)), outcome.memory.get(("kpi", config.large_rows))
    if small and large and small.ok and large.ok:
        return large.peak_rss_mib / small.peak_rss_mib
    return None


def aggregate_ratio(outcome: Outcome) -> float | None:
    """Best exporter run over best client run: the server's own noise (±10 % here) is all on the slow side."""
    client, exporter = best(outcome.aggregate_client), best(outcome.aggregate_exporter)
    return exporter.seconds / client.seconds if client and exporter else None


def speed_table(speed: dict[str, Runs]) -> list[str]:
    cx, client = speed["connectorx"], speed["client"]
    columns = ["contestant", "rows/s>", "× connectorx>", "× client>", "seconds>", "CPU s>", "peak RSS MB>"]
    rows = []
    for key in ["pandas", "dlt", "polars", "connectorx", "kpi", "client"]:
        r = speed[key]
        if not r.ok:
            rows.append([r.contestant, "failed", *["—"] * 7])
            continue
        every = ", ".join(f"{run.seconds:.2f}" for run in r.runs)
        rows.append(
            [
                r.contestant,
                f"{r.rows_per_second:,.0f}",
                times(ratio(r, cx)),
                times(ratio(r, client)),
                f"{r.seconds:.2f}",
                f"{r.cpu_seconds:.2f}",
                f"{r.peak_rss_mib:,.0f}",
                r.decimal if key != "client" else "—",
                every,
            ]
        )
    return markdown_table([*columns, "DECIMAL(12,2) as", "every run (s)"], rows)


def per_round(speed: dict[str, Runs]) -> str:
    """kpi export's rows/s over connectorx's and the client's round by round, with the load: how the ratio moves
    when the machine is busy."""
    kpi, cx, client = speed["kpi"].runs, speed["connectorx"].runs, speed["client"].runs
    parts = []
    for ours, theirs, limit in zip(kpi, cx, client, strict=False):
        if ours.ok and theirs.ok and limit.ok:
            parts.append(
                f"{theirs.seconds / ours.seconds:.2f}× connectorx and {limit.seconds / ours.seconds:.2f}× the client "
                f"(load {ours.load:.1f})"
            )
    return "Round by round, kpi export: " + "; ".join(parts) + "." if parts else ""


def memory_table(config: Config, outcome: Outcome) -> list[str]:
    sizes = sorted({rows for _, rows in outcome.memory})
    table = []
    for rows in sizes:
        kpi, cx = outcome.memory.get(("kpi", rows)), outcome.memory.get(("connectorx", rows))
        cells = [f"{rows:,}"]
        for runs in (kpi, cx):
            cells += [f"{runs.peak_rss_mib:,.0f}", f"{runs.rows_per_second:,.0f}"] if runs and runs.ok else ["—", "—"]
        table.append(cells)
    columns = [
        "rows>",
        "kpi export peak RSS MB>",
        "kpi export rows/s>",
        "connectorx peak RSS MB>",
        "connectorx rows/s>",
    ]
    lines = markdown_table(columns, table)
    flat = flatness(outcome, config)
    if outcome.startup and outcome.startup.ok:
        lines += [
            "",
            f"Start-up alone (`kpi export --help`, imports only): {outcome.startup.seconds:.2f} s, "
            f"{outcome.startup.peak_rss_mib:,.0f} MB peak RSS — the floor under every kpi export figure.",
        ]
    if flat is not None:
        lines += ["", f"Memory flatness, kpi export {config.small_rows:,} → {config.large_rows:,} rows: {flat:.3f}."]
    return lines


def aggregate_line(config: Config, outcome: Outcome) -> str:
    client, exporter = best(outcome.aggregate_client), best(outcome.aggregate_exporter)
    query = AGGREGATE_SELECT.format(table=table_for(config.large_rows))
    text = f"Aggregate KPI `{query}`, best of {config.repeat}: "
    text += f"mariadb client {client.seconds:.2f} s" if client else "mariadb client failed"
    value = aggregate_ratio(outcome)
    if exporter and value is not None:
        text += (
            f", kpi export {exporter.seconds:.2f} s (peak RSS {exporter.peak_rss_mib:,.0f} MB, "
            f"CPU {exporter.cpu_seconds:.2f} s): ratio {value:.2f}× (target ≤ {TARGET_AGGREGATE_VS_CLIENT:g}×)."
        )
    else:
        text += ", kpi export not measured."
    for name, runs in (("client", outcome.aggregate_client), ("kpi export", outcome.aggregate_exporter)):
        if runs:
            text += f" Every {name} run: " + ", ".join(f"{r.seconds:.2f} s" if r.ok else "failed" for r in runs) + "."
    return text


def findings(outcome: Outcome) -> list[str]:
    """Correctness, cheaply: every row reached the Parquet files."""
    runs = [r for rs in outcome.speed.values() for r in rs.runs]
    runs += [r for rs in outcome.memory.values() for r in rs.runs] + outcome.aggregate_exporter
    checked = [r for r in runs if r.ok and r.rows_written is not None]
    lost = [r for r in checked if r.lost_rows]
    if lost:
        return [f"- **MISMATCH** {r.contestant}: {r.rows_written:,} of {r.expected_rows:,} rows" for r in lost]
    return [f"Every Parquet output holds every row ({len(checked)} runs checked from the file footers)."]


def broken(outcome: Outcome) -> list[str]:
    """Runs that failed or lost rows: not a slow result but a wrong one, so the benchmark exits 1."""
    runs = [r for rs in outcome.speed.values() for r in rs.runs]
    runs += [r for rs in outcome.memory.values() for r in rs.runs]
    runs += [*outcome.aggregate_client, *outcome.aggregate_exporter]
    if outcome.startup:
        runs.append(outcome.startup)
    failed = [f"{r.contestant} at {r.rows:,} rows: {r.error}" for r in runs if r and r.measured and r.error]
    lost = [f"{r.contestant} at {r.rows:,} rows: {r.rows_written:,} rows written" for r in runs if r and r.lost_rows]
    return failed + lost


def machine(config: Config, version: str) -> str:
    """What ran it: CPU, cores, memory, and the versions of everything measured."""
    cpu = "?"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    peers = subprocess.run(
        [str(config.peers_python), "-m", "bench.peers", "versions"], capture_output=True, text=True, cwd=ROOT
    )
    peer_versions = json.loads(peers.stdout) if peers.returncode == 0 else {}
    kpi_python = Path(config.kpi).resolve().parent / "python" if config.kpi else Path(sys.executable)
    ours = subprocess.run(
        [
            str(kpi_python),
            "-c",
            "import platform, pyarrow, pymysql; from pipeline.sources import mysql_native; "
            "from importlib.metadata import version; "
            "print(platform.python_version(), pyarrow.__version__, version('pymysql'), "
            "'C' if mysql_native.load() else 'pure Python')",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    kpi_text = (
        f"kpi export: Python {ours[0]}, pyarrow {ours[1]}, pymysql {ours[2]}, {' '.join(ours[3:])} reader"
        if len(ours) >= 4
        else "kpi export: versions unknown"
    )
    peer_text = ", ".join(f"{name} {v}" for name, v in peer_versions.items()) or "peers: versions unknown"
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; MariaDB {version} on {config.source.host}; "
        f"{kpi_text}, from {exporter_environment(config)}; peers ({config.peers_python.parent.parent.name}): "
        f"{peer_text}; client {shutil.which('mariadb') or shutil.which('mysql')}"
    )


def load_line(loads: list[float]) -> str:
    if not loads:
        return ""
    return (
        f"Load average (1 min) at the start of each run: min {min(loads):.2f}, median "
        f"{statistics.median(loads):.2f}, max {max(loads):.2f} on {os.cpu_count()} cores"
        + (" — a busy machine: ratios hold better than absolute figures." if statistics.median(loads) > 1.0 else ".")
    )


def report(config: Config, version: str, outcome: Outcome, loads: list[float]) -> str:
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
            f"## {time.strftime('%Y-%m-%d %H:%M')}: {config.speed_rows:,} rows × 7 columns, median of "
            f"{config.rounds} interleaved rounds",
            "",
            machine(config, version) + ".",
            "",
            load_line(loads),
            "",
            f"`SELECT` of {config.speed_rows:,} rows × 7 columns (BIGINT, INT, DATETIME, VARCHAR(16), DECIMAL(12,2), "
            "nullable VARCHAR(64) of Japanese text, TINYINT(1)) → Parquet (the client: → /dev/null):",
            "",
            *speed_table(outcome.speed),
            "",
            per_round(outcome.speed),
            "",
            *findings(outcome),
            "",
            *memory_table(config, outcome),
            "",
            aggregate_line(config, outcome),
            "",
            "Targets of the issue:",
            "",
            *(t.line() for t in found),
            "",
            summary,
        ]
    )


# ------------------------------------------------------------------------------------------------------- main


def run(config: Config, scratch: Path) -> int:
    started = time.perf_counter()
    version = ensure_database(config.source)
    print(
        f"kpi export benchmark: {os.cpu_count()} cores, Python {platform.python_version()}, MariaDB {version} "
        f"at {config.source.host}:{config.source.port}; scratch {scratch}",
        flush=True,
    )
    if not config.peers_python.is_file():
        raise SystemExit(f"no peers' Python at {config.peers_python}: `make bench` builds .venv-bench")
    sizes = {rows: ensure_table(config.source, rows, regenerate=config.regenerate) for rows in config.sizes}
    large = sizes[config.large_rows]

    bench = Bench(config, scratch)
    for rows, table in sizes.items():
        bench.write_kpi(table, ROW_KPI.format(name=table, rows=rows, columns=COLUMNS, table=table))
    aggregate_kpi = "bench_agg_" + large.removeprefix("bench_rows_")
    aggregate_select = AGGREGATE_SELECT.format(table=large)
    bench.write_kpi(
        aggregate_kpi, AGGREGATE_KPI.format(name=aggregate_kpi, rows=config.large_rows, select=aggregate_select)
    )
    bench.check_kpis()

    speed = speed_phase(bench, sizes[config.speed_rows], config.speed_rows, config.rounds, sizes[config.small_rows])
    outcome = Outcome(speed=speed)
    memory_phase(bench, [(sizes[rows], rows) for rows in config.sizes], outcome)
    outcome.aggregate_client, outcome.aggregate_exporter = aggregate_phase(
        bench, aggregate_kpi, aggregate_select, config.large_rows, config.repeat
    )
    print(report(config, version, outcome, bench.loads), flush=True)
    return finish(started, broken(outcome))


def main(argv: list[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    return in_scratch("kpi-bench-", config.keep, lambda scratch: run(config, scratch))


if __name__ == "__main__":
    sys.exit(main())
