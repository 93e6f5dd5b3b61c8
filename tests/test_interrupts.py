"""SIGINT and SIGTERM stop kpi backfill, run and export cleanly: real processes against the real MariaDB, with the
lake in a folder and on moto's S3.

Each case waits for an observable state — the query in the server's processlist, a multipart upload open on S3, a
temp file being written — then signals the process and checks what the README promises: the process ends within
:data:`BOUND` seconds with 130 or 143, the summary says what finished, the server holds no query of it, every run
folder left in the lake has its manifest, no multipart upload remains, and a rerun does only what is missing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import boto3
import duckdb
import pytest

from pipeline import interrupts
from pipeline.cli.app import exit_code
from tests.conftest import MySqlServer
from tests.exporting import DAILY, make_kpi
from tests.relay import Relay

pytestmark = pytest.mark.mysql

BOUND = 10.0  # seconds from the signal to the end of the process: "stops within seconds"
KPI = str(Path(sys.executable).parent / "kpi")
SLOW_WEIGHT = 8000  # February's orders join 8000 × 8000 pad rows each: ~10⁹ rows, a minute of server time
WIDTH = 600  # February's two events become 600 × 600 rows each: a 12 MB Parquet file per day, a multipart upload

SLOW_SQL = """
SELECT DATE(o.created_at) AS day, COUNT(*) AS orders
FROM orders o JOIN pad a ON a.id <= o.weight JOIN pad b ON b.id <= o.weight
WHERE o.created_at >= :start AND o.created_at < :end
GROUP BY 1
"""
WIDE_HEADER = """
grain: day
time_column: day
start: 2024-01-01
columns:
  day:     {type: DATE}
  id:      {type: INT64}
  payload: {type: STRING}
"""
WIDE_SQL = """
SELECT DATE(e.created_at) AS day, e.id * 100000000 + a.id * 10000 + b.id AS id,
       SHA2(CONCAT(e.id, '-', a.id, '-', b.id), 256) AS payload
FROM events e JOIN pad a ON a.id <= e.width JOIN pad b ON b.id <= e.width
WHERE e.created_at >= :start AND e.created_at < :end
"""
SHOP = [
    "CREATE TABLE digits (n INT PRIMARY KEY)",
    "INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)",
    "CREATE TABLE pad (id INT PRIMARY KEY)",
    "INSERT INTO pad SELECT a.n * 1000 + b.n * 100 + c.n * 10 + d.n + 1 FROM digits a, digits b, digits c, digits d",
    # An order every 3 hours from 2024-01-30 to 2024-02-02: 8 a day.
    "CREATE TABLE orders (id INT PRIMARY KEY, created_at DATETIME NOT NULL, weight INT NOT NULL)",
    "INSERT INTO orders SELECT a.n * 10 + b.n, TIMESTAMP '2024-01-30 00:30:00' + INTERVAL (3 * (a.n * 10 + b.n)) HOUR,"
    " 1 FROM digits a, digits b WHERE a.n * 10 + b.n < 32",
    "CREATE TABLE events (id INT PRIMARY KEY, created_at DATETIME NOT NULL, width INT NOT NULL)",
    f"INSERT INTO events VALUES (1, '2024-01-31 12:00', 3), (2, '2024-02-01 12:00', {WIDTH}),"
    f" (3, '2024-02-02 12:00', {WIDTH})",
]


def run_sql(db: MySqlServer, *statements: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    with db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
            rows = list(cursor.fetchall())
    return rows


@pytest.fixture(scope="module")
def shop(mysql_server: MySqlServer) -> Iterator[MySqlServer]:
    name = f"kpi_stop_{uuid.uuid4().hex[:10]}"
    run_sql(mysql_server, f"CREATE DATABASE `{name}`")
    db = replace(mysql_server, database=name)
    try:
        run_sql(db, *SHOP)
        yield db
    finally:
        for query, *_ in queries_of(db, ""):  # a failed test's orphan would hold the DROP for a minute
            run_sql(mysql_server, f"KILL QUERY {query}")
        run_sql(mysql_server, f"DROP DATABASE IF EXISTS `{name}`")


def queries_of(db: MySqlServer, marker: str) -> list[tuple[Any, ...]]:
    """The statements running on the server whose text holds ``marker`` (never this look-up itself)."""
    with db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT ID, STATE, TIME FROM information_schema.PROCESSLIST WHERE DB = %s AND COMMAND = 'Query' "
            "AND INFO LIKE %s AND INFO NOT LIKE '%%PROCESSLIST%%'",
            (db.database, f"%{marker}%"),
        )
        return list(cursor.fetchall())


@dataclass
class Project:
    folder: Path
    db: MySqlServer
    lake: str  # a folder, or s3://bucket/prefix
    bucket: str = ""

    @property
    def warehouse(self) -> Path:
        return self.folder / "wh.duckdb"

    def loads(self) -> dict[str, int]:
        with duckdb.connect(str(self.warehouse), read_only=True) as db:
            rows = db.execute('SELECT "partition", COUNT(*) FROM _kpi_loads GROUP BY 1 ORDER BY 1').fetchall()
        return {str(partition): int(count) for partition, count in rows}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as db:
            return db.execute(sql).fetchall()

    def runs_without_manifest(self) -> list[str]:
        """Run folders (or S3 run prefixes) holding anything but no ``_manifest.json``, and leftover temp files
        (batch indexes, under ``<kpi>/_batches/``, are no run folders)."""
        if not self.bucket:
            lake = Path(self.lake)
            folders = [p for p in lake.glob("*/*/run=*") if p.parent.name != "_batches"]
            bad = [str(p) for p in folders if not (p / "_manifest.json").is_file()]
            return bad + [str(p) for p in lake.rglob(".*")]
        listed = boto3.client("s3").list_objects_v2(Bucket=self.bucket).get("Contents", [])
        keys = [o["Key"] for o in listed if "/_batches/" not in o["Key"]]
        runs = {key.rsplit("/", 1)[0] for key in keys}
        return sorted(run for run in runs if f"{run}/_manifest.json" not in keys)

    def open_uploads(self) -> list[str]:
        if not self.bucket:
            return []
        uploads = boto3.client("s3").list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [str(upload["Key"]) for upload in uploads]


@pytest.fixture(params=["local", "s3"])
def project(
    request: pytest.FixtureRequest, tmp_path: Path, shop: MySqlServer, monkeypatch: pytest.MonkeyPatch
) -> Project:
    run_sql(shop, f"UPDATE orders SET weight = IF(created_at >= '2024-02-01', {SLOW_WEIGHT}, 1)")
    make_kpi(tmp_path / "queries", "slow", DAILY, SLOW_SQL)
    make_kpi(tmp_path / "queries", "wide", WIDE_HEADER, WIDE_SQL)
    lake, bucket = str(tmp_path / "lake"), ""
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        lake = f"s3://{bucket}/lake"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KPI_SOURCE", f"mysql://{shop.user}@{shop.host}:{shop.port}/{shop.database}")
    monkeypatch.setenv("KPI_LAKE", lake)
    monkeypatch.setenv("KPI_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    for name in ("KPI_QUERIES", "KPI_ENV", "KPI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return Project(tmp_path, shop, lake, bucket)


def wait_for(what: str, ready: Callable[[], bool], process: subprocess.Popen[str], deadline: float = 60) -> None:
    """Poll an observable state until it holds; fail at once if the process ended first."""
    end = time.monotonic() + deadline
    while not ready():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the process ended (exit {process.returncode}) before {what}:\n{err}")
        if time.monotonic() > end:
            process.kill()
            pytest.fail(f"no {what} within {deadline} s")
        time.sleep(0.01)


def stop(process: subprocess.Popen[str], signum: int) -> tuple[float, str, str]:
    """Signal the process; its exit within BOUND seconds, and what it printed."""
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running {BOUND} s after {signal.Signals(signum).name}:\n{err}")
    return time.monotonic() - sent, out, err


def mid_query(project: Project) -> Callable[[], bool]:
    return lambda: bool(queries_of(project.db, "o.created_at >= '2024-02-01"))


def mid_upload(project: Project) -> Callable[[], bool]:
    if project.bucket:
        return lambda: bool(project.open_uploads())
    day = Path(project.lake) / "wide" / "day=2024-02-01"
    return lambda: any(path.stat().st_size > 0 for path in day.glob("run=*/.part-*.tmp"))


CASES = [
    pytest.param("SIGINT", "query", "local", id="SIGINT-mid-query-local"),
    pytest.param("SIGTERM", "query", "s3", id="SIGTERM-mid-query-s3"),
    pytest.param("SIGINT", "upload", "s3", id="SIGINT-mid-upload-s3"),
    pytest.param("SIGTERM", "upload", "local", id="SIGTERM-mid-upload-local"),
]


@pytest.mark.parametrize(("name", "phase", "project"), CASES, indirect=["project"])
def test_an_interrupted_backfill_stops_cleans_up_and_resumes(name: str, phase: str, project: Project) -> None:
    signum = signal.Signals[name]
    kpi, days = ("slow", ["2024-01-30", "2024-01-31"]) if phase == "query" else ("wide", ["2024-01-31"])
    command = [KPI, "backfill", kpi, "--start", days[0], "--end", "2024-02-02", "--parallel", "1", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(f"a {phase} in flight", mid_query(project) if phase == "query" else mid_upload(project), process)

    seconds, out, err = stop(process, signum)
    assert process.returncode == 128 + signum, err
    assert seconds < BOUND
    summary = json.loads(out)
    assert (summary["ok"], summary["interrupted"], summary["not_run"]) == (False, name, 2)
    assert [(k["kpi"], k["partitions"], k["status"]) for k in summary["kpis"]] == [(kpi, len(days), "ok")]
    assert f"{name}: stopping" in err
    assert "Traceback" not in err
    assert project.loads() == dict.fromkeys(days, 1)  # what finished is loaded; February is not
    assert project.runs_without_manifest() == []
    assert project.open_uploads() == []
    gone = time.monotonic() + 3  # a killed query leaves the processlist at once; an orphan would run for a minute
    while queries_of(project.db, "JOIN pad a") and time.monotonic() < gone:
        time.sleep(0.05)
    assert queries_of(project.db, "JOIN pad a") == []

    run_sql(project.db, "UPDATE orders SET weight = 1")
    rerun = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["kpis"][0]["partitions"] == 2  # only February was missing
    assert project.loads() == dict.fromkeys([*days, "2024-02-01", "2024-02-02"], 1)
    if kpi == "slow":
        assert project.rows("SELECT day::VARCHAR, orders FROM slow ORDER BY 1") == [
            (day, 8) for day in ["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02"]
        ]
    else:
        assert project.rows("SELECT day::VARCHAR, COUNT(*) FROM wide GROUP BY 1 ORDER BY 1") == [
            ("2024-01-31", 9),
            ("2024-02-01", WIDTH * WIDTH),
            ("2024-02-02", WIDTH * WIDTH),
        ]
    assert project.runs_without_manifest() == []


@pytest.mark.parametrize("project", ["local"], indirect=True)
def test_run_and_export_stop_the_same_way(project: Project) -> None:
    """`kpi run` (SIGTERM) reports what finished; `kpi export` (SIGINT) commits nothing."""
    run = [KPI, "run", "slow", "--start", "2024-01-31", "--end", "2024-02-01", "--parallel", "1", "--json"]
    process = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for("the query in flight", mid_query(project), process)
    _, out, err = stop(process, signal.SIGTERM)
    assert process.returncode == 143, err
    summary = json.loads(out)
    assert (summary["interrupted"], summary["not_run"], summary["kpis"][0]["partitions"]) == ("SIGTERM", 1, 1)
    assert project.loads() == {"2024-01-31": 1}

    export = [KPI, "export", "slow", "--start", "2024-02-01", "--end", "2024-02-02"]
    process = subprocess.Popen(export, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for("the query in flight", mid_query(project), process)
    _, out, err = stop(process, signal.SIGINT)
    assert process.returncode == 130, err
    assert "interrupted by SIGINT: nothing was committed" in err
    assert not list(Path(project.lake).glob("slow/day=2024-02-0*/run=*"))
    assert project.runs_without_manifest() == []
    gone = time.monotonic() + 3
    while queries_of(project.db, "JOIN pad a") and time.monotonic() < gone:
        time.sleep(0.05)
    assert queries_of(project.db, "JOIN pad a") == []


class Lines:
    """The lines a process writes to a pipe, read on a thread so that the test can wait for one."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.append(line)

    def text(self) -> str:
        self._thread.join(timeout=BOUND)
        return "".join(self.lines)


@pytest.mark.parametrize("project", ["local"], indirect=True)
def test_a_second_ctrl_c_exits_at_once_without_a_native_crash(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first Ctrl-C cannot reach the server (it stopped answering new connections), so its cancel waits; the
    second exits at once with 130, no summary, no abort() from a C++ destructor (exit 134)."""
    with Relay(project.db.host, project.db.port) as relay:
        monkeypatch.setenv("KPI_SOURCE", f"mysql://{project.db.user}@127.0.0.1:{relay.port}/{project.db.database}")
        command = [KPI, "backfill", "slow", "--start", "2024-02-01", "--end", "2024-02-02", "--json"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        wait_for("the query in flight", mid_query(project), process)
        relay.mute_new()  # the KILL QUERY connection will wait for a greeting that never comes
        errors = Lines(process.stderr)
        process.send_signal(signal.SIGINT)
        wait_for(
            "the first stop under way", lambda: relay.accepted == 2 and "stopping" in "".join(errors.lines), process
        )
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=BOUND)
        seconds = time.monotonic() - sent
        assert process.stdout is not None
        out, err = process.stdout.read(), errors.text()
    try:
        assert process.returncode == 130, err
        assert seconds < 2  # at once: not after the cancel's 5-second wait for the muted server
        assert out == ""
        assert "SIGINT again: exiting now" in err
        assert "terminate called" not in err
        assert project.runs_without_manifest() == []
    finally:
        for query, *_ in queries_of(project.db, "JOIN pad a"):  # the cancel never got through: end it here
            run_sql(project.db, f"KILL QUERY {query}")


def test_a_stop_request_cancels_what_is_in_flight_and_refuses_new_work() -> None:
    """The mechanism without signals: hooks run once, on another thread; no block starts after a stop."""
    with interrupts.handled():
        calls: list[str] = []
        done = threading.Event()

        def hook() -> None:
            calls.append(threading.current_thread().name)
            done.set()

        with interrupts.on_stop(hook):
            assert interrupts.requested() == 0
            interrupts.request(signal.SIGTERM)
            assert done.wait(BOUND)
            interrupts.request(signal.SIGINT)  # a second request changes nothing
        assert calls == ["kpi-cancel"]
        assert interrupts.requested() == signal.SIGTERM
        with pytest.raises(interrupts.Interrupted) as raised, interrupts.on_stop(hook):
            pytest.fail("a block must not start after a stop")
        assert (exit_code(raised.value), str(raised.value)) == (143, "interrupted by SIGTERM")
    with interrupts.handled():  # each command starts afresh
        assert interrupts.requested() == 0
        interrupts.check()


def test_kpi_demo_stops_on_sigint_and_keeps_only_committed_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo on the embedded default (DuckDB source, folder lake): interrupted once its loads are under way."""
    for name in ("KPI_SOURCE", "KPI_LAKE", "KPI_WAREHOUSE", "KPI_QUERIES", "KPI_ENV", "KPI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KPI_QUERIES", str(Path(__file__).resolve().parent.parent / "queries"))
    process = subprocess.Popen(
        [KPI, "demo", "--json"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lake = tmp_path / ".kpi" / "lake"
    wait_for("a committed partition", lambda: any(lake.glob("*/*/run=*/_manifest.json")), process)
    _, out, err = stop(process, signal.SIGINT)
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert (summary["ok"], summary["interrupted"]) == (False, "SIGINT")
    assert summary["not_run"] > 0
    runs = [p for p in lake.glob("*/*/run=*") if p.parent.name != "_batches"]  # batch indexes are no run folders
    bad = [str(p) for p in runs if not (p / "_manifest.json").is_file()]
    assert bad + [str(p) for p in lake.rglob(".*")] == []
    assert "terminate called" not in err
