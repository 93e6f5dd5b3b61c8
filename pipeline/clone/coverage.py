"""The coverage gate, fail closed: every column of every table needs a rule (``keep`` counts), and every rule
must fit its column. Pure: rules × schema → problems, plus a ready-to-paste stub for what no rule covers.

A column added in production last week has no rule yet: the clone stops before anything is masked or shared,
and the error shows the lines to paste into the rule file — a guess from the column's name and type, marked
for review, never a silent ``keep``. Rules for tables or columns that no longer exist are problems too (a
misspelt table name would otherwise leave the real one uncovered).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.clone.model import DEFAULT_PHONE_FORMAT, ColumnRule, RuleFile, Strategy, TableRule
from pipeline.clone.schema import TRANSACTIONAL_ENGINES, Column, Schema, Table
from pipeline.clone.sql import output_length
from pipeline.clone.stubs import Stub, apply_stubs
from pipeline.core.validator import suggest
from pipeline.errors import Location, Problem

__all__ = [
    "Coverage",
    "Stub",
    "apply_stubs",
    "check_coverage",
    "check_databases",
    "in_scope",
    "new_rule_file",
    "suggest_rule",
]

_HASHING = (Strategy.HASH, Strategy.EMAIL, Strategy.LOGIN, Strategy.PHONE)
# Guesses for a stub, by column name; the first that matches and fits the column wins.
_NAME_GUESSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"e_?mail"), "email"),
    (re.compile(r"phone|(^|_)tel(ephone)?($|_)|mobile|fax"), "phone"),
    (re.compile(r"login|user_?name|screen_?name|nick_?name|handle|account_?name"), "login"),
)


@dataclass(frozen=True)
class Coverage:
    """The gate's verdict: every problem (uncovered columns first), and the stubs that cover those columns."""

    problems: tuple[Problem, ...]
    stubs: tuple[Stub, ...]
    uncovered: tuple[Column, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_coverage(rules: RuleFile, schema: Schema) -> Coverage:
    """Every column of ``schema`` against ``rules``: uncovered columns, stale rules, rules that do not fit."""
    problems: list[Problem] = []
    uncovered: list[Column] = []
    stubs: list[Stub] = []
    file_start = Location(rules.path, 1, 1)
    for name, stale in rules.tables.items():
        if name not in schema.tables:
            problems.append(
                Problem(
                    stale.location,
                    "unknown-table",
                    f"table '{name}' is not in database {schema.database}{suggest(name, schema.tables)}",
                    "remove the rules of a dropped table, or fix the name",
                )
            )
    for table in schema.tables.values():
        table_rule: TableRule | None = rules.tables.get(table.name)
        if table_rule is None:
            missing = list(table.columns)
        elif table_rule.truncate:
            continue
        else:
            missing = [c for c in table.columns if c.name not in table_rule.columns]
            problems.extend(_table_problems(table_rule, table))
        if missing:
            where = table_rule.location if table_rule else Location(rules.path, rules.tables_line, 1)
            for column in missing:
                problems.append(
                    Problem(
                        where if where.line else file_start,
                        "unclassified-column",
                        f"{table.name}.{column.name} ({column.describe()}) has no masking rule",
                        "every column needs a rule (`keep` counts): paste the stub and review each guess",
                    )
                )
            uncovered.extend(missing)
            stubs.append(_stub(rules, table, table_rule, missing))
    problems.sort(key=lambda p: (p.rule != "unclassified-column", p.location))
    problems.extend(_subset_problems(rules, schema))
    return Coverage(tuple(problems), tuple(stubs), tuple(uncovered))


def check_databases(
    databases: Iterable[str],
    rules: Mapping[str, RuleFile],
    folder: str = "masking",
    scope: Iterable[str] = (),
) -> list[Problem]:
    """Every database of the restored cluster needs a rule file; a rule file for no database is stale.

    With a ``scope`` (the database of a ``--url``, or ``databases`` of ``[clone]``) only those databases count:
    one missing from the server is a problem, the server's others and the folder's other files are not looked at.
    """
    present, wanted = list(databases), list(scope)
    if wanted:
        problems = [
            Problem(
                Location(str(Path(folder) / f"{name}.yaml")),
                "missing-database",
                f"database {name} is not on the server{suggest(name, present)}",
                "check the database name in the URL (or `databases` in [clone]), and that this login may see it",
            )
            for name in wanted
            if name not in present
        ]
        present = [name for name in present if name in wanted]
        rules = {name: file for name, file in rules.items() if name in wanted}
    else:
        problems = []
    problems += [
        Problem(
            Location(str(Path(folder) / f"{name}.yaml")),
            "unclassified-database",
            f"database {name} has no masking rule file",
            f"create {Path(folder) / f'{name}.yaml'}: `kpi clone plan` prints one with a guess for every column",
        )
        for name in present
        if name not in rules
    ]
    problems.extend(
        Problem(
            Location(file.path, 1, 1),
            "unknown-database",
            f"database {name} is not on the cluster{suggest(name, present)}",
            "remove the file of a dropped database, or fix its `database:` key",
        )
        for name, file in rules.items()
        if name not in present and not wanted
    )
    return problems


def in_scope(databases: Iterable[str], scope: Iterable[str] = ()) -> list[str]:
    """The databases a run covers: every one of the server's, or those of the scope that are there."""
    wanted = set(scope)
    return [name for name in databases if not wanted or name in wanted]


def new_rule_file(schema: Schema, folder: str = "masking") -> str:
    """A whole rule file for a database that has none: every column guessed, every guess marked for review."""
    empty = RuleFile(str(Path(folder) / f"{schema.database}.yaml"), schema.database, {}, tables_line=1)
    stubs = check_coverage(empty, schema).stubs
    header = f"# Masking rules for database {schema.database}: review every guess before merging.\ntables:\n"
    return header + "".join(stub.text for stub in stubs)


def _table_problems(rule: TableRule, table: Table) -> Iterable[Problem]:
    masked = {name: r for name, r in rule.columns.items() if r.strategy is not Strategy.KEEP}
    for name, column_rule in rule.columns.items():
        column = table.column(name)
        if column is None:
            yield Problem(
                column_rule.location,
                "unknown-column",
                f"column '{name}' is not in table {table.name}{suggest(name, [c.name for c in table.columns])}",
                "remove the rule of a dropped column, or fix the name",
            )
            continue
        for rule_id, message, hint in fit(column_rule, column, table):
            yield Problem(column_rule.location, rule_id, message, hint)
    writes = bool(masked) or bool(rule.delete_where)
    if writes and table.engine.lower() not in TRANSACTIONAL_ENGINES:
        yield Problem(
            rule.location,
            "not-transactional",
            f"table {table.name} uses {table.engine}: a chunk and its progress cannot commit together",
            "convert it to InnoDB on the temporary cluster first, or truncate it",
        )
    if writes and table.triggers and not rule.allow_triggers:
        yield Problem(
            rule.location,
            "trigger",
            f"masking {table.name} would fire {', '.join(table.triggers)}, which sees the unmasked values",
            "drop the trigger on the temporary cluster before masking, or set `allow_triggers: true` "
            "once you have checked that it copies nothing personal",
        )


def fit(rule: ColumnRule, column: Column, table: Table) -> list[tuple[str, str, str]]:
    """Why a rule cannot apply to a column: (rule id, message, hint) for each reason."""
    where = f"{table.name}.{column.name}"
    strategy = rule.strategy
    found: list[tuple[str, str, str]] = []
    if strategy is Strategy.KEEP:
        return found
    if column.name in table.primary_key:
        found.append(
            (
                "primary-key-masked",
                f"{where} is part of the primary key: masking walks the table by it and cannot change it",
                "keep it (an id says nothing by itself), or truncate the table",
            )
        )
    if column.generated:
        found.append(
            (
                "generated-column",
                f"{where} is a generated column: it follows the columns it is computed from",
                "write `keep` and mask the columns it is computed from",
            )
        )
    if strategy is Strategy.NULL and not column.nullable:
        found.append(("null-not-allowed", f"{where} is NOT NULL", "use fixed, hash or a generator instead of null"))
    if strategy in _HASHING and not (column.text or column.binary):
        found.append(
            (
                "wrong-column-type",
                f"`{strategy.value}` writes text, but {where} is {column.column_type}",
                "use keep, fixed, null or sql for a column that is not text",
            )
        )
    elif strategy in _HASHING and column.json and strategy is not Strategy.HASH:
        found.append(
            (
                "wrong-column-type",
                f"`{strategy.value}` would replace the whole JSON document {where}",
                f"write `{{json: {{$.key: {strategy.value}}}}}` for the path that holds it, or `hash`",
            )
        )
    if strategy is Strategy.FAKE:
        if not column.text or column.json:
            found.append(
                ("wrong-column-type", f"`fake` writes text, but {where} is {column.describe()}", "use hash or keep")
            )
        if not table.primary_key:
            found.append(
                (
                    "fake-needs-primary-key",
                    f"`fake` writes {where} row by row, by primary key, and {table.name} has none",
                    "use hash, email, login or phone (computed by the server), or add a primary key",
                )
            )
        room = (rule.length or 0) + 2 if rule.unique or _in_unique_key(column, table) else 1
        if column.max_length is not None and column.max_length < room:
            found.append(("too-long", f"{where} holds {column.max_length} characters: no room for a fake", "use hash"))
    if strategy is Strategy.JSON and not column.json:
        found.append(("not-json", f"{where} is {column.column_type}, not JSON", "use a rule for the whole column"))
    if strategy is Strategy.FIXED:
        value = rule.value
        if column.numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
            found.append(
                ("wrong-value", f"{where} is {column.column_type}: fixed {value!r} is not a number", "write a number")
            )
        elif not column.json and isinstance(value, dict | list):
            found.append(
                ("wrong-value", f"{where} is not JSON: a fixed mapping or list cannot go in", "write a text or number")
            )
    length = output_length(rule, column)
    if length is not None and column.max_length is not None and not column.json and length > column.max_length:
        found.append(
            (
                "too-long",
                f"`{rule.describe()}` writes {length} characters; {where} holds {column.max_length}",
                "a shorter `length` or `format`, or another strategy; nothing is ever truncated silently",
            )
        )
    return found


def _in_unique_key(column: Column, table: Table) -> bool:
    return any(column.name in key for key in (*table.unique_keys, table.primary_key))


def _subset_problems(rules: RuleFile, schema: Schema) -> Iterable[Problem]:
    """A subset needs a primary key to draw its fraction by; a reference must name columns that exist."""
    for rule in rules.tables.values():
        table = schema.tables.get(rule.name)
        if table is None:
            continue
        if rule.subset is not None and rule.subset.fraction < 1 and not table.primary_key:
            yield Problem(
                rule.subset.location,
                "subset-needs-primary-key",
                f"table {table.name} has no primary key: a fraction of it cannot be drawn",
                "use `where:` alone, or subset a table that has one",
            )
        if rule.subset is not None and rule.truncate:
            yield Problem(
                rule.subset.location, "truncate-with-rules", f"table {table.name} is truncated", "drop `subset`"
            )
        for reference in rule.references:
            target = schema.tables.get(reference.table)
            if table.column(reference.column) is None:
                yield Problem(
                    reference.location,
                    "unknown-column",
                    f"references: column '{reference.column}' is not in table {table.name}"
                    f"{suggest(reference.column, [c.name for c in table.columns])}",
                    "name a column of this table",
                )
            elif target is None or target.column(reference.target) is None:
                yield Problem(
                    reference.location,
                    "unknown-reference",
                    f"references: {reference.table}.{reference.target} is not a column of database {schema.database}",
                    "name the table and column the values come from, e.g. users.email",
                )


def suggest_rule(column: Column, table: Table) -> str:
    """A first guess at a column's rule, for a stub: by name, then by type; never `keep` for free text."""
    if column.name in table.primary_key or column.generated:
        return "keep"
    if column.json:
        return "hash"
    if not (column.text or column.binary):
        return "keep"
    name = column.name.lower()
    for pattern, strategy in _NAME_GUESSES:
        candidate = ColumnRule(Strategy(strategy), Location(""), length=16, format=DEFAULT_PHONE_FORMAT)
        if pattern.search(name) and not fit(candidate, column, table):
            return strategy
    return "hash"


def _stub(rules: RuleFile, table: Table, rule: TableRule | None, missing: list[Column]) -> Stub:
    if rule is not None and rule.columns_line:
        indent, after, header = rule.columns_indent, rule.columns_line, []
    else:
        base = rules.table_indent
        step = base or 2
        indent = base + 2 * step
        if rule is not None:
            after = rule.location.line
            header = [" " * (base + step) + "columns:"]
        else:
            after = rules.tables_line
            header = [" " * base + f"{table.name}:", " " * (base + step) + "columns:"]
    entries = [(f"{c.name}: {suggest_rule(c, table)}", c.describe() + _key_note(c, table)) for c in missing]
    width = max(len(text) for text, _ in entries)
    lines = [*header, *(" " * indent + f"{text.ljust(width)}  # {kind}; suggested — review" for text, kind in entries)]
    return Stub(rules.path, table.name, after, "\n".join(lines) + "\n", tuple(c.name for c in missing))


def _key_note(column: Column, table: Table) -> str:
    if column.name in table.primary_key:
        return ", primary key"
    if any(column.name in key for key in table.unique_keys):
        return ", unique"
    return ""
