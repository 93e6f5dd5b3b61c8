"""Anomaly scoring on the BigQuery emulator: the same history SQL and ``_kpi_anomalies`` as on DuckDB, through
the real load path (the scores of a BigQuery load are the embedded warehouse's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.anomaly_bench import load_series
from pipeline.warehouses.bigquery import BigQueryWarehouse
from tests.bigquery import BigQueryBridge
from tests.test_anomaly_measured import small

# Infrastructure (the BigQuery emulator): `make test-fast` leaves it out.
pytestmark = pytest.mark.infra


def test_a_bigquery_load_scores_its_partitions_and_stores_them_as_duckdb_does(
    tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    series = small(spike_at=59)
    kpi, warehouse, errors = load_series(tmp_path / "bq", series, warehouse=BigQueryWarehouse(bq_url, client=bq_client))
    stored = {s.score.partition: s.score for s in warehouse.scores(kpi.name, "2026-07-28", "2026-07-30")}
    warehouse.close()
    assert errors == []
    _, local, _ = load_series(tmp_path / "duckdb", series)
    expected = {s.score.partition: s.score for s in local.scores(kpi.name, "2026-07-28", "2026-07-30")}
    local.close()
    assert sorted(stored) == ["2026-07-28", "2026-07-29", "2026-07-30"]
    assert [p for p, s in stored.items() if s.anomalous] == ["2026-07-30"]
    for partition, score in stored.items():
        assert score.actual == expected[partition].actual
        assert score.low == pytest.approx(expected[partition].low)
        assert score.high == pytest.approx(expected[partition].high)
    history = [j.sql for j in bq_client.jobs if j.kind == "query" and "SUM(CAST(`sales` AS FLOAT64))" in j.sql]
    assert history
    assert "FORMAT_DATE('%Y-%m-%d', `day`) AS p" in history[0]
