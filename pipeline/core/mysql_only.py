"""SQL that sqlglot reads in its MySQL dialect but MySQL / Aurora MySQL refuses — refused by ``kpi check`` with
the MySQL form in the hint.

Why: sqlglot's MySQL parser is lenient (it reads Postgres ``::`` casts, ``ILIKE``, DuckDB and Snowflake
functions), and the embedded demo runs the transpiled query on DuckDB, where all of them work. The first
place that would refuse them is MariaDB or Aurora at 06:00. Each entry here was checked against MariaDB 10.11
(tests/test_mysql_only.py runs the refused form and the suggested one side by side); those marked MariaDB-only
run there but not on MySQL 8 / Aurora MySQL 3, the production target.

Worse than a refusal: ``a || b`` is a logical OR in MySQL (without PIPES_AS_CONCAT), so ``'a' || 'b'`` is 0,
not ``'ab'`` — a silent wrong number. It is refused too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlglot.tokenizer_core import Token, TokenType

from pipeline.errors import Problem

if TYPE_CHECKING:
    from pipeline.core.positions import SqlPositions

__all__ = ["NOT_MYSQL_FUNCTIONS", "not_mysql"]

RULE = "sql-not-mysql"

# Function name as written → the MySQL form. https://dev.mysql.com/doc/refman/8.0/en/built-in-function-reference.html
NOT_MYSQL_FUNCTIONS: dict[str, str] = {
    "DATE_TRUNC": "DATE(x) for the day, DATE_FORMAT(x, '%Y-%m-01') for the month",
    "STRFTIME": "DATE_FORMAT(x, '%Y-%m-%d')",
    "STRPTIME": "STR_TO_DATE(text, '%Y-%m-%d')",
    "TO_DATE": "STR_TO_DATE(text, '%Y-%m-%d')",
    "TO_TIMESTAMP": "FROM_UNIXTIME(seconds), or STR_TO_DATE(text, '%Y-%m-%d %H:%i:%s')",
    "TO_CHAR": "DATE_FORMAT(x, '%Y-%m-%d') (TO_CHAR is MariaDB-only)",
    "TRY_CAST": "CAST(x AS …) (MySQL has no TRY_CAST)",
    "STRING_AGG": "GROUP_CONCAT(x ORDER BY x SEPARATOR ',')",
    "LISTAGG": "GROUP_CONCAT(x ORDER BY x SEPARATOR ',')",
    "ARRAY_AGG": "GROUP_CONCAT(x ORDER BY x SEPARATOR ',') or JSON_ARRAYAGG(x)",
    "LIST": "GROUP_CONCAT(x ORDER BY x SEPARATOR ',')",
    "EPOCH": "UNIX_TIMESTAMP(x)",
    "DATE_PART": "EXTRACT(YEAR FROM x), or YEAR(x), MONTH(x), DAY(x)",
    "DATE_DIFF": "TIMESTAMPDIFF(DAY, start, end), or DATEDIFF(end, start)",
    "DATEADD": "DATE_ADD(x, INTERVAL 1 DAY)",
    "NVL": "IFNULL(x, fallback) (NVL is MariaDB-only)",
    "IIF": "IF(condition, then, else)",
    "COUNT_IF": "SUM(condition)",
    "COUNTIF": "SUM(condition)",
    "REGEXP_MATCHES": "x REGEXP 'pattern'",
    "SPLIT_PART": "SUBSTRING_INDEX(SUBSTRING_INDEX(x, ',', n), ',', -1)",
    "MEDIAN": "MySQL has no median: export the values and compute it in BigQuery (PERCENTILE_CONT)",
    "LEN": "CHAR_LENGTH(x)",
    "GETDATE": "NOW()",
    "TODAY": "CURDATE()",
    "ARG_MAX": "a subquery with ORDER BY … DESC LIMIT 1, or ROW_NUMBER() OVER (…)",
    "ARG_MIN": "a subquery with ORDER BY … LIMIT 1, or ROW_NUMBER() OVER (…)",
    "SAFE_DIVIDE": "x / NULLIF(y, 0)",
    "STARTS_WITH": "x LIKE 'prefix%'",
    "TRUNC": "TRUNCATE(x, 0)",
    "CONTAINS": "LOCATE('needle', x) > 0",
    "ILIKE": "LOWER(x) LIKE LOWER('pattern')",
}

# CAST/CONVERT target types MySQL does not know → the MySQL type
# (https://dev.mysql.com/doc/refman/8.0/en/cast-functions.html#function_cast).
_CAST_TYPES: dict[str, str] = {
    **dict.fromkeys(["VARCHAR", "TEXT", "STRING", "NVARCHAR"], "CHAR"),
    **dict.fromkeys(["INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "INT64"], "SIGNED (INT is MariaDB-only)"),
    "TIMESTAMP": "DATETIME",
    **dict.fromkeys(["BOOLEAN", "BOOL"], "SIGNED (MySQL has no boolean type; 1 is true)"),
    "NUMERIC": "DECIMAL(p, s)",
}

_STRINGS = frozenset({TokenType.STRING, TokenType.IDENTIFIER, TokenType.NATIONAL_STRING})


def not_mysql(tokens: list[Token], where: SqlPositions) -> Iterator[Problem]:
    """Every construct of the token stream that MySQL would refuse (or read differently)."""
    for index, token in enumerate(tokens):
        kind = token.token_type
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        text = token.text.upper()

        def problem(message: str, hint: str, at: Token = token) -> Problem:
            return Problem(where.at(at.start), RULE, message, hint)

        if kind in _STRINGS:
            continue
        if kind is TokenType.DCOLON:
            cast = following.text.upper() if following else "TYPE"
            yield problem(
                f"`::{following.text if following else ''}` is a Postgres cast; MySQL refuses it (error 1064)",
                f"write CAST(x AS {_CAST_TYPES.get(cast, cast).split(' ')[0]})",
            )
        elif kind is TokenType.ILIKE:
            yield problem("MySQL has no ILIKE", "write LIKE: it ignores case under MySQL's default (_ci) collations")
        elif kind is TokenType.DPIPE:
            yield problem("`||` is a logical OR in MySQL, not a concatenation ('a' || 'b' is 0)", "write CONCAT(a, b)")
        elif kind is TokenType.FULL:
            yield problem(
                "MySQL has no FULL OUTER JOIN", "write a LEFT JOIN UNION a RIGHT JOIN … WHERE left.key IS NULL"
            )
        elif kind is TokenType.QUALIFY:
            yield problem(
                "MySQL has no QUALIFY", "filter the window function in an outer query: SELECT … FROM (…) WHERE rn = 1"
            )
        elif text == "NULLS" and following is not None and following.text.upper() in ("FIRST", "LAST"):
            first = following.text.upper() == "FIRST"
            yield problem(
                f"MySQL has no NULLS {following.text.upper()}",
                f"order by `x IS NULL{' DESC' if first else ''}, x` (NULLs sort first ascending in MySQL)",
            )
        elif kind is TokenType.FILTER and following is not None and following.token_type is TokenType.L_PAREN:
            yield problem("MySQL has no aggregate FILTER (WHERE …)", "write SUM(CASE WHEN condition THEN x END)")
        elif kind is TokenType.DISTINCT and following is not None and following.token_type is TokenType.ON:
            yield problem(
                "MySQL has no DISTINCT ON", "keep one row per key with ROW_NUMBER() OVER (PARTITION BY …) = 1"
            )
        elif (
            kind is TokenType.INTERVAL
            and following is not None
            and following.token_type is TokenType.STRING
            and any(c.isalpha() for c in following.text)
        ):
            amount, _, unit = following.text.strip().partition(" ")
            yield problem(
                f"INTERVAL '{following.text}' is not MySQL: the unit goes outside the quotes",
                f"write INTERVAL {amount or 1} {unit.upper().rstrip('S') or 'DAY'}",
            )
        elif following is not None and following.token_type is TokenType.L_PAREN:
            if text in NOT_MYSQL_FUNCTIONS:
                yield problem(f"{text}() is not a MySQL function", f"MySQL: {NOT_MYSQL_FUNCTIONS[text]}")
            elif text in ("CAST", "CONVERT"):
                target = _cast_target(tokens, index + 1)
                if target is not None and target.text.upper() in _CAST_TYPES:
                    yield problem(
                        f"MySQL cannot CAST to {target.text.upper()}",
                        f"CAST(x AS {_CAST_TYPES[target.text.upper()]})",
                        target,
                    )


def _cast_target(tokens: list[Token], paren: int) -> Token | None:
    """The type token of ``CAST(x AS type)`` / ``CONVERT(x, type)`` whose ``(`` is at ``paren``."""
    depth = 0
    for index in range(paren, len(tokens)):
        kind = tokens[index].token_type
        if kind is TokenType.L_PAREN:
            depth += 1
        elif kind is TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return None
        elif depth == 1 and kind in (TokenType.ALIAS, TokenType.COMMA) and index + 1 < len(tokens):
            return tokens[index + 1]
    return None
