"""The demo shop (``pipeline.demo.generate``): deterministic, realistic, complete, replaced atomically, and enough
for every example KPI in ``queries/`` to export a non-empty partition through the project's own exporter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline import catalog
from pipeline.core.intervals import Grain, Interval, interval_containing
from pipeline.demo import generate
from pipeline.demo.generate import DemoSummary, demo_is_current, generate_demo_source
from pipeline.export import export
from pipeline.sources import open_source
from pipeline.stores import LocalStore
from tests.conftest import ROOT
from tests.exporting import read_partition

TODAY = date(2024, 3, 15)  # the JST date the fixture's shop is built on: its data ends on 2024-03-14
FIRST_DAY, LAST_DAY = date(2023, 12, 16), date(2024, 3, 14)


@contextmanager
def reading(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(path), read_only=True) as db:
        yield db


def one(db: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = db.execute(sql).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


def fingerprint(path: Path) -> dict[str, str]:
    """An md5 of every row of every table, in id order."""
    with reading(path) as db:
        return {
            table: one(db, f"SELECT md5(string_agg(CAST(t AS VARCHAR), '\n' ORDER BY id)) FROM {table} AS t")
            for table in ("users", "orders")
        }


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate_demo_source(tmp_path_factory.mktemp("demo") / "demo.duckdb", today=TODAY)


def test_the_summary_describes_the_file(shop: DemoSummary) -> None:
    assert (shop.first_day, shop.last_day) == (FIRST_DAY, LAST_DAY)
    assert 3_000 <= shop.users <= 6_000
    assert 30_000 <= shop.orders <= 60_000
    with reading(shop.path) as db:
        assert one(db, "SELECT count(*) FROM users") == shop.users
        assert one(db, "SELECT count(*) FROM orders") == shop.orders
        assert one(db, "SELECT today, days, seed FROM _demo") == (TODAY, 90, 7)


def test_the_same_seed_and_day_give_identical_rows(shop: DemoSummary, tmp_path: Path) -> None:
    again = generate_demo_source(tmp_path / "again.duckdb", today=TODAY)
    assert (again.users, again.orders) == (shop.users, shop.orders)
    assert fingerprint(again.path) == fingerprint(shop.path)
    other = generate_demo_source(tmp_path / "other.duckdb", today=TODAY, days=30, seed=8)
    assert fingerprint(other.path)["orders"] != fingerprint(shop.path)["orders"]


def test_the_tables_have_the_schema_of_schema_sql(shop: DemoSummary) -> None:
    with reading(shop.path) as db:
        columns = db.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name IN ('users', 'orders') ORDER BY table_name, ordinal_position"
        ).fetchall()
    assert columns == [
        ("orders", "id", "BIGINT", "NO"),
        ("orders", "user_id", "BIGINT", "NO"),
        ("orders", "status", "VARCHAR", "NO"),
        ("orders", "amount", "DECIMAL(12,2)", "NO"),
        ("orders", "created_at", "TIMESTAMP", "NO"),
        ("users", "id", "BIGINT", "NO"),
        ("users", "email", "VARCHAR", "NO"),
        ("users", "country", "VARCHAR", "NO"),
        ("users", "plan", "VARCHAR", "NO"),
        ("users", "created_at", "TIMESTAMP", "NO"),
    ]


def test_orders_cover_every_jst_day_of_the_period_with_a_weekly_rhythm(shop: DemoSummary) -> None:
    with reading(shop.path) as db:
        first, last = one(db, "SELECT min(created_at), max(created_at) FROM orders")
        per_day = dict(db.execute("SELECT created_at::DATE, count(*) FROM orders GROUP BY 1").fetchall())
        by_weekday = dict(
            db.execute(
                "SELECT isodow(d) >= 6, avg(n)"
                " FROM (SELECT created_at::DATE AS d, count(*) AS n FROM orders GROUP BY 1) GROUP BY 1"
            ).fetchall()
        )
    assert datetime.combine(FIRST_DAY, time()) <= first < datetime.combine(FIRST_DAY, time(1))
    assert datetime.combine(LAST_DAY, time(23)) <= last < datetime.combine(TODAY, time())
    assert sorted(per_day) == [FIRST_DAY + timedelta(days=n) for n in range(90)]  # no gaps
    assert all(300 <= n <= 800 for n in per_day.values()), per_day
    assert by_weekday[True] > 1.2 * by_weekday[False]  # weekends sell more


def test_the_trend_rises_and_the_intraday_curve_peaks_at_lunch_and_in_the_evening(shop: DemoSummary) -> None:
    with reading(shop.path) as db:
        first_weeks, last_weeks = one(
            db,
            f"SELECT count(*) FILTER (created_at < DATE '{FIRST_DAY + timedelta(days=28)}'),"
            f" count(*) FILTER (created_at >= DATE '{TODAY - timedelta(days=28)}') FROM orders",
        )
        hourly = dict(db.execute("SELECT hour(created_at), count(*) FROM orders GROUP BY 1").fetchall())
    assert 1.1 * first_weeks < last_weeks < 1.5 * first_weeks
    assert sorted(hourly) == list(range(24))
    night = max(hourly[h] for h in (3, 4, 5))
    assert hourly[12] > 5 * night
    assert all(hourly[h] > hourly[12] for h in (20, 21))
    assert max(hourly, key=lambda h: hourly[h]) in (20, 21, 22)


def test_users_are_mostly_japanese_on_three_plans_with_unique_emails(shop: DemoSummary) -> None:
    with reading(shop.path) as db:
        countries = dict(db.execute("SELECT country, count(*) FROM users GROUP BY 1").fetchall())
        plans = dict(db.execute("SELECT plan, count(*) FROM users GROUP BY 1").fetchall())
        distinct_emails = one(db, "SELECT count(DISTINCT email) FROM users")
        well_formed = one(
            db, "SELECT bool_and(regexp_full_match(email, '[a-z]+\\.[a-z][0-9]+@example\\.(com|net|org)')) FROM users"
        )
        before, during, after = one(
            db,
            f"SELECT count(*) FILTER (created_at < DATE '{FIRST_DAY}'),"
            f" count(*) FILTER (created_at >= DATE '{FIRST_DAY}' AND created_at < DATE '{TODAY}'),"
            f" count(*) FILTER (created_at >= DATE '{TODAY}') FROM users",
        )
    assert {"JP", "US", "KR", "TW", "SG"} <= set(countries)
    assert countries["JP"] > 0.6 * shop.users
    assert set(plans) == {"free", "standard", "premium"}
    assert plans["free"] > plans["standard"] > plans["premium"] > 0
    assert distinct_emails == shop.users
    assert well_formed
    assert before > 1_000
    assert during > 1_000
    assert after == 0


def test_every_order_belongs_to_a_user_who_had_already_signed_up(shop: DemoSummary) -> None:
    with reading(shop.path) as db:
        orphans = one(db, "SELECT count(*) FROM orders AS o ANTI JOIN users AS u ON u.id = o.user_id")
        premature = one(
            db, "SELECT count(*) FROM orders AS o JOIN users AS u ON u.id = o.user_id WHERE o.created_at < u.created_at"
        )
        buyers = one(db, "SELECT count(DISTINCT user_id) FROM orders")
        ids_follow_time = one(
            db,
            "SELECT bool_and(created_at >= previous) FROM"
            " (SELECT created_at, lag(created_at, 1, created_at) OVER (ORDER BY id) AS previous FROM orders)",
        )
    assert orphans == 0
    assert premature == 0
    assert buyers > 0.5 * shop.users
    assert ids_follow_time


def test_statuses_and_amounts_have_a_long_tail_past_the_large_orders_threshold(shop: DemoSummary) -> None:
    with reading(shop.path) as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM orders GROUP BY 1").fetchall())
        smallest, median, largest = one(db, "SELECT min(amount), median(amount), max(amount) FROM orders")
        large_paid = one(db, "SELECT count(*) FROM orders WHERE amount >= 50000 AND status LIKE 'paid%'")
        days_with_large = one(
            db, "SELECT count(DISTINCT created_at::DATE) FROM orders WHERE amount >= 50000 AND status LIKE 'paid%'"
        )
        whole_yen = one(db, "SELECT bool_and(amount % 10 = 0) FROM orders")
    assert set(statuses) == {"paid", "refunded", "cancelled", "paid_partially"}
    assert statuses["paid"] > 0.8 * shop.orders
    assert 0 < statuses["paid_partially"] < statuses["refunded"]
    assert smallest >= Decimal(100)
    assert Decimal(1_000) < median < Decimal(10_000)
    assert largest >= Decimal(200_000)
    assert large_paid > 200
    assert days_with_large == 90  # the large_orders KPI has rows every day
    assert whole_yen


def test_a_new_source_replaces_the_old_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / ".kpi" / "demo.duckdb"
    path.parent.mkdir()
    path.write_bytes(b"not a database")
    (tmp_path / ".kpi" / "demo.duckdb.wal").write_bytes(b"a stale log of the old file")
    summary = generate_demo_source(path, today=TODAY, days=7)
    assert summary == DemoSummary(path, summary.users, summary.orders, date(2024, 3, 8), LAST_DAY)
    assert sorted(p.name for p in path.parent.iterdir()) == ["demo.duckdb"]
    with reading(path) as db:
        assert one(db, "SELECT count(*) FROM orders") == summary.orders
        assert one(db, "SELECT min(created_at)::DATE FROM orders") == date(2024, 3, 8)


def test_a_failed_generation_keeps_the_previous_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "demo.duckdb"
    generate_demo_source(path, today=TODAY, days=3)
    before = fingerprint(path)
    monkeypatch.setattr(generate, "_ORDERS", "INSERT INTO orders SELECT 1 / 0 AS broken")
    with pytest.raises(duckdb.Error):
        generate_demo_source(path, today=TODAY + timedelta(days=1), days=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.duckdb"]
    assert fingerprint(path) == before
    assert demo_is_current(path, today=TODAY, days=3)


def test_demo_is_current_only_for_the_day_days_and_seed_it_was_built_for(tmp_path: Path) -> None:
    path = tmp_path / "demo.duckdb"
    assert not demo_is_current(path, today=TODAY)
    generate_demo_source(path, today=TODAY, days=5, seed=3)
    assert demo_is_current(path, today=TODAY, days=5, seed=3)
    assert not demo_is_current(path, today=TODAY + timedelta(days=1), days=5, seed=3)
    assert not demo_is_current(path, today=TODAY, days=90, seed=3)
    assert not demo_is_current(path, today=TODAY, days=5, seed=7)
    generate_demo_source(path, today=TODAY)
    assert demo_is_current(path, today=TODAY)
    path.write_bytes(b"not a database")
    assert not demo_is_current(path, today=TODAY)
    path.unlink()
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE orders (id BIGINT)")
    assert not demo_is_current(path, today=TODAY)


def _recent(grain: Grain, kpi_zone: Any) -> list[Interval]:
    """The partition a daily run on TODAY would export: yesterday (its 12:00 hour, its month); none for a snapshot."""
    if grain is Grain.NONE:
        return []
    return [interval_containing(grain, kpi_zone, datetime.combine(LAST_DAY, time(12)))]


def test_every_example_kpi_exports_a_non_empty_partition_from_the_demo_source(
    shop: DemoSummary, tmp_path: Path
) -> None:
    found = catalog.load([ROOT / "queries"])
    assert found.ok, found.problems
    source = open_source(f"duckdb:///{shop.path}")
    store = LocalStore(tmp_path / "lake")
    partitions = {}
    for name, kpi in sorted(found.kpis.items()):
        (manifest,) = export(kpi, _recent(kpi.grain, kpi.zone), source=source, store=store)
        assert manifest.rows > 0, name
        partitions[name] = manifest.partition
        if name == "daily_sales":
            rows = read_partition(store, manifest).to_pylist()
            with reading(shop.path) as db:
                expected = one(db, f"SELECT count(*) FROM orders WHERE created_at::DATE = DATE '{LAST_DAY}'")
            assert sum(row["orders"] for row in rows) == expected
        if name == "users_by_plan":
            assert sum(row["users"] for row in read_partition(store, manifest).to_pylist()) == shop.users
    expected = {
        "daily_sales": "2024-03-14",
        "hourly_orders": "2024-03-14T12",
        "large_orders": "2024-03-14",
        "monthly_active_buyers": "2024-03",
        "users_by_plan": "snapshot",
    }
    assert {name: partitions[name] for name in expected} == expected
