"""Anomaly detection measured: recall and false positives on generated series, through the real load path.

    .venv/bin/python -m bench.anomaly_bench [--keep]

Each series of :mod:`bench.anomaly_series` (a daily one with two years, an hourly one with twelve weeks) is
written into a DuckDB source table, exported by the real exporter into a local lake and loaded by
``load_manifests`` into the embedded DuckDB warehouse — the history in one batch, the scored period in batches
of a month (a week for hours), each load scoring its new partitions as production loads do. The scores are read
back from ``_kpi_anomalies`` and compared with the injected anomalies, beside a plain weekday z-score
(:func:`pipeline.core.anomaly.weekday_zscore`) on the same values. Then the cost of scoring in a load
(:func:`load_cost`): the same day's load without scoring, scored inside its transaction, and scored after it; and
the pure core's share of it (:func:`core_cost`): the history's rows made observations, and the new partition's
expectations computed, for the newest day and the newest hour.

Prints the README's table. ``tests/test_anomaly_measured.py`` runs :func:`measure` and asserts its figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from bench._harness import finish, in_scratch
from bench.anomaly_series import Evaluation, Generated, daily, evaluate, hourly
from pipeline import catalog
from pipeline.core.anomaly import Observation, expect, settings_json, weekday_zscore
from pipeline.core.intervals import Grain, Interval, interval_containing
from pipeline.core.lake import manifest_key
from pipeline.core.manifest import Manifest
from pipeline.core.spec import AnomalySettings, Kpi
from pipeline.core.types import BqType
from pipeline.export import export
from pipeline.flows.anomalies import score_loaded
from pipeline.load import load_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses import Warehouse
from pipeline.warehouses.anomalies import History, first_needed
from pipeline.warehouses.bigquery import BigQueryWarehouse
from pipeline.warehouses.duckdb import DuckDbWarehouse

ZONE = ZoneInfo("Asia/Tokyo")
HEADERS = {
    "day": "grain: day\ntime_column: day\n{anomaly}columns:\n  day: {{type: DATE}}\n  sales: {{type: INT64}}\n",
    "hour": "grain: hour\ntime_column: hour_start\n{anomaly}columns:\n  hour_start: {{type: TIMESTAMP}}\n"
    "  orders: {{type: INT64}}\n",
}
SQL = {
    "day": "SELECT day, sales FROM series WHERE day >= :start AND day < :end",
    "hour": "SELECT hour_start, orders FROM series WHERE hour_start >= :start AND hour_start < :end",
}
BATCH = {"day": 31, "hour": 7 * 24}  # partitions per load of the scored period
REPEAT = 21  # loads timed of each way
# unscored; scored as the load commits, from the exporter's totals (beside its statements or its upload); the same
# from a manifest without totals (the history read and the rows judged in the transaction); scored after the commit
WAYS = ("plain", "within", "untotalled", "after")
WAY_NAMES = {
    "plain": "without scoring",
    "within": "scored as it commits",
    "untotalled": "the same without the exporter's totals",
    "after": "scored after the commit",
}
CORE_REPEAT = 101  # runs of the pure core timed per grain
FRESH_REPEAT = 11  # fresh processes timed of each way


@dataclass(frozen=True)
class Measured:
    """One series through the load path: the detector's and the plain method's evaluations, and the rows stored."""

    series: Generated
    detector: Evaluation
    plain: Evaluation
    stored: int  # rows of _kpi_anomalies for the scored period
    scoring_errors: tuple[str, ...]


def write_kpi(folder: Path, grain: str, *, scored: bool = True) -> Kpi:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{grain}ly_series" if grain == "hour" else "daily_series"
    header = HEADERS[grain].format(anomaly="anomaly: {}\n" if scored else "")
    (folder / f"{name}.sql").write_text(f"/*---\nname: {name}\n{header}---*/\n{SQL[grain]}\n", encoding="utf-8")
    return catalog.load_one((folder,), name)


def write_source(path: Path, series: Generated) -> str:
    import pyarrow as pa

    values = [int(v) for v in series.values.values()]
    if series.grain == "day":
        moments = pa.array([datetime.fromisoformat(p).date() for p in series.values], pa.date32())
        columns = "day DATE, sales BIGINT"
    else:
        moments = pa.array(
            [datetime.fromisoformat(p).replace(tzinfo=ZONE) for p in series.values], pa.timestamp("us", "UTC")
        )
        columns = "hour_start TIMESTAMPTZ, orders BIGINT"
    rows = pa.table({"t": moments, "v": pa.array(values, pa.int64())})
    with duckdb.connect(str(path)) as db:
        db.execute(f"CREATE TABLE series ({columns})")
        db.register("incoming", rows)
        db.execute("INSERT INTO series SELECT t, v FROM incoming")
    return f"duckdb:///{path}"


def intervals(series: Generated) -> list[Interval]:
    grain = Grain(series.grain)
    return [
        interval_containing(grain, ZONE, datetime.fromisoformat(p).replace(tzinfo=ZONE)) for p in sorted(series.values)
    ]


def load_series(
    folder: Path, series: Generated, *, scored: bool = True, warehouse: Warehouse | None = None
) -> tuple[Kpi, Warehouse, list[str]]:
    """Export and load ``series``: its history in one batch, the scored period in batches of :data:`BATCH`. The
    warehouse (open; by default a DuckDB file in ``folder``) and the scoring errors reported by the loads."""
    kpi = write_kpi(folder / "queries", series.grain, scored=scored)
    source = open_source(write_source(folder / "source.duckdb", series))
    store = LocalStore(folder / "lake")
    if warehouse is None:
        warehouse = DuckDbWarehouse(str(folder / "warehouse.duckdb"))
    every = intervals(series)
    first_scored = sorted(series.values).index(series.scored[0])
    chunks = [every[:first_scored]] + [
        every[i : i + BATCH[series.grain]] for i in range(first_scored, len(every), BATCH[series.grain])
    ]
    errors: list[str] = []
    for chunk in chunks:
        manifests = export(kpi, chunk, source=source, store=store)
        keys = [manifest_key(kpi, i, m.run_id) for i, m in zip(chunk, manifests, strict=True)]
        for _, result in load_manifests(store, keys, warehouse):
            if result.scoring_error:
                errors.append(result.scoring_error)
    return kpi, warehouse, errors


def measure(folder: Path, series: Generated) -> Measured:
    kpi, warehouse, errors = load_series(folder, series)
    try:
        stored = warehouse.scores(kpi.name, series.scored[0], series.scored[-1])
    finally:
        warehouse.close()
    flagged = [s.score.partition for s in stored if s.score.anomalous]
    measure_name = kpi.columns[1].name
    observations = [Observation(p, measure_name, None, v) for p, v in series.values.items()]
    plain = [p for p, _ in weekday_zscore(observations, series.scored)]
    return Measured(series, evaluate(series, flagged), evaluate(series, plain), len(stored), tuple(errors))


@dataclass(frozen=True)
class LoadCost:
    """Median seconds of loading one new day of the daily series after its two years, the ways of :data:`WAYS`."""

    seconds: dict[str, float]  # way → median wall seconds
    spread: float  # the plain loads' interquartile range: what the machine's noise is
    cpu: dict[str, float]  # way → median CPU seconds of the process

    def line(self, repeat: int) -> str:
        ms, plain = 1000, self.seconds["plain"]
        parts = [f"{WAY_NAMES['plain']} {plain * ms:.1f} ms (interquartile range {self.spread * ms:.1f} ms)"] + [
            f"{WAY_NAMES[way]} {seconds * ms:.1f} ms ({(seconds - plain) * ms:+.1f} ms, {seconds / plain - 1:+.0%})"
            for way, seconds in self.seconds.items()
            if way != "plain"
        ]
        cpu = ", ".join(f"{self.cpu[way] * ms:.1f}" for way in self.seconds)
        return (
            f"loading one new day after two years (medians of {repeat}, interleaved): {'; '.join(parts)}; CPU {cpu} ms"
        )


def load_cost(folder: Path, repeat: int = 15) -> LoadCost:
    """The day's load timed three ways, interleaved so that a busy moment of the machine hits each alike: the
    unscored KPI's load, the scored KPI's (scored in the transaction), and the unscored load followed by
    :func:`~pipeline.flows.anomalies.score_loaded` with the scored KPI's settings (the path of a batch of several
    partitions, and of every load before scoring moved into the transaction). Each is ``load_manifests`` — or
    its two steps — on a manifest exported just before."""
    series = daily()
    warehouses: dict[str, Warehouse] = {}
    kpis: dict[str, Kpi] = {}
    for name, scored in (("scored", True), ("plain", False)):
        kpis[name], warehouses[name], _ = load_series(folder / name, series, scored=scored)
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    cpu: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        for way, load in _interleaved(folder, kpis, warehouses, intervals(series)[-1], repeat):
            started, begun = time.perf_counter(), time.process_time()
            load()
            times[way].append(time.perf_counter() - started)
            cpu[way].append(time.process_time() - begun)
    finally:
        for warehouse in warehouses.values():
            warehouse.close()
    quartiles = statistics.quantiles(times["plain"], n=4)
    median = {way: statistics.median(runs) for way, runs in times.items()}
    return LoadCost(median, quartiles[2] - quartiles[0], {way: statistics.median(runs) for way, runs in cpu.items()})


# One load in a fresh process, timed inside it: the first load of a ``kpi run`` process or of a cold Lambda
_FRESH = """
import sys, time
from pipeline.load import load_manifests
from pipeline.stores import LocalStore
from pipeline.warehouses.duckdb import DuckDbWarehouse
warehouse = DuckDbWarehouse(sys.argv[2])
started = time.perf_counter()
((_, result),) = load_manifests(LocalStore(sys.argv[1]), [sys.argv[3]], warehouse)
loaded = time.perf_counter()
warehouse.close()
assert result.loaded and result.scored == (sys.argv[4] == "scored"), result
print(loaded - started, time.perf_counter() - loaded)
"""
# What the generated holiday table spares that load: the holidays package's JP calendar, imported and built
_HOLIDAYS = """
import time
started = time.perf_counter()
import holidays
list(holidays.country_holidays("JP", years=range(2024, 2028)))
print(time.perf_counter() - started)
"""


@dataclass(frozen=True)
class FreshCost:
    """Median milliseconds of one new day's load (after the daily series' two years) as the first load of a fresh
    process — a ``kpi run`` process, or a cold start of the loader Lambda, which a daily schedule always is —
    unscored and scored as it commits: the whole process (the interpreter, imports, the DuckDB file opened, the load,
    the file closed), the load alone, and the close (DuckDB's checkpoint writes each table the load changed). And
    what importing the ``holidays`` package for its JP calendar costs a fresh process: what scoring paid in it
    before Japan's holidays became a generated table (:mod:`infra.jp_holidays`)."""

    process: dict[str, float]  # "plain" | "within" → ms
    load: dict[str, float]
    close: dict[str, float]
    holidays: float

    def line(self, repeat: int) -> str:
        parts = [
            f"{WAY_NAMES[way]}: process {self.process[way]:.0f} ms, load {self.load[way]:.1f} ms, "
            f"close {self.close[way]:.1f} ms"
            for way in self.process
        ]
        return (
            f"the first load in a fresh process (medians of {repeat}, interleaved): {'; '.join(parts)}; "
            f"importing holidays for its JP calendar, which that load no longer does: {self.holidays:.0f} ms"
        )


def fresh_cost(folder: Path, repeat: int = 11) -> FreshCost:
    """:class:`FreshCost`: each load exported just before in this process and loaded in a child process of the same
    interpreter (``sys.executable -c``), the two ways alternating so that a busy moment of the machine hits each
    alike."""
    series = daily()
    kpis: dict[str, Kpi] = {}
    for name, scored in (("scored", True), ("plain", False)):
        kpis[name], warehouse, _ = load_series(folder / name, series, scored=scored)
        warehouse.close()
    last = intervals(series)[-1]
    spent: dict[str, dict[str, list[float]]] = {
        part: {"plain": [], "within": []} for part in ("process", "load", "close")
    }
    for n in range(repeat):
        for way in ("plain", "within")[n % 2 :] + ("plain", "within")[: n % 2]:
            name = "scored" if way == "within" else "plain"
            store = LocalStore(folder / name / "lake")
            (manifest,) = export(
                kpis[name], [last], source=open_source(f"duckdb:///{folder / name / 'source.duckdb'}"), store=store
            )
            key = manifest_key(kpis[name], last, manifest.run_id)
            arguments = [str(folder / name / "lake"), str(folder / name / "warehouse.duckdb"), key, name]
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _FRESH, *arguments], capture_output=True, text=True, check=True
            )
            spent["process"][way].append(time.perf_counter() - started)
            load, close = (float(word) for word in done.stdout.split())
            spent["load"][way].append(load)
            spent["close"][way].append(close)
    imports = [
        float(subprocess.run([sys.executable, "-c", _HOLIDAYS], capture_output=True, text=True, check=True).stdout)
        for _ in range(repeat)
    ]
    ms = {part: {way: statistics.median(t) * 1000 for way, t in ways.items()} for part, ways in spent.items()}
    return FreshCost(ms["process"], ms["load"], ms["close"], statistics.median(imports) * 1000)


@dataclass(frozen=True)
class CoreCost:
    """Median CPU milliseconds of the pure core in the load of one new partition, per grain: the history
    query's rows made observations (:meth:`History.observations`), and the partition's expectations computed
    from them (:func:`~pipeline.core.anomaly.expect`, what ``pipeline.warehouses.commit_scoring`` calls)."""

    observations: dict[str, float]  # grain → ms
    expect: dict[str, float]
    rows: dict[str, int]  # grain → rows of the history query

    def line(self, repeat: int) -> str:
        parts = [
            f"{'daily' if grain == 'day' else 'hourly'} ({self.rows[grain]} rows): observations "
            f"{self.observations[grain]:.2f} ms, expect {self.expect[grain]:.2f} ms"
            for grain in self.expect
        ]
        return f"the pure core for the newest partition (CPU, medians of {repeat}, interleaved): " + "; ".join(parts)


def core_cost(repeat: int = 101) -> CoreCost:
    """:class:`CoreCost` for the newest day of :func:`~bench.anomaly_series.daily` (two years before it) and the
    newest hour of :func:`~bench.anomaly_series.hourly` (twelve weeks): the rows the history query of its load
    returns (from :func:`~pipeline.warehouses.anomalies.first_needed` to the new partition, which the query reads
    after the insert), made observations and scored as a load does, without the warehouse."""
    cases = {}
    for series, column, kind in ((daily(), "sales", BqType.DATE), (hourly(), "orders", BqType.TIMESTAMP)):
        target = max(series.values)
        since = first_needed(target, series.grain)
        rows = [(p, None, v) for p, v in sorted(series.values.items()) if since <= p <= target]
        history = History("bench", column, kind, series.grain, "Asia/Tokyo", "Asia/Tokyo", (column,), None, since)
        cases[series.grain] = (history, rows, target)
    settings = AnomalySettings()
    spent: dict[str, dict[str, list[float]]] = {part: {g: [] for g in cases} for part in ("observations", "expect")}
    for n in range(repeat):
        for grain in [*cases][n % 2 :] + [*cases][: n % 2]:
            history, rows, target = cases[grain]
            begun = time.process_time()
            observations = history.observations(rows)
            read = time.process_time()
            (_,) = expect("bench", grain, settings, observations, target)
            spent["observations"][grain].append(read - begun)
            spent["expect"][grain].append(time.process_time() - read)
    medians = {part: {g: statistics.median(t) * 1000 for g, t in times.items()} for part, times in spent.items()}
    return CoreCost(medians["observations"], medians["expect"], {g: len(case[1]) for g, case in cases.items()})


@dataclass(frozen=True)
class BigQueryCost:
    """One new day's load on the BigQuery emulator, the same three ways as :class:`LoadCost`: the jobs each
    sends (BigQuery's unit of latency and of quota), the streaming inserts beside them (no job), its median
    seconds, and the median seconds of the history query run alone — what a scored load waits for on the
    emulator, which runs one job at a time, and not in BigQuery, which runs it beside the upload's load job."""

    jobs: dict[str, list[str]]  # way → the kinds of the jobs its load sent, in order
    inserts: dict[str, int]  # way → the streaming inserts its load sent
    seconds: dict[str, float]
    history: float

    def line(self, repeat: int) -> str:
        parts = [
            f"{WAY_NAMES[way]} {len(kinds)} jobs ({', '.join(kinds)})"
            + (f" + {self.inserts[way]} streaming insert" if self.inserts[way] else "")
            + f", {self.seconds[way]:.2f} s"
            for way, kinds in self.jobs.items()
        ]
        return (
            f"the same on the BigQuery emulator (medians of {repeat}): "
            + "; ".join(parts)
            + f"; the history query alone {self.history:.2f} s"
        )


def bigquery_cost(folder: Path, repeat: int = 5) -> BigQueryCost:
    """:func:`load_cost` on the BigQuery emulator (``tests/bigquery.py``, as ``bench/load_bench.py`` uses it), on
    60 days of the small series (the emulator takes its time per job, not per row): what differs is the jobs."""
    from tests.bigquery import PROJECT, BigQueryBridge, BigQueryEmulator
    from tests.test_anomaly_measured import small

    series = small()
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    jobs: dict[str, list[str]] = {}
    inserts: dict[str, int] = {}
    alone: list[float] = []
    with BigQueryEmulator() as emulator:
        bridge: BigQueryBridge = emulator.client(BigQueryBridge)
        warehouses: dict[str, Warehouse] = {}
        kpis: dict[str, Kpi] = {}
        for name, scored in (("scored", True), ("plain", False)):
            url = f"bigquery://{PROJECT}/anomaly_bench_{name}?endpoint={emulator.endpoint}"
            bridge.coalesce = True  # the history's load jobs as one (the emulator's time per job)
            kpis[name], warehouses[name], _ = load_series(
                folder / name, series, scored=scored, warehouse=BigQueryWarehouse(url, client=bridge)
            )
            bridge.coalesce = False
        last = intervals(series)[-1]
        for way, load in _interleaved(folder, kpis, warehouses, last, repeat):
            sent, streamed = len(bridge.jobs), len(bridge.inserts)
            started = time.perf_counter()
            load()
            times[way].append(time.perf_counter() - started)
            jobs[way] = [_job_kind(j.kind, j.sql) for j in bridge.jobs[sent:]]
            inserts[way] = len(bridge.inserts) - streamed
        history = History(
            "daily_series",
            "day",
            BqType.DATE,
            "day",
            "Asia/Tokyo",
            "Asia/Tokyo",
            ("sales",),
            None,
            first_needed(last.partition, "day"),
        )
        for _ in range(repeat):
            started = time.perf_counter()
            warehouses["scored"].history(history)
            alone.append(time.perf_counter() - started)
        for warehouse in warehouses.values():
            warehouse.close()
    return BigQueryCost(
        {w: jobs[w] for w in times},
        inserts,
        {w: statistics.median(t) for w, t in times.items()},
        statistics.median(alone),
    )


TOTALS_DAYS, TOTALS_ROWS = 365, 2_000  # the export timed with and without totals: a year, 2,000 rows a day
TOTALS_KPI = """/*---
name: orders_by_status
grain: day
time_column: day
{anomaly}columns:
  day: {{type: DATE}}
  status: {{type: STRING}}
  orders: {{type: INT64}}
  sales: {{type: FLOAT64}}
---*/
SELECT day, status, orders, sales FROM orders WHERE day >= :start AND day < :end
"""


@dataclass(frozen=True)
class TotalsCost:
    """Median seconds (wall and CPU) of exporting a year of a daily KPI split by four statuses, with the
    exporter summing each partition for its manifest's ``totals`` (``anomaly: {by: [status]}``) and without (no
    ``anomaly`` key): what the totals cost the export (:mod:`pipeline.core.totals`)."""

    plain: float
    summed: float
    cpu: tuple[float, float]

    def line(self, repeat: int) -> str:
        rows = TOTALS_DAYS * TOTALS_ROWS
        return (
            f"exporting {TOTALS_DAYS} days of {rows:,} rows split by 4 statuses (medians of {repeat}, interleaved): "
            f"without totals {self.plain:.2f} s, with them {self.summed:.2f} s "
            f"({(self.summed / self.plain - 1) * 100:+.1f}%); CPU {self.cpu[0]:.2f} and {self.cpu[1]:.2f} s"
        )


def totals_cost(folder: Path, repeat: int = 5) -> TotalsCost:
    """:class:`TotalsCost`: the same source, the same KPI but for its ``anomaly`` key, exported into a fresh lake
    each time (the whole year in one export, as a backfill's job does)."""
    source = folder / "source.duckdb"
    folder.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(source)) as db:
        db.execute(
            "CREATE TABLE orders AS SELECT DATE '2025-01-01' + CAST(i // $rows AS INTEGER) AS day, "
            "['paid', 'cancelled', 'refunded', 'partial'][1 + i % 4] AS status, CAST(1 + i % 3 AS BIGINT) AS orders, "
            "CAST(i % 997 AS DOUBLE) * 1.25 AS sales FROM range($days * $rows) AS t(i)",
            {"rows": TOTALS_ROWS, "days": TOTALS_DAYS},
        )
    kpis = {}
    for name, anomaly in (("plain", ""), ("summed", "anomaly: {by: [status]}\n")):
        queries = folder / name / "queries"
        queries.mkdir(parents=True)
        (queries / "orders_by_status.sql").write_text(TOTALS_KPI.format(anomaly=anomaly), encoding="utf-8")
        kpis[name] = catalog.load_one((queries,), "orders_by_status")
    days = [interval_containing(Grain.DAY, ZONE, datetime(2025, 1, 1, tzinfo=ZONE))]
    while len(days) < TOTALS_DAYS:
        days.append(interval_containing(Grain.DAY, ZONE, days[-1].end))
    times: dict[str, list[float]] = {name: [] for name in kpis}
    cpu: dict[str, list[float]] = {name: [] for name in kpis}
    for n in range(repeat):
        for name in [*kpis][n % 2 :] + [*kpis][: n % 2]:
            store = LocalStore(folder / name / f"lake-{n}")
            started, begun = time.perf_counter(), time.process_time()
            manifests = export(kpis[name], days, source=open_source(f"duckdb:///{source}"), store=store)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - begun)
            assert (manifests[0].totals is None) == (name == "plain")
    median = {name: statistics.median(t) for name, t in times.items()}
    return TotalsCost(
        median["plain"], median["summed"], (statistics.median(cpu["plain"]), statistics.median(cpu["summed"]))
    )


def _interleaved(
    folder: Path, kpis: dict[str, Kpi], warehouses: dict[str, Warehouse], last: Interval, repeat: int
) -> Iterator[tuple[str, Callable[[], None]]]:
    """``repeat`` rounds of the ways of :data:`WAYS`, the order rotating each round so that a busy moment hits
    each alike: (way, its load of ``last``, exported just before, to time). ``untotalled`` loads the scored
    KPI's manifest rewritten as version 3 wrote it (no totals: an older exporter's); ``after`` loads the unscored
    KPI and scores it after the commit with the default settings, as a batch of several partitions is scored."""
    settings = settings_json(AnomalySettings())
    for n in range(repeat):
        for way in WAYS[n % len(WAYS) :] + WAYS[: n % len(WAYS)]:
            name = "scored" if way in ("within", "untotalled") else "plain"
            store = LocalStore(folder / name / "lake")
            source = open_source(f"duckdb:///{folder / name / 'source.duckdb'}")
            (manifest,) = export(kpis[name], [last], source=source, store=store)
            key = manifest_key(kpis[name], last, manifest.run_id)
            if way == "untotalled":
                without = {**json.loads(store.get_bytes(key)), "totals": None, "manifest_version": 3}
                store.put_bytes(key, json.dumps(without).encode())

            def load(name: str = name, way: str = way, manifest: Manifest = manifest, key: str = key) -> None:
                ((_, result),) = load_manifests(LocalStore(folder / name / "lake"), [key], warehouses[name])
                if way == "after":
                    score_loaded(warehouses[name], [replace(manifest, anomaly=settings)], [result])
                assert result.loaded

            yield way, load


def _job_kind(kind: str, sql: str) -> str:
    if kind != "query":
        return "load"
    if "BEGIN TRANSACTION" in sql:
        return "script"
    if sql.startswith("INSERT INTO"):
        return "insert"
    return "audit" if "_kpi_loads" in sql else "history"


def table(results: list[Measured]) -> str:
    lines = [
        "| series | method | anomalies found | recall | false positives | of them on holidays, seasons, paydays |",
        "|---|---|---|---|---|---|",
    ]
    for m in results:
        what = f"{m.series.grain}ly, {len(m.series.scored):,} partitions scored".replace("dayly", "daily")
        for name, e in (("seasonal median (ours)", m.detector), ("plain weekday z-score", m.plain)):
            total = len(e.found) + len(e.missed)
            lines.append(
                f"| {what} | {name} | {len(e.found)} of {total} | {e.recall:.0%} | {len(e.false_positives)} "
                f"| {e.on_holidays} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def run(scratch: Path) -> int:
        results = [measure(scratch / "daily", daily()), measure(scratch / "hourly", hourly())]
        print(table(results))
        for m in results:
            missed = ", ".join(f"{a.first} ({a.what})" for a in m.detector.missed) or "none"
            wrong = ", ".join(m.detector.false_positives) or "none"
            print(f"\n{m.series.grain}: missed {missed}; false positives {wrong}")
        print("\n" + load_cost(scratch / "cost", REPEAT).line(REPEAT))
        print(fresh_cost(scratch / "fresh", FRESH_REPEAT).line(FRESH_REPEAT))
        print(core_cost(CORE_REPEAT).line(CORE_REPEAT))
        print(bigquery_cost(scratch / "bigquery").line(5))
        print(totals_cost(scratch / "totals", 7).line(7))
        errors = [e for m in results for e in m.scoring_errors]
        return finish(started, errors)

    return in_scratch("anomaly-bench-", args.keep, run)


if __name__ == "__main__":
    sys.exit(main())
