"""The exporter's speed and memory against pandas, plain pymysql and the mysql client — ``make bench``.

``python -m bench.export_bench`` (``--quick`` for a small run, ``--help`` for sizes) generates its own data in
the database ``kpi_bench`` on MariaDB, then times ``SELECT`` of 7 columns → Parquet (→ /dev/null for the client):

* pandas: ``pd.read_sql`` + ``to_parquet``, the script the exporter replaces;
* plain pymysql → Arrow: an unbuffered cursor, ``fetchmany`` and a ``ParquetWriter``, the straightforward way;
* the mariadb client with ``--batch --quick`` to /dev/null: the speed limit of server and wire;
* ``kpi export``: this project.

Each contestant runs in a fresh process measured by ``bench/_rss.py`` (wall time and its own peak RSS). Then the
exporter's peak RSS at a small and a large table (it must not grow with rows), and an aggregate KPI (the
server does the work) through the exporter and through the client. It prints Markdown to paste into
``bench/README.md`` and says for each target of the exporter's issue whether it is met. It is a measurement,
not a test: the exit code is 0 even when a target is missed, and 1 only when a run failed or lost rows.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from bench._harness import finish, in_scratch
from bench._rss import Measured, measure

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = "mysql://root@127.0.0.1:3306/kpi_bench"

# What the issue measured, and the targets it set for the exporter.
TARGET_SPEEDUP_VS_PANDAS = 4.0
TARGET_PEAK_RSS_MIB = 250.0
TARGET_FLATNESS = 0.10  # peak RSS at the large size within 10 % of the small size
TARGET_AGGREGATE_VS_CLIENT = 1.2

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
EXPORTER = "**kpi export**"
EXPORTER_PARTS = "part-*.parquet"  # <lake>/<kpi>/snapshot/run=<id>/part-00000.parquet, beside _manifest.json

ROW_KPI = """\
/*---
name: {name}
description: Benchmark table, every row ({rows:,} rows)
grain: none
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

    @property
    def sizes(self) -> list[int]:
        """Every table size, each once, smallest first (so a quick look at the first table comes early)."""
        return sorted({self.speed_rows, self.small_rows, self.large_rows})


def parse_rows(text: str) -> int:
    """``2000000``, ``2_000_000``, ``2m`` or ``500k``: people type sizes the way they say them."""
    text = text.strip().lower().replace("_", "").replace(",", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    try:
        rows = int(float(text[:-1] if factor > 1 else text) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a row count: {text!r} (e.g. 2000000, 2m, 500k)") from None
    if rows < 1:
        raise argparse.ArgumentTypeError("a row count must be at least 1")
    return rows


def parse_args(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.export_bench",
        description="Export speed and memory: kpi export against pandas, plain pymysql and the mariadb client.",
        epilog="Tables are generated once in the database of --source and reused; a full run takes about 6 minutes.",
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"MariaDB/MySQL URL (default {DEFAULT_SOURCE})")
    parser.add_argument("--rows", type=parse_rows, default=None, help="rows of the speed comparison (default 2m)")
    parser.add_argument("--small", type=parse_rows, default=None, help="small size of the memory check (500k)")
    parser.add_argument("--large", type=parse_rows, default=None, help="large size of the memory check (20m)")
    parser.add_argument("--quick", action="store_true", help="200k / 50k / 400k rows: under a minute, to try it")
    parser.add_argument("--repeat", type=int, default=3, help="aggregate KPI runs per contestant, best kept (3)")
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
    if rows % 1_000_000 == 0:
        return f"bench_rows_{rows // 1_000_000}m"
    if rows % 1_000 == 0:
        return f"bench_rows_{rows // 1_000}k"
    return f"bench_rows_{rows}"


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


@dataclass
class Result:
    """One measured run of one contestant, and what its output held."""

    contestant: str
    rows: int
    measured: Measured | None = None
    rows_written: int | None = None  # from the Parquet metadata; None where nothing is written
    output_lines: int | None = None  # the client's, when its output was kept
    expected: int | None = None  # rows the output must hold when that is not ``rows`` (an aggregate's groups)
    error: str | None = None
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.measured is not None and self.error is None

    @property
    def expected_rows(self) -> int:
        return self.rows if self.expected is None else self.expected

    @property
    def lost_rows(self) -> bool:
        return self.ok and self.rows_written is not None and self.rows_written != self.expected_rows

    @property
    def seconds(self) -> float:
        return self.measured.seconds if self.measured else float("nan")

    @property
    def peak_rss_mib(self) -> float:
        return self.measured.peak_rss_mib if self.measured else float("nan")

    @property
    def cpu_seconds(self) -> float:
        return self.measured.cpu_seconds if self.measured else float("nan")

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.measured.seconds if self.measured else 0.0


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

    # --- helpers

    def _files(self, label: str, *, folder: bool = True) -> tuple[Path, Path]:
        """A fresh output folder and log file per run, so a run's output is counted alone."""
        self.runs += 1
        out = self.scratch / f"{self.runs:02d}-{label}"
        if folder:
            out.mkdir()
        return out, out.with_suffix(".log")

    def _failed(self, result: Result, log: Path) -> Result:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        result.error = f"exit {result.measured.returncode if result.measured else '?'}"
        print(f"  {result.contestant} failed ({result.error}); last lines of {log}:", flush=True)
        print(textwrap.indent("\n".join(tail) or "(no output)", "    "), flush=True)
        return result

    def _child(self, kind: str, table: str, out: Path, log: Path) -> tuple[Measured, dict[str, Any]]:
        """Run one of this module's own contestants (pandas, pymysql) as ``python -m bench.export_bench``."""
        report = out / "report.json"
        argv = [sys.executable, "-m", "bench.export_bench", "_child", kind, self.config.source.url, table, str(out)]
        measured = measure(argv, stdout=log, stderr=log, cwd=ROOT)
        facts = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
        return measured, facts

    # --- contestants

    def pandas(self, table: str, rows: int) -> Result:
        result = Result("pandas `read_sql` + `to_parquet`", rows)
        out, log = self._files("pandas")
        result.measured, facts = self._child("pandas", table, out, log)
        if result.measured.returncode != 0:
            return self._failed(result, log)
        result.rows_written = parquet_rows(out)
        result.facts = {f"pandas dtype of `{name}`": str(dtype) for name, dtype in facts["dtypes"].items()}
        return result

    def pymysql_arrow(self, table: str, rows: int) -> Result:
        result = Result("plain pymysql → Arrow (SSCursor, fetchmany)", rows)
        out, log = self._files("pymysql")
        result.measured, _ = self._child("pymysql", table, out, log)
        if result.measured.returncode != 0:
            return self._failed(result, log)
        result.rows_written = parquet_rows(out)
        return result

    def client(
        self, select: str, rows: int, label: str = "mariadb client → /dev/null", *, keep: bool = False
    ) -> Result:
        """``keep`` writes the output to a file and counts its lines: the aggregate's groups, for the exporter."""
        result = Result(label, rows)
        out, log = self._files("client", folder=False)
        output = out.with_suffix(".tsv") if keep else Path(os.devnull)
        source = self.config.source
        argv = [self.client_command, "--batch", "--quick", "--skip-column-names"]
        argv += [f"--host={source.host}", f"--port={source.port}", f"--user={source.user}", source.database]
        argv += ["-e", select]
        env = {**os.environ, "MYSQL_PWD": source.password} if source.password else None
        result.measured = measure(argv, stdout=output, stderr=log, env=env)
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
        result.measured = measure([self.kpi_command, "export", kpi_name], stdout=log, stderr=log, env=env)
        if result.measured.returncode != 0:
            return self._failed(result, log)
        result.rows_written = parquet_rows(lake, EXPORTER_PARTS)
        result.facts = parquet_types(lake)
        return result

    # --- the exporter's side

    def exporter_startup(self) -> Result:
        result = Result("start-up only (`kpi export --help`)", 0)
        _, log = self._files("kpi-help", folder=False)
        result.measured = measure([self.kpi_command, "export", "--help"], stdout=log, stderr=log)
        return self._failed(result, log) if result.measured.returncode != 0 else result

    def exporter_available(self) -> bool:
        """``kpi export`` is written in parallel with this benchmark; until it exists its column stays empty."""
        probe = subprocess.run([self.kpi_command, "export", "--help"], capture_output=True, text=True, check=False)
        return probe.returncode == 0

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
    """The Arrow types the exporter wrote, for the findings (DECIMAL should stay decimal, not float)."""
    import pyarrow.parquet as pq

    files = sorted(folder.rglob(EXPORTER_PARTS))
    if not files:
        return {}
    schema = pq.read_schema(files[0])
    return {f"kpi export type of `{name}`": str(schema.field(name).type) for name in schema.names}


# ------------------------------------------------------------------- the children: pandas and plain pymysql


def child_pandas(source: Source, table: str, out: Path) -> dict[str, Any]:
    """What a data scientist writes: a buffered pymysql connection into ``read_sql``, then ``to_parquet``."""
    import warnings

    import pandas as pd

    with source.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "pandas only supports SQLAlchemy connectable …"
        frame = pd.read_sql(f"SELECT {COLUMNS} FROM {table}", conn)
    frame.to_parquet(out / "pandas.parquet", engine="pyarrow", index=False)
    return {"rows": len(frame), "dtypes": {"amount": str(frame["amount"].dtype)}}


def child_pymysql(source: Source, table: str, out: Path) -> dict[str, Any]:
    """The straightforward streaming script: unbuffered cursor, 50k rows at a time, columns to Arrow arrays.

    The schema is written out because inferring it per batch breaks the writer: a batch whose notes are all
    NULL infers ``null``, and decimal precision is inferred from the values. ``TINYINT(1)`` arrives as an int.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pymysql.cursors import SSCursor

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("user_id", pa.int32()),
            ("created_at", pa.timestamp("us")),
            ("status", pa.string()),
            ("amount", pa.decimal128(12, 2)),
            ("note", pa.string()),
            ("is_paid", pa.int8()),
        ]
    )
    rows_written = 0
    with source.connect(cursorclass=SSCursor) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {table}")
        with pq.ParquetWriter(out / "pymysql.parquet", schema) as writer:
            while rows := cur.fetchmany(50_000):
                arrays = [
                    pa.array(column, type=f.type) for column, f in zip(zip(*rows, strict=True), schema, strict=True)
                ]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows_written += len(rows)
    return {"rows": rows_written}


def child_main(args: list[str]) -> int:
    """``_child pandas|pymysql URL TABLE OUT``: one contestant's run, reporting to OUT/report.json."""
    kind, url, table, out = args
    run = {"pandas": child_pandas, "pymysql": child_pymysql}[kind]
    facts = run(Source.parse(url), table, Path(out))
    (Path(out) / "report.json").write_text(json.dumps(facts), encoding="utf-8")
    return 0


# ----------------------------------------------------------------------------------------------------- phases


@dataclass
class Outcome:
    """Everything measured in one benchmark run."""

    speed: dict[str, Result]  # pandas, pymysql, client, exporter: the same SELECT
    small: Result | None = None  # the exporter at the small and large sizes
    large: Result | None = None
    startup: Result | None = None  # `kpi export --help`: imports only, the floor under the exporter's figures
    aggregate_client: list[Result] = field(default_factory=list)  # --repeat runs each, alternating
    aggregate_exporter: list[Result] = field(default_factory=list)


def speed_phase(bench: Bench, table: str, rows: int, has_exporter: bool) -> dict[str, Result]:
    """The same SELECT through every contestant; a first, untimed client run warms the server's caches."""
    select = f"SELECT {COLUMNS} FROM {table}"
    print(f"\nspeed: {rows:,} rows × 7 columns", flush=True)
    bench.client(select, rows)
    speed = {
        "pandas": progress(bench.pandas(table, rows)),
        "pymysql": progress(bench.pymysql_arrow(table, rows)),
        "client": progress(bench.client(select, rows)),
    }
    speed["exporter"] = (
        progress(bench.exporter(table, rows)) if has_exporter else Result(EXPORTER, rows, error="not available yet")
    )
    return speed


def memory_phase(bench: Bench, small: tuple[str, int], large: tuple[str, int]) -> tuple[Result, Result, Result]:
    """The exporter's peak RSS at two sizes: it streams, so 40× the rows should cost no more memory.

    Also its start-up alone (``kpi export --help``), to tell what the imports cost from what streaming costs.
    """
    print(f"\nmemory: kpi export at {small[1]:,} and {large[1]:,} rows", flush=True)
    return (
        progress(bench.exporter_startup()),
        progress(bench.exporter(small[0], small[1], label=EXPORTER)),
        progress(bench.exporter(large[0], large[1], label=EXPORTER)),
    )


def aggregate_phase(
    bench: Bench, kpi: str, select: str, rows: int, repeat: int, has_exporter: bool
) -> tuple[list[Result], list[Result]]:
    """A server-bound KPI through the client and the exporter, alternating, ``repeat`` runs each."""
    print(f"\naggregate KPI over {rows:,} rows, best of {repeat}", flush=True)
    bench.client(select, rows)  # warm-up
    client: list[Result] = []
    exporter: list[Result] = []
    for _ in range(repeat):
        client.append(progress(bench.client(select, rows, label="aggregate, mariadb client", keep=True)))
        if has_exporter:
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
            f"  {result.contestant}: {speed or f'{m.seconds:.2f} s'}, "
            f"peak RSS {m.peak_rss_mib:,.0f} MB, CPU {m.cpu_seconds:.2f} s",
            flush=True,
        )
    return result


# ----------------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Target:
    """One target of the exporter's issue: what was measured, and whether it is met (None: not measured)."""

    text: str
    value: str
    met: bool | None

    def line(self) -> str:
        verdict = {True: "met", False: "**NOT met**", None: "not measured"}[self.met]
        return f"- {verdict}: {self.text}: {self.value}"


def targets(config: Config, outcome: Outcome) -> list[Target]:
    pandas, exporter = outcome.speed["pandas"], outcome.speed["exporter"]
    speedup = exporter.rows_per_second / pandas.rows_per_second if exporter.ok and pandas.ok else None
    exporter_runs = [r for r in (exporter, outcome.small, outcome.large) if r and r.measured and r.ok]
    peak = max((r.peak_rss_mib for r in exporter_runs), default=None)
    flat = flatness(outcome.small, outcome.large)
    aggregate = aggregate_ratio(outcome)
    return [
        Target(
            f"rows/s ≥ {TARGET_SPEEDUP_VS_PANDAS:g}× pandas",
            "—" if speedup is None else f"{speedup:.2f}×",
            None if speedup is None else speedup >= TARGET_SPEEDUP_VS_PANDAS,
        ),
        Target(
            f"peak RSS ≤ {TARGET_PEAK_RSS_MIB:g} MB at every size",
            "—" if peak is None else f"{peak:,.0f} MB",
            None if peak is None else peak <= TARGET_PEAK_RSS_MIB,
        ),
        Target(
            f"peak RSS flat within {TARGET_FLATNESS:.0%} from {config.small_rows:,} to {config.large_rows:,} rows",
            "—" if flat is None else f"{flat:.3f}",
            None if flat is None else abs(flat - 1) <= TARGET_FLATNESS,
        ),
        Target(
            f"aggregate KPI wall time ≤ {TARGET_AGGREGATE_VS_CLIENT:g}× the mariadb client",
            "—" if aggregate is None else f"{aggregate:.2f}×",
            None if aggregate is None else aggregate <= TARGET_AGGREGATE_VS_CLIENT,
        ),
    ]


def flatness(small: Result | None, large: Result | None) -> float | None:
    """Peak RSS at the large size over peak RSS at the small size; 1.0 is perfectly flat."""
    if small and large and small.ok and large.ok:
        return large.peak_rss_mib / small.peak_rss_mib
    return None


def aggregate_ratio(outcome: Outcome) -> float | None:
    """Best exporter run over best client run: the server's own noise (±10 % here) is all on the slow side."""
    client, exporter = best(outcome.aggregate_client), best(outcome.aggregate_exporter)
    return exporter.seconds / client.seconds if client and exporter else None


def cells(r: Result, *extra: str) -> str:
    """One Markdown table row; a run that failed or did not happen says so in the seconds column."""
    if not (r.measured and r.ok):
        return f"| {r.contestant} | {r.rows:,} | {r.error or 'not run'} | — |" + " — |" * (len(extra) + 1)
    middle = "".join(f" {value} |" for value in extra)
    return (
        f"| {r.contestant} | {r.rows:,} | {r.seconds:.2f} | {r.rows_per_second:,.0f} |{middle} {r.peak_rss_mib:,.0f} |"
    )


def speed_table(speed: dict[str, Result]) -> list[str]:
    base = speed["pandas"].rows_per_second if speed["pandas"].ok else 0.0
    lines = ["| contestant | rows | seconds | rows/s | × pandas | peak RSS MB |", "|---|--:|--:|--:|--:|--:|"]
    for r in speed.values():
        lines.append(cells(r, f"{r.rows_per_second / base:.2f}×" if base and r.ok else "—"))
    return lines


def memory_lines(outcome: Outcome) -> list[str]:
    runs = sorted(
        (r for r in (outcome.small, outcome.speed["exporter"], outcome.large) if r and r.ok), key=lambda r: r.rows
    )
    flat = flatness(outcome.small, outcome.large)
    if flat is None or outcome.small is None or outcome.large is None:
        return ["Memory flatness: not measured (`kpi export` did not run at both sizes)."]
    lines = ["| kpi export | rows | seconds | rows/s | peak RSS MB |", "|---|--:|--:|--:|--:|"]
    lines += [cells(r) for r in runs]
    small, large = outcome.small, outcome.large
    if outcome.startup and outcome.startup.ok:
        startup = outcome.startup
        lines += [
            "",
            f"Start-up alone (`kpi export --help`, imports only): {startup.seconds:.2f} s, "
            f"{startup.peak_rss_mib:,.0f} MB peak RSS — the floor under every kpi export figure.",
        ]
    lines += [
        "",
        f"Memory flatness: kpi export peak RSS {small.peak_rss_mib:,.0f} MB at {small.rows:,} rows and "
        f"{large.peak_rss_mib:,.0f} MB at {large.rows:,} rows: ratio {flat:.3f} (target within {TARGET_FLATNESS:.0%}).",
    ]
    return lines


def aggregate_line(config: Config, outcome: Outcome) -> str:
    client, exporter = best(outcome.aggregate_client), best(outcome.aggregate_exporter)
    query = AGGREGATE_SELECT.format(table=table_for(config.large_rows))
    text = f"Aggregate KPI `{query}`, best of {config.repeat}: "
    text += f"mariadb client {client.seconds:.2f} s" if client else "mariadb client failed"
    ratio = aggregate_ratio(outcome)
    if exporter and ratio is not None:
        text += (
            f", kpi export {exporter.seconds:.2f} s (peak RSS {exporter.peak_rss_mib:,.0f} MB, "
            f"CPU {exporter.cpu_seconds:.2f} s): ratio {ratio:.2f}× (target ≤ {TARGET_AGGREGATE_VS_CLIENT:g}×)."
        )
    else:
        text += ", kpi export not measured."
    for name, runs in (("client", outcome.aggregate_client), ("kpi export", outcome.aggregate_exporter)):
        if runs:
            text += f" Every {name} run: " + ", ".join(f"{r.seconds:.2f} s" if r.ok else "failed" for r in runs) + "."
    return text


def findings(outcome: Outcome) -> list[str]:
    """Correctness, cheaply: every row reached the Parquet files; and what DECIMAL became on the way."""
    lines = []
    runs = [*outcome.speed.values(), outcome.small, outcome.large, best(outcome.aggregate_exporter)]
    for r in runs:
        if r and r.ok and r.rows_written is not None:
            mark = "**MISMATCH**" if r.lost_rows else "ok"
            of = f"{r.expected_rows:,} groups (as the client)" if r.expected is not None else f"{r.rows:,} rows"
            lines.append(f"- {r.contestant}: Parquet holds {r.rows_written:,} of {of} ({mark})")
    for r in outcome.speed.values():
        lines += [f"- {name}: {value}" for name, value in r.facts.items() if "amount" in name]
    return lines


def broken(outcome: Outcome) -> list[str]:
    """Runs that failed or lost rows: not a slow result but a wrong one, so the benchmark exits 1."""
    runs = [*outcome.speed.values(), outcome.startup, outcome.small, outcome.large]
    runs += [*outcome.aggregate_client, *outcome.aggregate_exporter]
    failed = [f"{r.contestant} at {r.rows:,} rows: {r.error}" for r in runs if r and r.measured and r.error]
    lost = [f"{r.contestant} at {r.rows:,} rows: {r.rows_written:,} rows written" for r in runs if r and r.lost_rows]
    return failed + lost


def report(config: Config, version: str, outcome: Outcome, has_exporter: bool) -> str:
    """Markdown to paste into bench/README.md, ending with one line per target."""
    found = targets(config, outcome)
    missed = sum(t.met is False for t in found)
    unmeasured = sum(t.met is None for t in found)
    if not has_exporter:
        summary = "`kpi export` is not available yet: the exporter's figures are pending."
    elif missed or unmeasured:
        summary = f"{missed} target(s) NOT met, {unmeasured} not measured (a measurement: missing a target exits 0)."
    else:
        summary = "Every target met."
    return "\n".join(
        [
            "",
            f"## {os.cpu_count()} cores, MariaDB {version} on {config.source.host}, {time.strftime('%Y-%m-%d')}",
            "",
            f"`SELECT` of {config.speed_rows:,} rows × 7 columns → Parquet (the client: → /dev/null); "
            f"kpi export from {exporter_environment(config)}:",
            "",
            *speed_table(outcome.speed),
            "",
            *findings(outcome),
            "",
            *memory_lines(outcome),
            "",
            aggregate_line(config, outcome),
            "",
            "Targets of the exporter's issue:",
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
    sizes = {rows: ensure_table(config.source, rows, regenerate=config.regenerate) for rows in config.sizes}
    speed_table_name, small, large = (sizes[config.speed_rows], sizes[config.small_rows], sizes[config.large_rows])

    bench = Bench(config, scratch)
    for rows, table in sizes.items():
        bench.write_kpi(table, ROW_KPI.format(name=table, rows=rows, columns=COLUMNS, table=table))
    aggregate_kpi = "bench_agg_" + large.removeprefix("bench_rows_")
    aggregate_select = AGGREGATE_SELECT.format(table=large)
    bench.write_kpi(
        aggregate_kpi, AGGREGATE_KPI.format(name=aggregate_kpi, rows=config.large_rows, select=aggregate_select)
    )
    bench.check_kpis()
    has_exporter = bench.exporter_available()
    if not has_exporter:
        print("`kpi export` does not exist yet: its figures stay empty and its targets unmeasured", flush=True)

    outcome = Outcome(speed=speed_phase(bench, speed_table_name, config.speed_rows, has_exporter))
    if has_exporter:
        outcome.startup, outcome.small, outcome.large = memory_phase(
            bench, (small, config.small_rows), (large, config.large_rows)
        )
    outcome.aggregate_client, outcome.aggregate_exporter = aggregate_phase(
        bench, aggregate_kpi, aggregate_select, config.large_rows, config.repeat, has_exporter
    )
    print(report(config, version, outcome, has_exporter), flush=True)
    return finish(started, broken(outcome))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return child_main(argv[1:])
    config = parse_args(argv)
    return in_scratch("kpi-bench-", config.keep, lambda scratch: run(config, scratch))


if __name__ == "__main__":
    sys.exit(main())
