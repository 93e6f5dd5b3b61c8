"""kpi remove under races, kills and interrupts: complete or nothing, and the table and ``_kpi_loads`` agree.

- A removal is planned from the audit table (what ``kpi remove`` shows and asks about) and carried out in a
  transaction of its own; a load that commits in between makes it remove nothing (both warehouses judge the plan
  again inside the transaction), and a removal and a load released at the same moment end in one consistent
  state in either order. On BigQuery the emulator detects no conflict between transactions:
  :class:`tests.bigquery.BigQueryBridge` bridges that one call, as in test_load_concurrency.py.
- ``kill -9`` of a ``kpi remove`` process at a statement it is about to send (``tests.killpoints``, ``duckdb:``):
  after its DELETEs ran, before its audit rows — the table and the audit are as they were, and the same command
  then removes.
- Ctrl-C during a BigQuery removal cancels its job (the bridge records the cancel it is sent); a stop before the
  removal sends nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pipeline import catalog, interrupts
from pipeline.core.manifest import Manifest
from pipeline.errors import LoadError
from pipeline.export import export
from pipeline.flows.removal import plan_removal, remove
from pipeline.load import load_manifest
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from pipeline.warehouses.bigquery import BigQueryWarehouse, parse_bigquery_url
from tests.bigquery import BigQueryBridge, BigQueryEmulator, as_before_lock_tables_per_kpi
from tests.exporting import days, make_kpi
from tests.loading import HEADER, SQL, Target, bigquery_target, duckdb_target, key_of, run, shop_source

ROOT = Path(__file__).resolve().parent.parent
OLD, NEW = "20240302T000000000Z-old000", "20240303T000000000Z-new000"
TENFOLD = SQL.replace("COUNT(*)", "COUNT(*) * 10")


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return shop_source(tmp_path)


@pytest.fixture(params=["duckdb", "bigquery"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "duckdb":
        return duckdb_target(tmp_path / "wh.duckdb")
    return bigquery_target(request.getfixturevalue("bq_url"), request.getfixturevalue("bq_client"))


def loaded(target: Target) -> dict[str, tuple[str, int]]:
    """What the table holds agrees with what ``_kpi_loads`` says is loaded (partition → its run and rows), or the
    assertion says where not: each loaded partition's row count, and no row in a partition that is not loaded."""
    warehouse = target.open()
    try:
        loads = warehouse.loads("daily")
    finally:
        warehouse.close()  # a DuckDB file held open here would keep a `kpi` process out
    counted = {day.isoformat(): n for day, n in target.rows("SELECT day, COUNT(*) FROM {daily} GROUP BY day")}
    assert counted == {p: r.rows for p, r in loads.items() if r.rows}, (counted, loads)
    return {p: (r.run_id, r.rows) for p, r in loads.items()}


def test_a_removal_planned_before_a_load_committed_removes_nothing(shop: str, tmp_path: Path, target: Target) -> None:
    store = LocalStore(tmp_path / "lake")
    first_day, second_day = run(shop, tmp_path, count=2, run_id=OLD)
    (new,) = run(shop, tmp_path, sql=TENFOLD, run_id=NEW)
    kpi = catalog.load_one((tmp_path / "q",), "daily")
    load_manifest(store, key_of(first_day), target.open())

    everything = plan_removal(kpi, target.open(), None)  # what `kpi remove --all` shows: 2024-03-01
    assert load_manifest(store, key_of(second_day), target.open())[1].loaded  # a load commits before it runs
    with pytest.raises(LoadError) as refused:
        remove(everything, target.open())
    assert (
        refused.value.message
        == f"daily's loads changed after the removal was planned: 2024-03-02 was loaded (run {OLD})"
    )
    assert refused.value.hint.startswith("nothing was removed (one transaction); run the same `kpi remove` again")
    assert loaded(target) == {"2024-03-01": (OLD, 2), "2024-03-02": (OLD, 1)}

    planned = plan_removal(kpi, target.open(), days("2024-03-01", 1))  # run OLD
    assert load_manifest(store, key_of(new), target.open())[1].loaded
    with pytest.raises(LoadError, match=f"2024-03-01 was loaded again \\(run {NEW}\\)\n"):
        remove(planned, target.open())
    assert loaded(target) == {"2024-03-01": (NEW, 2), "2024-03-02": (OLD, 1)}
    assert target.rows("SELECT SUM(orders) FROM {daily} WHERE day = '2024-03-01'") == [(30,)]

    gone = plan_removal(kpi, target.open(), days("2024-03-02", 1))
    remove(plan_removal(kpi, target.open(), days("2024-03-02", 1)), target.open())  # a second operator was faster
    with pytest.raises(LoadError, match="2024-03-02 is no longer loaded\n"):
        remove(gone, target.open())
    assert loaded(target) == {"2024-03-01": (NEW, 2)}

    assert len(remove(plan_removal(kpi, target.open(), None), target.open())) == 1  # planned afresh: done
    assert loaded(target) == {}
    assert target.rows("SELECT COUNT(*) FROM {daily}") == [(0,)]


@pytest.mark.parametrize("first", ["remove", "load"])
def test_a_removal_and_a_load_of_one_partition_at_the_same_moment_end_consistent(
    shop: str, tmp_path: Path, target: Target, first: str, request: pytest.FixtureRequest
) -> None:
    """Both released by one barrier. DuckDB: the file's write lock takes them one after the other; BigQuery: the
    two scripts meet in the bridge, ``first`` commits and the other is cancelled as overlapping. Either way the
    newer load ends up loaded exactly once: after the removal (accepted, whatever its run), or before it (the
    removal then removes nothing, since its plan is out of date)."""
    store = LocalStore(tmp_path / "lake")
    (old,) = run(shop, tmp_path, run_id=OLD)
    load_manifest(store, key_of(old), target.open())
    (new,) = run(shop, tmp_path, sql=TENFOLD, run_id=NEW)
    kpi = catalog.load_one((tmp_path / "q",), "daily")
    bridge: BigQueryBridge | None = request.getfixturevalue("bq_client") if target.name == "bigquery" else None

    def warehouse() -> Any:
        opened = target.open()
        if isinstance(opened, BigQueryWarehouse) and bridge is not None:

            def wait_for_the_other(_: float) -> None:
                bridge.idle.wait(60)

            return BigQueryWarehouse(opened.url, client=bridge, sleep=wait_for_the_other)
        return opened

    plan = plan_removal(kpi, target.open(), days("2024-03-01", 1))
    if bridge is not None:
        bridge.meet(2, lambda sql: ("kpi_remove_" in sql) == (first == "remove"))
    start = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def removing() -> None:
        opened = warehouse()
        start.wait()
        if target.name == "duckdb" and first == "load":
            loaded_first.wait(60)
        try:
            outcomes["remove"] = remove(plan, opened)
        except LoadError as error:
            outcomes["remove"] = error
        finally:
            removed.set()

    def loading(manifest: Manifest) -> None:
        opened = warehouse()
        start.wait()
        if target.name == "duckdb" and first == "remove":
            removed.wait(60)
        try:
            outcomes["load"] = load_manifest(store, key_of(manifest), opened)[1]
        finally:
            loaded_first.set()

    removed, loaded_first = threading.Event(), threading.Event()  # DuckDB: which of the two takes the lock first
    threads = [threading.Thread(target=removing), threading.Thread(target=loading, args=(new,))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes["load"].loaded, outcomes["load"].reason
    assert loaded(target) == {"2024-03-01": (NEW, 2)}
    assert target.rows("SELECT SUM(orders) FROM {daily}") == [(30,)]
    audit = target.rows("SELECT run_id, STARTS_WITH(job_id, 'removed:') FROM {audit} ORDER BY loaded_at")
    if first == "remove":
        assert [r.partition for r in outcomes["remove"]] == ["2024-03-01"]
        assert audit == [(OLD, False), (OLD, True), (NEW, False)]
    else:
        assert isinstance(outcomes["remove"], LoadError)
        assert "nothing was removed" in outcomes["remove"].hint
        assert audit == [(OLD, False), (NEW, False)]


def audit_and_rows(target: Target) -> list[Any]:
    return [
        target.rows("SELECT * FROM {daily} ORDER BY day, status"),
        target.rows(
            'SELECT kpi, "partition", run_id, sql_hash, "rows", bytes, job_id, CAST(loaded_at AS VARCHAR) '
            "FROM {audit} ORDER BY 2"
        ),
    ]


@pytest.mark.parametrize(
    ("stop", "point"),
    [
        ("SIGKILL", "duckdb:2:DELETE FROM"),
        ("SIGKILL", "duckdb:1:INSERT INTO _kpi_loads"),
        ("SIGINT", "duckdb:1:INSERT INTO _kpi_loads"),
    ],
    ids=["kill-9-after-the-first-delete", "kill-9-after-the-deletes", "ctrl-c-after-the-deletes"],
)
def test_a_removal_stopped_mid_way_leaves_the_table_as_it_was(shop: str, tmp_path: Path, stop: str, point: str) -> None:
    """``kill -9`` (or Ctrl-C) of ``kpi remove`` at a statement it is about to send inside its transaction (one
    DELETE per partition, then the audit rows): the DuckDB file opens afterwards with both partitions and their
    loads as they were, byte for byte; Ctrl-C says so and exits 130; the same command, run again, removes them."""
    target = duckdb_target(tmp_path / "wh.duckdb")
    store = LocalStore(tmp_path / "lake")
    warehouse = target.open()
    for manifest in run(shop, tmp_path, count=2, run_id=OLD):
        load_manifest(store, key_of(manifest), warehouse)
    warehouse.close()  # DuckDB admits one process per file: the child's
    before = audit_and_rows(target)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KPI_QUERIES": str(tmp_path / "q"),
        "KPI_SOURCE": shop,
        "KPI_LAKE": str(tmp_path / "lake"),
        "KPI_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "KPI_TEST_KILL": point,
        "KPI_TEST_SIGNAL": stop,
    }
    env.pop("KPI_ENV", None)
    command = [sys.executable, "-m", "tests.killpoints", "remove", "daily", "--start", "2024-03-01"]
    command += ["--end", "2024-03-02", "--yes", "--json"]
    stopped = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert stopped.stdout == ""  # it did not get to say it removed anything
    if stop == "SIGKILL":
        assert stopped.returncode == -signal.SIGKILL, stopped.stderr
    else:
        assert stopped.returncode == 130, stopped.stderr
        assert stopped.stderr.endswith(
            "interrupted by SIGINT: nothing was removed (the removal's transaction was cancelled and rolled back)\n"
        )
        assert "Traceback" not in stopped.stderr
    assert audit_and_rows(target) == before
    assert loaded(target) == {"2024-03-01": (OLD, 2), "2024-03-02": (OLD, 1)}

    del env["KPI_TEST_KILL"]
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert loaded(target) == {}
    assert target.rows("SELECT COUNT(*) FROM {daily}") == [(0,)]


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_bigquery_removal_killed_while_its_job_is_sent_is_all_or_nothing(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, when: str
) -> None:
    """``kill -9`` of ``kpi remove`` just before its job reaches BigQuery (nothing removed) or just after BigQuery
    took it (the script runs there without the client, to its end: everything removed) — never half."""
    target = bigquery_target(bq_url, bq_client)
    store = LocalStore(tmp_path / "lake")
    for manifest in run(shop, tmp_path, count=2, run_id=OLD):
        load_manifest(store, key_of(manifest), target.open())
    before = audit_and_rows(target)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KPI_QUERIES": str(tmp_path / "q"),
        "KPI_WAREHOUSE": bq_url,
        "KPI_TEST_KILL": f"http:{when}:kpi_remove_",
    }
    env.pop("KPI_ENV", None)
    command = [sys.executable, "-m", "tests.killpoints", "remove", "daily", "--start", "2024-03-01"]
    command += ["--end", "2024-03-02", "--yes", "--json"]
    killed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # This test's removal jobs: the emulator is shared by the test workers, and every test's KPI may be `daily`.
    dataset = bq_url.split("?")[0].rsplit("/", 1)[1]
    jobs = [
        job
        for job in bq_client.list_jobs(max_results=200)
        if job.job_id.startswith("kpi_remove_daily_") and dataset in (getattr(job, "query", "") or "")
    ]
    if when == "before":
        assert jobs == []
        assert audit_and_rows(target) == before
        assert loaded(target) == {"2024-03-01": (OLD, 2), "2024-03-02": (OLD, 1)}
    else:
        (job,) = jobs
        job.result()  # BigQuery's own, whether or not its client is still there
        assert loaded(target) == {}
        removals = target.rows("SELECT \"partition\" FROM {audit} WHERE STARTS_WITH(job_id, 'removed:') ORDER BY 1")
        assert removals == [("2024-03-01",), ("2024-03-02",)]


class StopWhileSending(BigQueryBridge):
    """The bridge, plus: a stop request arrives while the removal's job is being sent (before BigQuery answers),
    and every ``cancel_job`` call is recorded and forwarded. The emulator runs a script to its end before it
    answers, so the cancel reaches a job that has committed: what a cancel too late does on BigQuery too."""

    cancelled: list[str]

    def query(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if "kpi_remove_" in query:
            interrupts.request(signal.SIGINT)
        return super().query(query, *args, **kwargs)

    def cancel_job(self, job_id: Any, *args: Any, **kwargs: Any) -> Any:
        self.cancelled.append(str(job_id))
        return super().cancel_job(job_id, *args, **kwargs)


@pytest.fixture
def stops() -> Iterator[None]:
    """The process's stop request cleared after the test, as the next command's :func:`interrupts.handled` does."""
    yield
    with interrupts.handled():
        pass


def test_ctrl_c_during_a_bigquery_removal_cancels_its_job(
    shop: str, tmp_path: Path, bq_url: str, bigquery_emulator: BigQueryEmulator, stops: None
) -> None:
    store = LocalStore(tmp_path / "lake")
    client: StopWhileSending = bigquery_emulator.client(StopWhileSending)
    client.cancelled = []
    target = bigquery_target(bq_url, client)
    for manifest in run(shop, tmp_path, count=2, run_id=OLD):
        load_manifest(store, key_of(manifest), target.open())
    kpi = catalog.load_one((tmp_path / "q",), "daily")
    before = audit_and_rows(target)

    with interrupts.handled():
        interrupts.request(signal.SIGINT)
        planned = plan_removal(kpi, target.open(), days("2024-03-01", 1))
        with pytest.raises(interrupts.Interrupted):  # stopped before the removal: nothing is sent
            remove(planned, target.open())
    assert not [job for job in client.jobs if "kpi_remove_" in job.sql]
    assert audit_and_rows(target) == before

    with interrupts.handled():
        (record,) = remove(plan_removal(kpi, target.open(), days("2024-03-01", 1)), target.open())
        assert interrupts.requested() == signal.SIGINT
    (sent,) = [job for job in client.jobs if "kpi_remove_" in job.sql]
    assert "DELETE FROM" in sent.sql
    assert client.get_job(record.job_id.removeprefix("removed:")).state == "DONE"  # the id sent is the record's
    # the job's own id, known before it was sent: cancelled from the stop's hook and once more after the send
    assert set(client.cancelled) == {record.job_id.removeprefix("removed:")}
    assert loaded(target) == {"2024-03-02": (OLD, 1)}  # committed before the cancel reached it: reported as done
    assert target.rows("SELECT day FROM {daily}") == [(date(2024, 3, 2),)]


def test_a_kpi_loaded_when_the_lock_was_shared_gets_its_own_lock_table_and_the_removal_goes_through(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge
) -> None:
    """A dataset loaded before each KPI had its own lock table: the removal's first statement finds no
    ``_kpi_lock_daily``; it is made, the removal sent once more, and the shared ``_kpi_lock`` left as it was."""
    target = bigquery_target(bq_url, bq_client)
    store = LocalStore(tmp_path / "lake")
    for manifest in run(shop, tmp_path, count=2, run_id=OLD):
        load_manifest(store, key_of(manifest), target.open())
    where = parse_bigquery_url(bq_url)
    shared = as_before_lock_tables_per_kpi(bq_client, f"{where.project}.{where.dataset}", "daily", OLD)
    kpi = catalog.load_one((tmp_path / "q",), "daily")
    (record,) = remove(plan_removal(kpi, target.open(), days("2024-03-01", 1)), target.open())
    assert record.partition == "2024-03-01"
    assert loaded(target) == {"2024-03-02": (OLD, 1)}
    assert target.rows(f"SELECT kpi, run_id FROM `{where.table('_kpi_lock_daily')}`") == [("daily", "")]  # made
    assert target.rows(f"SELECT kpi, run_id FROM `{shared}`") == [("daily", OLD)]  # untouched
    assert len([job for job in bq_client.jobs if "kpi_remove_" in job.sql]) == 2  # refused, then sent again


@pytest.mark.parametrize("first", ["remove", "load"])
def test_a_removal_of_one_kpi_and_a_load_of_another_at_the_same_moment_both_commit_at_once(
    shop: str, tmp_path: Path, bq_url: str, bq_client: BigQueryBridge, first: str
) -> None:
    """The two scripts meet in the bridge, ``first`` admitted first: the removal locks ``_kpi_lock_daily``, the
    load ``_kpi_lock_refunds`` — disjoint tables, so both are in flight together and neither is cancelled (with
    one shared lock table, BigQuery cancelled one of them)."""
    target = bigquery_target(bq_url, bq_client)
    store = LocalStore(tmp_path / "lake")
    (old,) = run(shop, tmp_path, run_id=OLD)
    load_manifest(store, key_of(old), target.open())
    refunds = make_kpi(tmp_path / "q", "refunds", HEADER, SQL)
    (other,) = export(refunds, days("2024-03-01", 1), source=open_source(shop), store=store, run_id=NEW)
    daily = catalog.load_one((tmp_path / "q",), "daily")
    plan = plan_removal(daily, target.open(), days("2024-03-01", 1))
    before = len(bq_client.transactions())
    bq_client.meet(2, lambda sql: ("kpi_remove_" in sql) == (first == "remove"))

    def never(_: float) -> None:
        raise AssertionError("a transaction was retried")

    start = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def removing() -> None:
        warehouse = BigQueryWarehouse(bq_url, client=bq_client, sleep=never)
        start.wait()
        outcomes["remove"] = remove(plan, warehouse)

    def loading() -> None:
        warehouse = BigQueryWarehouse(bq_url, client=bq_client, sleep=never)
        start.wait()
        key = f"refunds/day={other.partition}/run={other.run_id}/_manifest.json"
        outcomes["load"] = load_manifest(store, key, warehouse)[1]

    threads = [threading.Thread(target=removing), threading.Thread(target=loading)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [r.partition for r in outcomes["remove"]] == ["2024-03-01"]
    assert outcomes["load"].loaded
    sent = bq_client.transactions()[before:]
    assert sorted("kpi_remove_" in sql for sql in sent) == [False, True]  # one script each: no retry
    assert bq_client.conflicts == []
    assert bq_client.most_in_flight == 2  # they did overlap
    assert loaded(target) == {}
    where = parse_bigquery_url(bq_url)
    assert target.rows(f"SELECT status, orders FROM `{where.table('refunds')}` ORDER BY status") == [
        ("paid", 2),
        ("refunded", 1),
    ]
    assert target.rows("SELECT kpi, run_id, STARTS_WITH(job_id, 'removed:') FROM {audit} ORDER BY loaded_at")[1:] in (
        [("daily", OLD, True), ("refunds", NEW, False)],
        [("refunds", NEW, False), ("daily", OLD, True)],
    )
