"""The exporter's totals of a scored partition (:mod:`pipeline.core.totals`): exactly the sums the warehouse's
history query reads from the loaded rows — per dimension value, NULLs named as the query names them — for the
dimension types whose text Arrow and the warehouses agree on; none for the others."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from pipeline import catalog
from pipeline.core.intervals import Grain, interval_containing
from pipeline.core.lake import manifest_key
from pipeline.core.manifest import Manifest
from pipeline.core.totals import Total
from pipeline.duckdb_import import duckdb
from pipeline.export import export
from pipeline.export.totals import ExportTotals
from pipeline.load import load_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses.anomalies import history_of
from pipeline.warehouses.duckdb import DuckDbWarehouse

ZONE = ZoneInfo("Asia/Tokyo")
# Two days of orders: a status (with NULLs), a flag, a date, a timestamp; amounts with NULLs, one float measure.
ROWS = [
    (f"2026-03-0{1 + i % 2}", status, flag, f"2026-02-{10 + i % 3}", amount, 0.5 * i)
    for i, (status, flag, amount) in enumerate(
        [("paid", True, 100), ("paid", False, None), (None, None, 7), ("cancelled", True, 3)] * 30
    )
]


def write_kpi(folder: Path, by: str, kind: str) -> Path:
    """A daily KPI scored by ``by`` (declared ``kind``) over a DuckDB source of :data:`ROWS`."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "source.duckdb"
    with duckdb.connect(str(source)) as db:
        db.execute(
            "CREATE TABLE orders (day DATE, status VARCHAR, flag BOOLEAN, signup DATE, amount BIGINT, weight DOUBLE)"
        )
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", ROWS)
        db.execute("ALTER TABLE orders ADD COLUMN seen TIMESTAMPTZ")
        db.execute("UPDATE orders SET seen = TIMESTAMPTZ '2026-03-01 09:00:00+09'")
    (folder / "queries").mkdir(exist_ok=True)
    (folder / "queries" / "orders_by.sql").write_text(
        "/*---\nname: orders_by\ngrain: day\ntime_column: day\n"
        f"anomaly: {{by: [{by}]}}\n"
        "columns:\n  day: {type: DATE}\n"
        f"  {by}: {{type: {kind}}}\n  amount: {{type: INT64}}\n  weight: {{type: FLOAT64}}\n---*/\n"
        f"SELECT day, {by}, amount, weight FROM orders WHERE day >= :start AND day < :end\n",
        encoding="utf-8",
    )
    return source


def exported_and_loaded(folder: Path, by: str, kind: str) -> tuple[list[Manifest], DuckDbWarehouse]:
    source = write_kpi(folder, by, kind)
    kpi = catalog.load_one((folder / "queries",), "orders_by")
    first = interval_containing(Grain.DAY, ZONE, datetime(2026, 3, 1, tzinfo=ZONE))
    second = interval_containing(Grain.DAY, ZONE, datetime(2026, 3, 1, tzinfo=ZONE) + timedelta(days=1))
    store = LocalStore(folder / "lake")
    manifests = export(kpi, [first, second], source=open_source(f"duckdb:///{source}"), store=store)
    warehouse = DuckDbWarehouse(str(folder / "warehouse.duckdb"))
    keys = [manifest_key(kpi, i, m.run_id) for i, m in zip([first, second], manifests, strict=True)]
    for _, result in load_manifests(store, keys, warehouse):
        assert result.loaded
    return manifests, warehouse


@pytest.mark.parametrize(("by", "kind"), [("status", "STRING"), ("flag", "BOOL"), ("signup", "DATE")])
def test_the_totals_are_the_sums_the_history_query_reads_from_the_loaded_rows(
    tmp_path: Path, by: str, kind: str
) -> None:
    manifests, warehouse = exported_and_loaded(tmp_path, by, kind)
    settings = manifests[0].anomaly_settings
    assert settings is not None
    history = warehouse.history(history_of(manifests[0], settings, manifests[0].partition))
    warehouse.close()
    for manifest in manifests:
        assert manifest.totals is not None
        summed = {(t.measure, t.dimension): t.value for t in manifest.totals}
        read = {(o.measure, o.dimension): o.value for o in history if o.partition == manifest.partition}
        assert summed == pytest.approx(read)
        assert len(summed) >= 4  # two measures, two or more dimension values: not an empty match
    first = {(t.measure, t.dimension): t.value for t in manifests[0].totals or ()}
    if by == "status":  # NULL named as the query names it; a series whose every value is NULL sums to 0
        second = {(t.measure, t.dimension): t.value for t in manifests[1].totals or ()}
        assert (first[("amount", "status=(null)")], first[("amount", "status=paid")]) == (7 * 30, 100 * 30)
        assert second[("amount", "status=paid")] == 0  # only NULL amounts paid on the second day
    if by == "flag":
        named = {t.dimension for m in manifests for t in m.totals or ()}
        assert named == {"flag=true", "flag=false", "flag=(null)"}  # as CAST(flag AS VARCHAR / STRING) names them


def test_a_kpi_split_by_a_column_whose_text_the_warehouses_spell_apart_gets_no_totals(tmp_path: Path) -> None:
    source = write_kpi(tmp_path, "seen", "TIMESTAMP")
    kpi = catalog.load_one((tmp_path / "queries",), "orders_by")
    day = interval_containing(Grain.DAY, ZONE, datetime(2026, 3, 1, tzinfo=ZONE))
    (manifest,) = export(kpi, [day], source=open_source(f"duckdb:///{source}"), store=LocalStore(tmp_path / "lake"))
    assert manifest.anomaly is not None
    assert manifest.totals is None


def test_sums_summed_over_several_flushes_of_the_buffer_equal_one_flush_s() -> None:
    # Batches of two partitions interleaved, as a backfill's routed batches arrive; a buffer flushed every
    # 3 rows (several group_by calls, a partition's series spread over them) against one flushed at the end.
    batches = [
        (index, pa.record_batch({"status": pa.array(statuses, pa.string()), "amount": pa.array(amounts, pa.int64())}))
        for index, statuses, amounts in [
            (0, ["paid", None, "paid"], [1, 2, None]),
            (1, ["paid", "cancelled"], [10, 20]),
            (0, ["cancelled", "paid", "paid", None], [4, 8, 16, 32]),
            (1, [None], [None]),
        ]
    ]
    columns = [("day", "DATE"), ("status", "STRING"), ("amount", "INT64")]
    often, once = (ExportTotals.of((), "status", columns, "day") for _ in range(2))
    assert often is not None
    assert once is not None
    often.flush_rows, once.flush_rows = 3, 1_000
    for index, batch in batches:
        often.observe(index, batch)
        once.observe(index, batch)
    assert (
        often.totals(0)
        == once.totals(0)
        == (
            Total("amount", "status=(null)", 34.0),
            Total("amount", "status=cancelled", 4.0),
            Total("amount", "status=paid", 25.0),
        )
    )
    assert (
        often.totals(1)
        == once.totals(1)
        == (
            Total("amount", "status=(null)", 0.0),
            Total("amount", "status=cancelled", 20.0),
            Total("amount", "status=paid", 10.0),
        )
    )
    assert often.totals(2) == ()  # a partition without rows
