"""What the masking engine asks of MySQL / Aurora MySQL and MariaDB: the schema, and a session fit to mask in.

The session, set by :func:`open_session` on the engine's one connection:

- ``foreign_key_checks = 0``: tables are masked one by one, so a reference may point at a value masked a
  moment later; every copy of a value masks alike, so references agree again at the end. Acceptable on the
  temporary cluster only, which nobody else writes to.
- ``sql_mode`` gains ``STRICT_ALL_TABLES`` (a value too long for its column is an error, never a silent
  truncation that could merge two unique values) and loses MariaDB's ``SIMULTANEOUS_ASSIGNMENT`` (custom
  SQL must see the row's other columns already masked).
- The key's pads go into user variables, once; statements name the variables, never the key.
- Logs that would keep the key or the unmasked values inside the cluster that is snapshotted and shared are
  refused: the general log written to a table, and the binary log (its row images hold every value before
  masking) unless the session may switch it off. Restore the temporary cluster with ``binlog_format=OFF``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pymysql

from pipeline.clone.errors import CloneError
from pipeline.clone.progress import HELPER_TABLES
from pipeline.clone.schema import Column, ForeignKey, Schema, Table
from pipeline.clone.sql import IPAD_VARIABLE, OPAD_VARIABLE, KeyPads

__all__ = ["SYSTEM_DATABASES", "close_session", "list_databases", "open_session", "read_schema"]

# MariaDB and MySQL 5.7 show integer display widths (bigint(20)), MySQL 8 does not: shown alike, without.
_INT_WIDTH = re.compile(r"\(\d+\)")
_INTEGERS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_JSON_CHECK = re.compile(r"json_valid\(`?([^`)]+)`?\)", re.IGNORECASE)


SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})


def list_databases(cursor: Any) -> list[str]:
    """The databases a clone carries, the server's own left out: each needs a masking rule file."""
    cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME", ())
    return [name for (name,) in cursor.fetchall() if name.lower() not in SYSTEM_DATABASES]


def read_schema(cursor: Any, database: str) -> Schema:
    """The base tables of ``database`` from information_schema (views and the module's helper tables left out)."""
    cursor.execute(
        "SELECT TABLE_NAME, ENGINE, TABLE_ROWS FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME NOT IN (%s, %s)",
        (database, *HELPER_TABLES),
    )
    tables = {name: (engine or "", int(rows or 0)) for name, engine, rows in cursor.fetchall()}
    json_columns = _mariadb_json_columns(cursor, database)
    cursor.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_MAXIMUM_LENGTH, EXTRA "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (database,),
    )
    columns: dict[str, list[Column]] = defaultdict(list)
    for table, name, data_type, column_type, nullable, max_length, extra in cursor.fetchall():
        if table not in tables:
            continue
        kind = str(data_type).lower()
        extra = str(extra or "").upper()
        columns[table].append(
            Column(
                table=table,
                name=name,
                data_type=kind,
                column_type=_INT_WIDTH.sub("", str(column_type).lower())
                if kind in _INTEGERS
                else str(column_type).lower(),
                nullable=nullable == "YES",
                max_length=int(max_length) if max_length is not None and kind not in ("json",) else None,
                generated="VIRTUAL GENERATED" in extra or "STORED GENERATED" in extra,
                json=kind == "json" or (table, name) in json_columns,
            )
        )
    cursor.execute(
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (database,),
    )
    indexes: dict[tuple[str, str], list[str]] = defaultdict(list)
    unique: set[tuple[str, str]] = set()
    for table, index, non_unique, column in cursor.fetchall():
        indexes[(table, index)].append(column)
        if not int(non_unique):
            unique.add((table, index))
    cursor.execute(
        "SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s AND EVENT_MANIPULATION IN ('UPDATE', 'DELETE') ORDER BY TRIGGER_NAME",
        (database,),
    )
    triggers: dict[str, list[str]] = defaultdict(list)
    for table, name, timing, event in cursor.fetchall():
        triggers[table].append(f"{name} ({timing} {event})")
    cursor.execute(
        "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
        "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s AND REFERENCED_TABLE_SCHEMA = %s "
        "AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
        (database, database),
    )
    keys: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
    for table, constraint, column, target, target_column in cursor.fetchall():
        keys[(table, constraint)].append((column, target, target_column))
    foreign: dict[str, list[ForeignKey]] = defaultdict(list)
    for (table, _), parts in keys.items():
        foreign[table].append(ForeignKey(table, tuple(p[0] for p in parts), parts[0][1], tuple(p[2] for p in parts)))
    result = {}
    for name, (engine, rows) in sorted(tables.items()):
        result[name] = Table(
            name=name,
            columns=tuple(columns[name]),
            engine=engine,
            primary_key=tuple(indexes.get((name, "PRIMARY"), ())),
            unique_keys=tuple(
                tuple(cols)
                for (table, index), cols in indexes.items()
                if table == name and (table, index) in unique
                if index != "PRIMARY"
            ),
            triggers=tuple(triggers[name]),
            rows=rows,
            foreign_keys=tuple(foreign[name]),
        )
    return Schema(database, result)


def _mariadb_json_columns(cursor: Any, database: str) -> set[tuple[str, str]]:
    """MariaDB's JSON is LONGTEXT with a CHECK (json_valid(col)); MySQL's CHECK_CONSTRAINTS has no table name."""
    cursor.execute("SELECT VERSION()")
    if "mariadb" not in str(cursor.fetchone()[0]).lower():
        return set()
    cursor.execute(
        "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
        (database,),
    )
    found = set()
    for table, clause in cursor.fetchall():
        match = _JSON_CHECK.fullmatch(str(clause).strip())
        if match:
            found.add((table, match.group(1)))
    return found


def open_session(cursor: Any, pads: KeyPads) -> None:
    """Make the connection's session fit to mask in (see the module docstring), or refuse."""
    cursor.execute("SELECT @@SESSION.sql_mode, @@GLOBAL.general_log, @@GLOBAL.log_output, @@GLOBAL.log_bin")
    sql_mode, general_log, log_output, log_bin = cursor.fetchone()
    if int(general_log) and "TABLE" in str(log_output).upper():
        _switch_off(cursor, "SET SESSION sql_log_off = 1", "the general log is written to mysql.general_log")
    if int(log_bin):
        _switch_off(cursor, "SET SESSION sql_log_bin = 0", "binary logging is on (row images hold unmasked values)")
    modes = [m for m in str(sql_mode).split(",") if m and m != "SIMULTANEOUS_ASSIGNMENT"]
    if "STRICT_ALL_TABLES" not in modes:
        modes.append("STRICT_ALL_TABLES")
    cursor.execute("SET SESSION sql_mode = %s", (",".join(modes),))
    cursor.execute("SET SESSION foreign_key_checks = 0")
    cursor.execute("SET SESSION long_query_time = 3600")  # keeps the next statement out of any slow log
    cursor.execute(
        f"SET {IPAD_VARIABLE} = UNHEX(%s), {OPAD_VARIABLE} = UNHEX(%s)", (pads.inner.hex(), pads.outer.hex())
    )
    cursor.execute(f"SELECT LENGTH({IPAD_VARIABLE}), LENGTH({OPAD_VARIABLE})")
    if tuple(cursor.fetchone()) != (64, 64):  # pragma: no cover - a server that drops user variables
        raise CloneError("the server did not keep the masking key's session variables", hint="report this server")


def close_session(cursor: Any) -> None:
    """Forget the key and restore foreign key checks (the connection may be reused)."""
    cursor.execute(f"SET {IPAD_VARIABLE} = NULL, {OPAD_VARIABLE} = NULL")
    cursor.execute("SET SESSION foreign_key_checks = 1")


def _switch_off(cursor: Any, statement: str, why: str) -> None:
    try:
        cursor.execute(statement)
    except pymysql.MySQLError as error:  # access denied: the session may not change this variable
        raise CloneError(
            f"cannot mask here: {why}, and this session may not switch it off ({error})",
            hint="restore the temporary cluster with a parameter group that has binlog_format=OFF and the "
            "general log off (or log_output=FILE); what is logged there would be in the shared snapshot",
        ) from error
