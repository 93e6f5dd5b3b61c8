"""Scoring inside the load's transaction (:mod:`pipeline.warehouses.commit_scoring`), on the embedded DuckDB
warehouse: a load of one new partition commits its scores with it — the same scores as scoring after the load —
or, killed or interrupted, neither; a scoring statement the warehouse refuses never fails the load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from bench.anomaly_bench import intervals, write_kpi, write_source
from bench.anomaly_series import Generated
from pipeline.core.anomaly import score
from pipeline.core.lake import manifest_key
from pipeline.core.manifest import Manifest
from pipeline.core.spec import Kpi
from pipeline.export import export
from pipeline.load import load_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses import LoadResult, Warehouse
from pipeline.warehouses.anomalies import ANOMALY_TABLE, history_of
from pipeline.warehouses.duckdb import DuckDbWarehouse
from tests.test_anomaly_measured import small

ROOT = Path(__file__).resolve().parents[1]


def history_then(
    folder: Path, series: Generated, warehouse: Warehouse, kpi: Kpi | None = None, source: str = ""
) -> tuple[Kpi, list[Manifest], list[str]]:
    """``series`` exported (by default through the bench's KPI file and source); every partition but the last
    loaded in one batch (scored after its commit: a batch of many). The manifests and their keys."""
    kpi = kpi or write_kpi(folder / "queries", "day")
    store = LocalStore(folder / "lake")
    every = intervals(series)
    manifests = export(
        kpi, every, source=open_source(source or write_source(folder / "source.duckdb", series)), store=store
    )
    keys = [manifest_key(kpi, i, m.run_id) for i, m in zip(every, manifests, strict=True)]
    for _, result in load_manifests(store, keys[:-1], warehouse):
        assert result.loaded
    return kpi, manifests, keys


def load_last(folder: Path, key: str, warehouse: Warehouse) -> LoadResult:
    ((_, result),) = load_manifests(LocalStore(folder / "lake"), [key], warehouse)
    return result


def stored(path: Path, partition: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as db:
        return db.execute(
            f"SELECT measure, actual, expected, low, high, score, direction, run_id, job_id FROM {ANOMALY_TABLE} "
            "WHERE partition = ? ORDER BY measure",
            [partition],
        ).fetchall()


def as_an_older_exporter_wrote_it(folder: Path, key: str) -> None:
    """The manifest at ``key`` rewritten as version 3 wrote it: no ``totals`` (an exporter of the release before)."""
    path = folder / "lake" / key
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["totals"]
    path.write_text(json.dumps({**data, "manifest_version": 3}), encoding="utf-8")


@pytest.mark.parametrize("totals", [True, False], ids=["version-4-with-totals", "version-3-without"])
def test_one_new_partition_is_scored_in_its_load_s_transaction_as_scoring_after_the_load_would(
    tmp_path: Path, totals: bool
) -> None:
    # A manifest with the exporter's totals (version 4) or without (version 3, an older exporter's): DuckDB reads
    # the loaded rows either way, and the scores are the same.
    series = small(spike_at=59)  # the last day, Thursday 2026-07-30, at 1.6×
    warehouse = DuckDbWarehouse(str(tmp_path / "wh.duckdb"))
    kpi, manifests, keys = history_then(tmp_path, series, warehouse)
    if not totals:
        as_an_older_exporter_wrote_it(tmp_path, keys[-1])
    result = load_last(tmp_path, keys[-1], warehouse)
    settings = manifests[-1].anomaly_settings
    assert settings is not None
    assert result.record is not None
    observations = warehouse.history(history_of(manifests[-1], settings, "2026-07-30"))
    warehouse.close()

    assert (result.loaded, result.scored, result.scoring_error) == (True, True, "")
    (anomaly,) = result.anomalies
    assert (anomaly.partition, anomaly.measure, anomaly.direction, anomaly.actual) == (
        "2026-07-30",
        "sales",
        "spike",
        series.values["2026-07-30"],
    )
    (after,) = score(kpi.name, "day", settings, observations, ["2026-07-30"])  # what scoring after the load gives
    (row,) = stored(tmp_path / "wh.duckdb", "2026-07-30")
    assert row == (
        "sales",
        after.actual,
        after.expected,
        after.low,
        after.high,
        after.score,
        "spike",
        manifests[-1].run_id,
        result.record.job_id,  # the load's own job: the scores and the audit row are one commit
    )


def test_a_kill_or_a_ctrl_c_before_the_scores_are_written_leaves_neither_the_load_nor_its_scores(
    tmp_path: Path,
) -> None:
    series = small(spike_at=59)
    warehouse = DuckDbWarehouse(str(tmp_path / "wh.duckdb"))
    kpi, _, _ = history_then(tmp_path, series, warehouse)
    warehouse.close()  # DuckDB admits one process per file: the child's
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KPI_QUERIES": str(tmp_path / "queries"),
        "KPI_LAKE": str(tmp_path / "lake"),
        "KPI_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "KPI_TEST_KILL": f"duckdb:1:INSERT INTO {ANOMALY_TABLE}",
    }
    env.pop("KPI_ENV", None)
    command = [sys.executable, "-m", "tests.killpoints", "load", kpi.name, "--date", "2026-07-30", "--json"]
    for stop in ("SIGKILL", "SIGINT"):
        stopped = subprocess.run(
            command,
            cwd=tmp_path,
            env={**env, "KPI_TEST_SIGNAL": stop},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert stopped.returncode == (-signal.SIGKILL if stop == "SIGKILL" else 130), stopped.stderr
        assert "Traceback" not in stopped.stderr
        with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as db:
            assert db.execute("SELECT COUNT(*) FROM _kpi_loads WHERE partition = '2026-07-30'").fetchone() == (0,)
            assert db.execute("SELECT COUNT(*) FROM daily_series WHERE day = '2026-07-30'").fetchone() == (0,)
        assert stored(tmp_path / "wh.duckdb", "2026-07-30") == []

    del env["KPI_TEST_KILL"]
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    (row,) = stored(tmp_path / "wh.duckdb", "2026-07-30")
    assert row[6] == "spike"
    outcome = json.loads(again.stdout)
    assert (outcome["loaded"], outcome["anomalies"][0]["direction"], outcome["job_id"]) == (True, "spike", row[8])


NOTED = """/*---
name: noted
grain: day
time_column: day
anomaly: {measures: [sales]}
columns:
  day: {type: DATE}
  sales: {type: INT64}
  note: {type: STRING}
---*/
SELECT day, sales, note FROM series WHERE day >= :start AND day < :end
"""


def test_a_scoring_statement_the_warehouse_refuses_never_fails_the_load(tmp_path: Path) -> None:
    # Manifests edited by hand to score a text column too (`kpi check` refuses such a header): the history's
    # text casts to numbers until the new partition's "n/a" does not — DuckDB then refuses every statement of the
    # load's transaction. The load is done again without scoring in it, commits, and the scoring after it
    # reports the failure.
    series = small()
    source = tmp_path / "source.duckdb"
    write_source(source, series)
    with duckdb.connect(str(source)) as db:
        db.execute("ALTER TABLE series ADD COLUMN note VARCHAR")
        db.execute("UPDATE series SET note = CASE WHEN day = '2026-07-30' THEN 'n/a' ELSE CAST(sales AS VARCHAR) END")
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "noted.sql").write_text(NOTED, encoding="utf-8")
    from pipeline import catalog

    kpi = catalog.load_one((tmp_path / "queries",), "noted")
    store = LocalStore(tmp_path / "lake")
    every = intervals(series)
    manifests = export(kpi, every, source=open_source(f"duckdb:///{source}"), store=store)
    keys = [manifest_key(kpi, i, m.run_id) for i, m in zip(every, manifests, strict=True)]
    for key in keys:  # the hand edit
        path = tmp_path / "lake" / key
        data = json.loads(path.read_text())
        data["anomaly"]["measures"] = ["sales", "note"]
        path.write_text(json.dumps(data))
    warehouse = DuckDbWarehouse(str(tmp_path / "wh.duckdb"))
    for _, earlier in load_manifests(store, keys[:-1], warehouse):
        assert (earlier.loaded, earlier.scoring_error) == (True, "")
    result = load_last(tmp_path, keys[-1], warehouse)
    loads = warehouse.loads(kpi.name)
    warehouse.close()

    assert result.loaded
    assert result.scoring_error.startswith("anomaly scoring failed: ConversionException: Conversion Error"), result
    assert loads["2026-07-30"].run_id == manifests[-1].run_id
    assert stored(tmp_path / "wh.duckdb", "2026-07-30") == []
    assert len(stored(tmp_path / "wh.duckdb", "2026-07-29")) == 2  # sales and note, scored after their load
