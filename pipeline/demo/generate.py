"""The demo shop's data: a DuckDB file that the example KPIs in ``queries/`` can run against, built in seconds.

Why: with no configuration, kpi-pipeline reads this embedded source (``.kpi/demo.duckdb``) instead of MySQL, so a
newcomer sees the whole flow — check, render, export, load — without a database server. The data has to look like
a real shop for the KPIs to show something worth looking at: a few thousand users (mostly in Japan, on free,
standard or premium plans) and tens of thousands of orders, ~300–800 a day with a weekly rhythm (weekends higher),
a mild upward trend and an intraday curve (quiet at 3–6 am, peaks at lunch and 20–22h), mostly paid with some
refunds, cancellations and a few ``paid_partially``, and amounts in JPY with a long tail past the 50000 threshold
of ``large_orders``. Japanese public holidays sell like Sundays. Four days before ``today`` a payment outage
(:data:`OUTAGE_DAYS_AGO`) fails 45 % of the day's checkouts — ``cancelled`` instead of ``paid`` — the anomaly that
``daily_sales``' anomaly scoring finds and the report marks.

The tables are created from ``schema.sql`` (MySQL, as the KPIs expect it) transpiled to DuckDB by sqlglot, and
filled by DuckDB SQL alone: every random draw is ``hash(seed, key, stream)`` of the row's identity, so the same
``seed`` and ``today`` give the same rows, whatever the number of threads. ``created_at`` holds naive Japan
(Asia/Tokyo) wall-clock time, like the DATETIME columns of the MySQL shop; the data covers the ``days`` JST days
that end with yesterday (``today - 1 day``).

The file is built under a temporary name in the destination's folder and moved into place with ``os.replace``,
so a crash never leaves a half-built source behind. A small ``_demo`` table records what it was built for, so
callers regenerate it only when ``demo_is_current`` says it is stale.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import sqlglot

from pipeline.duckdb_import import duckdb

DEFAULT_DAYS = 90
DEFAULT_SEED = 7
# Bumped whenever the generator's output changes, so that files built by an older version count as stale.
GENERATOR_VERSION = 2
# Users who signed up before the period (over the two preceding years), then ~20 sign-ups a day within it.
EARLY_USERS = 2_400
EARLY_SPAN_DAYS = 730
SIGNUPS_PER_DAY = 20
ORDERS_PER_DAY = 400  # before the weekly rhythm (×0.90–1.30), the trend (×1.00–1.30) and noise (×0.92–1.08)
OUTAGE_DAYS_AGO = 4  # the day of the payment outage, counted back from today
OUTAGE_FAILED = 0.45  # share of that day's orders whose payment failed (cancelled)


@dataclass(frozen=True)
class DemoSummary:
    """What ``generate_demo_source`` built: the file, its row counts and the JST days its orders cover."""

    path: Path
    users: int
    orders: int
    first_day: date
    last_day: date


# A uniform draw in (0, 1) from the 53 high bits of a hash: deterministic, unlike random(), and independent of
# the order in which threads visit the rows. `a` is the seed, `b` the row's key, `c` the stream (one per draw).
# DuckDB's multi-argument hash only combines the arguments' hashes (draws of one row in different streams came out
# correlated, r ≈ 0.6–0.9); hashing that again mixes them (|r| < 0.01, no collisions in 38M keys).
_DRAW_MACRO = """
CREATE TEMP MACRO draw(a, b, c) AS
  ((hash(hash(a::BIGINT, b::BIGINT, c::BIGINT)) >> 11)::DOUBLE + 0.5) / 9007199254740992.0
"""


def _choice(draw: str, weighted: Sequence[tuple[str | int, float]]) -> str:
    """A SQL expression that maps the uniform ``draw`` to one of the values, with the given relative weights."""
    total = sum(weight for _, weight in weighted)
    cases, cumulative = [], 0.0
    for value, weight in weighted[:-1]:
        cumulative += weight / total
        cases.append(f"WHEN {draw} < {cumulative!r} THEN {_literal(value)}")
    return f"CASE {' '.join(cases)} ELSE {_literal(weighted[-1][0])} END"


def _literal(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


# Monday … Sunday (ISO order): the shop sells most on weekends, least early in the week.
_WEEKLY = "[0.92, 0.90, 0.93, 0.96, 1.05, 1.30, 1.22]"
# Relative order volume per JST hour 0–23: a trough at 3–6 am, a lunch peak, the evening peak at 20–22h.
_HOURLY = [3.0, 2.0, 1.2, 0.6, 0.5, 0.6, 1.2, 2.5, 3.5, 4.0, 4.5, 5.5]
_HOURLY += [7.5, 6.5, 4.5, 4.0, 4.0, 4.5, 5.5, 7.0, 9.0, 9.5, 8.0, 5.0]
_NAMES = ["aoi", "haruto", "yui", "sota", "hina", "ren", "mio", "yuto", "sakura", "kaito", "emma", "liam", "noah"]
_NAMES += ["olivia", "minjun", "seoyeon", "weiting", "jiahao", "wei", "priya", "lucas", "mei", "daniel", "nanami"]
_INITIALS = list("abdhkmnstwy")
_DOMAINS = [("example.com", 5.0), ("example.net", 3.0), ("example.org", 2.0)]
_COUNTRIES = [("JP", 72.0), ("US", 7.0), ("KR", 6.0), ("TW", 5.0), ("SG", 3.0), ("HK", 2.0), ("TH", 2.0)]
_COUNTRIES += [("AU", 1.2), ("GB", 1.0), ("DE", 0.8)]
_PLANS = [("free", 68.0), ("standard", 24.0), ("premium", 8.0)]
_STATUSES = [("paid", 87.5), ("refunded", 5.0), ("cancelled", 6.0), ("paid_partially", 1.5)]

# The period's days: i counts from 0, epoch_days (days since 1970-01-01) keys each day's draws, so that a day's
# draws do not depend on where the period starts.
_PERIOD = """
SELECT i, ($first_day + INTERVAL (i) DAY)::DATE AS day, ($first_day - DATE '1970-01-01') + i AS epoch_days
FROM range($days) AS t(i)
"""

_USERS = f"""
INSERT INTO users
WITH early AS (  -- signed up over the two years before the period
  SELECT
    $first_day::TIMESTAMP - INTERVAL {EARLY_SPAN_DAYS} DAY
      + to_seconds(floor(draw($seed, n, 1) * {EARLY_SPAN_DAYS * 86400})::BIGINT) AS created_at,
    n AS draw_key
  FROM range({EARLY_USERS}) AS t(n)
),
signup_days AS (
  SELECT
    day,
    epoch_days,
    round({SIGNUPS_PER_DAY} * {_WEEKLY}[isodow(day)] * (0.7 + 0.6 * draw($seed, epoch_days, 2)))::BIGINT AS signups
  FROM ({_PERIOD})
),
recent AS (
  SELECT
    day::TIMESTAMP + to_seconds(floor(draw($seed, epoch_days * 1000 + k, 3) * 86400)::BIGINT) AS created_at,
    1000000000 + epoch_days * 1000 + k AS draw_key
  FROM (SELECT day, epoch_days, unnest(range(signups)) AS k FROM signup_days)
),
everyone AS (  -- ids follow sign-up order
  SELECT
    row_number() OVER (ORDER BY created_at, draw_key) AS id,
    created_at,
    draw($seed, draw_key, 4) AS u_name,
    draw($seed, draw_key, 5) AS u_initial,
    draw($seed, draw_key, 6) AS u_domain,
    draw($seed, draw_key, 7) AS u_country,
    draw($seed, draw_key, 8) AS u_plan
  FROM (SELECT * FROM early UNION ALL SELECT * FROM recent)
)
SELECT
  id,
  {_choice("u_name", [(name, 1.0) for name in _NAMES])} || '.' || {_choice("u_initial", [(i, 1.0) for i in _INITIALS])}
    || id || '@' || {_choice("u_domain", _DOMAINS)} AS email,
  {_choice("u_country", _COUNTRIES)} AS country,
  {_choice("u_plan", _PLANS)} AS plan,
  created_at
FROM everyone
ORDER BY id
"""

_ORDERS = f"""
INSERT INTO orders
WITH order_days AS (
  SELECT
    day,
    epoch_days,
    round(
      {ORDERS_PER_DAY} * (CASE WHEN list_contains($holidays, day) THEN {_WEEKLY}[7] ELSE {_WEEKLY}[isodow(day)] END)
        * (1 + 0.3 * i / greatest($days - 1, 1))
        * (0.92 + 0.16 * draw($seed, epoch_days, 11))
    )::BIGINT AS orders,
    (SELECT count(*) FROM users WHERE created_at < day) AS buyers  -- who had signed up before the day began
  FROM ({_PERIOD})
),
draws AS (
  SELECT
    day,
    day = $outage_day AS outage,
    buyers,
    draw_key,
    draw($seed, draw_key, 12) AS u_hour,
    draw($seed, draw_key, 13) AS u_second,
    draw($seed, draw_key, 14) AS u_user,
    draw($seed, draw_key, 15) AS u_status,
    draw($seed, draw_key, 16) AS u_tail,
    draw($seed, draw_key, 17) AS u_pareto,
    draw($seed, draw_key, 18) AS u_normal_1,
    draw($seed, draw_key, 19) AS u_normal_2
  FROM (SELECT day, buyers, epoch_days * 10000 + unnest(range(orders)) AS draw_key FROM order_days)
),
drawn AS (
  SELECT
    draw_key,
    day::TIMESTAMP
      + to_seconds({_choice("u_hour", list(enumerate(_HOURLY)))} * 3600 + floor(u_second * 3600)::BIGINT)
      AS created_at,
    -- Older users buy more often: the density of u² falls along the ids, which follow sign-up order.
    1 + floor(buyers * u_user * u_user)::BIGINT AS user_id,
    CASE WHEN outage AND draw($seed, draw_key, 20) < {OUTAGE_FAILED} THEN 'cancelled'
      ELSE {_choice("u_status", _STATUSES)} END AS status,
    -- JPY: a log-normal body (median 3000 yen) and, for 5% of orders, a Pareto tail from 20000 yen: ~1.5% of
    -- orders reach large_orders' 50000 yen, ~7 a day on average (a quiet day without one is rare but possible).
    CASE
      WHEN u_tail < 0.05 THEN least(20000 * pow(u_pareto, -1 / 1.3), 1000000)
      ELSE 3000 * exp(0.85 * sqrt(-2 * ln(u_normal_1)) * cos(2 * pi() * u_normal_2))
    END AS base_amount
  FROM draws
)
SELECT
  row_number() OVER (ORDER BY d.created_at, d.draw_key) AS id,
  d.user_id,
  d.status,
  -- Whole yen, priced in tens; standard and premium members spend a little more.
  greatest(round(d.base_amount * CASE u.plan WHEN 'premium' THEN 1.5 WHEN 'standard' THEN 1.2 ELSE 1 END, -1), 100)
    ::DECIMAL(12, 2) AS amount,
  d.created_at
FROM drawn AS d
JOIN users AS u ON u.id = d.user_id
ORDER BY id
"""


def schema_statements() -> list[str]:
    """The demo shop's ``CREATE TABLE`` statements, transpiled from ``schema.sql`` (MySQL) to DuckDB."""
    text = resources.files("pipeline.demo").joinpath("schema.sql").read_text(encoding="utf-8")
    return [statement for statement in sqlglot.transpile(text, read="mysql", write="duckdb") if statement.strip()]


def period(today: date, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """The first and last JST day the data covers: the ``days`` days that end with yesterday."""
    return today - timedelta(days=days), today - timedelta(days=1)


def generate_demo_source(path: Path, *, today: date, days: int = DEFAULT_DAYS, seed: int = DEFAULT_SEED) -> DemoSummary:
    """(Re)create the demo shop at ``path`` for ``today`` (the current date in Japan); replace any file there.

    The same ``today``, ``days`` and ``seed`` always give the same rows.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    first_day, last_day = period(today, days)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with duckdb.connect(str(temporary)) as db:
            for statement in schema_statements():
                db.execute(statement)
            db.execute(_DRAW_MACRO)
            values = {"first_day": first_day, "days": days, "seed": seed}
            db.execute(_USERS, values)
            outage = today - timedelta(days=OUTAGE_DAYS_AGO)
            db.execute(_ORDERS, {**values, "holidays": _holidays(first_day, last_day), "outage_day": outage})
            db.execute("CREATE TABLE _demo (today DATE, days INTEGER, seed BIGINT, version INTEGER)")
            db.execute("INSERT INTO _demo VALUES (?, ?, ?, ?)", [today, days, seed, GENERATOR_VERSION])
            users, orders = _counts(db)
            db.execute("CHECKPOINT")
        _fsync(temporary)
        # A write-ahead log left by a crashed writer of the old file must not be replayed onto the new one.
        _wal(path).unlink(missing_ok=True)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        _wal(temporary).unlink(missing_ok=True)
    return DemoSummary(path=path, users=users, orders=orders, first_day=first_day, last_day=last_day)


def _holidays(first: date, last: date) -> list[date]:
    """Japan's public holidays from ``first`` to ``last`` (the ``holidays`` package); a day long past stands in
    for none, so that DuckDB knows the list's type."""
    import holidays

    found = holidays.country_holidays("JP", years=range(first.year, last.year + 1))
    return sorted(day for day in found if first <= day <= last) or [date(1970, 1, 1)]  # a typed list, never empty


def demo_is_current(path: Path, *, today: date, days: int = DEFAULT_DAYS, seed: int = DEFAULT_SEED) -> bool:
    """Whether ``path`` is a demo shop built by this generator for ``today`` (and ``days``, ``seed``)."""
    if not path.is_file():
        return False
    try:
        with duckdb.connect(str(path), read_only=True) as db:
            row = db.execute("SELECT today, days, seed, version FROM _demo").fetchone()
    except duckdb.Error:  # not a DuckDB file, no _demo table, or locked by a writer: build it again
        return False
    return row == (today, days, seed, GENERATOR_VERSION)


def _counts(db: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    row = db.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
