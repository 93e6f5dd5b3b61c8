"""A KPI's MySQL query as DuckDB runs it with MySQL's results: sqlglot's transpile, with the MySQL date
functions it gets wrong replaced by DuckDB macros that follow MySQL's own rules.

What sqlglot's MySQL → DuckDB transpile gets wrong (measured against MariaDB 10.11 in
tests/test_mysql_functions.py), and what replaces it here:

==============================  ========================================  ================================
MySQL                           sqlglot's DuckDB                          here
==============================  ========================================  ================================
``WEEK(d[, mode])``             ISO ``week(d)``; a mode: binder error     ``mysql_week(d, mode)``
``YEARWEEK(d[, mode])``         ISO ``yearweek(d)``; a mode: binder error ``mysql_yearweek(d, mode)``
``WEEKDAY(d)`` (Monday = 0)     ``weekday(d)`` (Sunday = 0)               ``isodow(d) - 1``
``DAYOFWEEK(d)`` (Sunday = 1)   ``dayofweek(d)`` (Sunday = 0)             ``dayofweek(d) + 1``
``TIMESTAMPDIFF(unit, a, b)``   unit boundaries crossed                   whole units elapsed; months by
                                                                          MySQL's day-and-time rule
``DATE_FORMAT`` with ``%U %u``  strftime refuses them                     the pattern in pieces, the week
``%V %v %X %x %D %l``                                                     ones from the macros
``IFNULL(x, 'text')``,          ``COALESCE(x, 'text')``: the text cast    ``COALESCE(CAST(x AS VARCHAR),
``COALESCE(x, 'text')``         to x's type, a conversion error unless    'text')``: MySQL's result is
                                x is text                                 text when one argument is
==============================  ========================================  ================================

The text fallback is cast only when it is no number, date or time (``'none'``, ``'n/a'``, ``''``): a fallback
like ``'0'`` or ``'1970-01-01'`` DuckDB reads as x's type, which gives the same values and keeps arithmetic on the
result working (``IFNULL(n, '0') + 1``). The text of x is DuckDB's cast, equal to MySQL's for every type the demo
shop has (integers, DECIMAL, DATE, DATETIME, text; measured side by side in tests/test_mysql_functions.py); a
DOUBLE with a whole value (``2.0`` where MySQL writes ``2``) and a boolean (``true`` for ``1``) would differ.

``GROUP_CONCAT`` without ``ORDER BY`` is left as it is: its order is whatever order the server reads rows in, on
MySQL and MariaDB as on DuckDB, so no rewrite can agree; :func:`unordered_group_concats` finds the calls for
``kpi check`` to warn about.

MySQL's weeks (``calc_week`` in MySQL's sql-common/my_time.cc; modes as
https://dev.mysql.com/doc/refman/8.0/en/date-and-time-functions.html#function_week tabulates them): a mode is
three flags — weeks start on Monday (1), the week may belong to the neighbouring year (2), week 1 is the first
week holding a first day of the week rather than the first with four days of the year (4, inverted for
Sunday-first modes). Week 1 starts at :sql:`mysql_week_start`; days before it are week 0, or the previous
year's last week when the year may change; with that flag, days from the next year's week 1 on are its week 1.

Macros, not Python functions: DuckDB shares a Python function among every connection of the process to the
same file and crashes when the registering one has closed; a TEMP macro lives and dies with its connection.
Pure: the transform rewrites the tree; :data:`MACROS` is the SQL the source runs on each connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import sqlglot
from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.time import format_time
from sqlglot.tokenizer_core import TokenType

from pipeline.core.positions import SqlPositions
from pipeline.core.spec import Kpi
from pipeline.errors import Problem

__all__ = ["MACROS", "UNORDERED", "to_duckdb", "unordered_group_concats"]

UNORDERED = "group-concat-unordered"

MACROS = (
    # Day of the week counted from the week's first day (0 = Monday, or Sunday when m is false).
    "CREATE OR REPLACE TEMP MACRO mysql_first_day(d, m) AS CASE WHEN m THEN isodow(d) - 1 ELSE dayofweek(d) END",
    # The first day of week 1 of year y: the first week-start on or after 1 January (f), or the week with 1 January
    # when it has four days of the year, else the next one (not f).
    "CREATE OR REPLACE TEMP MACRO mysql_week_start(y, m, f) AS make_date(y, 1, 1) + CAST(CASE "
    "WHEN f THEN (7 - mysql_first_day(make_date(y, 1, 1), m)) % 7 "
    "WHEN mysql_first_day(make_date(y, 1, 1), m) <= 3 THEN -mysql_first_day(make_date(y, 1, 1), m) "
    "ELSE 7 - mysql_first_day(make_date(y, 1, 1), m) END AS INTEGER)",
    # year × 100 + week for a date and MySQL's behaviour flags b (1 Monday first, 2 week year, 4 first weekday).
    "CREATE OR REPLACE TEMP MACRO mysql_calc_week(d, b) AS CASE "
    "WHEN d < mysql_week_start(year(d), (b & 1) = 1, (b & 4) = 4) THEN CASE WHEN (b & 2) = 2 "
    "THEN (year(d) - 1) * 100 + (d - mysql_week_start(year(d) - 1, (b & 1) = 1, (b & 4) = 4)) // 7 + 1 "
    "ELSE year(d) * 100 END "
    "WHEN (b & 2) = 2 AND d >= mysql_week_start(year(d) + 1, (b & 1) = 1, (b & 4) = 4) THEN (year(d) + 1) * 100 + 1 "
    "ELSE year(d) * 100 + (d - mysql_week_start(year(d), (b & 1) = 1, (b & 4) = 4)) // 7 + 1 END",
    # MySQL's week_mode(): a Sunday-first mode inverts the first-weekday flag.
    "CREATE OR REPLACE TEMP MACRO mysql_week_mode(mode) AS "
    "CASE WHEN (mode & 1) = 1 THEN mode & 7 ELSE xor(mode & 7, 4) END",
    "CREATE OR REPLACE TEMP MACRO mysql_week(d, mode) AS mysql_calc_week(CAST(d AS DATE), mysql_week_mode(mode)) % 100",
    "CREATE OR REPLACE TEMP MACRO mysql_yearweek(d, mode) AS "
    "mysql_calc_week(CAST(d AS DATE), mysql_week_mode(mode) | 2)",
    # TIMESTAMPDIFF(MONTH, a, b): whole months; a month counts once b's day and time reach a's.
    "CREATE OR REPLACE TEMP MACRO mysql_months_between(a, b) AS CASE WHEN b >= a "
    "THEN (year(b) - year(a)) * 12 + month(b) - month(a) "
    "- CASE WHEN strftime(b, '%d%H%M%S%f') < strftime(a, '%d%H%M%S%f') THEN 1 ELSE 0 END "
    "ELSE -((year(a) - year(b)) * 12 + month(a) - month(b) "
    "- CASE WHEN strftime(a, '%d%H%M%S%f') < strftime(b, '%d%H%M%S%f') THEN 1 ELSE 0 END) END",
)

_PER_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}
# TIMESTAMPDIFF counts whole units elapsed (23:00 → 01:00 is 0 days), DuckDB's date_diff the boundaries crossed.
_MICROSECONDS = {
    "MICROSECOND": 1, "SECOND": 1_000_000, "MINUTE": 60_000_000, "HOUR": 3_600_000_000,
    "DAY": 86_400_000_000, "WEEK": 604_800_000_000,
}  # fmt: skip
# DATE_FORMAT specifiers DuckDB's strftime lacks, as DuckDB SQL over the moment {d}.
_SPECIFIERS = {
    "%U": "lpad(CAST(mysql_week({d}, 0) AS VARCHAR), 2, '0')",
    "%u": "lpad(CAST(mysql_week({d}, 1) AS VARCHAR), 2, '0')",
    "%V": "lpad(CAST(mysql_week({d}, 2) AS VARCHAR), 2, '0')",
    "%v": "lpad(CAST(mysql_week({d}, 3) AS VARCHAR), 2, '0')",
    "%X": "CAST(mysql_yearweek({d}, 2) // 100 AS VARCHAR)",
    "%x": "CAST(mysql_yearweek({d}, 3) // 100 AS VARCHAR)",
    "%D": "CAST(day({d}) AS VARCHAR) || CASE WHEN day({d}) IN (11, 12, 13) THEN 'th' WHEN day({d}) % 10 = 1 "
    "THEN 'st' WHEN day({d}) % 10 = 2 THEN 'nd' WHEN day({d}) % 10 = 3 THEN 'rd' ELSE 'th' END",
    "%l": "CAST(CASE WHEN hour({d}) % 12 = 0 THEN 12 ELSE hour({d}) % 12 END AS VARCHAR)",
}


def to_duckdb(tree: exp.Expr) -> str:
    """The MySQL query ``tree`` as DuckDB SQL, placeholders as ``$name``."""
    return tree.copy().transform(_rewrite).sql(dialect="duckdb", pretty=True)


def _date(node: exp.Expr) -> exp.Expr:
    return node if isinstance(node, exp.TsOrDsToDate) else exp.TsOrDsToDate(this=node)


def _mode(node: exp.Expr | None) -> exp.Expr:
    return node if node is not None else exp.Literal.number(0)


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _rewrite(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Week):
        return _call("mysql_week", _date(node.this), _mode(node.args.get("mode")))
    if isinstance(node, exp.Anonymous):
        name = str(node.this).upper()
        args = node.expressions
        if name == "YEARWEEK" and 1 <= len(args) <= 2:
            return _call("mysql_yearweek", _date(args[0]), _mode(args[1] if len(args) > 1 else None))
        if name == "WEEKDAY" and len(args) == 1:
            return exp.Paren(this=exp.Sub(this=_call("isodow", _date(args[0])), expression=exp.Literal.number(1)))
    if isinstance(node, exp.DayOfWeek):
        return exp.Paren(this=exp.Add(this=_call("dayofweek", _date(node.this)), expression=exp.Literal.number(1)))
    if isinstance(node, exp.TimestampDiff):
        return _timestamp_diff(node)
    if isinstance(node, exp.TimeToStr):
        return _date_format(node)
    if isinstance(node, exp.Coalesce):
        return _coalesce(node)
    return node


# A text that DuckDB reads as a number, a date or a time when it meets one: left to that cast.
_TYPED_TEXT = re.compile(
    r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*|\s*\d{4}-\d\d-\d\d([ T][\d:.]*)?\s*|\s*\d+:\d\d(:\d\d)?(\.\d*)?\s*"
)


def _coalesce(node: exp.Coalesce) -> exp.Expr:
    """IFNULL/COALESCE with a plain-text fallback: the other arguments as text, as MySQL's result type is then."""
    args = [node.this, *node.expressions]
    if not any(_plain_text(arg) for arg in args):
        return node
    cast = [arg if _is_text(arg) else exp.cast(arg, exp.DType.VARCHAR) for arg in args]
    return exp.Coalesce(this=cast[0], expressions=cast[1:])


def _is_text(node: exp.Expr) -> bool:
    return (isinstance(node, exp.Literal) and node.is_string) or isinstance(node, exp.Null)


def _plain_text(node: exp.Expr) -> bool:
    return isinstance(node, exp.Literal) and node.is_string and not _TYPED_TEXT.fullmatch(node.name)


def unordered_group_concats(kpi: Kpi) -> Iterator[Problem]:
    """A warning at every ``GROUP_CONCAT(…)`` of the query without an ``ORDER BY`` inside: its values come in the
    order the server happens to read the rows — MySQL, MariaDB and the embedded demo each have their own, and a
    changed plan reorders them — so the KPI's value is not reproducible, and the demo cannot match production."""
    tokens = MySQL().tokenize(kpi.query.sql)
    where = SqlPositions(kpi.path, kpi.query.sql, kpi.sql_line)
    for index, token in enumerate(tokens[:-1]):
        if token.text.upper() != "GROUP_CONCAT" or tokens[index + 1].token_type is not TokenType.L_PAREN:
            continue
        depth, ordered = 0, False
        for inner in tokens[index + 1 :]:
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(inner.token_type, 0)
            ordered = ordered or (depth == 1 and inner.token_type is TokenType.ORDER_BY)
            if depth == 0:
                break
        if not ordered:
            yield Problem(
                where.at(token.start),
                UNORDERED,
                "GROUP_CONCAT() without ORDER BY lists its values in whatever order the server reads the rows: "
                "MySQL, MariaDB and the embedded demo each give their own, and a changed plan reorders them",
                "write the order inside the call: GROUP_CONCAT(x ORDER BY x SEPARATOR ',')",
                kpi.name,
            )


def _timestamp_diff(node: exp.TimestampDiff) -> exp.Expr:
    unit = node.text("unit").upper()
    if unit in _PER_MONTHS:
        months = _call("mysql_months_between", _timestamp(node.expression), _timestamp(node.this))
        if _PER_MONTHS[unit] == 1:
            return months
        whole = _call("trunc", exp.Div(this=months, expression=exp.Literal.number(_PER_MONTHS[unit])))
        return exp.cast(whole, exp.DType.BIGINT)
    if unit in _MICROSECONDS:
        later, earlier = _call("epoch_us", _timestamp(node.this)), _call("epoch_us", _timestamp(node.expression))
        elapsed = exp.Paren(this=exp.Sub(this=later, expression=earlier))
        whole = _call("trunc", exp.Div(this=elapsed, expression=exp.Literal.number(_MICROSECONDS[unit])))
        return exp.cast(whole, exp.DType.BIGINT)
    return node


def _date_format(node: exp.TimeToStr) -> exp.Expr:
    """DATE_FORMAT whose pattern holds a specifier strftime lacks: the pattern cut at those specifiers, the
    pieces strftime knows formatted by it, the others by the macros, joined with ``||`` (NULL stays NULL)."""
    pattern = node.args.get("format")
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return node
    mysql = format_time(pattern.name, MySQL.INVERSE_TIME_MAPPING, MySQL.INVERSE_TIME_TRIE) or pattern.name
    if not any(spec in mysql for spec in _SPECIFIERS):
        return node
    moment = _timestamp(node.this)
    shown = moment.sql("duckdb")
    pieces: list[exp.Expr] = []
    text = ""
    index = 0
    while index < len(mysql):
        spec = mysql[index : index + 2]
        if spec in _SPECIFIERS:
            if text:
                pieces.append(_strftime(moment, text))
                text = ""
            pieces.append(exp.Paren(this=sqlglot.parse_one(_SPECIFIERS[spec].format(d=shown), read="duckdb")))
            index += 2
        elif mysql[index] == "%" and index + 1 < len(mysql):
            text += spec
            index += 2
        else:
            text += mysql[index]
            index += 1
    if text:
        pieces.append(_strftime(moment, text))
    joined = pieces[0]
    for piece in pieces[1:]:
        joined = exp.DPipe(this=joined, expression=piece)
    return exp.Paren(this=joined)


def _strftime(moment: exp.Expr, mysql_pattern: str) -> exp.Expr:
    """A MySQL pattern without the special specifiers, as sqlglot's own DATE_FORMAT transpile writes it."""
    parsed = sqlglot.parse_one(f"DATE_FORMAT(x, {exp.Literal.string(mysql_pattern).sql('mysql')})", read="mysql")
    assert isinstance(parsed, exp.TimeToStr)
    return exp.TimeToStr(this=moment, format=parsed.args["format"])


def _timestamp(node: exp.Expr) -> exp.Expr:
    inner = node.this if isinstance(node, exp.TsOrDsToTimestamp) else node
    return exp.cast(inner, exp.DType.TIMESTAMP)
