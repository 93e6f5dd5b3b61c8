"""``kpi check`` against a source's schema: names that do not exist, declared types the source's types do not
allow, and personal data on its way to the warehouse — all without running the query.

* Names: :mod:`pipeline.core.references` resolves every table and column, with positions and "did you mean".
* Types: sqlglot's optimizer (``qualify`` + ``annotate_types`` with the snapshot as a ``MappingSchema``) infers
  each result column's type; it is judged by the exporter's own rule (:func:`pipeline.core.typeplan.refusal`),
  the one ``kpi preview`` applies to a real result. Only inferences MySQL agrees with are judged: an expression
  with AVG, a division, IF/CASE or a function sqlglot does not know is left to ``kpi preview`` (MySQL widens
  those to DECIMAL or DOUBLE by rules of its own), so the check never refuses a KPI that would export.
* Personal data: a column that the clone module's masking rules mask (anything but ``keep``, or a truncated
  table) is personal; a KPI that reads one gets a warning, since its values may reach BigQuery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from pipeline.core.positions import SqlPositions
from pipeline.core.references import Reads, resolve
from pipeline.core.schema import SourceSchema
from pipeline.core.spec import Kpi
from pipeline.core.typeplan import SourceColumn, SourceKind, refusal
from pipeline.errors import Problem

__all__ = ["SchemaFindings", "check_against", "source_column_of"]

_T = exp.DType
_KINDS: dict[exp.DType, SourceKind] = {
    **dict.fromkeys(
        [_T.TINYINT, _T.SMALLINT, _T.MEDIUMINT, _T.INT, _T.BIGINT, _T.UTINYINT, _T.USMALLINT, _T.UMEDIUMINT, _T.UINT],
        SourceKind.INTEGER,
    ),
    _T.UBIGINT: SourceKind.UNSIGNED_BIGINT,
    _T.DECIMAL: SourceKind.DECIMAL,
    **dict.fromkeys([_T.FLOAT, _T.DOUBLE], SourceKind.FLOAT),
    _T.BOOLEAN: SourceKind.BOOL,
    _T.DATE: SourceKind.DATE,
    **dict.fromkeys([_T.DATETIME, _T.TIMESTAMP, _T.TIMESTAMPNTZ], SourceKind.DATETIME),
    **dict.fromkeys([_T.TIMESTAMPTZ, _T.TIMESTAMPLTZ], SourceKind.TIMESTAMP),
    _T.TIME: SourceKind.TIME,
    **dict.fromkeys(
        [_T.CHAR, _T.NCHAR, _T.VARCHAR, _T.NVARCHAR, _T.TEXT, _T.TINYTEXT, _T.MEDIUMTEXT, _T.LONGTEXT, _T.ENUM, _T.SET],
        SourceKind.TEXT,
    ),
    _T.JSON: SourceKind.JSON,
    **dict.fromkeys([_T.BINARY, _T.VARBINARY, _T.BLOB, _T.TINYBLOB, _T.MEDIUMBLOB, _T.LONGBLOB], SourceKind.BINARY),
    _T.BIT: SourceKind.BIT,
    _T.NULL: SourceKind.NULL,
}
# Where sqlglot's inference and MySQL agree on the kind of a result, and only there is a declaration judged.
# sqlglot says DOUBLE for ROUND(decimal), AVG, `/` and 1.5 (MySQL: DECIMAL), DECIMAL(12,2) for FLOOR(decimal)
# (MySQL: no decimal places), BOOLEAN for TRUE (MySQL: an integer), and IF/CASE/COALESCE widen by MySQL's own
# rules — all of those are left to `kpi preview`, which sees the real result.
# A fixed result type, whatever the arguments (CAST states it; COUNT counts; DATE() is a DATE…):
_FIXED = (
    exp.Cast, exp.Count, exp.TimeToStr, exp.TsOrDsToDate, exp.Date, exp.LastDay, exp.Year, exp.Month, exp.Day,
    exp.Quarter, exp.Week, exp.DayOfWeek, exp.DayOfMonth, exp.DayOfYear, exp.Extract, exp.CurrentDate,
    exp.Concat, exp.ConcatWs, exp.Upper, exp.Lower,
)  # fmt: skip
# The type of their argument:
_THROUGH = (exp.Paren, exp.Sum, exp.Min, exp.Max, exp.Distinct)


@dataclass
class SchemaFindings:
    """What checking one KPI against its source's schema found: problems (the check fails), warnings (it does
    not) and what the query reads (for ``kpi impact`` and the lineage)."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    reads: Reads = field(default_factory=Reads)


def check_against(
    kpi: Kpi, schema: SourceSchema, personal: Mapping[str, Iterable[str]] | None = None
) -> SchemaFindings:
    """Check ``kpi`` against ``schema``; ``personal`` maps table → the columns the masking rules mask."""
    reads = resolve(kpi, schema)
    ordered = sorted(reads.problems, key=lambda p: (p.location.line, p.location.col))
    findings = SchemaFindings(problems=ordered, reads=reads)
    if not reads.problems:
        findings.problems.extend(_types(kpi, schema))
    if personal:
        findings.warnings.extend(_personal(kpi, reads, personal))
    return findings


def _types(kpi: Kpi, schema: SourceSchema) -> list[Problem]:
    at = SqlPositions(kpi.path, kpi.query.sql, kpi.sql_line).at
    inferred = inferred_columns(kpi, schema)
    declared = {c.name: c for c in kpi.columns}
    offsets = {c.name: c.offset for c in kpi.query.columns}
    problems = []
    for name, source in inferred.items():
        column = declared.get(name)
        if column is None:
            continue
        reason = refusal(source, column.type)
        if reason:
            problems.append(
                Problem(
                    at(offsets.get(name, 0)),
                    "column-type",
                    f"column '{name}' is declared {column.type.value}, but the source's column types make it "
                    f"{source.label}, which {reason.split('; ')[0].removeprefix(source.label + ' ')}",
                    f"{reason.split('; ')[-1]} in the header (`{name}: {{type: …}}`), or CAST in the SELECT "
                    f"(types from {schema.origin})",
                    kpi.name,
                )
            )
    return problems


def inferred_columns(kpi: Kpi, schema: SourceSchema) -> dict[str, SourceColumn]:
    """Each result column's type as the source's column types imply it, for the columns it can be told of."""
    try:
        tree = qualify(
            kpi.query.tree.copy(),
            schema=schema.mapping(),
            dialect="mysql",
            validate_qualify_columns=False,
            identify=False,
        )
        annotated = annotate_types(tree, schema=schema.mapping(), dialect="mysql")
    except (SqlglotError, RecursionError, ValueError, KeyError):
        return {}
    found: dict[str, SourceColumn] = {}
    outer = annotated
    while isinstance(outer, exp.SetOperation | exp.Subquery):
        outer = outer.this
    if not isinstance(outer, exp.Select) or isinstance(annotated, exp.SetOperation):
        return {}  # a UNION's column types are its branches' widest: left to the preview
    for select in outer.expressions:
        name = select.alias_or_name
        if not _certain(select.this if isinstance(select, exp.Alias) else select):
            continue
        column = source_column_of(name, select.type)
        if column is not None:
            found[name] = column
    return found


def _certain(node: exp.Expr) -> bool:
    """Whether sqlglot's type of ``node`` is the kind MySQL gives it."""
    if isinstance(node, (*_FIXED, exp.Column, exp.Null)):
        return True
    if isinstance(node, exp.Literal):
        return node.is_string or node.is_int
    if isinstance(node, _THROUGH):
        return all(_certain(child) for child in node.iter_expressions())
    return False


def source_column_of(name: str, data_type: exp.DataType | None) -> SourceColumn | None:
    """An inferred sqlglot type as the exporter's :class:`SourceColumn` (None when unknown)."""
    if data_type is None:
        return None
    kind = _KINDS.get(data_type.this)
    if kind is None:
        return None
    label = data_type.sql("mysql").upper()
    if data_type.this is _T.TINYINT and [e.name for e in data_type.expressions] == ["1"]:
        return SourceColumn(name, SourceKind.TINYINT1, "TINYINT(1)")
    if kind is SourceKind.DECIMAL:
        params = [int(e.name) for e in data_type.expressions if e.name.isdigit()]
        precision, scale = ([*params, 10, 0])[:2] if params else (10, 0)
        return SourceColumn(name, kind, f"DECIMAL({precision},{scale})", precision, scale)
    return SourceColumn(name, kind, label)


def _personal(kpi: Kpi, reads: Reads, personal: Mapping[str, Iterable[str]]) -> list[Problem]:
    masked = {(table, column.lower()) for table, columns in personal.items() for column in columns}
    found = sorted((reads.offsets.get((t, c), 0), f"{t}.{c}") for t, c in reads.columns if (t, c.lower()) in masked)
    if not found:
        return []
    hits = sorted(name for _, name in found)
    at = SqlPositions(kpi.path, kpi.query.sql, kpi.sql_line).at
    return [
        Problem(
            at(found[0][0]),
            "personal-data",
            f"reads personal data: {', '.join(hits)} (masked by the clone's rules in masking/)",
            "make sure no personal value reaches the warehouse: aggregate it away (COUNT(DISTINCT …)), hash it, "
            "or drop the column",
            kpi.name,
        )
    ]
