"""``kpi preview``: a KPI's rows and types before it ships, run as the exporter runs it, writing nothing.

:func:`run_preview` (``kpi preview``, ``pipeline.preview``) runs a KPI for one interval exactly as the exporter
does — the same rendering, the same source session (``START TRANSACTION READ ONLY``, the KPI's ``timeout`` on the
server and in the client), the same SQL, so the same column metadata — and then stops: it keeps the first
``limit`` rows and leaves the result mid-stream. The source then drops its connection instead of draining the
rest, which also stops the query on the server. Nothing is written anywhere: there is no store and no
warehouse writer here; the warehouse is opened read-only (:func:`~pipeline.warehouses.open_warehouse`), only to
show the types its table already has (:meth:`~pipeline.warehouses.base.Warehouse.schema`).

The findings are the exporter's own decisions, never new rules: :func:`~pipeline.core.typeplan.plan_columns`
says whether a declaration can hold the result's type; :class:`~pipeline.core.convert.Conversion` converts the
preview's rows under the header's policies, and its errors (zero dates, values above INT64, TINYINT(1) values
other than 0/1, invalid UTF-8…) carry the row and the header change that fixes them; the
:class:`~pipeline.export.split.Splitter` finds rows outside the partition; :func:`~pipeline.core.drift.schema_drift`
finds declarations the warehouse's table would refuse.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import catalog, settings
from pipeline.core.convert import Conversion
from pipeline.core.drift import DRIFT_HINT, schema_drift
from pipeline.core.intervals import Interval
from pipeline.core.lake import partition_name
from pipeline.core.manifest import SchemaField
from pipeline.core.render import bind_values
from pipeline.core.selection import requested_intervals
from pipeline.core.spec import Kpi, Policy
from pipeline.core.typeplan import ARROW_TYPES, ColumnPlan, SourceColumn, plan_columns
from pipeline.core.types import BqType
from pipeline.errors import ExportError, KpiError, UsageError
from pipeline.sources import Source, open_source
from pipeline.sources.explain import guard_export
from pipeline.warehouses import Warehouse, open_warehouse

DEFAULT_LIMIT = 20
MAX_LIMIT = 10_000  # a preview is for looking at; `kpi export` and `pipeline.read` are for data
WarehouseSchema = list[SchemaField] | None  # None: the warehouse has no table for the KPI yet
NativeType = Callable[[str], str]  # a BigQuery type's name in the warehouse's own catalogue


class Severity(StrEnum):
    STOP = "stop"  # the export (or the load) would stop here: nothing would be committed
    NOTE = "note"  # it would go through, as the header says (values loaded as NULL, a new column)


@dataclass(frozen=True)
class Finding:
    """Something the export or the load would meet, with the header change that answers it."""

    column: str
    severity: Severity
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"column": self.column, "severity": self.severity.value, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class ColumnReport:
    """One column on its way: the source's type, the Arrow type of the lake file, the warehouse's type, the
    header's declaration — empty where it has none (undeclared, not returned, not in the warehouse)."""

    name: str
    source_type: str
    arrow_type: str
    warehouse_type: str
    declared: str
    findings: tuple[Finding, ...] = ()

    @property
    def mark(self) -> str:
        """``✗`` where the export or load would stop, ``!`` where a quirk is met and handled, else empty."""
        if any(f.severity is Severity.STOP for f in self.findings):
            return "✗"
        return "!" if self.findings else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source_type": self.source_type or None,
            "arrow_type": self.arrow_type or None,
            "warehouse_type": self.warehouse_type or None,
            "declared": self.declared or None,
            "mark": self.mark,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class Preview:
    """What ``kpi preview`` shows. ``rows`` holds the first ``limit`` rows as the warehouse would receive them
    (the declared Arrow types); a column the export could not convert holds the source's own values instead."""

    kpi: str
    partition: str  # `2024-03-01`… or `snapshot`
    timezone: str
    source: str  # URL without password
    dialect: str  # the source's: mysql | duckdb
    warehouse: str
    warehouse_kind: str  # BigQuery | DuckDB
    limit: int
    rows: pa.Table
    more: bool  # the result had more rows than the limit
    seconds: float
    columns: tuple[ColumnReport, ...]
    notes: tuple[str, ...] = ()  # about the preview as a whole (the warehouse table does not exist yet…)

    @property
    def findings(self) -> list[Finding]:
        return [finding for column in self.columns for finding in column.findings]

    @property
    def ok(self) -> bool:
        """True when neither the export nor the load would stop on what the preview saw."""
        return not any(f.severity is Severity.STOP for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: decimals as exact text, dates and times in ISO 8601, bytes as hex."""
        names = self.rows.column_names
        return {
            "kpi": self.kpi,
            "partition": self.partition,
            "timezone": self.timezone,
            "source": self.source,
            "warehouse": self.warehouse,
            "limit": self.limit,
            "rows_shown": self.rows.num_rows,
            "more_rows": self.more,
            "seconds": self.seconds,
            "ok": self.ok,
            "written": False,
            "columns": [c.to_dict() for c in self.columns],
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
            "rows": [dict(zip(names, map(jsonable, row), strict=True)) for row in _row_tuples(self.rows)],
        }


# -- preview ----------------------------------------------------------------------------------------------------


def run_preview(
    name: str,
    *,
    queries: Path,
    environment: settings.Environment,
    date: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    params: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Preview:
    """Preview the KPI ``name`` for the partition containing ``date`` (default: the newest complete one at
    ``now``, the wall clock unless given) on the source its header names in ``environment``, against that
    environment's warehouse."""
    kpi = catalog.load_one((queries,), name)
    intervals = requested_intervals(kpi, now=now or datetime.now(kpi.zone), date=date)
    source = open_source(
        environment.source(kpi.source, kpi=kpi.name).url, explain_max_rows=environment.explain_max_rows
    )
    return preview_kpi(
        kpi,
        intervals[0] if intervals else None,
        source=source,
        limit=limit,
        params=params,
        warehouse=environment.warehouse,
    )


def preview_kpi(
    kpi: Kpi,
    interval: Interval | None,
    *,
    source: Source,
    limit: int = DEFAULT_LIMIT,
    params: Mapping[str, str] | None = None,
    warehouse: str | None = None,
) -> Preview:
    """Run ``kpi`` for ``interval`` (None for a snapshot) on ``source``, keep at most ``limit`` rows, write nothing.

    Source errors (connection, timeout, SQL) raise as they do for the exporter; what the export or the load would
    refuse in the result is reported in the preview's findings instead.
    """
    if not 0 <= limit <= MAX_LIMIT:
        raise UsageError(f"--limit {limit} is outside 0…{MAX_LIMIT:,}", hint="a preview shows a few rows")
    started = time.monotonic()
    values = bind_values(kpi, interval, params)
    rendered = source.render(kpi.query, values)
    _first_batch_early(source, limit + 1)
    guard_export(kpi, source, rendered, [interval])  # EXPLAIN first, as an export does: a preview reads as much
    fetched: _Fetched | None = None
    try:
        with source.stream(rendered, timeout=kpi.timeout, zone=kpi.source_zone, where=kpi.name) as result:
            fetched = _fetch(result.columns, result.batches, result.text, limit)
            if fetched.more:
                raise _StopReading  # leave mid-result: the source drops the connection instead of draining it
    except _StopReading:
        pass
    assert fetched is not None
    seconds = round(time.monotonic() - started, 3)
    kind, native, current, notes = _inspect_warehouse(warehouse, kpi.name)
    columns, table = _report(kpi, interval, fetched, native, current)
    return Preview(
        kpi=kpi.name,
        partition=partition_name(interval),
        timezone=kpi.timezone,
        source=source.url,
        dialect=source.dialect,
        warehouse=warehouse or "",
        warehouse_kind=kind,
        limit=limit,
        rows=table,
        more=fetched.more,
        seconds=seconds,
        columns=columns,
        notes=notes,
    )


class _StopReading(Exception):
    """Raised inside the source's block to leave it mid-result (a normal exit would end the transaction first,
    which for MySQL means draining every remaining row)."""


@dataclass
class _Fetched:
    columns: list[SourceColumn]
    arrays: list[pa.Array]  # one per column, at most `limit` rows; text-protocol bytes when `text`
    text: bool
    more: bool


def _first_batch_early(source: Source, rows: int) -> None:
    """The sources cut batches of 16,384 rows; a preview wants its few rows as soon as they have arrived."""
    if isinstance(getattr(source, "batch_rows", None), int):
        source.batch_rows = max(rows, 1)  # type: ignore[attr-defined]


def _fetch(columns: list[SourceColumn], batches: Iterator[list[pa.Array]], text: bool, limit: int) -> _Fetched:
    """The first ``limit`` rows, and whether there were more (one row beyond the limit is read to know)."""
    pieces: list[list[pa.Array]] = [[] for _ in columns]
    rows = 0
    for arrays in batches:
        for index, array in enumerate(arrays):
            pieces[index].append(array)
        rows += len(arrays[0]) if arrays else 0
        if rows > limit:
            break
    kept = [
        (pa.concat_arrays(chunks) if chunks else pa.array([], pa.binary() if text else pa.null())).slice(0, limit)
        for chunks in pieces
    ]
    return _Fetched(columns, kept, text, rows > limit)


def _report(
    kpi: Kpi, interval: Interval | None, fetched: _Fetched, native: NativeType, current: WarehouseSchema
) -> tuple[tuple[ColumnReport, ...], pa.Table]:
    plans, planning = _plans(kpi, fetched.columns)
    declared = {c.name: c for c in kpi.columns}
    existing = {f.name: f.type for f in current or []}
    findings: dict[str, list[Finding]] = {name: list(found) for name, found in planning.items()}
    names: list[str] = []
    arrays: list[pa.Array] = []
    for column, array in zip(fetched.columns, fetched.arrays, strict=True):
        plan = plans.get(column.name) if column.name not in names else None
        names.append(column.name)
        if plan is None:
            arrays.append(_raw(array, fetched.text))
            continue
        converted, found = _convert(kpi, plan, array, fetched.text)
        findings.setdefault(column.name, []).extend(found)
        arrays.append(_raw(array, fetched.text) if converted is None else converted)
        if converted is not None and interval is not None and column.name == kpi.time_column:
            findings[column.name].extend(_outside(kpi, interval, plan, converted))
    for name, found in _drift(kpi, current).items():
        findings.setdefault(name, []).extend(found)
    sources: dict[str, SourceColumn] = {}
    for column in fetched.columns:
        sources.setdefault(column.name, column)
    order = list(dict.fromkeys([*sources, *declared, *existing]))
    reports = []
    for name in order:
        header = declared.get(name)
        bq_type = existing.get(name) or (header.type.value if header else "")
        reports.append(
            ColumnReport(
                name=name,
                source_type=sources[name].label if name in sources else "",
                arrow_type=str(ARROW_TYPES[header.type]) if header else "",
                warehouse_type=native(bq_type) if bq_type else "",
                declared=header.type.value if header else "",
                findings=tuple(findings.get(name, ())),
            )
        )
    return tuple(reports), pa.Table.from_arrays(arrays, names=names)


def _plans(kpi: Kpi, columns: list[SourceColumn]) -> tuple[dict[str, ColumnPlan], dict[str, list[Finding]]]:
    """Each result column's plan, by typeplan's own rules: the exporter refuses the whole result at the first
    mismatch; the preview asks column by column, so that it can show every other column's values and types."""
    try:
        return {p.name: p for p in plan_columns(kpi, columns)}, {}
    except ExportError:
        pass
    plans: dict[str, ColumnPlan] = {}
    findings: dict[str, list[Finding]] = {}
    names = list(dict.fromkeys([*(c.name for c in columns), *(c.name for c in kpi.columns)]))
    for name in names:
        alone = replace(kpi, columns=tuple(c for c in kpi.columns if c.name == name))
        try:
            (plan,) = plan_columns(alone, [c for c in columns if c.name == name])
            plans[name] = plan
        except ExportError as error:
            for problem in error.message.split("\n  - ")[1:]:
                message, fix = _split_fix(name, problem)
                findings.setdefault(name, []).append(Finding(name, Severity.STOP, message, fix))
    return plans, findings


def _split_fix(name: str, problem: str) -> tuple[str, str]:
    """typeplan ends each problem with what to declare ("…; declare NUMERIC or BIGNUMERIC"): that is the fix,
    shown with the header line it means."""
    problem = problem.removeprefix(f"column '{name}': ")
    at = problem.rfind("declare ")
    if at < 0:
        return problem, "change the declaration in the header, or CAST in the SELECT"
    message, fix = problem[:at].rstrip(" ;—-"), problem[at:]
    first = fix.removeprefix("declare ").split(" ", 1)[0]
    if first in BqType.__members__:
        fix += f" → `{name}: {{type: {first}}}`"
    return message, fix


def _convert(kpi: Kpi, plan: ColumnPlan, array: pa.Array, text: bool) -> tuple[pa.Array | None, list[Finding]]:
    """The column as the exporter converts it. Under an `error` policy the exporter stops at the first offending
    row; the preview says so with the exporter's message and hint, and counts how many of its rows would
    have been replaced under `null` (converting again with both policies `null`)."""
    if not len(array):
        return pa.array([], plan.arrow_type), []
    strict = Conversion(kpi.name, [plan], kpi.source_zone)
    try:
        converted = (strict.from_text if text else strict.from_arrow)(plan, array, 1)
    except ExportError as error:
        relaxed_plan = replace(plan, zero_dates=Policy.NULL, invalid_utf8=Policy.NULL)
        relaxed = Conversion(kpi.name, [relaxed_plan], kpi.source_zone)
        with suppress(ExportError):
            (relaxed.from_text if text else relaxed.from_arrow)(relaxed_plan, array, 1)
        message = error.message.removeprefix(f"column '{plan.name}', ").removeprefix(f"column '{plan.name}' ")
        message = re.sub(r"^\((.*?)\), ", r"\1, ", message)  # "(BIGINT UNSIGNED → INT64), row 3: …"
        counted = ", ".join(f"{what.split(': ', 1)[1]} in {count}" for what, count in relaxed.replaced.items())
        fix = error.hint
        if counted:  # the policy stopped it (it is applied before any cast): the header line that says `null`
            message += f" ({counted} of the {len(array)} rows shown)"
            fix += f" → `{plan.name}: {{type: {plan.type.value}, {_policy_key(next(iter(relaxed.replaced)))}: null}}`"
        return None, [Finding(plan.name, Severity.STOP, message, fix)]
    notes = [
        Finding(
            plan.name,
            Severity.NOTE,
            f"{what.split(': ', 1)[1]} in {count} of the {len(array)} rows shown, loaded as NULL",
            f"as the header says (`{_policy_key(what)}: null`); the manifest counts them",
        )
        for what, count in strict.replaced.items()
    ]
    return converted, notes


def _policy_key(replaced: str) -> str:
    """The header key of a replacement counted by Conversion ("d: zero dates" → ``zero_dates``)."""
    return "zero_dates" if replaced.endswith("zero dates") else "invalid_utf8"


def _outside(kpi: Kpi, interval: Interval, plan: ColumnPlan, values: pa.Array) -> list[Finding]:
    """Rows whose time column lies outside the partition: the exporter's router refuses them, naming the row."""
    from pipeline.export.split import Splitter

    batch = pa.RecordBatch.from_arrays([values], names=[plan.name])
    try:
        for _ in Splitter(kpi, [interval], plan.type).split(batch, 1):
            pass
    except ExportError as error:
        return [Finding(plan.name, Severity.STOP, error.message, error.hint)]
    return []


def _drift(kpi: Kpi, current: WarehouseSchema) -> dict[str, list[Finding]]:
    """What the warehouse's existing table would say to the header's columns, by the loader's drift rules."""
    if current is None:
        return {}
    declared = {c.name: SchemaField(c.name, c.type.value) for c in kpi.columns}
    table = {f.name: f for f in current}
    found: dict[str, list[Finding]] = {}
    for name in dict.fromkeys([*table, *declared]):
        drift = schema_drift([table[name]] if name in table else [], [declared[name]] if name in declared else [])
        for problem in drift.problems():
            found.setdefault(name, []).append(
                Finding(name, Severity.STOP, f"the load would stop: {problem}", DRIFT_HINT)
            )
        if drift.added:
            found.setdefault(name, []).append(
                Finding(name, Severity.NOTE, "not in the warehouse's table yet: the next load adds the column")
            )
    return found


def _raw(array: pa.Array, text: bool) -> pa.Array:
    """A column shown as the source returned it: MySQL's text as text, invalid UTF-8 bytes escaped (``\\xc3``)."""
    if not text:
        return array
    try:
        return array.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = [None if v is None else v.decode("utf-8", errors="backslashreplace") for v in array.to_pylist()]
        return pa.array(values, pa.string())


# -- the warehouse, read only --------------------------------------------------------------------------------------


def _inspect_warehouse(url: str | None, kpi: str) -> tuple[str, NativeType, WarehouseSchema, tuple[str, ...]]:
    """The warehouse's kind, its names of types, and the table's columns, for the preview's warehouse types and
    drift; a preview never fails on it. The warehouse is opened read-only and not waited for (a DuckDB file being
    loaded is a note)."""
    if not url:
        return "", _as_is, None, ()
    warehouse: Warehouse | None = None
    try:
        warehouse = open_warehouse(url, read_only=True, lock_wait=0)
        current = warehouse.schema(kpi)
    except Exception as error:  # no credentials, a locked file, a network problem: the preview still stands
        reason = error.message if isinstance(error, KpiError) else str(error).splitlines()[0]
        note = f"the warehouse was not inspected ({reason}); its types are what a first load would create"
        return (warehouse.kind, warehouse.native_type, None, (note,)) if warehouse else ("", _as_is, None, (note,))
    finally:
        if warehouse is not None:
            warehouse.close()
    if current is None:
        note = f"the warehouse has no table {kpi} yet: the first load creates it with the declared types"
        return warehouse.kind, warehouse.native_type, None, (note,)
    return warehouse.kind, warehouse.native_type, current, ()


def _as_is(bq_type: str) -> str:
    return bq_type


# -- values for people and machines -----------------------------------------------------------------------------


def _row_tuples(table: pa.Table) -> Iterator[tuple[Any, ...]]:
    columns = [table.column(index).to_pylist() for index in range(table.num_columns)]
    return zip(*columns, strict=True) if columns else iter(())


def rows_for_display(table: pa.Table) -> list[list[str | None]]:
    """Each value as text (None for NULL): decimals exactly and without padding zeros, instants with offset."""
    return [[None if v is None else text(v) for v in row] for row in _row_tuples(table)]


def text(value: Any) -> str:
    if isinstance(value, Decimal):
        shown = format(value, "f")
        return shown.rstrip("0").rstrip(".") if "." in shown else shown
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | clock):
        return value.isoformat()
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def jsonable(value: Any) -> Any:
    """JSON keeps numbers it can hold exactly; decimals, dates and bytes become text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return text(value)
