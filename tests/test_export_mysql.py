"""The exporter against the real MariaDB: exact values for every type, and nothing committed when anything fails."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime
from datetime import time as clock
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.core.render import Rendered
from pipeline.errors import CheckFailed, ExportError, SourceError
from pipeline.export import export
from pipeline.sources import mysql_native, open_source
from pipeline.sources.mysql import MySqlSource, parse_mysql_url
from pipeline.stores import LocalStore
from tests.conftest import MySqlServer
from tests.exporting import days, keys, make_kpi, manifests, read_partition

pytestmark = pytest.mark.mysql


@pytest.fixture(autouse=True, params=["c", "python"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every rule of the exporter on MySQL holds on both readers of the text protocol: the C one (the default,
    which must be built here) and the pure-Python one (``KPI_WIRE=python``, where no build exists)."""
    if request.param == "python":
        monkeypatch.setenv("KPI_WIRE", "python")
        assert mysql_native.load() is None
    else:
        monkeypatch.delenv("KPI_WIRE", raising=False)
        assert mysql_native.load() is not None, "the C reader is not built here: run `python -m infra.native`"
    return str(request.param)


JST = "Asia/Tokyo"


def url(db: MySqlServer) -> str:
    return f"mysql://{db.user}@{db.host}:{db.port}/{db.database}"


def run_sql(db: MySqlServer, *statements: str) -> None:
    with db.connect(autocommit=True) as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


EDGE_TABLE = """
CREATE TABLE edge (
  id INT PRIMARY KEY, big BIGINT, ubig BIGINT UNSIGNED, wide DECIMAL(38,10), amount DECIMAL(12,2),
  dt DATETIME(6), local_dt DATETIME, ts TIMESTAMP NULL, d DATE, dur TIME, tod TIME(6),
  flag TINYINT(1), level TINYINT(1), doc JSON, bits BIT(8), raw VARBINARY(16), txt VARCHAR(64), f DOUBLE
) CHARACTER SET utf8mb4
"""
EDGE_ROWS = [
    "SET time_zone = '+09:00'",
    "INSERT INTO edge VALUES (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL)",
    "INSERT INTO edge VALUES (2, -9223372036854775808, 0, '-9999999999999999999999999999.9999999999',"
    " '-9999999999.99', '1000-01-01 00:00:00.000000', '2024-03-01 09:00:00', '1970-01-02 09:00:00',"
    " '1000-01-01', '-838:59:59', '00:00:00', 0, -128, '[]', b'00000000', x'', '', -1.5e-300)",
    "INSERT INTO edge VALUES (3, 9223372036854775807, 18446744073709551615,"
    " '9999999999999999999999999999.9999999999', '9999999999.99', '2024-02-29 23:59:59.999999',"
    " '2024-03-01 08:59:59', '2038-01-19 12:14:07', '9999-12-31', '838:59:59', '23:59:59.999999', 1, 2,"
    " '{\"k\": \"値\", \"n\": [1, 2.5]}', b'11111111', x'00ff10', '絵文字 😀 漢字', 1.7976931348623157e308)",
]
EDGE_HEADER = """
grain: none
timezone: Asia/Tokyo
columns:
  id:       {type: INT64, description: Row}
  big:      {type: INT64, description: BIGINT}
  ubig:     {type: NUMERIC, description: BIGINT UNSIGNED}
  wide:     {type: BIGNUMERIC, description: wide decimal}
  amount:   {type: NUMERIC, description: money}
  dt:       {type: DATETIME, description: DATETIME(6)}
  local_dt: {type: TIMESTAMP, description: naive JST wall clock read as an instant}
  ts:       {type: TIMESTAMP, description: MySQL TIMESTAMP}
  d:        {type: DATE, description: DATE}
  dur:      {type: STRING, description: TIME as a duration}
  tod:      {type: TIME, description: TIME of day}
  flag:     {type: BOOL, description: TINYINT(1) 0/1}
  level:    {type: INT64, description: TINYINT(1) holding other values}
  doc:      {type: JSON, description: JSON}
  bits:     {type: INT64, description: BIT(8)}
  raw:      {type: BYTES, description: VARBINARY}
  txt:      {type: STRING, description: utf8mb4 text}
  f:        {type: FLOAT64, description: DOUBLE}
"""
EDGE_SQL = (
    "SELECT id, big, ubig, wide, amount, dt, local_dt, ts, d, dur, tod, flag, level, doc, bits, raw, txt, f "
    "FROM edge ORDER BY id"
)


def test_every_type_round_trips_exactly(mysql_db: MySqlServer, tmp_path: Path) -> None:
    run_sql(mysql_db, EDGE_TABLE, *EDGE_ROWS)
    kpi = make_kpi(tmp_path / "q", "edge", EDGE_HEADER, EDGE_SQL)
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, [], source=open_source(url(mysql_db)), store=store)

    table = read_partition(store, manifest)
    rows = table.to_pylist()
    assert manifest.rows == 3
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert all(value is None for key, value in rows[0].items() if key != "id")
    low, high = rows[1], rows[2]
    assert (low["big"], high["big"]) == (-(2**63), 2**63 - 1)
    assert (low["ubig"], high["ubig"]) == (Decimal(0), Decimal(2**64 - 1))
    assert high["wide"] == Decimal("9999999999999999999999999999.9999999999")
    assert low["wide"] == Decimal("-9999999999999999999999999999.9999999999")
    assert (low["amount"], high["amount"]) == (Decimal("-9999999999.99"), Decimal("9999999999.99"))
    assert (low["dt"], high["dt"]) == (datetime(1000, 1, 1), datetime(2024, 2, 29, 23, 59, 59, 999999))
    assert low["local_dt"] == datetime(2024, 3, 1, 0, 0, tzinfo=UTC)  # 09:00 JST
    assert high["local_dt"] == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    assert low["ts"] == datetime(1970, 1, 2, 0, 0, tzinfo=UTC)  # inserted as 09:00 in a +09:00 session
    assert high["ts"] == datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)
    assert (low["d"], high["d"]) == (date(1000, 1, 1), date(9999, 12, 31))
    assert (low["dur"], high["dur"]) == ("-838:59:59", "838:59:59")
    assert (low["tod"], high["tod"]) == (clock(0, 0), clock(23, 59, 59, 999999))
    assert (low["flag"], high["flag"]) == (False, True)
    assert (low["level"], high["level"]) == (-128, 2)
    assert low["doc"] == "[]"
    assert "値" in high["doc"]
    assert (low["bits"], high["bits"]) == (0, 255)
    assert (low["raw"], high["raw"]) == (b"", b"\x00\xff\x10")
    assert (low["txt"], high["txt"]) == ("", "絵文字 😀 漢字")
    assert (low["f"], high["f"]) == (-1.5e-300, 1.7976931348623157e308)

    fields = {f.name: f.type for f in manifest.schema}
    assert fields["wide"] == "BIGNUMERIC"
    assert fields["local_dt"] == "TIMESTAMP"
    assert fields["doc"] == "JSON"
    assert str(table.schema.field("dt").type) == "timestamp[us]"  # naive → BigQuery DATETIME
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("wide: {type: NUMERIC, description: x}", "DECIMAL(38,10) has 10 decimal places; NUMERIC keeps 9"),
        ("dur: {type: TIME, description: x}", "TIME '838:59:59' is a duration"),
        ("flag: {type: BOOL, description: x}", "value 2 is neither 0 nor 1"),
        ("ubig: {type: INT64, description: x}", "declare NUMERIC"),
        ("d: {type: DATETIME, description: x}", "DATE cannot be loaded as DATETIME"),
    ],
)
def test_a_declaration_that_cannot_hold_the_values_fails_and_commits_nothing(
    mysql_db: MySqlServer, tmp_path: Path, declared: str, expected: str
) -> None:
    run_sql(
        mysql_db,
        "CREATE TABLE t (wide DECIMAL(38,10), dur TIME, flag TINYINT(1), ubig BIGINT UNSIGNED, d DATE)",
        "INSERT INTO t VALUES (1.5, '838:59:59', 2, 18446744073709551615, '2024-01-01')",
    )
    column = declared.split(":")[0]
    kpi = make_kpi(tmp_path / "q", "narrow", f"grain: none\ncolumns:\n  {declared}", f"SELECT {column} FROM t")
    store = LocalStore(tmp_path / "lake")
    with pytest.raises(ExportError) as caught:
        export(kpi, [], source=open_source(url(mysql_db)), store=store)
    assert expected in str(caught.value)
    assert f"'{column}'" in str(caught.value)
    assert keys(store) == []


ZERO_HEADER = """
grain: none
columns:
  id: {type: INT64, description: Row}
  d:  {type: DATE, description: A date that may be zero}
"""


@pytest.mark.parametrize("policy", ["error", "null"])
def test_zero_dates_follow_the_declared_policy(mysql_db: MySqlServer, tmp_path: Path, policy: str) -> None:
    run_sql(
        mysql_db,
        "SET SESSION sql_mode = ''",
        "CREATE TABLE z (id INT, d DATE)",
        "INSERT INTO z VALUES (1, '2024-01-01'), (2, '0000-00-00'), (3, '2024-00-10')",
    )
    header = ZERO_HEADER + f"zero_dates: {policy}\n"
    kpi = make_kpi(tmp_path / "q", "zeros", header, "SELECT id, d FROM z ORDER BY id")
    store = LocalStore(tmp_path / "lake")
    if policy == "error":
        with pytest.raises(ExportError, match=r"column 'd', row 2: zero date '0000-00-00'"):
            export(kpi, [], source=open_source(url(mysql_db)), store=store)
        assert keys(store) == []
        return
    (manifest,) = export(kpi, [], source=open_source(url(mysql_db)), store=store)
    assert read_partition(store, manifest).column("d").to_pylist() == [date(2024, 1, 1), None, None]
    assert manifest.replaced == {"d: zero dates": 2}


@pytest.mark.parametrize("policy", ["error", "null"])
def test_invalid_utf8_follows_the_declared_policy(mysql_db: MySqlServer, tmp_path: Path, policy: str) -> None:
    run_sql(mysql_db, "CREATE TABLE u (id INT, s VARBINARY(8))", "INSERT INTO u VALUES (1, 'ok'), (2, x'c328')")
    header = f"grain: none\ninvalid_utf8: {policy}\ncolumns:\n  id: {{type: INT64}}\n  s: {{type: STRING}}"
    kpi = make_kpi(tmp_path / "q", "bad_text", header, "SELECT id, s FROM u ORDER BY id")
    store = LocalStore(tmp_path / "lake")
    if policy == "error":
        with pytest.raises(ExportError, match=r"column 's', row 2: invalid UTF-8"):
            export(kpi, [], source=open_source(url(mysql_db)), store=store)
        assert keys(store) == []
        return
    (manifest,) = export(kpi, [], source=open_source(url(mysql_db)), store=store)
    assert read_partition(store, manifest).column("s").to_pylist() == ["ok", None]


ORDERS_HEADER = """
grain: day
time_column: day
timezone: Asia/Tokyo
checks: {min_rows: 0, not_null: [day], unique: [day, status]}
columns:
  day:    {type: DATE, description: JST day}
  status: {type: STRING, description: Status}
  orders: {type: INT64, description: Orders}
  sales:  {type: NUMERIC, description: Sales}
"""
ORDERS_SQL = """
SELECT DATE(created_at) AS day, status, COUNT(*) AS orders, SUM(amount) AS sales
FROM orders WHERE created_at >= :start AND created_at < :end GROUP BY 1, 2
"""


def orders(db: MySqlServer, *rows: str) -> None:
    run_sql(db, "CREATE TABLE orders (created_at DATETIME, status VARCHAR(16), amount DECIMAL(12,2))")
    if rows:
        run_sql(db, "INSERT INTO orders VALUES " + ", ".join(rows))


def test_a_range_is_one_query_split_into_committed_partitions_including_empty_ones(
    mysql_db: MySqlServer, tmp_path: Path
) -> None:
    orders(
        mysql_db,
        "('2024-03-01 00:00:00', 'paid', 10.50)",
        "('2024-03-01 23:59:59', 'paid', 1.25)",
        "('2024-03-02 12:00:00', 'refunded', 5.00)",
        "('2024-03-04 08:00:00', 'paid', 7.00)",
    )
    kpi = make_kpi(tmp_path / "q", "daily", ORDERS_HEADER, ORDERS_SQL)
    store = LocalStore(tmp_path / "lake")
    committed = export(kpi, days("2024-03-01", 4), source=open_source(url(mysql_db)), store=store, run_id="r1")

    assert [m.partition for m in committed] == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
    assert [m.rows for m in committed] == [1, 1, 0, 1]
    first = read_partition(store, committed[0]).to_pylist()
    assert first == [{"day": date(2024, 3, 1), "status": "paid", "orders": 2, "sales": Decimal("11.75")}]
    assert read_partition(store, committed[2]).num_rows == 0
    assert len(committed[2].files) == 1
    assert committed[0].files[0].path == "daily/day=2024-03-01/run=r1/part-00000.parquet"
    assert committed[0].decorator == "20240301"
    assert committed[0].interval_start == "2024-03-01T00:00:00+09:00"
    assert committed[0].params == {"start": "2024-03-01 00:00:00", "end": "2024-03-05 00:00:00"}

    again = export(kpi, days("2024-03-01", 4), source=open_source(url(mysql_db)), store=store, run_id="r1")
    assert again == committed  # a retried run id returns its commit instead of writing twice


def test_a_row_outside_the_partition_fails_naming_it(mysql_db: MySqlServer, tmp_path: Path) -> None:
    orders(mysql_db, "('2024-03-01 10:00:00', 'paid', 1)", "('2024-03-02 10:00:00', 'paid', 1)")
    sql = "SELECT DATE(created_at) AS day, status, COUNT(*) AS orders, SUM(amount) AS sales FROM orders"
    sql += " WHERE created_at >= :start OR created_at < :end GROUP BY 1, 2 ORDER BY 1"
    kpi = make_kpi(tmp_path / "q", "leaky", ORDERS_HEADER, sql)
    store = LocalStore(tmp_path / "lake")
    with pytest.raises(ExportError, match=r"row 2: day = datetime.date\(2024, 3, 2\) lies outside"):
        export(kpi, days("2024-03-01", 1), source=open_source(url(mysql_db)), store=store)
    assert keys(store) == []


def test_a_failed_check_commits_nothing_and_names_the_rows(mysql_db: MySqlServer, tmp_path: Path) -> None:
    orders(mysql_db, "('2024-03-01 10:00:00', 'paid', 1)")
    sql = "SELECT DATE(created_at) AS day, status, COUNT(*) AS orders, SUM(amount) AS sales FROM orders"
    sql += " WHERE created_at >= :start AND created_at < :end GROUP BY 1, 2 UNION ALL"
    sql += " SELECT DATE(created_at), status, 0, 0 FROM orders WHERE created_at >= :start AND created_at < :end"
    kpi = make_kpi(tmp_path / "q", "dupes", ORDERS_HEADER, sql)
    store = LocalStore(tmp_path / "lake")
    with pytest.raises(CheckFailed) as caught:
        export(kpi, days("2024-03-01", 1), source=open_source(url(mysql_db)), store=store)
    assert "unique: (day, status) repeats in 1 row(s): rows 1 and 2 share" in str(caught.value)
    assert "2024-03-01" in str(caught.value)
    assert keys(store) == []


def test_the_read_only_transaction_refuses_a_write_that_bypasses_the_gate(mysql_db: MySqlServer) -> None:
    run_sql(mysql_db, "CREATE TABLE target (id INT)")
    source = MySqlSource(url(mysql_db))
    with (
        pytest.raises(SourceError, match="1792") as caught,
        source.stream(Rendered("INSERT INTO target VALUES (1)", {}, "mysql"), **stream_args()),
    ):
        pass
    assert "read-only" in str(caught.value) or "READ ONLY" in str(caught.value)
    with mysql_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM target")
        assert cursor.fetchone() == (0,)


def stream_args(seconds: float = 30) -> dict:  # type: ignore[type-arg]
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    return {"timeout": timedelta(seconds=seconds), "zone": ZoneInfo(JST), "where": "test"}


@pytest.mark.parametrize(
    ("server", "statement"),
    [
        ("10.11.8-MariaDB-0+deb12u1", "SET SESSION max_statement_time = 90.000"),
        ("5.5.5-10.11.8-MariaDB", "SET SESSION max_statement_time = 90.000"),
        ("8.0.36", "SET SESSION max_execution_time = 90000"),  # MySQL 8
        ("8.0.mysql_aurora.3.05.2", "SET SESSION max_execution_time = 90000"),  # Aurora MySQL 3
    ],
)
def test_the_session_time_limit_is_spelt_as_each_server_reads_it(server: str, statement: str) -> None:
    from datetime import timedelta

    from pipeline.sources.mysql import time_limit_statement

    assert time_limit_statement(server, timedelta(seconds=90)) == statement


def test_the_server_stops_a_query_at_the_kpi_timeout(mysql_db: MySqlServer, tmp_path: Path) -> None:
    header = "grain: none\ntimeout: 1s\ncolumns:\n  n: {type: INT64}"
    kpi = make_kpi(
        tmp_path / "q", "slow", header, "SELECT COUNT(*) AS n FROM seq_1_to_1000000000 AS s WHERE MD5(s.seq) LIKE 'zz%'"
    )
    store = LocalStore(tmp_path / "lake")
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"timeout \(0:00:01\)"):
        export(kpi, [], source=open_source(url(mysql_db)), store=store)
    assert time.monotonic() - started < 10
    assert keys(store) == []


def test_a_query_killed_by_another_session_says_so_not_timeout(mysql_db: MySqlServer, tmp_path: Path) -> None:
    """KILL QUERY from another session (an operator, a monitor) ends the query with error 1317: reported as that,
    not as the KPI's timeout, which is the server's 1969 (MariaDB) or 3024 (MySQL) above."""
    header = "grain: none\ntimeout: 5m\ncolumns:\n  n: {type: INT64}"
    sql = "SELECT COUNT(*) AS n FROM seq_1_to_1000000000 AS killquery_marker WHERE MD5(killquery_marker.seq) LIKE 'zz%'"
    kpi = make_kpi(tmp_path / "q", "killed_query", header, sql)
    store = LocalStore(tmp_path / "lake")

    def kill_query_when_running() -> None:
        deadline = time.monotonic() + 60
        with mysql_db.connect(autocommit=True) as admin, admin.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT id FROM information_schema.processlist WHERE info LIKE '%killquery_marker%' "
                    "AND info NOT LIKE '%processlist%'"
                )
                found = [row[0] for row in cursor.fetchall()]
                if found:
                    cursor.execute(f"KILL QUERY {found[0]}")
                    return
                time.sleep(0.05)  # polling the server's process list, bounded by the deadline

    killer = threading.Thread(target=kill_query_when_running)
    killer.start()
    with pytest.raises(SourceError) as stopped:
        export(kpi, [], source=open_source(url(mysql_db)), store=store)
    killer.join(60)
    message = stopped.value.message
    assert "stopped the query: Query execution was interrupted (KILL QUERY from another session" in message
    assert "timeout" not in message
    assert stopped.value.hint.startswith("someone or something on the database ended it")
    assert stopped.value.retryable is False
    assert keys(store) == []


def test_a_connection_killed_mid_stream_leaves_no_parts(mysql_db: MySqlServer, tmp_path: Path) -> None:
    header = "grain: none\ncolumns:\n  n: {type: INT64}\n  pad: {type: STRING}"
    sql = "SELECT seq AS n, REPEAT('x', 200) AS pad FROM seq_1_to_3000000 AS killme_marker"
    kpi = make_kpi(tmp_path / "q", "killed", header, sql)
    store = LocalStore(tmp_path / "lake")

    lake = tmp_path / "lake"

    def kill_when_running() -> None:
        """KILL the query once it runs and rows have reached the lake (a file is being written): polled, with a
        deadline, never a fixed wait that a busy machine could outrun."""
        deadline = time.monotonic() + 60
        with mysql_db.connect(autocommit=True) as admin, admin.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute("SELECT id FROM information_schema.processlist WHERE info LIKE '%killme_marker%'")
                found = [row[0] for row in cursor.fetchall() if row[0] != admin.thread_id()]
                if found and any(path.is_file() for path in lake.rglob("*")):
                    cursor.execute(f"KILL {found[0]}")
                    return
                time.sleep(0.01)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    try:
        with pytest.raises(SourceError) as caught:
            export(kpi, [], source=open_source(url(mysql_db)), store=store)
    finally:
        killer.join()
    assert caught.value.retryable
    assert "Lost connection" in str(caught.value) or "killed" in str(caught.value).lower()
    assert keys(store) == []
    assert list((tmp_path / "lake").rglob("*")) == [] or not any(p.is_file() for p in (tmp_path / "lake").rglob("*"))


def test_wrong_credentials_are_reported_without_the_password(mysql_db: MySqlServer, tmp_path: Path) -> None:
    kpi = make_kpi(tmp_path / "q", "one", "grain: none\ncolumns:\n  n: {type: INT64}", "SELECT 1 AS n")
    source = open_source(f"mysql://nobody:hunter2secret@{mysql_db.host}:{mysql_db.port}/{mysql_db.database}")
    with pytest.raises(SourceError) as caught:
        export(kpi, [], source=source, store=LocalStore(tmp_path / "lake"))
    assert "hunter2secret" not in str(caught.value)
    assert "hunter2secret" not in repr(source.url)
    assert "Access denied for user 'nobody'" in str(caught.value)
    assert "user and password" in caught.value.hint
    assert not caught.value.retryable
    assert manifests(LocalStore(tmp_path / "lake")) == []


def test_credentials_from_secrets_manager(
    mysql_db: MySqlServer, tmp_path: Path, aws_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    secret = {"username": mysql_db.user, "password": mysql_db.password, "host": mysql_db.host}
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"kpi/source-{tmp_path.name}", SecretString=json.dumps(secret)
    )["ARN"]
    kpi = make_kpi(tmp_path / "q", "one", "grain: none\ncolumns:\n  n: {type: INT64}", "SELECT 41 + 1 AS n")
    source = open_source(f"mysql://:{mysql_db.port}/{mysql_db.database}?secret={arn}")
    store = LocalStore(tmp_path / "lake")
    (manifest,) = export(kpi, [], source=source, store=store)
    assert read_partition(store, manifest).column("n").to_pylist() == [42]
    missing = open_source(f"mysql://:{mysql_db.port}/{mysql_db.database}?secret={arn}-gone")
    with pytest.raises(SourceError, match="cannot read the database secret") as caught:
        export(kpi, [], source=missing, store=store)
    assert "GetSecretValue" in caught.value.hint


def test_source_urls_keep_passwords_out_of_their_display_form() -> None:
    settings = parse_mysql_url("mysql://kpi:p%40ss@db.internal:3307/shop?ssl=true&ssl_ca=/ca.pem&region=ap-northeast-1")
    assert (settings.user, settings.password, settings.host, settings.port) == ("kpi", "p@ss", "db.internal", 3307)
    assert (settings.ssl, settings.ssl_ca, settings.region) == (True, "/ca.pem", "ap-northeast-1")
    assert settings.display == "mysql://kpi@db.internal:3307/shop"
    assert "p@ss" not in repr(settings)
    with pytest.raises(SourceError, match="unknown options sslmode"):
        parse_mysql_url("mysql://db/shop?sslmode=require")


def test_the_client_stops_reading_at_the_deadline(mysql_db: MySqlServer) -> None:
    source = MySqlSource(url(mysql_db))
    rendered = Rendered("SELECT seq FROM seq_1_to_1000000", {}, "mysql")

    def read_all() -> None:
        with source.stream(rendered, **stream_args(seconds=0.000001)) as result:
            list(result.batches)

    with pytest.raises(SourceError, match="ran longer than the KPI's timeout") as caught:
        read_all()
    assert "raise `timeout`" in caught.value.hint


def test_min_rows_and_not_null_are_checked_per_partition(mysql_db: MySqlServer, tmp_path: Path) -> None:
    orders(mysql_db, "('2024-03-01 10:00:00', NULL, 1)")
    header = ORDERS_HEADER.replace("min_rows: 0", "min_rows: 1").replace("not_null: [day]", "not_null: [status]")
    kpi = make_kpi(tmp_path / "q", "sparse", header, ORDERS_SQL)
    store = LocalStore(tmp_path / "lake")
    with pytest.raises(CheckFailed) as caught:
        export(kpi, days("2024-03-01", 2), source=open_source(url(mysql_db)), store=store)
    message = str(caught.value)
    assert "2024-03-01: not_null: column 'status' is NULL in 1 row(s) (rows 1…)" in message
    assert "2024-03-02: min_rows: 0 row(s), at least 1 expected" in message
    assert keys(store) == []


def test_rds_iam_auth_signs_a_token_forces_tls_and_never_shows_it(
    mysql_db: MySqlServer, tmp_path: Path, aws_env: object
) -> None:
    kpi = make_kpi(tmp_path / "q", "one", "grain: none\ncolumns:\n  n: {type: INT64}", "SELECT 1 AS n")
    source = open_source(
        f"mysql://kpi_iam@{mysql_db.host}:{mysql_db.port}/{mysql_db.database}?iam=true&region=ap-northeast-1"
    )
    with pytest.raises(SourceError) as caught:  # this MariaDB has no TLS and no IAM: the connection is refused
        export(kpi, [], source=source, store=LocalStore(tmp_path / "lake"))
    message = str(caught.value)
    assert "X-Amz-Signature" not in message
    assert "Action=connect" not in message
    assert "SSL is required" in message  # iam=true forces TLS, which this server does not offer
    assert "does not offer it" in caught.value.hint


def test_a_server_error_about_the_sql_gets_a_hint_about_the_sql_not_the_network(
    mysql_db: MySqlServer, tmp_path: Path
) -> None:
    """MySQL 1056 ("Can't group on …") is the query's fault: the hint names the KPI's render, not reachability."""
    run_sql(mysql_db, "CREATE TABLE orders (id INT)")
    kpi = make_kpi(tmp_path / "q", "grouped", "grain: none\ncolumns:\n  n: {type: INT64}", GROUPED_SQL)
    with pytest.raises(SourceError) as caught:
        export(kpi, [], source=open_source(url(mysql_db)), store=LocalStore(tmp_path / "lake"))
    assert caught.value.message.endswith("MySQL error 1056: Can't group on 'n'")
    assert caught.value.hint == ("run `kpi render grouped` and try the SQL in a MySQL client against the same database")
    unreachable = MySqlSource(f"mysql://{mysql_db.user}@127.0.0.1:1/{mysql_db.database}")
    with pytest.raises(SourceError) as refused, unreachable.stream(Rendered("SELECT 1", {}, "mysql"), **stream_args()):
        pass
    assert "MySQL error 2003" in refused.value.message
    assert refused.value.hint.startswith("check that the source is reachable: host and port")


GROUPED_SQL = "SELECT COUNT(*) AS n FROM orders GROUP BY n"
