"""A MariaDB server of the tests' own: ``mariadbd`` on a free loopback port with a fresh data directory.

The clone locks and re-passwords every database login of the cluster it masks (``mysql.user``), which on the
shared server at 127.0.0.1:3306 would lock out every other test and developer. This server stands in for the
clusters' contents instead: its logins are the cluster's. It is started once per test session (about four
seconds: ``mariadb-install-db``, then the server) and removed at the end; nothing listens outside 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pymysql

from tests.conftest import MySqlServer
from tests.loopback import LoopbackServer

ADMIN = "kpi_admin"  # the tests' own login (with GRANT OPTION); never locked: the clones' keep_logins name it
ADMIN_PASSWORD = "kpi-admin-password"


class PrivateMariaDB(LoopbackServer):
    name = "private MariaDB"

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="kpi-mariadb-"))
        self.data = self.root / "data"

    def install(self) -> None:
        command = ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--skip-test-db"]
        # Temporary tables in its own folder, not the shared /tmp: an install failed there ("Could not remove
        # temporary table '/tmp/#sql-temptable-…'", then "Unknown table 'mysql.tmp_proxies_priv'") while other
        # sessions on the machine ran theirs.
        command += ["--auth-root-authentication-method=normal", "--user=root", f"--tmpdir={self.root}"]
        done = subprocess.run(command, capture_output=True, check=False, timeout=120)
        if done.returncode:
            raise RuntimeError(f"mariadb-install-db failed:\n{done.stdout.decode()[-2000:]}{done.stderr.decode()}")

    def command(self, port: int) -> Sequence[str]:
        return [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.root / 'mysqld.sock'}",
            f"--pid-file={self.root / 'mysqld.pid'}",
            f"--tmpdir={self.root}",
            "--user=root",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
        ]

    def answers(self) -> bool:
        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
        except pymysql.MySQLError:
            return False
        return True

    def server(self) -> MySqlServer:
        """The tests' admin login on this server."""
        return MySqlServer("127.0.0.1", self.port, ADMIN, ADMIN_PASSWORD, "mysql")

    def __enter__(self) -> PrivateMariaDB:
        self.install()
        self.start()
        with pymysql.connect(host="127.0.0.1", port=self.port, user="root") as root, root.cursor() as cursor:
            for host in ("%", "localhost"):
                cursor.execute(f"CREATE USER '{ADMIN}'@'{host}' IDENTIFIED BY '{ADMIN_PASSWORD}'")
                cursor.execute(f"GRANT ALL ON *.* TO '{ADMIN}'@'{host}' WITH GRANT OPTION")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        super().__exit__(kind, error, traceback)
        shutil.rmtree(self.root, ignore_errors=True)
