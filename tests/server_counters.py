"""What one login did on the shared MariaDB, counted by the server: a login of the test's own and MariaDB's
per-user statistics (``userstat``; ``information_schema.USER_STATISTICS``: ``SELECT_COMMANDS``, ``ROWS_READ``).

Per login, so that other tests and other sessions on the same server do not move the figures. ``userstat`` is a
global switch: the tests that use it share one xdist group (``USERSTAT_GROUP``), and the last counted login to go
turns it off again — not merely back to what it found, since another test process (a second checkout's
``make test``) may have turned it on a moment before and would then leave it on for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import MySqlServer

USERSTAT_GROUP = "mariadb-userstat"


@contextmanager
def counted_login(mysql_db: MySqlServer) -> Iterator[MySqlServer]:
    """A login of its own with SELECT on ``mysql_db``'s database, and per-user statistics on while it lives."""
    user = f"kpi_count_{uuid.uuid4().hex[:8]}"
    with mysql_db.connect(autocommit=True) as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%'")
        cursor.execute(f"GRANT SELECT ON `{mysql_db.database}`.* TO '{user}'@'%'")
        cursor.execute("SET GLOBAL userstat = 1")
    try:
        yield MySqlServer(mysql_db.host, mysql_db.port, user, "", mysql_db.database)
    finally:
        with mysql_db.connect(autocommit=True) as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            cursor.execute("SELECT COUNT(*) FROM mysql.user WHERE user LIKE 'kpi\\_count\\_%'")
            (others,) = cursor.fetchone() or (0,)
            if not others:  # no other test is counting: the shared server's default (off) again
                cursor.execute("SET GLOBAL userstat = 0")


def user_statistic(mysql_db: MySqlServer, user: str, column: str) -> int:
    """``column`` of ``user``'s row in USER_STATISTICS (0 before the login has done anything)."""
    assert column in ("SELECT_COMMANDS", "ROWS_READ")
    with mysql_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM information_schema.USER_STATISTICS WHERE USER = %s", (user,))
        row = cursor.fetchone()
        return int(row[0]) if row else 0


def url_of(login: MySqlServer) -> str:
    return f"mysql://{login.user}@{login.host}:{login.port}/{login.database}"
