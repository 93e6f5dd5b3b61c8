"""The load's guarantees under races and failures, on both warehouses: exactly once, never older, all or nothing.

Races are real threads released by one barrier (and, for DuckDB, two real processes). On BigQuery the emulator
runs the transactions but detects no conflict between them: :class:`tests.bigquery.BigQueryBridge` bridges that
one call — it makes the two transaction scripts meet, admits the chosen one first, and cancels the other with
BigQuery's own "Transaction is aborted due to concurrent update" message when it mutates a table the first
mutates (two loads of one KPI: its lock table and its table), as BigQuery does; loads of two KPIs mutate
disjoint tables and are both admitted. The loader's injected ``sleep`` waits for the bridge to be idle: no real
sleep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.manifest import Manifest
from pipeline.errors import LoadError
from pipeline.export import export
from pipeline.load import load_manifest, load_manifests
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses import Warehouse
from pipeline.warehouses.bigquery import BigQueryWarehouse, load_job_config, parse_bigquery_url
from pipeline.warehouses.duckdb import DuckDbWarehouse
from tests.bigquery import BigQueryBridge
from tests.exporting import days, make_kpi
from tests.loading import HEADER, SQL, Target, bigquery_target, duckdb_target, key_of, run, shop_source

OLD, NEW = "20240302T000000000Z-old000", "20240303T000000000Z-new000"
TENFOLD = SQL.replace("COUNT(*)", "COUNT(*) * 10")
EMPTY = SQL.replace("WHERE created_at", "WHERE 1 = 0 AND created_at")


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return shop_source(tmp_path)


@pytest.fixture(params=["duckdb", "bigquery"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def target_of(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Target, BigQueryBridge | None]:
    if kind == "duckdb":
        return duckdb_target(tmp_path / "wh.duckdb"), None
    client: BigQueryBridge = request.getfixturevalue("bq_client")
    return bigquery_target(request.getfixturevalue("bq_url"), client), client


def opener(target: Target, bridge: BigQueryBridge | None) -> Warehouse:
    """A warehouse of its own per thread (as two loader invocations have); BigQuery's pacing waits for the bridge."""
    warehouse = target.open()
    if isinstance(warehouse, BigQueryWarehouse) and bridge is not None:

        def wait_for_the_other(_: float) -> None:
            bridge.idle.wait(60)

        return BigQueryWarehouse(warehouse.url, client=bridge, sleep=wait_for_the_other)
    return warehouse


def state(target: Target) -> list[Any]:
    """Everything a load may change, for a byte-for-byte comparison."""
    return [
        target.rows("SELECT * FROM {daily} ORDER BY day, status"),
        target.rows('SELECT kpi, "partition", run_id, sql_hash, "rows", bytes, job_id FROM {audit} ORDER BY 2, 3'),
    ]


@pytest.mark.parametrize("newer", ["rows", "empty"])
@pytest.mark.parametrize("first", [OLD, NEW])
def test_two_loads_of_one_partition_at_the_same_moment_leave_the_newest_run_exactly_once(
    shop: str, tmp_path: Path, kind: str, first: str, newer: str, request: pytest.FixtureRequest
) -> None:
    target, bridge = target_of(kind, request, tmp_path)
    (old,) = run(shop, tmp_path, run_id=OLD)
    (new,) = run(shop, tmp_path, sql=TENFOLD if newer == "rows" else EMPTY, run_id=NEW)
    store = LocalStore(tmp_path / "lake")
    if bridge is not None:  # BigQuery: both transactions meet, `first` commits, the other is cancelled and retries
        bridge.meet(2, lambda sql: first in sql)
    order = [old, new] if first == OLD else [new, old]  # DuckDB: the thread started first, released together
    start = threading.Barrier(2)
    results: dict[str, Any] = {}

    def load(manifest: Manifest) -> None:
        warehouse = opener(target, bridge)
        start.wait()
        try:
            results[manifest.run_id] = load_manifest(store, key_of(manifest), warehouse)[1]
        finally:
            warehouse.close()

    threads = [threading.Thread(target=load, args=(m,)) for m in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(results) == {OLD, NEW}
    expected = [("paid", 20), ("refunded", 10)] if newer == "rows" else []
    assert target.rows("SELECT status, orders FROM {daily} ORDER BY status") == expected
    audit = target.rows("SELECT run_id FROM {audit} ORDER BY run_id")
    newest = target.open().loads("daily")["2024-03-01"]
    assert newest.run_id == NEW
    assert results[NEW].loaded
    if results[OLD].loaded:  # the older one committed first, then the newer replaced it
        assert audit == [(OLD,), (NEW,)]
    else:
        assert "is older than run 20240303T000000000Z-new000" in results[OLD].reason
        assert audit == [(NEW,)]
    if bridge is not None:  # the race happened as arranged: the first named committed first
        assert results[OLD].loaded == (first == OLD)
        # the winner's, the loser's cancelled one, and its retry: committed (newer) or stopped by the audit re-check
        assert len(bridge.transactions()) == 3
        lock = parse_bigquery_url(request.getfixturevalue("bq_url")).table("_kpi_lock_daily")
        assert [table for table, _ in bridge.conflicts] == [lock]  # at the lock row, its first mutation


def export_kpi(shop: str, tmp_path: Path, name: str, sql: str, run_id: str) -> str:
    """The day 2024-03-01 of the KPI ``name`` (the shop's daily orders, as ``daily``), exported: its manifest's
    key in the lake."""
    kpi = make_kpi(tmp_path / "q", name, HEADER, sql)
    (manifest,) = export(
        kpi, days("2024-03-01", 1), source=open_source(shop), store=LocalStore(tmp_path / "lake"), run_id=run_id
    )
    return f"{name}/day={manifest.partition}/run={run_id}/_manifest.json"


@pytest.mark.parametrize("first", ["daily", "refunds"])
def test_loads_of_two_kpis_at_the_same_moment_both_commit_at_their_first_attempt(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, first: str
) -> None:
    """Each KPI locks its own table (``_kpi_lock_<kpi>``): the two transactions meet in the bridge, both in
    flight at once, and BigQuery — which cancels a transaction only for a table another one in flight mutates —
    cancels neither. With the lock table they once shared, one was cancelled and retried, and at 06:00 JST,
    twenty KPIs at once, some gave up."""
    store = LocalStore(tmp_path / "lake")
    names = ("daily", "refunds")
    for name in names:  # loaded once already: the tables and both lock tables exist, as on any day but the first
        key = export_kpi(shop, tmp_path, name, SQL, OLD)
        assert load_manifest(store, key, BigQueryWarehouse(bq_url, client=bq_client))[1].loaded
    newer = {name: export_kpi(shop, tmp_path, name, TENFOLD, NEW) for name in names}
    before = len(bq_client.transactions())
    where = BigQueryWarehouse(bq_url, client=bq_client).target
    bq_client.meet(2, lambda sql: f"`{where.table(first)}`" in sql)

    def never(_: float) -> None:
        raise AssertionError("a transaction was retried")

    start = threading.Barrier(2)
    results: dict[str, Any] = {}

    def load(name: str) -> None:
        warehouse = BigQueryWarehouse(bq_url, client=bq_client, sleep=never)
        start.wait()
        results[name] = load_manifest(store, newer[name], warehouse)[1]

    threads = [threading.Thread(target=load, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert {name: results[name].loaded for name in names} == {"daily": True, "refunds": True}
    sent = bq_client.transactions()[before:]
    assert sorted(name for sql in sent for name in names if f"`{where.table(name)}`" in sql) == list(names)
    assert bq_client.conflicts == []  # one script each, neither cancelled, neither retried
    assert bq_client.most_in_flight == 2  # and they did overlap
    target = bigquery_target(bq_url, bq_client)
    for name in names:
        assert target.rows(f"SELECT status, orders FROM `{where.table(name)}` ORDER BY status") == [
            ("paid", 20),
            ("refunded", 10),
        ]
        assert target.rows(f"SELECT run_id FROM {{audit}} WHERE kpi = '{name}' ORDER BY run_id") == [(OLD,), (NEW,)]
        assert target.rows(f"SELECT kpi, run_id FROM `{where.table('_kpi_lock_' + name)}`") == [(name, NEW)]


def test_two_kpi_load_processes_on_one_duckdb_file_both_finish_and_the_newest_run_wins(
    shop: str, tmp_path: Path
) -> None:
    """DuckDB admits one process per file: the second `kpi load` waits for the first's file lock."""
    (old,) = run(shop, tmp_path, run_id=OLD)
    (new,) = run(shop, tmp_path, sql=TENFOLD, run_id=NEW)
    warehouse = tmp_path / "wh.duckdb"
    commands = [
        [
            sys.executable,
            "-m",
            "pipeline",
            "load",
            str(tmp_path / "lake" / key_of(m)),
            "--warehouse",
            str(warehouse),
            "--json",
        ]
        for m in (new, old)
    ]
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    outcomes = {json.loads(out)["run_id"]: json.loads(out)["loaded"] for out, _ in outputs}
    target = duckdb_target(warehouse)
    assert target.rows("SELECT status, orders FROM {daily} ORDER BY status") == [("paid", 20), ("refunded", 10)]
    assert target.rows("SELECT run_id FROM {audit} ORDER BY run_id DESC LIMIT 1") == [(NEW,)]
    assert outcomes[NEW]


HOLD = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_duckdb_load_waits_for_another_process_then_fails_retryably_or_goes_on(shop: str, tmp_path: Path) -> None:
    (manifest,) = run(shop, tmp_path, run_id=NEW)
    store, path = LocalStore(tmp_path / "lake"), tmp_path / "wh.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"
        now = [0.0]
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            now[0] += seconds

        waiting = DuckDbWarehouse(str(path), lock_wait=2.0, sleep=sleep, clock=lambda: now[0])
        with pytest.raises(LoadError, match=r"cannot open the DuckDB warehouse .* Could not set lock") as locked:
            load_manifest(store, key_of(manifest), waiting)
        assert locked.value.retryable
        assert "(waited 2 s)" in str(locked.value)
        assert sum(waits) == 2.0
        assert len(waits) == 8  # polled every quarter second of the injected clock

        def release_then_sleep(seconds: float) -> None:
            sleep(seconds)
            if len(waits) == 11:  # the other process finishes while this one waits
                assert holder.stdin is not None
                holder.stdin.close()
                holder.wait(30)

        patient = DuckDbWarehouse(str(path), lock_wait=60.0, sleep=release_then_sleep, clock=lambda: now[0])
        assert load_manifest(store, key_of(manifest), patient)[1].loaded
        patient.close()
        assert len(waits) == 11
    finally:
        holder.kill()
        holder.wait()
    assert duckdb_target(path).rows("SELECT SUM(orders) FROM {daily}") == [(3,)]


@pytest.mark.parametrize("failure", ["job error while staging", "swapped files", "refused drift"])
def test_a_failed_batch_leaves_the_tables_as_they_were(
    shop: str, tmp_path: Path, kind: str, failure: str, request: pytest.FixtureRequest
) -> None:
    target, bridge = target_of(kind, request, tmp_path)
    store = LocalStore(tmp_path / "lake")
    good = run(shop, tmp_path, count=2, run_id=OLD)
    load_manifests(store, [key_of(m) for m in good], target.open())
    before = state(target)
    header, sql = HEADER, TENFOLD
    if failure == "refused drift":
        header = HEADER.replace("orders: {type: INT64", "orders: {type: FLOAT64")
    batch = run(shop, tmp_path, header=header, sql=sql, count=2, run_id=NEW, files_per_row=failure != "swapped files")
    if failure == "swapped files":  # the first manifest lists the second partition's file (checksums intact)
        first, second = (json.loads(store.get_bytes(key_of(m))) for m in batch)
        first["files"], first["rows"], first["bytes"] = second["files"], second["rows"], second["bytes"]
        store.put_bytes(key_of(batch[0]), json.dumps(first).encode())
        batch = batch[:1]
        expected = "the partition holds 0 rows after the load, the manifest says 1"
    elif failure == "job error while staging":
        if bridge is not None:
            bridge.fail_next_load()
            expected = "Backend error"
        else:  # DuckDB has no jobs: the batch's last file fails its check after the others were inserted
            last = tmp_path / "lake" / batch[-1].files[-1].path
            last.write_bytes(last.read_bytes()[:-1] + b"?")
            expected = "does not match its manifest"
    else:
        expected = "column 'orders' is INT64 in the table but FLOAT64 in the export"
    with pytest.raises(LoadError, match=expected):
        load_manifests(store, [key_of(m) for m in batch], opener(target, bridge))
    assert state(target) == before
    if bridge is not None:
        datasets = {t.table_id for t in bridge.list_tables(target.open().target.dataset)}  # type: ignore[attr-defined]
        assert not [name for name in datasets if name.startswith("_kpi_staging")]


CSV_HEADER = """
grain: none
format: csv
columns:
  id: {type: INT64}
  s: {type: STRING}
  n: {type: NUMERIC}
  big: {type: BIGNUMERIC}
  f: {type: FLOAT64}
  b: {type: BOOL}
  d: {type: DATE}
  dt: {type: DATETIME}
  ts: {type: TIMESTAMP}
  t: {type: TIME}
  j: {type: JSON}
"""
CSV_ROWS = """
CREATE TABLE typed AS SELECT * FROM (VALUES
  (1, 'a "quoted", comma', 12.5::DECIMAL(38,9), '1234567890123456789012345678.0123456789'::DECIMAL(38,10), 0.25, true,
   DATE '2024-03-01', TIMESTAMP '2024-03-01 09:30:00.123456', TIMESTAMPTZ '2024-03-01 00:30:00+00', TIME '23:59:59',
   '{"k": [1, 2]}'),
  (2, '', 0::DECIMAL(38,9), 0::DECIMAL(38,10), -1.5, false, DATE '1970-01-01', TIMESTAMP '1970-01-01 00:00:00',
   TIMESTAMPTZ '1970-01-01 00:00:00+00', TIME '00:00:00', '{}'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) AS v(id, s, n, big, f, b, d, dt, ts, t, j)
"""


def test_csv_round_trips_null_the_empty_string_and_every_declared_type_into_both_warehouses(
    tmp_path: Path, kind: str
) -> None:
    """DuckDB shows the values. The emulator cannot: it ignores ``null_marker`` (it reads ``\\N`` as text and
    ``""`` as NULL) and fails (HTTP 500) to create a table with a BIGNUMERIC column. So on BigQuery the test
    asserts the load job configuration the warehouse sends for this manifest (``load_job_config``, what
    ``_load_file`` hands the client), whose meaning BigQuery documents: with a custom null marker, an empty
    string is an empty string."""
    import duckdb

    from pipeline.export import export
    from pipeline.sources import open_source
    from tests.exporting import make_kpi

    source = tmp_path / "typed.duckdb"
    with duckdb.connect(str(source)) as db:
        db.execute(CSV_ROWS)
    kpi = make_kpi(tmp_path / "q", "typed", CSV_HEADER, "SELECT id, s, n, big, f, b, d, dt, ts, t, j FROM typed")
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, [], source=open_source(f"duckdb:///{source}"), store=store)
    assert (manifest.format, manifest.null_marker) == ("csv", "\\N")
    target = duckdb_target(tmp_path / "wh.duckdb")
    key = f"typed/snapshot/run={manifest.run_id}/_manifest.json"
    if kind == "bigquery":
        load = load_job_config(manifest).to_api_repr()["load"]
        assert (load["nullMarker"], load["sourceFormat"], int(load["skipLeadingRows"])) == ("\\N", "CSV", 1)
        assert (load["allowQuotedNewlines"], load["encoding"], load["maxBadRecords"]) == (True, "UTF-8", 0)
        assert [f["type"] for f in load["schema"]["fields"]] == [
            *("INT64", "STRING", "NUMERIC", "BIGNUMERIC", "FLOAT64", "BOOL"),
            *("DATE", "DATETIME", "TIMESTAMP", "TIME", "JSON"),
        ]
        return
    assert load_manifest(store, key, target.open())[1].loaded
    found = target.rows(
        "SELECT id, s, n, big, f, b, d, dt, timezone('UTC', ts), t, j FROM typed ORDER BY id"
    )  # TIMESTAMPTZ as naive UTC: DuckDB hands it out only with pytz
    first, second, empty = found
    assert first[:2] == (1, 'a "quoted", comma')
    assert Decimal(str(first[2])) == Decimal("12.5")
    assert Decimal(str(first[3])) == Decimal("1234567890123456789012345678.0123456789")
    assert first[4:7] == (0.25, True, date(2024, 3, 1))
    assert first[7] == datetime(2024, 3, 1, 9, 30, 0, 123456)
    assert first[8] == datetime(2024, 3, 1, 0, 30)
    assert first[9] == time(23, 59, 59)
    assert json.loads(str(first[10])) == {"k": [1, 2]}
    assert second[1] == ""  # the empty string stays a string…
    assert empty == (3, None, None, None, None, None, None, None, None, None, None)  # …and NULL stays NULL
