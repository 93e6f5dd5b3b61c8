"""Anomaly detection measured: recall and false positives on generated series, through the real load path.

    .venv/bin/python -m bench.anomaly_bench [--keep]

Each series of :mod:`bench.anomaly_series` (a daily one with two years, an hourly one with twelve weeks) is
written into a DuckDB source table, exported by the real exporter into a local lake and loaded by
``load_manifests`` into the embedded DuckDB warehouse — the history in one batch, the scored period in batches
of a month (a week for hours), each load scoring its new partitions as production loads do. The scores are read
back from ``_kpi_anomalies`` and compared with the injected anomalies, beside a plain weekday z-score
(:func:`pipeline.core.anomaly.weekday_zscore`) on the same values. Then the cost of scoring in a load: the same
day's load and its scoring, timed apart, medians of 15.

Prints the README's table. ``tests/test_anomaly_measured.py`` runs :func:`measure` and asserts its figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from bench._harness import finish, in_scratch
from bench.anomaly_series import Evaluation, Generated, daily, evaluate, hourly
from pipeline import catalog
from pipeline.core.anomaly import Observation, weekday_zscore
from pipeline.core.intervals import Grain, Interval, interval_containing
from pipeline.core.lake import manifest_key
from pipeline.core.spec import Kpi
from pipeline.export import export
from pipeline.flows.anomalies import score_loaded
from pipeline.load import load_manifests
from pipeline.load.flow import checked_opener
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses import Warehouse
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


def load_cost(folder: Path, repeat: int = 15) -> tuple[float, float]:
    """Median seconds of loading one new day of the daily series (after its two years) and of scoring it: the
    two steps of ``load_manifests`` (the warehouse's load, then :func:`~pipeline.flows.anomalies.score_loaded`),
    timed apart on the same loads."""
    series = daily()
    kpi, warehouse, _ = load_series(folder, series)
    store = LocalStore(folder / "lake")
    source = open_source(f"duckdb:///{folder / 'source.duckdb'}")
    last = intervals(series)[-1]
    loads, scorings = [], []
    try:
        for _ in range(repeat):
            (manifest,) = export(kpi, [last], source=source, store=store)
            manifests = [manifest]
            started = time.perf_counter()
            results = warehouse.load(manifests, checked_opener(store, manifests))
            loaded = time.perf_counter()
            score_loaded(warehouse, manifests, results)
            loads.append(loaded - started)
            scorings.append(time.perf_counter() - loaded)
    finally:
        warehouse.close()
    return statistics.median(loads), statistics.median(scorings)


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
        load, scoring = load_cost(scratch / "cost")
        print(
            f"\nloading one new day after two years: the load {load * 1000:.1f} ms, its scoring "
            f"{scoring * 1000:.1f} ms (+{scoring / load:.0%}), medians of 15"
        )
        errors = [e for m in results for e in m.scoring_errors]
        return finish(started, errors)

    return in_scratch("anomaly-bench-", args.keep, run)


if __name__ == "__main__":
    sys.exit(main())
