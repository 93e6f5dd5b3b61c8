"""The text-protocol reader against pymysql's own decoding of the same results, on the real MariaDB.

pymysql is the reference: whatever it returns for a query, the fast reader must return byte for byte — across
batch boundaries, NULLs, 1-, 2- and 3-byte length prefixes, and rows of 16 MiB and more (several packets).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors
import pytest

from pipeline.sources import mysql_native
from pipeline.sources.mysql_native import NativeWire
from pipeline.sources.mysql_wire import read_batches
from tests.conftest import MySqlServer

pytestmark = pytest.mark.mysql
BIG = 16 * 1024 * 1024 + 1000  # over one packet


@pytest.fixture(params=["c", "python"])
def wire(request: pytest.FixtureRequest) -> NativeWire | None:
    """Every test runs on both readers: the C one (which must be built here) and the pure-Python one."""
    if request.param == "python":
        return None
    native = mysql_native.load()
    assert native is not None, "the C reader is not built for this machine: run `python -m infra.native`"
    return native


def reference(db: MySqlServer, sql: str) -> list[tuple[Any, ...]]:
    encoders = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}
    with db.connect(conv=encoders, max_allowed_packet=64 << 20) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return [tuple(None if v is None else v if isinstance(v, bytes) else v.encode() for v in r) for r in cursor]


def fast(db: MySqlServer, sql: str, batch_rows: int, wire: NativeWire | None) -> Iterator[list[tuple[Any, ...]]]:
    with db.connect(max_allowed_packet=64 << 20) as connection:
        cursor = connection.cursor(pymysql.cursors.SSCursor)
        cursor.execute(sql)
        result = cursor._result
        batches = read_batches(
            connection,
            result,
            len(result.fields),
            deadline=time.monotonic() + 60,
            batch_rows=batch_rows,
            native=wire,
        )
        for batch in batches:
            yield list(zip(*(column.to_pylist() for column in batch), strict=True))
        cursor.execute("SELECT 'still usable'")  # the connection is handed back in a clean state
        assert list(cursor.fetchall()) == [("still usable",)]


@pytest.mark.parametrize("batch_rows", [1, 7, 65_536])
def test_values_of_every_length_class_match_pymysql(
    mysql_db: MySqlServer, batch_rows: int, wire: NativeWire | None
) -> None:
    sql = (
        "SELECT seq, IF(seq % 3 = 0, NULL, REPEAT('a', seq)), REPEAT('é', seq * 37), "
        "IF(seq % 5 = 0, REPEAT('z', 70000 + seq), ''), NULL FROM seq_1_to_300"
    )
    expected = reference(mysql_db, sql)
    rows = [row for batch in fast(mysql_db, sql, batch_rows, wire) for row in batch]
    assert rows == expected
    assert {len(r[3]) for r in rows if r[3]} >= {70005}  # 3-byte lengths were present


def test_rows_over_16_mib_span_packets_and_batches(mysql_db: MySqlServer, wire: NativeWire | None) -> None:
    with mysql_db.connect(autocommit=True) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
        (previous,) = cursor.fetchone()
        cursor.execute("SET GLOBAL max_allowed_packet = 67108864")
    try:
        sql = f"SELECT seq, IF(seq = 2, REPEAT('x', {BIG}), CONCAT('row ', seq)) FROM seq_1_to_4"
        batches = list(fast(mysql_db, sql, 65_536, wire))
        rows = [row for batch in batches for row in batch]
        assert [r[0] for r in rows] == [b"1", b"2", b"3", b"4"]
        assert rows[0][1] == b"row 1"
        assert rows[2][1] == b"row 3"
        assert rows[3][1] == b"row 4"
        assert rows[1][1] == b"x" * BIG
        assert len(batches) == 3  # rows before, the long row alone, rows after
    finally:
        with mysql_db.connect(autocommit=True) as admin, admin.cursor() as cursor:
            cursor.execute(f"SET GLOBAL max_allowed_packet = {int(previous)}")


def test_an_error_packet_mid_stream_raises_pymysqls_error(mysql_db: MySqlServer, wire: NativeWire | None) -> None:
    sql = "SELECT seq, MD5(seq) FROM seq_1_to_100000000 AS s"
    with mysql_db.connect() as connection:
        cursor = connection.cursor(pymysql.cursors.SSCursor)
        cursor.execute("SET SESSION max_statement_time = 0.5")
        cursor.execute(sql)
        result = cursor._result
        rows: list[int] = []

        def consume() -> None:
            for batch in read_batches(connection, result, 2, deadline=time.monotonic() + 60, native=wire):
                rows.append(len(batch[0]))

        with pytest.raises(pymysql.err.OperationalError) as caught:
            consume()
        assert caught.value.args[0] == 1969  # max_statement_time exceeded
        assert sum(rows) > 0  # rows did stream before the server stopped the query
