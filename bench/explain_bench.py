"""What the production EXPLAIN guard costs per query — ``python -m bench.explain_bench``.

On MariaDB at ``127.0.0.1:3306`` (``--source`` for another), in a scratch database of its own (dropped at the
end): ``orders`` of ``--rows`` rows (default 1,000,000, one every 10 minutes) and 5,000 ``users``. For a daily KPI
that joins them, it times :meth:`ExplainGuard.report` — a fresh connection, the session settings, ``EXPLAIN
FORMAT=JSON``, the judgement — ``--repeat`` times with the plan cache cleared (every run asks the server), first
without an index on the time column (refused) and then with one (accepted), and once more from the cache. It also
reads the server's ``Handler_read%`` counters around the EXPLAINs, to show that they read no table's worth of rows.
The issue's target: well under a second per KPI. It is a measurement: it always exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import pymysql

from pipeline.catalog import load_one
from pipeline.core.intervals import Grain, interval_containing
from pipeline.core.render import bind_values
from pipeline.sources import open_source
from pipeline.sources.explain import ExplainGuard, clear_cache

KPI = """/*---
name: daily_orders
grain: day
time_column: day
columns:
  day:     {type: DATE}
  country: {type: STRING}
  orders:  {type: INT64}
---*/
SELECT DATE(o.created_at) AS day, u.country, COUNT(*) AS orders
FROM orders o JOIN users u ON u.id = o.user_id
WHERE o.created_at >= :start AND o.created_at < :end
GROUP BY 1, 2
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="mysql://root@127.0.0.1:3306/")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    database = f"kpi_bench_explain_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    url = args.source.rstrip("/") + "/" + database
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{database}`")
            cursor.execute(f"USE `{database}`")
            cursor.execute("CREATE TABLE users (id BIGINT PRIMARY KEY, country CHAR(2) NOT NULL)")
            cursor.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, created_at DATETIME)")
            cursor.execute("INSERT INTO users SELECT seq, IF(seq % 3 = 0, 'US', 'JP') FROM seq_0_to_4999")
            started = time.monotonic()
            cursor.execute(
                "INSERT INTO orders SELECT seq, seq % 5000, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (seq * 600) "
                f"SECOND FROM seq_1_to_{args.rows}"
            )
            cursor.execute("ANALYZE TABLE orders, users")
            cursor.fetchall()
            print(f"# EXPLAIN guard, MariaDB {admin.get_server_info()}, orders of {args.rows:,} rows")
            print(f"generated in {time.monotonic() - started:.1f}s\n")
            print("| plan | verdict | median s | max s | Handler_read% moved per EXPLAIN |")
            print("|---|---|---|---|---|")
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "daily_orders.sql").write_text(KPI)
                kpi = load_one((Path(folder),), "daily_orders")
                source = open_source(url)
                day = interval_containing(Grain.DAY, kpi.zone, datetime(2024, 3, 1))
                rendered = source.render(kpi.query, bind_values(kpi, day))
                guard = ExplainGuard(100_000)
                for label in ("no index on created_at", "index on created_at"):
                    if label.startswith("index"):
                        cursor.execute("CREATE INDEX ix_orders_created_at ON orders (created_at)")
                    seconds, read = [], []
                    verdict = ""
                    for _ in range(args.repeat):
                        clear_cache()
                        before = _rows_read(cursor)
                        report = guard.report(kpi, source, rendered, day.partition)
                        read.append(_rows_read(cursor) - before)
                        seconds.append(report.seconds)
                        verdict = "refused" if report.refusals else "accepted"
                    print(
                        f"| {label} | {verdict} | {statistics.median(seconds):.4f} | {max(seconds):.4f} | "
                        f"median {statistics.median(read):,.0f} (table: {args.rows:,}) |"
                    )
                start = time.perf_counter()
                cached = guard.report(kpi, source, rendered, day.partition)
                print(f"| cached | {'accepted' if cached.cached else '?'} | {time.perf_counter() - start:.6f} | | 0 |")
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
    return 0


def _rows_read(cursor: pymysql.cursors.Cursor) -> int:
    cursor.execute("SHOW GLOBAL STATUS LIKE 'Handler_read%'")
    return sum(int(value) for _, value in cursor.fetchall())


if __name__ == "__main__":
    sys.exit(main())
