"""The SQL gate: exactly one read-only MySQL query, or a precise refusal.

The exporter also opens a ``START TRANSACTION READ ONLY`` (defence in depth), but a read-only transaction still
lets a query sleep, take advisory locks, read server files or call Lambda from Aurora — so the gate refuses
those before anything reaches the database. Checks run on sqlglot's tokens first (they keep exact positions
and survive syntax sqlglot cannot parse, such as ``LOCK IN SHARE MODE``), then on the parsed tree.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import sqlglot
from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from pipeline.core.kpifile import CONTROL_HINT, control_character
from pipeline.core.mysql_only import not_mysql
from pipeline.core.positions import SqlPositions
from pipeline.core.query import OutputColumn, Placeholder, Query, quiet_sqlglot
from pipeline.errors import Problem

__all__ = ["FORBIDDEN_FUNCTIONS", "OutputColumn", "Placeholder", "Query", "SqlPositions", "gate"]

PLACEHOLDER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Functions a read-only transaction would still run, grouped by why they are refused.
# https://dev.mysql.com/doc/refman/8.0/en/miscellaneous-functions.html,
# https://dev.mysql.com/doc/refman/8.0/en/locking-functions.html,
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Integrating.Lambda.html
FORBIDDEN_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(
        [
            "SLEEP",
            "BENCHMARK",
            "MASTER_POS_WAIT",
            "SOURCE_POS_WAIT",
            "MASTER_GTID_WAIT",
            "WAIT_FOR_EXECUTED_GTID_SET",
            "WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS",
        ],
        "stalls the database server",
    ),
    **dict.fromkeys(
        ["GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS", "IS_FREE_LOCK", "IS_USED_LOCK"],
        "takes or inspects advisory locks that other sessions wait on",
    ),
    "LOAD_FILE": "reads files on the database server",
    **dict.fromkeys(["SYS_EXEC", "SYS_EVAL"], "runs operating-system commands on the database server"),
    **dict.fromkeys(
        [
            "LAMBDA_ASYNC",
            "LAMBDA_SYNC",
            "AWS_SAGEMAKER_INVOKE_ENDPOINT",
            "AWS_COMPREHEND_DETECT_SENTIMENT",
            "AWS_COMPREHEND_DETECT_SENTIMENT_CONFIDENCE",
            "AWS_BEDROCK_INVOKE_MODEL",
        ],
        "calls AWS services from Aurora (side effects and cost)",
    ),
}

_STRING_TOKENS = frozenset({TokenType.STRING, TokenType.IDENTIFIER, TokenType.NATIONAL_STRING, TokenType.BIT_STRING})
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!")
_TOKEN_REPR = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: \d+.*?>")  # sqlglot's debug form of a token


_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")  # C0 controls but tab, newline, form feed, carriage return
MAX_SQL_DEPTH = 64  # parentheses inside each other: sqlglot's parser and generator recurse once or more per level


def _too_deep(tokens: list[Token], where: SqlPositions) -> Problem | None:
    """Nesting that would exhaust Python's recursion in sqlglot (a few hundred levels do), refused before parsing.
    Real queries nest a handful of levels; subqueries and function calls all take parentheses in MySQL."""
    depth = 0
    for token in tokens:
        if token.token_type is TokenType.L_PAREN:
            depth += 1
            if depth > MAX_SQL_DEPTH:
                return Problem(
                    where.at(token.start),
                    "sql-too-deep",
                    f"the SQL nests parentheses more than {MAX_SQL_DEPTH} deep",
                    "flatten the expression, or move parts of it into a CTE (WITH name AS (…))",
                )
        elif token.token_type is TokenType.R_PAREN:
            depth -= 1
    return None


def gate(path: str, sql: str, first_line: int) -> tuple[Query | None, list[Problem]]:
    """Check that ``sql`` is one read-only SELECT; return it with its placeholders and output columns.

    ``first_line`` is the file line on which the SQL starts, so that every problem points into the file.
    The query comes back whenever it could be parsed, even with problems, so that callers can go on checking
    it against the header; it is safe to run only when the problem list is empty.
    """
    where = SqlPositions(path, sql, first_line)
    control = _CONTROL.search(sql)
    if control:
        code = ord(control.group())
        return None, [
            Problem(
                where.at(control.start()),
                "sql-character",
                f"the SQL holds {control_character(code)}",
                CONTROL_HINT,
            )
        ]
    try:
        tokens = MySQL().tokenize(sql)
    except TokenError as error:
        return None, [
            Problem(
                where.at(len(sql.rstrip())),
                "sql-syntax",
                f"cannot read the SQL: {error}",
                "look for an unclosed quote (' \" `) or comment",
            )
        ]
    if not tokens:
        return None, [_empty(where)]
    too_deep = _too_deep(tokens, where)
    if too_deep:
        return None, [too_deep]

    # Token-level refusals come first: they name constructs (INTO OUTFILE, LOCK IN SHARE MODE) that sqlglot
    # may not parse at all. The parse still runs, so that placeholders and columns are checked too.
    problems = list(_token_refusals(tokens, sql, where))
    problems.extend(not_mysql(tokens, where))  # what sqlglot reads as MySQL but MySQL refuses
    body = _without_trailing_semicolon(sql, tokens)
    try:
        with quiet_sqlglot():
            statements = [s for s in sqlglot.parse(body, read="mysql") if s is not None]
    except RecursionError:  # nesting without parentheses (CASE in CASE…) deeper than the parser can follow
        return None, [
            Problem(
                where.at(0),
                "sql-too-deep",
                "the SQL nests too deeply to be checked",
                "flatten the expression, or move parts of it into a CTE (WITH name AS (…))",
            )
        ]
    except ParseError as error:
        if problems:
            return None, problems  # the refused construct is the likely cause; one message is enough
        detail = error.errors[0] if error.errors else {}
        near = detail.get("highlight") or ""
        description = _TOKEN_REPR.sub(r"'\1'", str(detail.get("description") or error).split(". Line")[0])
        return None, [
            Problem(
                where.at_line_col(int(detail.get("line") or 1), max(1, int(detail.get("col") or 1) - len(near) + 1)),
                "sql-syntax",
                f"cannot parse the SQL near '{near}': {description}"
                if near
                else f"cannot parse the SQL: {description}",
                "the query must be valid MySQL; try it in a SQL client",
            )
        ]
    if not statements:
        return None, [_empty(where)]

    tree = statements[0]
    problems.extend(_statement_refusals(tree, where))
    columns, column_problems = _output_columns(tree, where)
    problems.extend(column_problems)
    return Query(body, tuple(_placeholders(tokens, len(body))), columns, tree), problems


def _empty(where: SqlPositions) -> Problem:
    return Problem(where.at(0), "sql-empty", "no SQL after the header", "write one SELECT query below `---*/`")


def _token_refusals(tokens: list[Token], sql: str, where: SqlPositions) -> Iterator[Problem]:
    quoted = [(t.start, t.end) for t in tokens if t.token_type in _STRING_TOKENS]
    for match in _EXECUTABLE_COMMENT.finditer(sql):
        if not any(start <= match.start() <= end for start, end in quoted):
            yield Problem(
                where.at(match.start()),
                "sql-executable-comment",
                "MySQL executes `/*! … */` comments as SQL, so the gate cannot check them",
                "write the SQL without the `/*!` comment (optimizer hints `/*+ … */` are fine)",
            )
    semicolons = [i for i, t in enumerate(tokens) if t.token_type is TokenType.SEMICOLON]
    for index in semicolons:
        if index < len(tokens) - 1 and tokens[index + 1].token_type is not TokenType.SEMICOLON:
            yield Problem(
                where.at(tokens[index + 1].start),
                "sql-multiple-statements",
                "more than one statement: a KPI is exactly one query",
                "remove everything after the first `;` (or split it into another KPI file)",
            )
            break
    reads = tokens[0].token_type in (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN)
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        kind = token.token_type
        if kind is TokenType.INTO and reads:  # INSERT INTO is refused as a statement, not as SELECT … INTO
            yield Problem(
                where.at(token.start),
                "sql-into",
                "`SELECT … INTO` writes to variables or files",
                "remove the INTO clause: the exporter itself writes the result to the lake",
            )
        elif kind is TokenType.FOR and following and following.text.upper() in ("UPDATE", "SHARE"):
            yield Problem(
                where.at(token.start),
                "sql-locking-read",
                f"`FOR {following.text.upper()}` locks rows on the production database",
                "remove the locking clause; a KPI query only reads",
            )
        elif kind is TokenType.LOCK and following and following.text.upper() == "IN":
            yield Problem(
                where.at(token.start),
                "sql-locking-read",
                "`LOCK IN SHARE MODE` locks rows on the production database",
                "remove the locking clause; a KPI query only reads",
            )
        elif kind is TokenType.COLON_EQ:
            yield Problem(
                where.at(token.start),
                "sql-assignment",
                "`:=` assigns a user variable, a side effect the gate refuses",
                "compute the value in the query (a window function or a CTE) instead of a variable",
            )
        elif following is not None and following.token_type is TokenType.L_PAREN:
            reason = FORBIDDEN_FUNCTIONS.get(token.text.upper())
            if reason:
                yield Problem(
                    where.at(token.start),
                    "sql-forbidden-function",
                    f"function {token.text.upper()}() is not allowed: it {reason}",
                    "remove the call; KPI queries may only read data",
                )


def _statement_refusals(tree: exp.Expr, where: SqlPositions) -> Iterator[Problem]:
    query = _unwrap(tree)
    if not isinstance(query, exp.Select | exp.SetOperation):
        kind = tree.name.upper() if isinstance(tree, exp.Command) else tree.key.upper()
        yield Problem(
            where.at(0),
            "sql-not-select",
            f"only a SELECT query is allowed, found {kind}",
            "a KPI is one SELECT (WITH … SELECT and UNION are fine); data changes belong elsewhere",
        )
        return
    for node in tree.walk():
        if isinstance(node, exp.DML | exp.DDL | exp.Command | exp.Set):
            yield Problem(
                where.at(_offset(node)),
                "sql-not-select",
                f"the query contains a {node.key.upper()} statement",
                "a KPI query only reads: remove the statement",
            )


def _output_columns(tree: exp.Expr, where: SqlPositions) -> tuple[tuple[OutputColumn, ...], list[Problem]]:
    query = _unwrap(tree)
    while isinstance(query, exp.SetOperation):
        query = _unwrap(query.this)  # the leftmost SELECT names the columns of a UNION
    if not isinstance(query, exp.Select):
        return (), []
    columns: list[OutputColumn] = []
    problems: list[Problem] = []
    seen: dict[str, OutputColumn] = {}
    for position, item in enumerate(query.expressions, start=1):
        offset = _offset(item)
        if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star)):
            problems.append(
                Problem(
                    where.at(offset),
                    "sql-select-star",
                    "`*` in the outermost SELECT: the result's columns would change whenever the table does",
                    "list the columns by name (a `*` inside a subquery or CTE is fine)",
                )
            )
            continue
        # Only an alias or a plain column names a result column; MySQL would name anything else after its
        # text (`COUNT(*)`), which no warehouse column can be called.
        name = item.alias if isinstance(item, exp.Alias) else item.name if isinstance(item, exp.Column) else ""
        if not name:
            problems.append(
                Problem(
                    where.at(offset),
                    "sql-unnamed-column",
                    f"result column {position} (`{_shorten(item.sql('mysql'))}`) has no name",
                    "give it an alias: `… AS column_name`",
                )
            )
            continue
        if name.lower() in seen:
            problems.append(
                Problem(
                    where.at(offset),
                    "sql-duplicate-column",
                    f"result column '{name}' appears twice",
                    "give each result column its own alias",
                )
            )
            continue
        seen[name.lower()] = OutputColumn(name, offset)
        columns.append(seen[name.lower()])
    return tuple(columns), problems


def _placeholders(tokens: list[Token], length: int) -> Iterator[Placeholder]:
    for colon, name in itertools.pairwise(tokens):
        if (
            colon.token_type is TokenType.COLON
            and name.start == colon.end + 1
            and name.token_type not in _STRING_TOKENS
            and PLACEHOLDER_NAME.match(name.text)
            and name.end < length
        ):
            yield Placeholder(name.text, colon.start, name.end + 1)


def _unwrap(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Subquery):
        node = node.this
    return node


def _offset(node: exp.Expr) -> int:
    """The smallest source offset sqlglot recorded anywhere under ``node`` (0 when none)."""
    starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
    return min(starts, default=0)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _without_trailing_semicolon(sql: str, tokens: list[Token]) -> str:
    """The SQL up to its last real token: analysts paste queries with a final `;` and trailing comments."""
    last = tokens[-1]
    while last.token_type is TokenType.SEMICOLON and len(tokens) > 1:
        tokens = tokens[:-1]
        last = tokens[-1]
    end = last.end + 1
    rest = sql[end:]
    semicolon = rest.find(";")
    return sql if semicolon < 0 else sql[:end] + rest[:semicolon]
