"""The SQL each rule becomes, for MySQL 8 / Aurora MySQL 3 and MariaDB 10.6+ alike (pure: no connection).

The keyed hash is real HMAC-SHA256 (RFC 2104), computed by the server inside the UPDATE:

    HMAC(K, m) = SHA256((K ⊕ opad) ‖ SHA256((K ⊕ ipad) ‖ m))

The two padded keys are derived here, in Python, and set once per session as the user variables
``@kpi_mask_ipad`` and ``@kpi_mask_opad``; each chunk's UPDATE refers to them by name, so the key is in no
statement that a slow log or the process list could show. The server-side form keeps every row on the server
(no round trip of the table through the engine) and gives the same bytes as Python's ``hmac`` — the tests
compare the two. ``m`` is the value as UTF-8 text (``CONVERT(… USING utf8mb4)``; raw bytes for binary
columns), so one e-mail address hashes alike in a latin1 column, a utf8mb4 column and a JSON document: joins
survive and the masking is deterministic across tables, runs and servers for one key.

Values from the rule files (fixed values, JSON paths, phone formats) are written as SQL literals: text as
``CONVERT(X'…' USING utf8mb4)`` unless it is plain, paths and formats only after a strict pattern check. Only
the chunk boundaries are bound parameters, so ``%`` in a custom expression is doubled for the driver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.clone.errors import CloneError
from pipeline.clone.model import HASH_HEX, MASKED_EMAIL_DOMAIN, ColumnRule, Strategy
from pipeline.clone.schema import Column

__all__ = [
    "IPAD_VARIABLE",
    "OPAD_VARIABLE",
    "Assignment",
    "KeyPads",
    "assignment",
    "masked_pattern",
    "output_length",
    "quote",
    "reference_value",
]

IPAD_VARIABLE = "@kpi_mask_ipad"
OPAD_VARIABLE = "@kpi_mask_opad"
MIN_KEY_BYTES = 16
_BLOCK = 64  # SHA-256's block size: longer keys are hashed first (RFC 2104 §2)
_PLAIN = re.compile(r"^[A-Za-z0-9 _@.+\-:/#()]*$")
_CONV_DIGITS = 19  # CONV() of 15 hex digits (60 bits) has at most 19 decimal digits


@dataclass(frozen=True)
class KeyPads:
    """The HMAC key as the server needs it: ``K ⊕ ipad`` and ``K ⊕ opad``, 64 bytes each.

    ``fingerprint`` names the key in run digests without revealing it (an HMAC of a fixed label).
    ``repr`` shows only the fingerprint, so the pads never reach a log line.
    """

    inner: bytes = field(repr=False)
    outer: bytes = field(repr=False)
    fingerprint: str

    @classmethod
    def from_key(cls, key: bytes) -> KeyPads:
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise CloneError(
                f"the masking key must be at least {MIN_KEY_BYTES} bytes",
                hint="store 32 random bytes in the Secrets Manager secret (e.g. `openssl rand -base64 32`)",
            )
        block = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
        block = block.ljust(_BLOCK, b"\0")
        return cls(
            inner=bytes(b ^ 0x36 for b in block),
            outer=bytes(b ^ 0x5C for b in block),
            fingerprint=hmac.new(key, b"kpi clone masking key fingerprint", hashlib.sha256).hexdigest()[:16],
        )


@dataclass(frozen=True)
class Assignment:
    """``column = expression`` in a chunk's UPDATE. ``late`` ones (custom SQL) go last, so that they read
    the row's other columns already masked (MySQL assigns a single-table UPDATE's columns left to right)."""

    column: str
    expression: str
    late: bool = False

    @property
    def sql(self) -> str:
        return f"{quote(self.column)} = {self.expression}"


def quote(name: str) -> str:
    """A MySQL identifier in backticks, ``%`` doubled: every statement goes to the driver with parameters."""
    return "`" + name.replace("`", "``").replace("%", "%%") + "`"


def text_literal(value: str) -> str:
    """A utf8mb4 string literal that needs no escaping: plain text as is, anything else in hex."""
    if _PLAIN.match(value):
        return f"'{value}'"
    return f"CONVERT(X'{value.encode('utf-8').hex()}' USING utf8mb4)"


def keyed_hash(message_sql: str) -> str:
    """HMAC-SHA256 of a byte string expression, as 64 lower-case hex characters."""
    inner = f"UNHEX(SHA2(CONCAT({IPAD_VARIABLE}, {message_sql}), 256))"
    return f"SHA2(CONCAT({OPAD_VARIABLE}, {inner}), 256)"


def message_of(value_sql: str, column: Column | None) -> str:
    """The bytes a value is hashed as: UTF-8 text whatever the column's charset, or a binary column's bytes."""
    if column is not None and column.binary:
        return value_sql
    return f"CONVERT({value_sql} USING utf8mb4)"


def hash_length(rule: ColumnRule, column: Column | None) -> int:
    """Hex characters a hash rule keeps: as asked, else as many as the column holds (at most 64)."""
    if rule.length is not None:
        return rule.length
    if column is None or column.json or column.max_length is None:
        return HASH_HEX
    return max(1, min(HASH_HEX, column.max_length))


def generated(rule: ColumnRule, text_sql: str, column: Column | None) -> str:
    """The expression a hashing strategy writes for the text ``text_sql``."""
    digest = keyed_hash(message_of(text_sql, column))
    if rule.strategy is Strategy.HASH:
        return f"LEFT({digest}, {hash_length(rule, column)})"
    if rule.strategy is Strategy.EMAIL:
        return f"CONCAT('u_', LEFT({digest}, {rule.length}), '@{MASKED_EMAIL_DOMAIN}')"
    if rule.strategy is Strategy.LOGIN:
        return f"CONCAT('user_', LEFT({digest}, {rule.length}))"
    if rule.strategy is Strategy.PHONE:
        return phone(rule.format, digest)
    raise ValueError(rule.strategy)  # pragma: no cover - callers pass hashing strategies only


def phone(format: str, digest_sql: str) -> str:
    """The format with each ``#`` a decimal digit of the hash, built by INSERT() so the hash is computed once."""
    digits = format.count("#")
    result = f"RIGHT(LPAD(CONV(LEFT({digest_sql}, 15), 16, 10), {_CONV_DIGITS}, '0'), {digits})"
    position = 1
    for literal in re.findall(r"#+|[^#]+", format):
        if not literal.startswith("#"):
            result = f"INSERT({result}, {position}, 0, '{literal}')"
        position += len(literal)
    return result


def custom(expression: str, text_sql: str, column: Column | None) -> str:
    """A rule's own SQL, with ``{value}`` (the text masked) and ``{hash}`` (its keyed hash) filled in."""
    filled = expression.replace("{hash}", keyed_hash(message_of(text_sql, column))).replace("{value}", text_sql)
    return "(" + filled.replace("%", "%%") + ")"


def fixed(value: object, column: Column) -> str:
    if column.json:
        return text_literal(json.dumps(value, ensure_ascii=False))
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return text_literal(str(value))


def assignment(rule: ColumnRule, column: Column) -> Assignment | None:
    """The SET clause of a column's rule, or None for ``keep``."""
    target = quote(column.name)
    strategy = rule.strategy
    if strategy is Strategy.KEEP:
        return None
    if strategy is Strategy.NULL:
        return Assignment(column.name, "NULL")
    if strategy is Strategy.FIXED:
        return Assignment(column.name, fixed(rule.value, column))
    if strategy is Strategy.SQL:
        return Assignment(column.name, custom(str(rule.value), target, column), late=True)
    if strategy is Strategy.JSON:
        pairs = ", ".join(f"'{path}', {json_path_value(path_rule, target, path)}" for path, path_rule in rule.paths)
        return Assignment(column.name, f"JSON_REPLACE({target}, {pairs})")
    expression = generated(rule, target, column)
    if column.json:  # only `hash` reaches here for a JSON column: a JSON string keeps the document valid
        expression = f"JSON_QUOTE({expression})"
    return Assignment(column.name, expression)


def json_path_value(rule: ColumnRule, document_sql: str, path: str) -> str:
    """The JSON value a path rule puts in place of the one found; a JSON null stays null.

    Everything is built as JSON text and parsed back with ``JSON_EXTRACT(text, '$')``, the one way to make a
    JSON value that MySQL and MariaDB both accept (MariaDB has no ``CAST(… AS JSON)``). A path missing from a
    document is left missing (JSON_REPLACE ignores it).
    """
    if rule.strategy is Strategy.NULL:
        return "JSON_EXTRACT('null', '$')"
    if rule.strategy is Strategy.FIXED:
        return f"JSON_EXTRACT({text_literal(json.dumps(rule.value, ensure_ascii=False))}, '$')"
    found = f"JSON_EXTRACT({document_sql}, '{path}')"
    text = f"JSON_UNQUOTE({found})"
    if rule.strategy is Strategy.SQL:
        masked = f"CAST({custom(str(rule.value), text, None)} AS CHAR)"
    else:
        masked = generated(rule, text, None)
    return f"JSON_EXTRACT(COALESCE(IF(JSON_TYPE({found}) = 'NULL', NULL, JSON_QUOTE({masked})), 'null'), '$')"


def output_length(rule: ColumnRule, column: Column) -> int | None:
    """Characters the rule writes into the column, when known (to compare with the column's length)."""
    if rule.strategy is Strategy.HASH:
        return hash_length(rule, column)
    if rule.strategy is Strategy.EMAIL:
        return len("u_") + (rule.length or 0) + len("@" + MASKED_EMAIL_DOMAIN)
    if rule.strategy is Strategy.LOGIN:
        return len("user_") + (rule.length or 0)
    if rule.strategy is Strategy.PHONE:
        return len(rule.format)
    if rule.strategy is Strategy.FIXED and isinstance(rule.value, str):
        return len(rule.value)
    return None


def masked_pattern(rule: ColumnRule) -> re.Pattern[str] | None:
    """What a value written by an e-mail or login rule looks like — no real address or login does."""
    if rule.strategy is Strategy.EMAIL:
        return re.compile(rf"u_[0-9a-f]{{{rule.length}}}@{re.escape(MASKED_EMAIL_DOMAIN)}")
    if rule.strategy is Strategy.LOGIN:
        return re.compile(rf"user_[0-9a-f]{{{rule.length}}}")
    return None


def reference_value(rule: ColumnRule, value: str | bytes, key: bytes, max_length: int | None = None) -> str:
    """What a hashing rule turns ``value`` into, computed in Python (to find a user in a masked copy, and for
    the tests that hold the server's SQL to it)."""
    message = value.encode("utf-8") if isinstance(value, str) else value
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    if rule.strategy is Strategy.HASH:
        length = rule.length or (min(HASH_HEX, max_length) if max_length else HASH_HEX)
        return digest[:length]
    if rule.strategy is Strategy.EMAIL:
        return f"u_{digest[: rule.length]}@{MASKED_EMAIL_DOMAIN}"
    if rule.strategy is Strategy.LOGIN:
        return f"user_{digest[: rule.length]}"
    if rule.strategy is Strategy.PHONE:
        digits = iter(str(int(digest[:15], 16)).zfill(_CONV_DIGITS)[-rule.format.count("#") :])
        return "".join(next(digits) if char == "#" else char for char in rule.format)
    raise ValueError(f"{rule.strategy.value} has no reference value")


# -- statements --------------------------------------------------------------------------------------------------


def after(key: Sequence[str], count: int) -> str:
    """``key > (%s, …)`` in lexicographic order, spelt out so that both servers use the primary key's range."""
    names = [quote(k) for k in key]
    terms = []
    for i in range(count):
        equal = [f"{n} = %s" for n in names[:i]]
        terms.append("(" + " AND ".join([*equal, f"{names[i]} > %s"]) + ")")
    return "(" + " OR ".join(terms) + ")"


def up_to(key: Sequence[str], count: int) -> str:
    """``key <= (%s, …)`` in lexicographic order."""
    names = [quote(k) for k in key]
    terms = []
    for i in range(count):
        equal = [f"{n} = %s" for n in names[:i]]
        last = "<=" if i == count - 1 else "<"
        terms.append("(" + " AND ".join([*equal, f"{names[i]} {last} %s"]) + ")")
    return "(" + " OR ".join(terms) + ")"


def after_params(position: Sequence[object]) -> list[object]:
    """Parameters for :func:`after` (and :func:`up_to`): each prefix of the key, then the next part."""
    params: list[object] = []
    for i in range(len(position)):
        params.extend(position[: i + 1])
    return params


def chunk_end(
    table_sql: str, key: Sequence[str], position: Sequence[object] | None, rows: int
) -> tuple[str, list[object]]:
    """The last key of the next chunk of ``rows`` rows after ``position`` (None: from the start)."""
    columns = ", ".join(quote(k) for k in key)
    where = f"WHERE {after(key, len(key))} " if position is not None else ""
    params = after_params(position) if position is not None else []
    descending = ", ".join(f"{quote(k)} DESC" for k in key)
    sql = (
        f"SELECT {columns} FROM (SELECT {columns} FROM {table_sql} {where}ORDER BY {columns} LIMIT %s) AS chunk "
        f"ORDER BY {descending} LIMIT 1"
    )
    return sql, [*params, rows]


def chunk_range(
    table_sql: str, key: Sequence[str], position: Sequence[object] | None, end: Sequence[object]
) -> tuple[str, list[object]]:
    """The condition of one chunk — rows after ``position`` up to and including ``end`` — and its parameters."""
    conditions = [up_to(key, len(key))]
    params = after_params(end)
    if position is not None:
        conditions.insert(0, after(key, len(key)))
        params = [*after_params(position), *params]
    return " AND ".join(conditions), params


def chunk_update(
    table_sql: str,
    assignments: Sequence[Assignment],
    key: Sequence[str],
    position: Sequence[object] | None,
    end: Sequence[object],
) -> tuple[str, list[object]]:
    """The UPDATE of one chunk: rows after ``position`` up to and including ``end``."""
    ordered = sorted(assignments, key=lambda a: a.late)
    where, params = chunk_range(table_sql, key, position, end)
    return f"UPDATE {table_sql} SET {', '.join(a.sql for a in ordered)} WHERE {where}", params


def whole_update(table_sql: str, assignments: Sequence[Assignment]) -> str:
    """The UPDATE of a table without a primary key: every row in one transaction."""
    ordered = sorted(assignments, key=lambda a: a.late)
    return f"UPDATE {table_sql} SET {', '.join(a.sql for a in ordered)}"


# -- subsetting and fakes ----------------------------------------------------------------------------------------

FRACTION_BITS = 32  # a row's share of the keyed hash's first 32 bits decides whether a fraction keeps it


def kept_by_subset(key: Sequence[str], fraction: float, where: str) -> str:
    """The condition a root table's kept rows meet: ``where`` and, below 1, the fraction by the keyed hash of the
    primary key (deterministic for one key: the same rows in every run)."""
    parts = [f"({where.replace('%', '%%')})"] if where else []
    if fraction < 1:
        message = message_of(f"CONCAT_WS(0x1f, {', '.join(quote(k) for k in key)})", None)
        threshold = int(fraction * 2**FRACTION_BITS)
        parts.append(f"CONV(LEFT({keyed_hash(message)}, {FRACTION_BITS // 4}), 16, 10) < {threshold}")
    return " AND ".join(parts) or "TRUE"


def orphaned(table_sql: str, columns: Sequence[str], target_sql: str, targets: Sequence[str], *, same: bool) -> str:
    """The condition of rows of ``table_sql`` whose key (all of it set: MySQL checks no key with a NULL part)
    points at no row of ``target_sql``. A table that references itself reads its keys through a derived table,
    which MySQL allows in a DELETE of the same table."""
    own = [f"{table_sql}.{quote(c)}" for c in columns]
    present = " AND ".join(f"{c} IS NOT NULL" for c in own)
    if same:
        wanted = ", ".join(f"{quote(t)} AS k{i}" for i, t in enumerate(targets))
        keys = ", ".join(f"k{i}" for i in range(len(targets)))
        row = own[0] if len(own) == 1 else f"({', '.join(own)})"
        return (
            f"({present} AND {row} NOT IN (SELECT {keys} FROM (SELECT DISTINCT {wanted} FROM {target_sql}) "
            "AS kpi_parent))"
        )
    matches = " AND ".join(f"kpi_parent.{quote(t)} = {c}" for t, c in zip(targets, own, strict=True))
    return f"({present} AND NOT EXISTS (SELECT 1 FROM {target_sql} AS kpi_parent WHERE {matches}))"


def column_digest(column: Column) -> str:
    """The keyed hash of a column's value (hex, NULL for NULL): what a fake is seeded with."""
    return keyed_hash(message_of(quote(column.name), column))


def fake_update(table_sql: str, key: Sequence[str], columns: Sequence[str], rows: int) -> str:
    """``rows`` rows of new values joined to the table by primary key: ``(key…, value…)`` per row as parameters."""
    width = len(key) + len(columns)
    first = ", ".join([f"%s AS k{i}" for i in range(len(key))] + [f"%s AS v{i}" for i in range(len(columns))])
    rest = " UNION ALL ".join(["SELECT " + ", ".join(["%s"] * width)] * (rows - 1))
    values = f"SELECT {first}" + (f" UNION ALL {rest}" if rows > 1 else "")
    on = " AND ".join(f"kpi_t.{quote(k)} = kpi_f.k{i}" for i, k in enumerate(key))
    sets = ", ".join(f"kpi_t.{quote(c)} = kpi_f.v{i}" for i, c in enumerate(columns))
    return f"UPDATE {table_sql} AS kpi_t JOIN ({values}) AS kpi_f ON {on} SET {sets}"
