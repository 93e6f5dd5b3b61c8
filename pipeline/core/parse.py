"""Build a :class:`~pipeline.core.spec.Kpi` from a file's bytes, reporting every problem, not only the first.

The file is decoded and split (``kpifile``), its header read with positions (``header``) and checked
(``header_rules``), its SQL passed through the gate (``sqlgate``); then the two halves are checked against
each other here. Nothing reads files or the clock: the caller passes the bytes and the path to show.
"""

from __future__ import annotations

from typing import Any

from pipeline.core import header as header_yaml
from pipeline.core import kpifile
from pipeline.core.header import Header
from pipeline.core.header_rules import RESERVED_PARAMS, HeaderChecker
from pipeline.core.intervals import Grain
from pipeline.core.spec import Kpi
from pipeline.core.sqlgate import Query, SqlPositions, gate
from pipeline.core.validator import suggest
from pipeline.errors import Problem


def parse_kpi(path: str, raw: bytes, default_name: str) -> tuple[Kpi | None, list[Problem]]:
    """Check one KPI file; return the KPI when it has no problem, and every problem found."""
    text, problems = kpifile.decode(path, raw)
    if text is None:
        return None, problems
    parts, problems = kpifile.split(path, text)
    if parts is None:
        return None, problems
    header, problems = header_yaml.parse(path, parts.header, parts.header_line)
    query, sql_problems = gate(path, parts.sql, parts.sql_line)
    if header is None:
        return None, problems + sql_problems
    checker = HeaderChecker(header, problems, default_name)
    fields = checker.fields()
    problems.extend(sql_problems)
    # Comparing the header with a query the gate refused would only add noise to the real problem.
    if query is not None and fields is not None and not sql_problems:
        _CrossChecker(header, query, fields, checker.declared, problems, parts.sql, parts.sql_line).run()
    name = str(fields.get("name", "")) if fields else ""
    problems = [_with_kpi(p, name) for p in problems]
    if problems or fields is None or query is None:
        return None, sorted(problems, key=lambda p: (p.location.line, p.location.col))
    name_line = header.key_at(("name",)).line if "name" in header.data else 1
    return Kpi(path=path, query=query, sql_line=parts.sql_line, name_line=name_line, **fields), []


def _with_kpi(problem: Problem, name: str) -> Problem:
    if problem.kpi or not name:
        return problem
    return Problem(problem.location, problem.rule, problem.message, problem.hint, name)


class _CrossChecker:
    """Rules that need both halves of the file: placeholders against params, SELECT list against columns."""

    def __init__(
        self,
        header: Header,
        query: Query,
        fields: dict[str, Any],
        declared: dict[str, list[str]],
        problems: list[Problem],
        sql: str,
        sql_line: int,
    ) -> None:
        self.header, self.query, self.fields, self.problems = header, query, fields, problems
        self.declared = declared
        self.at = SqlPositions(header.path, sql, sql_line).at

    def run(self) -> None:
        self.placeholders()
        self.columns()

    def placeholders(self) -> None:
        grain: Grain = self.fields["grain"]
        params = set(self.declared["params"])
        used = self.query.parameter_names
        first_use: dict[str, int] = {}
        for placeholder in self.query.placeholders:
            first_use.setdefault(placeholder.name, placeholder.start)
        for name, offset in first_use.items():
            if name in RESERVED_PARAMS:
                if grain is Grain.NONE:
                    self.problems.append(
                        Problem(
                            self.at(offset),
                            "snapshot-interval",
                            f":{name} used in a snapshot KPI (grain: none), which has no interval",
                            "choose a grain (day, hour, month) or declare a parameter under params",
                        )
                    )
            elif name not in params:
                self.problems.append(
                    Problem(
                        self.at(offset),
                        "undeclared-param",
                        f"placeholder :{name} is not declared in params{suggest(name, [*params, *RESERVED_PARAMS])}",
                        f"declare it: `params:` then `  {name}: {{type: STRING, default: …}}`",
                    )
                )
        for name in sorted(params - used):
            self.problems.append(
                Problem(
                    self.header.key_at(("params", name)),
                    "unused-param",
                    f"parameter '{name}' is declared but the SQL never uses :{name}",
                    f"use :{name} in the query or remove it from params",
                )
            )
        if grain is not Grain.NONE:
            missing = [f":{n}" for n in ("start", "end") if n not in used]
            if missing:
                self.problems.append(
                    Problem(
                        self.at(0),
                        "missing-interval",
                        f"an incremental KPI (grain: {grain.value}) must filter on :start and :end; "
                        f"missing {' and '.join(missing)}",
                        "add e.g. `WHERE created_at >= :start AND created_at < :end`; "
                        "a query over the whole table is a snapshot (`grain: none`)",
                    )
                )

    def columns(self) -> None:
        declared = self.declared["columns"]
        returned = {c.name: c for c in self.query.columns}
        if not declared:
            return
        for name, column in returned.items():
            if name not in declared:
                self.problems.append(
                    Problem(
                        self.at(column.offset),
                        "undeclared-column",
                        f"result column '{name}' is not declared in columns{suggest(name, declared)}",
                        f"add `{name}: {{type: …, description: …}}` under columns, or rename the alias",
                    )
                )
        for name in declared:
            if name not in returned:
                self.problems.append(
                    Problem(
                        self.header.key_at(("columns", name)),
                        "missing-column",
                        f"column '{name}' is declared but the query does not return it{suggest(name, returned)}",
                        "return it from the SELECT list (with `AS` the same name) or remove it from columns",
                    )
                )
