"""A year's backfill, one source query per month, against a one-query-per-day loop — ``make bench``.

``python -m bench.backfill_bench`` (``--quick`` for two months instead of a year) generates the demo shop on
MariaDB — the database ``kpi_bench_backfill`` with ``pipeline/demo/schema.sql``, about 500 orders a day over
2024, filled on the server from the ``SEQUENCE`` engine — and exports and loads the example KPI
``queries/daily_sales.sql`` over the same 365 JST days twice, each into a fresh lake and DuckDB warehouse:

* ``kpi backfill daily_sales --start … --end … --parallel 1``: one source query per calendar month;
* one query per day, as a team scripts it with this project's library in one process: for each day
  ``export(kpi, [interval], …)`` then ``load_manifest(…)``.

Each run is a fresh process measured by ``bench/_rss.py`` (wall time and its own peak RSS). The source queries
each run sends are counted by the server, not taken from the plan: each run connects as a login of its own
(``kpi_bench_…``, SELECT on the database, dropped afterwards), and for the run's duration the server writes its
general log to ``mysql.general_log`` (``log_output = 'TABLE'``, ``general_log = 1``; both restored afterwards,
even when the run fails, and the table emptied again if it was empty and unused before). The login's ``Query``
rows are then counted by statement kind: data queries (``SELECT``/``WITH``), ``EXPLAIN``s, and the rest (the
session's ``SET``s and transaction statements). Both warehouses must then hold, per day, the orders and sales of
a direct aggregate on MariaDB.

Why not ``Com_select``, which this benchmark used to read: on MariaDB 10.11 an ``EXPLAIN SELECT …`` increments it
as a SELECT does, and ``kpi backfill`` sends one EXPLAIN per source query (its EXPLAIN guard,
``pipeline/sources/explain.py``), so the counter doubles — 24 for a backfill of 12 queries — and it is server-wide,
so another client's SELECTs land in it too. The target is about data queries (what reads the source's rows; an
EXPLAIN reads none): it is judged on the data queries the general log holds, and the EXPLAINs are reported beside
them ("12 SELECT + 12 EXPLAIN").

The general log is a global switch: while a run is logged, every other client's statements are logged too (and
``kpi clone``'s masking sessions switch their own logging off, as they do whenever the log goes to a table). The
windows are the runs themselves, about a minute in all.

It prints Markdown to paste into ``bench/README.md`` and says whether the target of the backfill's issue is
met: at most 13 source queries for 365 days. It is a measurement, not a test: the exit code is 0 even when the
target is missed, and 1 only when a run failed or a warehouse does not hold the source's rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pymysql

from bench._harness import MeasuredRun, figures, finish, in_scratch, markdown_table, times
from bench._rss import Measured, measure
from bench.export_bench import Source

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = "mysql://root@127.0.0.1:3306/kpi_bench_backfill"
KPI_NAME = "daily_sales"
KPI_FILE = ROOT / "queries" / f"{KPI_NAME}.sql"
SCHEMA_FILE = ROOT / "pipeline" / "demo" / "schema.sql"

# The target of the backfill's issue: a 365-day backfill of an incremental KPI issues at most 13 source queries.
TARGET_DAYS = 365
TARGET_QUERIES = 13

FIRST_DAY = date(2024, 1, 1)
DAYS, QUICK_DAYS = 365, 60  # 2024-01-01 … 2024-12-30; --quick: 2024-01-01 … 2024-02-29
USERS = 5_000
ORDERS = 183_000  # 500 a day over the 366 days of 2024
# Deterministic values from the sequence number. `created_at` is naive Japan wall-clock time, as in the demo
# shop (daily_sales reads it in Asia/Tokyo), spread over 2024 by a multiplicative step (a prime, coprime to the
# 31,622,400 seconds of the year, so no two orders share a second and neighbouring ids are far apart in time).
# Bump GENERATOR when this changes, so that old tables are rebuilt.
USERS_FILL = f"""
INSERT INTO users (id, email, country, plan, created_at)
SELECT seq,
       CONCAT('user', seq, '@example.com'),
       ELT(1 + seq % 10, 'JP', 'JP', 'JP', 'JP', 'JP', 'JP', 'JP', 'US', 'KR', 'TW'),
       ELT(1 + (seq * 31) % 10, 'free', 'free', 'free', 'free', 'free', 'free', 'standard', 'standard',
           'standard', 'premium'),
       TIMESTAMP '2022-01-01 00:00:00' + INTERVAL ((seq * 104729) % 63158400) SECOND
FROM seq_1_to_{USERS}
"""
ORDERS_FILL = f"""
INSERT INTO orders (id, user_id, status, amount, created_at)
SELECT seq,
       1 + (seq * 7919) % {USERS},
       ELT(1 + seq % 10, 'paid', 'paid', 'paid', 'paid', 'paid', 'paid', 'paid', 'refunded', 'refunded',
           'cancelled'),
       (50000 + (seq * 7907) % 4950000) / 100,
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL ((seq * 104729) % 31622400) SECOND
FROM seq_1_to_{ORDERS}
"""
# An OLTP orders table has an index on its time column; without one every daily query of the loop would scan
# the whole table, which would flatter the backfill.
ORDERS_INDEX = "CREATE INDEX orders_created_at ON orders (created_at)"
GENERATOR = 1
REFERENCE_SQL = (
    "SELECT DATE(created_at), COUNT(*), SUM(amount), COUNT(DISTINCT status) FROM orders"
    " WHERE created_at >= %s AND created_at < %s GROUP BY 1 ORDER BY 1"
)
WAREHOUSE_SQL = f"SELECT sales_date, SUM(orders), SUM(sales), COUNT(*) FROM {KPI_NAME} GROUP BY 1 ORDER BY 1"

BACKFILL = "**kpi backfill** `--parallel 1`"
LOOP = "one query per day: `export` + `load_manifest` in a loop"

# The loop a team writes with the library: one process, one export (one source query) and one load per day.
LOOP_SCRIPT = '''\
"""One query per day: export each day of the range with the library, then load it (kpi backfill's baseline)."""

import json
import os
import sys
from datetime import datetime
from pathlib import Path

from pipeline import catalog
from pipeline.core.intervals import intervals_between
from pipeline.core.lake import manifest_key
from pipeline.export import export
from pipeline.load import load_manifest
from pipeline.sources import open_source
from pipeline.stores import open_store
from pipeline.warehouses import open_warehouse

first, last, report = sys.argv[1:]
kpi = catalog.load_one([Path(os.environ["KPI_QUERIES"])], "daily_sales")
source = open_source(os.environ["KPI_SOURCE"])
store = open_store(os.environ["KPI_LAKE"])
warehouse = open_warehouse(os.environ["KPI_WAREHOUSE"])
exports = loaded = rows = 0
try:
    for interval in intervals_between(
        kpi.grain, kpi.zone, datetime.fromisoformat(first), datetime.fromisoformat(last), kpi.first_weekday
    ):
        (manifest,) = export(kpi, [interval], source=source, store=store)
        exports += 1
        _, result = load_manifest(store, manifest_key(kpi, interval, manifest.run_id), warehouse)
        loaded += result.loaded
        rows += manifest.rows
finally:
    warehouse.close()
with open(report, "w", encoding="utf-8") as out:
    json.dump({"exports": exports, "loaded": loaded, "rows": rows}, out)
print(f"{exports} exports, {loaded} partitions loaded, {rows} rows")
'''


# ----------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    """The range and switches of one benchmark run."""

    source: Source
    days: int
    keep: bool
    regenerate: bool
    kpi: str | None = None  # the `kpi` executable measured; None: the one beside this Python

    @property
    def first(self) -> date:
        return FIRST_DAY

    @property
    def last(self) -> date:
        return FIRST_DAY + timedelta(days=self.days - 1)

    @property
    def months(self) -> int:
        """Calendar months the range touches: the fewest queries a month-batched backfill can send."""
        return (self.last.year - self.first.year) * 12 + self.last.month - self.first.month + 1


def parse_args(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.backfill_bench",
        description="kpi backfill of a year of daily_sales against a one-query-per-day loop, on MariaDB.",
        epilog="The demo shop is generated once in the database of --source and reused; a full run takes "
        "about a minute.",
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"MariaDB/MySQL URL (default {DEFAULT_SOURCE})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DAYS} days instead of {DAYS}, to try it")
    parser.add_argument("--keep", action="store_true", help="keep the lakes, warehouses and logs")
    parser.add_argument("--regenerate", action="store_true", help="drop and rebuild the demo shop's tables")
    parser.add_argument(
        "--kpi",
        default=None,
        help="the kpi executable to measure (default: this venv's); the loop runs on the Python beside it",
    )
    args = parser.parse_args(argv)
    return Config(
        source=Source.parse(args.source),
        days=QUICK_DAYS if args.quick else DAYS,
        keep=args.keep,
        regenerate=args.regenerate,
        kpi=args.kpi,
    )


# ------------------------------------------------------------------------------------------------------- data


def schema_statements() -> list[str]:
    """The ``CREATE TABLE`` statements of the demo shop's schema, comments dropped."""
    text = re.sub(r"--[^\n]*", "", SCHEMA_FILE.read_text(encoding="utf-8"))
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def ensure_shop(source: Source, *, regenerate: bool) -> str:
    """Create the database and fill the demo shop unless ``bench_meta`` says it is complete; return the version.

    The mark is written only after the last table is filled, so an interrupted fill is rebuilt.
    """
    with source.connect(database=False, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{source.database}`")
        cur.execute(f"USE `{source.database}`")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS bench_meta ("
            " table_name VARCHAR(64) PRIMARY KEY, row_count BIGINT NOT NULL, generator INT NOT NULL)"
        )
        cur.execute("SELECT VERSION()")
        row = cur.fetchone()
        version = str(row[0]) if row else "?"
        cur.execute(
            "SELECT m.table_name, m.row_count, m.generator FROM bench_meta m JOIN information_schema.TABLES t"
            " ON t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = m.table_name ORDER BY 1"
        )
        if set(cur.fetchall()) == {("orders", ORDERS, GENERATOR), ("users", USERS, GENERATOR)} and not regenerate:
            return version
        print(f"generating the demo shop in {source.database}: {USERS:,} users, {ORDERS:,} orders …", flush=True)
        started = time.perf_counter()
        cur.execute("DELETE FROM bench_meta")
        cur.execute("DROP TABLE IF EXISTS orders, users")
        for statement in schema_statements():
            cur.execute(statement)
        cur.execute(USERS_FILL)
        cur.execute(ORDERS_FILL)
        cur.execute(ORDERS_INDEX)
        cur.execute("ANALYZE TABLE users, orders")
        cur.fetchall()
        cur.execute(
            "INSERT INTO bench_meta VALUES ('users', %s, %s), ('orders', %s, %s)", (USERS, GENERATOR, ORDERS, GENERATOR)
        )
        print(f"  ready in {time.perf_counter() - started:.1f} s", flush=True)
    return version


Totals = dict[str, tuple[int, Decimal, int]]  # day → (orders, sales, status groups)


def source_totals(config: Config) -> Totals:
    """Orders, sales and status groups per day, straight from MariaDB (it also warms the server's caches)."""
    end = config.last + timedelta(days=1)
    with config.source.connect() as conn, conn.cursor() as cur:
        cur.execute(REFERENCE_SQL, (f"{config.first} 00:00:00", f"{end} 00:00:00"))
        return {str(day): (int(n), Decimal(sales), int(groups)) for day, n, sales, groups in cur.fetchall()}


def warehouse_totals(path: Path) -> Totals:
    """The same figures from a contestant's DuckDB warehouse file."""
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute(WAREHOUSE_SQL).fetchall()
    return {str(day): (int(n), Decimal(sales), int(groups)) for day, n, sales, groups in rows}


# ------------------------------------------------------------------------------- statements, as the server saw them

# A statement's leading comments, whitespace and opening parentheses, before its first keyword.
_LEADING = re.compile(r"(?:\s+|/\*.*?\*/|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|\()*", re.DOTALL)
_DATA_QUERY = {"SELECT", "WITH", "VALUES", "TABLE"}


@dataclass(frozen=True)
class Statements:
    """The statements one login sent, as the server's general log holds them: data queries (they read the
    source's rows), EXPLAINs (they read none), and the rest by first keyword (``SET``, ``START``, ``COMMIT`` …)."""

    selects: int = 0
    explains: int = 0
    other: tuple[tuple[str, int], ...] = ()

    def __str__(self) -> str:
        return f"{self.selects} SELECT + {self.explains} EXPLAIN"

    def other_text(self) -> str:
        return ", ".join(f"{n:,} {keyword}" for keyword, n in self.other) or "none"


def first_keyword(sql: str) -> str:
    """The statement's first keyword, upper case, after leading comments and parentheses ('' if none)."""
    match = re.match(r"[A-Za-z]+", sql[_LEADING.match(sql).end() :])  # type: ignore[union-attr]
    return match.group(0).upper() if match else ""


def statement_kinds(statements: Iterable[str]) -> Statements:
    """Count ``statements`` (the SQL of the general log's ``Query`` rows) by kind."""
    kinds = Counter(first_keyword(sql) for sql in statements)
    selects = sum(kinds.pop(keyword, 0) for keyword in _DATA_QUERY)
    explains = kinds.pop("EXPLAIN", 0)
    return Statements(selects, explains, tuple(sorted(kinds.items(), key=lambda item: (-item[1], item[0]))))


@dataclass
class Logged:
    """A login of one run's own, whose statements the server logs; ``seen`` is filled when the window closes."""

    source: Source
    user: str
    password: str
    seen: Statements | None = None

    @property
    def url(self) -> str:
        s = self.source
        return f"mysql://{self.user}:{self.password}@{s.host}:{s.port}/{s.database}"


@contextmanager
def logged_login(source: Source) -> Iterator[Logged]:
    """A login of its own (SELECT on ``source``'s database) and the general log to ``mysql.general_log`` while the
    block runs; on the way out, even on failure: the log's settings as they were, the login's ``Query`` rows
    counted into ``seen``, the table emptied again if it was empty and unused before, the login dropped."""
    login = Logged(source, f"kpi_bench_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    with source.connect(database=False, autocommit=True) as admin, admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.general_log, @@GLOBAL.log_output")
        was_on, output = cur.fetchone() or (0, "FILE")
        cur.execute("SELECT COUNT(*) FROM mysql.general_log")
        (held,) = cur.fetchone() or (0,)
        unused = int(held) == 0 and not (int(was_on) and "TABLE" in str(output).upper())
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (login.user, login.password))
        try:
            cur.execute(f"GRANT SELECT ON `{source.database}`.* TO %s@'%%'", (login.user,))
            cur.execute("SET GLOBAL log_output = 'TABLE'")
            cur.execute("SET GLOBAL general_log = 1")
        except pymysql.MySQLError:
            cur.execute("SET GLOBAL general_log = %s", (int(was_on),))
            cur.execute("SET GLOBAL log_output = %s", (str(output),))
            cur.execute("DROP USER IF EXISTS %s@'%%'", (login.user,))
            raise
    try:
        yield login
    finally:
        with source.connect(database=False, autocommit=True) as admin, admin.cursor() as cur:
            try:
                cur.execute("SET GLOBAL general_log = %s", (int(was_on),))
                cur.execute("SET GLOBAL log_output = %s", (str(output),))
                cur.execute(
                    "SELECT argument FROM mysql.general_log"
                    " WHERE command_type = 'Query' AND SUBSTRING_INDEX(user_host, '[', 1) = %s",
                    (login.user,),
                )
                login.seen = statement_kinds(str(sql) for (sql,) in cur.fetchall())
                if unused:
                    cur.execute("TRUNCATE TABLE mysql.general_log")
            finally:
                cur.execute("DROP USER IF EXISTS %s@'%%'", (login.user,))


# ------------------------------------------------------------------------------------------------ contestants


@dataclass
class Result(MeasuredRun):
    """One measured run of one contestant: its cost, the queries it sent, and what its warehouse holds."""

    contestant: str
    measured: Measured | None = None
    seen: Statements | None = None  # what the server's general log holds of the run's login
    sent: int | None = None  # the queries the contestant meant to send: the backfill's plan, the loop's exports
    partitions: int | None = None
    load: float | None = None  # the 1-minute load average when the run started
    totals: Totals | None = None
    error: str | None = None
    mismatch: list[str] = field(default_factory=list)


class Bench:
    """Runs the contestants in fresh processes, each with its own lake and warehouse in one scratch folder."""

    def __init__(self, config: Config, scratch: Path) -> None:
        self.config = config
        self.scratch = scratch
        self.queries = scratch / "queries"
        self.queries.mkdir()
        shutil.copy(KPI_FILE, self.queries / KPI_FILE.name)
        default = shutil.which("kpi", path=str(Path(sys.executable).parent)) or "kpi"
        self.kpi_command = str(Path(config.kpi).absolute()) if config.kpi else default
        self.python = str(Path(self.kpi_command).parent / "python") if config.kpi else sys.executable
        self.loop_script = scratch / "loop_per_day.py"
        self.loop_script.write_text(LOOP_SCRIPT, encoding="utf-8")

    def environment(self, folder: Path, source_url: str | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "KPI_QUERIES": str(self.queries),
            "KPI_SOURCE": source_url or self.config.source.url,
            "KPI_LAKE": str(folder / "lake"),
            "KPI_WAREHOUSE": f"duckdb:///{folder / 'warehouse.duckdb'}",
        }

    def _counted(self, result: Result, argv: list[str], folder: Path) -> Path:
        """Run ``argv`` measured, as a login of its own whose statements the server logs; return its output."""
        out, log = folder.with_suffix(".out"), folder.with_suffix(".log")
        with logged_login(self.config.source) as login:
            env = self.environment(folder, login.url)
            result.load = os.getloadavg()[0]
            result.measured = measure(argv, stdout=out, stderr=log, env=env, cwd=folder)
        result.seen = login.seen
        if result.measured.returncode != 0:
            self._failed(result, out, log)
        return out

    def _failed(self, result: Result, *logs: Path) -> None:
        result.error = f"exit {result.measured.returncode if result.measured else '?'}"
        for log in logs:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
            print(f"  {result.contestant} failed ({result.error}); last lines of {log}:", flush=True)
            print(textwrap.indent("\n".join(tail) or "(no output)", "    "), flush=True)

    def planned_queries(self) -> int | None:
        """``kpi backfill --dry-run --json``: the queries the backfill means to send (it sends none)."""
        folder = self.scratch / "plan"
        folder.mkdir()
        argv = [self.kpi_command, "backfill", KPI_NAME, *self.range_options(), "--dry-run", "--json"]
        plan = subprocess.run(argv, env=self.environment(folder), cwd=folder, capture_output=True, text=True)
        if plan.returncode != 0:
            print(f"  kpi backfill --dry-run failed:\n{textwrap.indent(plan.stdout + plan.stderr, '    ')}")
            return None
        return int(json.loads(plan.stdout)["queries"])

    def range_options(self) -> list[str]:
        return ["--start", str(self.config.first), "--end", str(self.config.last)]

    def backfill(self) -> Result:
        result = Result(BACKFILL, sent=self.planned_queries())
        folder = self.scratch / "backfill"
        folder.mkdir()
        argv = [self.kpi_command, "backfill", KPI_NAME, *self.range_options(), "--parallel", "1", "--json"]
        out = self._counted(result, argv, folder)
        if result.ok:
            summary = json.loads(out.read_text(encoding="utf-8"))
            result.partitions = sum(int(line["partitions"]) for line in summary["kpis"])
            result.totals = warehouse_totals(folder / "warehouse.duckdb")
        return result

    def loop(self) -> Result:
        result = Result(LOOP)
        folder = self.scratch / "loop"
        folder.mkdir()
        report = folder / "report.json"
        argv = [self.python, str(self.loop_script), str(self.config.first), str(self.config.last), str(report)]
        self._counted(result, argv, folder)
        if result.ok:
            facts = json.loads(report.read_text(encoding="utf-8"))
            result.sent, result.partitions = int(facts["exports"]), int(facts["loaded"])
            result.totals = warehouse_totals(folder / "warehouse.duckdb")
        return result


def progress(result: Result) -> Result:
    if result.measured and result.ok:
        m = result.measured
        print(
            f"  {result.contestant}: {result.partitions} partitions, {result.seen} logged by the server, "
            f"{m.seconds:.2f} s, {figures(m)}, load {result.load:.2f}",
            flush=True,
        )
    return result


def compare(result: Result, reference: Totals, days: int) -> None:
    """The warehouse must hold, for every day of the range, the source's orders, sales and status groups."""
    if not result.ok or result.totals is None:
        return
    held = result.totals
    if len(reference) != days:
        result.mismatch.append(f"the source has orders on {len(reference)} of {days} days")
    for day in sorted(set(reference) | set(held)):
        want, got = reference.get(day), held.get(day)
        if want != got:
            result.mismatch.append(f"{day}: warehouse {got or 'nothing'}, source {want or 'nothing'}")
    if result.partitions != days:
        result.mismatch.append(f"{result.partitions} partitions loaded of {days}")


# ----------------------------------------------------------------------------------------------------- report


def exporter_environment(bench: Bench) -> str:
    """Which installation ran: NumPy (pulled in by pyarrow when installed) adds about 50 MB of peak RSS."""
    probe = subprocess.run([bench.python, "-c", "import numpy"], capture_output=True, check=False)
    numpy = "with NumPy" if probe.returncode == 0 else "without NumPy"
    return f"`{Path(bench.python).parent.parent.name}` ({numpy})"


def table(results: list[Result]) -> list[str]:
    base = results[0].seconds if results[0].ok else float("nan")
    table = []
    for r in results:
        if not (r.measured and r.ok):
            table.append([r.contestant, "—", "—", "—", r.error or "not run", "—", "—", "—"])
            continue
        m = r.measured
        sent = "?" if r.sent is None else str(r.sent)
        table.append(
            [
                r.contestant,
                str(r.partitions),
                sent,
                "?" if r.seen is None else str(r.seen),
                f"{m.seconds:.2f}",
                f"{m.peak_rss_mib:,.0f}",
                f"{m.cpu_seconds:.2f}",
                times(m.seconds / base),
            ]
        )
    columns = ["contestant", "partitions>", "queries planned>", "server's general log>", "seconds>", "peak RSS MB>"]
    return markdown_table([*columns, "CPU s>", "× backfill>"], table)


def findings(results: list[Result], reference: Totals) -> list[str]:
    orders = sum(n for n, _, _ in reference.values())
    sales = sum((s for _, s, _ in reference.values()), Decimal(0))
    lines = []
    for r in results:
        if r.ok and r.totals is not None:
            held = sum(n for n, _, _ in r.totals.values())
            verdict = "**MISMATCH**: " + "; ".join(r.mismatch[:3]) if r.mismatch else "ok"
            lines.append(
                f"- {r.contestant}: the warehouse holds {len(r.totals)} days, {held:,} orders; per day equal to "
                f"the source's {len(reference)} days, {orders:,} orders, {sales:,.2f} JPY of sales ({verdict})"
            )
        if r.ok and r.seen is not None:
            planned = "" if r.sent is None else f" ({r.sent} planned)"
            verdict = "as planned" if r.sent == r.seen.selects else "**not as planned**"
            lines.append(
                f"- {r.contestant}: the server logged {r.seen.selects} data queries{planned}, {verdict}; "
                f"{r.seen.explains} EXPLAINs; other statements: {r.seen.other_text()}"
            )
    return lines


def target_line(config: Config, backfill: Result) -> str:
    """Judged on data queries as the server logged them; the EXPLAINs (no row read) are said beside them."""
    if not backfill.ok or backfill.seen is None:
        return f"- not measured: ≤ {TARGET_QUERIES} source queries for {TARGET_DAYS} days: the backfill failed"
    queries, explains = backfill.seen.selects, backfill.seen.explains
    if config.days != TARGET_DAYS:
        fewest = "met" if queries <= config.months else "**NOT met**"
        return (
            f"- not measured: ≤ {TARGET_QUERIES} source queries for {TARGET_DAYS} days (--quick covers "
            f"{config.days} days); {fewest}: ≤ one data query per calendar month, {queries} for {config.months} "
            f"(and {explains} EXPLAINs)"
        )
    verdict = "met" if queries <= TARGET_QUERIES else "**NOT met**"
    planned = "" if backfill.sent is None else f"; {backfill.sent} planned by `kpi backfill --dry-run`"
    return (
        f"- {verdict}: ≤ {TARGET_QUERIES} source queries for {TARGET_DAYS} days: {queries} data queries in the "
        f"server's general log (and {explains} EXPLAINs, which read no rows{planned})"
    )


def report(config: Config, version: str, bench: Bench, results: list[Result], reference: Totals) -> str:
    backfill, loop = results
    ratio = (
        f"{loop.seconds / backfill.seconds:.2f}× ({loop.seconds:.2f} s / {backfill.seconds:.2f} s)"
        if backfill.ok and loop.ok
        else "—"
    )
    orders = sum(n for n, _, _ in reference.values())
    loads = ", ".join(f"{r.load:.2f}" for r in results if r.load is not None)
    return "\n".join(
        [
            "",
            f"## {os.cpu_count()} cores, MariaDB {version} on {config.source.host}, {time.strftime('%Y-%m-%d')}",
            "",
            f"`{KPI_NAME}` over {config.days} JST days, {config.first} … {config.last} ({orders:,} orders of "
            f"`{config.source.database}.orders`, indexed on `created_at`), each contestant into a fresh lake and "
            f"DuckDB warehouse, from {exporter_environment(bench)}. Queries planned: the backfill's plan "
            "(`--dry-run`), the loop's `export` calls; the server's general log: the statements of the run's own "
            "login, data queries and EXPLAINs apart.",
            "",
            *table(results),
            "",
            f"Load average (1 min) at the start of each run: {loads or '—'} on {os.cpu_count()} cores.",
            "",
            *findings(results, reference),
            "",
            f"Wall time, one query per day / kpi backfill: {ratio}.",
            "",
            "Target of the backfill's issue:",
            "",
            target_line(config, backfill),
        ]
    )


def broken(results: list[Result]) -> list[str]:
    """Runs that failed or whose warehouse differs from the source: a wrong result, so the benchmark exits 1."""
    failed = [f"{r.contestant}: {r.error}" for r in results if r.error]
    wrong = [f"{r.contestant}: {line}" for r in results for line in r.mismatch]
    return failed + wrong


# ------------------------------------------------------------------------------------------------------- main


def run(config: Config, scratch: Path) -> int:
    started = time.perf_counter()
    version = ensure_shop(config.source, regenerate=config.regenerate)
    print(
        f"kpi backfill benchmark: {os.cpu_count()} cores, Python {platform.python_version()}, MariaDB {version} "
        f"at {config.source.host}:{config.source.port}; {config.days} days; scratch {scratch}",
        flush=True,
    )
    reference = source_totals(config)  # before the runs: it warms the server's caches for both
    bench = Bench(config, scratch)
    print(f"\n{KPI_NAME}, {config.first} … {config.last}", flush=True)
    results = [progress(bench.backfill()), progress(bench.loop())]
    for result in results:
        compare(result, reference, config.days)
    print(report(config, version, bench, results, reference), flush=True)
    return finish(started, broken(results))


def main(argv: list[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    return in_scratch("kpi-backfill-bench-", config.keep, lambda scratch: run(config, scratch))


if __name__ == "__main__":
    sys.exit(main())
