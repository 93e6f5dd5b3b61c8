"""MySQL/MariaDB result-column metadata (pymysql's field descriptors) as source-neutral :class:`SourceColumn`."""

from __future__ import annotations

from typing import Any

from pymysql.constants import FIELD_TYPE, FLAG

from pipeline.core.typeplan import SourceColumn, SourceKind

BINARY_CHARSET = 63

_INTEGERS = {
    FIELD_TYPE.TINY: "TINYINT",
    FIELD_TYPE.SHORT: "SMALLINT",
    FIELD_TYPE.INT24: "MEDIUMINT",
    FIELD_TYPE.LONG: "INT",
    FIELD_TYPE.LONGLONG: "BIGINT",
    FIELD_TYPE.YEAR: "YEAR",
}
_TEMPORAL = {
    FIELD_TYPE.DATE: (SourceKind.DATE, "DATE"),
    FIELD_TYPE.NEWDATE: (SourceKind.DATE, "DATE"),
    FIELD_TYPE.DATETIME: (SourceKind.DATETIME, "DATETIME"),
    FIELD_TYPE.TIMESTAMP: (SourceKind.TIMESTAMP, "TIMESTAMP"),
    FIELD_TYPE.TIME: (SourceKind.TIME, "TIME"),
}
_STRINGS = {
    FIELD_TYPE.VARCHAR: "VARCHAR",
    FIELD_TYPE.VAR_STRING: "VARCHAR",
    FIELD_TYPE.STRING: "CHAR",
    FIELD_TYPE.ENUM: "ENUM",
    FIELD_TYPE.SET: "SET",
    FIELD_TYPE.TINY_BLOB: "TINYTEXT",
    FIELD_TYPE.MEDIUM_BLOB: "MEDIUMTEXT",
    FIELD_TYPE.LONG_BLOB: "LONGTEXT",
    FIELD_TYPE.BLOB: "TEXT",
}


def source_column(field: Any) -> SourceColumn:
    """One ``pymysql.protocol.FieldDescriptorPacket`` as a SourceColumn, with MySQL's spelling as its label."""
    code, flags, length, scale = field.type_code, field.flags, field.length, field.scale
    unsigned = bool(flags & FLAG.UNSIGNED)
    name = field.name
    if code in _INTEGERS:
        label = _INTEGERS[code] + (" UNSIGNED" if unsigned else "")
        if code == FIELD_TYPE.TINY and length == 1:
            return SourceColumn(name, SourceKind.TINYINT1, "TINYINT(1)")
        if code == FIELD_TYPE.LONGLONG and unsigned:
            return SourceColumn(name, SourceKind.UNSIGNED_BIGINT, label)
        return SourceColumn(name, SourceKind.INTEGER, label)
    if code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        # The display length counts the digits plus a sign (when signed) and a point (when scale > 0).
        precision = length - (0 if unsigned else 1) - (1 if scale else 0)
        return SourceColumn(name, SourceKind.DECIMAL, f"DECIMAL({precision},{scale})", precision, scale)
    if code in (FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE):
        return SourceColumn(name, SourceKind.FLOAT, "FLOAT" if code == FIELD_TYPE.FLOAT else "DOUBLE")
    if code in _TEMPORAL:
        kind, label = _TEMPORAL[code]
        return SourceColumn(name, kind, label)
    if code == FIELD_TYPE.JSON:
        return SourceColumn(name, SourceKind.JSON, "JSON")
    if code == FIELD_TYPE.BIT:
        return SourceColumn(name, SourceKind.BIT, f"BIT({length})")
    if code == FIELD_TYPE.NULL:
        return SourceColumn(name, SourceKind.NULL, "NULL")
    if code in _STRINGS:
        if field.charsetnr == BINARY_CHARSET:
            label = {"VARCHAR": "VARBINARY", "CHAR": "BINARY"}.get(_STRINGS[code], "BLOB")
            return SourceColumn(name, SourceKind.BINARY, label)
        return SourceColumn(name, SourceKind.TEXT, _STRINGS[code])
    if code == FIELD_TYPE.GEOMETRY:
        return SourceColumn(name, SourceKind.UNSUPPORTED, "GEOMETRY")
    return SourceColumn(name, SourceKind.UNSUPPORTED, f"MySQL type {code}")
