"""The masking tools on a server the operator names: the coverage gate (``kpi clone plan --url``) and the
masking of a disposable copy (``kpi clone mask --url``), with the engine, journal, resume and PII scan of a
real clone.

The URL is a source URL (:func:`pipeline.sources.mysql.parse_mysql_url`): ``user:password@``, ``?secret=ARN``
or ``iam=true`` for the login, ``ssl=true`` (TLS, certificate not checked) or ``ssl_ca=PATH`` (TLS, checked)
as it says — the connection is plain only when the URL asks for nothing.

**The disposable-copy marker.** Masking rewrites a database in place, so ``kpi clone mask`` refuses any
database that does not say, in itself, that it is a copy to be thrown away: a table ``kpi_disposable_copy``
with one row holding the database's own name (a dump of a marked copy restored under another name is not
marked)::

    CREATE TABLE kpi_disposable_copy (database_name VARCHAR(64) PRIMARY KEY);
    INSERT INTO kpi_disposable_copy VALUES (DATABASE());

The marker is not part of the schema the rules cover, and masking leaves it in place.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from pipeline.clone.errors import CloneError
from pipeline.clone.masking import DEFAULT_CHUNK_ROWS, ChunkCallback, MaskingReport, mask
from pipeline.clone.model import RuleFile
from pipeline.clone.mysql import SYSTEM_DATABASES
from pipeline.clone.progress import DISPOSABLE_MARKER
from pipeline.clone.rules import load_rule_folder, load_rules
from pipeline.clone.sql import quote
from pipeline.sources.mysql import MySqlSettings, connection_arguments, parse_mysql_url, resolve_credentials

__all__ = ["MARK_SQL", "check_disposable", "connect", "mask_copy", "random_key", "rules_for_copy"]

MARK_SQL = (
    f"CREATE TABLE {DISPOSABLE_MARKER} (database_name VARCHAR(64) PRIMARY KEY); "
    f"INSERT INTO {DISPOSABLE_MARKER} VALUES (DATABASE());"
)


def connect(url: str, where: str) -> tuple[Any, MySqlSettings]:
    """A pymysql connection as the URL says (login, secret or IAM token, TLS), and the URL's settings."""
    settings = resolve_credentials(parse_mysql_url(url), where=where)
    # TLS as a source's: ssl=true verifies the certificate and the host name. No database is selected: the URL's
    # database is a scope that the coverage check reports on ("database X is not on the server"), and every
    # statement of the masking engine names its database, so a missing one must not fail the connection itself.
    arguments = {**connection_arguments(settings, connect_timeout=10), "database": None}
    try:
        connection = pymysql.connect(**arguments, charset="utf8mb4", autocommit=False)
    except pymysql.MySQLError as error:
        raise CloneError(
            f"cannot connect to {settings.display}: {error}",
            where=where,
            hint="a URL takes ?secret=ARN (Secrets Manager), iam=true, ssl=true or ssl_ca=PATH, as a source's does",
        ) from None
    return connection, settings


def check_disposable(connection: Any, database: str) -> None:
    """Refuse unless ``database`` carries the disposable-copy marker naming itself (see the module docstring)."""
    how = f"if it is a copy you may destroy, mark it: USE {database}; {MARK_SQL}"
    if database.lower() in SYSTEM_DATABASES:
        raise CloneError(f"refusing to mask {database}: it is the server's own database", hint="name a copy")
    with connection.cursor(pymysql.cursors.Cursor) as cursor:
        try:
            cursor.execute(f"SELECT database_name FROM {quote(database)}.{quote(DISPOSABLE_MARKER)}", ())
            names = [str(name) for (name,) in cursor.fetchall()]
        except pymysql.MySQLError as error:
            code = error.args[0] if error.args else 0
            if code == 1049:  # unknown database
                raise CloneError(f"database {database} does not exist on this server", hint="check the URL") from None
            raise CloneError(
                f"refusing to mask {database}: it is not marked as a disposable copy (no table {DISPOSABLE_MARKER})",
                hint=how,
            ) from None
    connection.commit()
    if names != [database]:
        found = ", ".join(names) or "no row"
        raise CloneError(
            f"refusing to mask {database}: its {DISPOSABLE_MARKER} names {found}, not {database}",
            hint=f"a marker restored from another copy does not count; {how}",
        )


def rules_for_copy(rules: Path, database: str) -> RuleFile:
    """The rules to mask ``database`` with: a rule file (applied to it whatever its ``database:`` says), or the
    file of a folder whose database is ``database``."""
    if rules.is_file():
        return load_rules(rules, database)
    if not rules.is_dir():
        raise CloneError(f"{rules} is neither a rule file nor a folder of them", hint="e.g. --rules masking/shop.yaml")
    found = load_rule_folder(rules)
    if database in found:
        return found[database]
    files = ", ".join(f"{file.path} ({name})" for name, file in sorted(found.items())) or "none"
    raise CloneError(
        f"no rule file in {rules} is for database {database} (files: {files})",
        hint=f"a copy usually has another name than the database it copies: pass its file, "
        f"e.g. --rules {rules / 'shop.yaml'}",
    )


def random_key() -> bytes:
    """A masking key for a trial: 32 random bytes (masked values then differ from a real clone's)."""
    return secrets.token_bytes(32)


def mask_copy(
    url: str,
    rules: Path,
    key: bytes,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_chunk: ChunkCallback | None = None,
    connect_to: Callable[[str, str], tuple[Any, MySqlSettings]] = connect,
) -> MaskingReport:
    """Mask the marked copy the URL names with ``rules``: the clone's engine, journal, resume and PII scan."""
    where = "kpi clone mask --url"
    connection, settings = connect_to(url, where)
    try:
        if not settings.database:
            raise CloneError(
                f"the URL {settings.display} names no database", where=where, hint="e.g. mysql://me@127.0.0.1/shop_copy"
            )
        check_disposable(connection, settings.database)
        return mask(connection, rules_for_copy(rules, settings.database), key, chunk_rows=chunk_rows, on_chunk=on_chunk)
    finally:
        connection.close()
