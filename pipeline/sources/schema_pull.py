"""Read a source's schema from its ``information_schema``: MySQL / Aurora MySQL / MariaDB, and DuckDB files.

Tables and views of the URL's database (a KPI may read a view), their columns in order with the source's type
spelling and nullability, every index, and the server's row estimate. Metadata only: no row of a table is read.
Integer display widths are dropped (MariaDB and MySQL 5.7 say ``bigint(20)``, MySQL 8 ``bigint``) except
``tinyint(1)``, MySQL's BOOLEAN, which the exporter treats apart. (The clone module's
:func:`pipeline.clone.mysql.read_schema` reads base tables only, for masking; views matter here.)
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from pipeline.core.schema import SchemaColumn, SchemaIndex, SchemaTable, SourceSchema
from pipeline.errors import SourceError
from pipeline.settings import redact

__all__ = ["pull_schema"]

_INT_WIDTH = re.compile(r"^(smallint|mediumint|int|integer|bigint|tinyint)\(\d+\)")


def pull_schema(source: str, url: str) -> SourceSchema:
    """The schema of the source named ``source`` (a header's ``source:``) at ``url``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("mysql", "mariadb", "aurora"):
        return _mysql(source, url)
    if scheme == "duckdb":
        return _duckdb(source, url)
    raise SourceError(
        f"cannot read the schema of a {scheme!r} source", hint="use mysql://user@host:3306/db or duckdb:///path"
    )


def mysql_type(column_type: str) -> str:
    """``bigint(20) unsigned`` → ``bigint unsigned``; ``tinyint(1)`` stays."""
    lowered = column_type.lower()
    if lowered.startswith("tinyint(1)"):
        return lowered
    return _INT_WIDTH.sub(r"\1", lowered)


def _mysql(source: str, url: str) -> SourceSchema:
    import pymysql

    from pipeline.sources.mysql import connection_arguments, parse_mysql_url, resolve_credentials

    where = f"source {source}"
    settings = resolve_credentials(parse_mysql_url(url), where=where)
    if not settings.database:
        raise SourceError(
            f"the source URL {settings.display} names no database", where=where, hint="end the URL with /DATABASE"
        )
    try:
        connection = pymysql.connect(**connection_arguments(settings, connect_timeout=10), charset="utf8mb4")
    except pymysql.MySQLError as error:
        raise SourceError(
            f"cannot connect to {settings.display}: {error}",
            where=where,
            hint="check the URL, the login and that the server answers",
            retryable=True,
        ) from None
    try:
        with connection.cursor() as cursor:
            tables = _mysql_tables(cursor, settings.database)
    except pymysql.MySQLError as error:
        raise SourceError(
            f"{settings.display}: {error}", where=where, hint="the login needs SELECT on the tables"
        ) from None
    finally:
        connection.close()
    return SourceSchema(source, "mysql", settings.database, tables, pulled_from=redact(settings.display))


def _mysql_tables(cursor: Any, database: str) -> dict[str, SchemaTable]:
    cursor.execute(
        "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED')",
        (database,),
    )
    rows = {str(name): int(estimate or 0) for name, estimate in cursor.fetchall()}
    cursor.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (database,),
    )
    columns: dict[str, list[SchemaColumn]] = defaultdict(list)
    for table, name, column_type, nullable in cursor.fetchall():
        columns[str(table)].append(SchemaColumn(str(name), mysql_type(str(column_type)), nullable == "YES"))
    cursor.execute(
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (database,),
    )
    indexes: dict[str, dict[str, tuple[list[str], bool]]] = defaultdict(dict)
    for table, index, non_unique, column in cursor.fetchall():
        entry = indexes[str(table)].setdefault(str(index), ([], not int(non_unique)))
        entry[0].append(str(column))
    return {
        name: SchemaTable(
            name,
            tuple(columns[name]),
            tuple(SchemaIndex(i, tuple(cols), unique) for i, (cols, unique) in indexes[name].items()),
            estimate,
        )
        for name, estimate in rows.items()
    }


def _duckdb(source: str, url: str) -> SourceSchema:
    from pipeline.duckdb_import import duckdb
    from pipeline.sources.duckdb import duckdb_path

    path = duckdb_path(url)
    where = f"source {source}"
    if not path.exists():
        raise SourceError(
            f"the DuckDB source {path} does not exist",
            where=where,
            hint="create it (`make demo` builds the demo shop) or point KPI_SOURCE at your database",
        )
    try:
        with duckdb.connect(str(path), read_only=True) as db:
            (database,) = db.execute("SELECT current_database()").fetchone() or ("",)
            listed = db.execute(
                "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = 'main' "
                "AND database_name = current_database() AND NOT internal "
                "UNION ALL SELECT view_name, 0 FROM duckdb_views() WHERE schema_name = 'main' "
                "AND database_name = current_database() AND NOT internal"
            ).fetchall()
            found = db.execute(
                "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
                "WHERE schema_name = 'main' AND database_name = current_database() AND NOT internal "
                "ORDER BY table_name, column_index"
            ).fetchall()
            keyed = db.execute(
                "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
                "WHERE schema_name = 'main' AND database_name = current_database() "
                "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
            ).fetchall()
    except duckdb.Error as error:
        raise SourceError(f"cannot read {path}: {str(error).splitlines()[0]}", where=where) from None
    columns: dict[str, list[SchemaColumn]] = defaultdict(list)
    for table, name, data_type, nullable in found:
        columns[str(table)].append(SchemaColumn(str(name), str(data_type), bool(nullable)))
    indexes: dict[str, list[SchemaIndex]] = defaultdict(list)
    for table, kind, names in keyed:
        label = "PRIMARY" if kind == "PRIMARY KEY" else "unique_" + "_".join(names)
        indexes[str(table)].append(SchemaIndex(label, tuple(str(n) for n in names), unique=True))
    tables = {
        str(name): SchemaTable(str(name), tuple(columns[str(name)]), tuple(indexes[str(name)]), int(size or 0))
        for name, size in listed
    }
    shown = f"duckdb:///{path}" if path.is_absolute() else f"duckdb://{path}"
    return SourceSchema(source, "duckdb", str(database), tables, pulled_from=shown)
