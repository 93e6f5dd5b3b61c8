"""Turn a batch of one result column into the Arrow array its :class:`ColumnPlan` promises — exactly or not at all.

Two inputs, one rule set: MySQL's text protocol delivers every value as bytes (:func:`from_text`), DuckDB delivers
typed Arrow arrays (:func:`from_arrow`). All casts are Arrow's *safe* casts, which refuse to round or overflow;
a refusal is reported with the column, the 1-based row number of the result and the header change that fixes
it. Values the warehouse cannot hold (zero dates, invalid UTF-8) follow the column's :class:`Policy`: an error,
or NULL counted in the manifest. Work is vectorised; Python loops run only for rare types (TIME, BIT) and to
find the offending row once a vectorised cast has failed.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.spec import Policy
from pipeline.core.typeplan import ColumnPlan, SourceKind
from pipeline.core.types import BqType
from pipeline.errors import ExportError

# `0000-00-00`, and dates with a zero month or day, which MySQL accepts unless NO_ZERO_DATE/NO_ZERO_IN_DATE is set
_ZERO_DATE = r"^(0000-00-00|\d{4}-00-|\d{4}-\d{2}-00)"
_NUMERIC_TARGETS = frozenset({BqType.INT64, BqType.NUMERIC, BqType.BIGNUMERIC, BqType.FLOAT64})
_MAX_TIME_US = 24 * 3600 * 1_000_000


class Conversion:
    """Converts the batches of one result, counting NULL replacements made under the `null` policies."""

    def __init__(self, kpi: str, plans: list[ColumnPlan], source_zone: ZoneInfo) -> None:
        self.kpi = kpi
        self.plans = plans
        self.zone = source_zone
        self.replaced: Counter[str] = Counter()  # "column: what" → rows set to NULL
        self.schema = pa.schema([pa.field(p.name, p.arrow_type) for p in plans])

    def batch(self, columns: list[pa.Array], first_row: int, *, text: bool) -> pa.RecordBatch:
        """One batch of the result (one array per column) as a record batch of the planned types.

        ``text``: the arrays hold MySQL's text-protocol bytes; otherwise they are typed (DuckDB).
        """
        convert = self.from_text if text else self.from_arrow
        arrays = [convert(plan, array, first_row) for plan, array in zip(self.plans, columns, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    # -- MySQL text protocol -----------------------------------------------------------------------------------

    def from_text(self, plan: ColumnPlan, raw: pa.Array, first_row: int) -> pa.Array:
        kind, target = plan.source.kind, plan.type
        if kind is SourceKind.NULL:
            return pa.nulls(len(raw), plan.arrow_type)
        if target is BqType.BYTES:
            return raw.cast(pa.binary())
        if kind is SourceKind.BIT:
            return self._to_declared(plan, _bits(raw), first_row)
        if target in (BqType.STRING, BqType.JSON):
            text = self._utf8(plan, raw, first_row)
            if target is BqType.JSON:
                self._check_json(plan, text, first_row)
            return text
        text = raw.cast(pa.string()) if kind in (SourceKind.TEXT, SourceKind.JSON) else _ascii(raw)
        if kind is SourceKind.TIME:
            return self._times(plan, text, first_row)
        if kind in (SourceKind.DATE, SourceKind.DATETIME, SourceKind.TIMESTAMP):
            text = self._zero_dates(plan, text, first_row)
            natural = pa.date32() if kind is SourceKind.DATE else pa.timestamp("us")
            return self._to_declared(plan, self._cast(plan, text, natural, first_row), first_row)
        if target in _NUMERIC_TARGETS:
            return self._cast(plan, text, plan.arrow_type, first_row)
        return self._to_declared(plan, self._cast(plan, text, pa.int64(), first_row), first_row)

    # -- typed input (DuckDB) ---------------------------------------------------------------------------------

    def from_arrow(self, plan: ColumnPlan, array: pa.Array, first_row: int) -> pa.Array:
        if plan.source.kind is SourceKind.NULL:
            return pa.nulls(len(array), plan.arrow_type)
        if plan.type in (BqType.STRING, BqType.JSON, BqType.BYTES) and not pa.types.is_string(array.type):
            return self._cast(plan, array, plan.arrow_type, first_row)
        return self._to_declared(plan, array, first_row)

    # -- shared -------------------------------------------------------------------------------------------------

    def _to_declared(self, plan: ColumnPlan, array: pa.Array, first_row: int) -> pa.Array:
        target = plan.type
        if target is BqType.BOOL and not pa.types.is_boolean(array.type):
            outside = pc.and_(pc.not_equal(array, 0), pc.not_equal(array, 1))
            self._refuse_where(
                plan, array, outside, first_row, "is neither 0 nor 1", "declare INT64 to keep every value"
            )
            return pc.not_equal(array, 0)
        if target is BqType.TIMESTAMP and array.type.tz is None:
            return self._localize(plan, array, first_row)
        if target is BqType.DATETIME and getattr(array.type, "tz", None) is not None:
            return pc.local_timestamp(array.cast(pa.timestamp("us", tz=self.zone.key)))
        return self._cast(plan, array, plan.arrow_type, first_row)

    def _cast(self, plan: ColumnPlan, array: pa.Array, to: pa.DataType, first_row: int) -> pa.Array:
        try:
            return array.cast(to, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            for index in range(len(array)):
                try:
                    array.slice(index, 1).cast(to, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    value = array[index].as_py()
                    raise self._error(
                        plan, first_row + index, f"value {value!r} does not fit {plan.type.value} exactly", error
                    ) from None
            raise self._error(plan, first_row, f"cannot convert to {plan.type.value}", error) from None

    def _zero_dates(self, plan: ColumnPlan, text: pa.Array, first_row: int) -> pa.Array:
        zero = pc.match_substring_regex(text, _ZERO_DATE)
        count = pc.sum(zero).as_py() or 0
        if not count:
            return text
        if plan.zero_dates is Policy.ERROR:
            index = _first_true(zero)
            raise ExportError(
                f"column '{plan.name}', row {first_row + index}: zero date {text[index].as_py()!r}",
                where=self.kpi,
                hint=f"set `zero_dates: null` on column {plan.name} to load NULL instead, or filter it in the SQL",
            )
        self.replaced[f"{plan.name}: zero dates"] += count
        return pc.if_else(zero, pa.scalar(None, pa.string()), text)

    def _utf8(self, plan: ColumnPlan, raw: pa.Array, first_row: int) -> pa.Array:
        try:
            return raw.cast(pa.string())
        except pa.ArrowInvalid:
            pass
        values: list[str | None] = []
        for index, value in enumerate(raw.to_pylist()):
            try:
                values.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                if plan.invalid_utf8 is Policy.ERROR:
                    raise ExportError(
                        f"column '{plan.name}', row {first_row + index}: invalid UTF-8 {value[:40]!r}",
                        where=self.kpi,
                        hint=f"set `invalid_utf8: null` on column {plan.name} to load NULL instead, "
                        "or declare it BYTES",
                    ) from None
                self.replaced[f"{plan.name}: invalid UTF-8"] += 1
                values.append(None)
        return pa.array(values, pa.string())

    def _check_json(self, plan: ColumnPlan, text: pa.Array, first_row: int) -> None:
        for index, value in enumerate(text.to_pylist()):
            if value is not None:
                try:
                    json.loads(value)
                except ValueError:
                    raise ExportError(
                        f"column '{plan.name}', row {first_row + index}: not valid JSON: {value[:60]!r}",
                        where=self.kpi,
                        hint="declare the column STRING, or fix the values",
                    ) from None

    def _times(self, plan: ColumnPlan, text: pa.Array, first_row: int) -> pa.Array:
        """MySQL TIME text (`-838:59:59.999999` … `838:59:59.999999`) as time of day; durations are refused."""
        micros: list[int | None] = []
        for index, value in enumerate(text.to_pylist()):
            if value is None:
                micros.append(None)
                continue
            hours, minutes, seconds = value.lstrip("-").split(":")
            whole, _, fraction = seconds.partition(".")
            total = ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1_000_000 + int(fraction.ljust(6, "0"))
            if value.startswith("-") or total >= _MAX_TIME_US:
                raise ExportError(
                    f"column '{plan.name}', row {first_row + index}: TIME {value!r} is a duration outside "
                    "BigQuery TIME's 00:00:00–23:59:59.999999",
                    where=self.kpi,
                    hint=f"declare {plan.name} as STRING to keep MySQL's text exactly",
                )
            micros.append(total)
        return pa.array(micros, pa.time64("us"))

    def _localize(self, plan: ColumnPlan, array: pa.Array, first_row: int) -> pa.Array:
        """Naive wall-clock times in the source zone as UTC instants — or an error naming the first row whose time
        the zone skipped (a DST gap) or repeated (a fall-back): the source holds no offset that would say which
        instant was meant, and guessing would shift rows between hours silently."""
        try:
            return localize(array, self.zone)
        except WallClockError as problem:
            raise ExportError(
                f"column '{plan.name}' ({plan.source.label} → TIMESTAMP), row {first_row + problem.index}: "
                f"{problem.reason}",
                where=self.kpi,
                hint=f"declare {plan.name} DATETIME to keep the wall-clock time as stored; for a MySQL TIMESTAMP "
                "column, `source_timezone: UTC` makes MySQL send it in UTC, where no time is skipped or repeated",
            ) from None

    def _refuse_where(
        self, plan: ColumnPlan, array: pa.Array, mask: pa.Array, first_row: int, what: str, hint: str
    ) -> None:
        if pc.any(mask).as_py():
            index = _first_true(mask)
            raise ExportError(
                f"column '{plan.name}', row {first_row + index}: value {array[index].as_py()!r} {what}",
                where=self.kpi,
                hint=hint,
            )

    def _error(self, plan: ColumnPlan, row: int, message: str, cause: Exception) -> ExportError:
        hints = {
            SourceKind.UNSIGNED_BIGINT: "declare NUMERIC to hold values above INT64",
            SourceKind.DECIMAL: "declare BIGNUMERIC (or STRING) to keep every digit",
        }
        detail = str(cause).splitlines()[0]
        return ExportError(
            f"column '{plan.name}' ({plan.source.label} → {plan.type.value}), row {row}: {message} ({detail})",
            where=self.kpi,
            hint=hints.get(plan.source.kind, "declare a type that holds the value, or convert it in the SELECT"),
        )


def _ascii(raw: pa.Array) -> pa.Array:
    """Numbers and dates in MySQL's text protocol are ASCII: reinterpret the bytes as text without a copy."""
    return pa.Array.from_buffers(pa.string(), len(raw), raw.buffers(), offset=raw.offset)


def _bits(raw: pa.Array) -> pa.Array:
    """BIT(n) arrives as n/8 big-endian bytes."""
    values = [None if v is None else int.from_bytes(v, "big") for v in raw.to_pylist()]
    return pa.array(values, pa.uint64())


def _first_true(mask: pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


class WallClockError(ValueError):
    """A naive time that names no single instant in its zone: ``index`` is its position in the array."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


def localize(array: pa.Array, zone: ZoneInfo, *, arrow_zones: bool | None = None) -> pa.Array:
    """Naive timestamps read as wall-clock times in ``zone``, as UTC instants (``timestamp[us, UTC]``).

    One rule on both paths: a time the zone skipped (inside a DST gap) or repeated (in the hour a fall-back
    repeats) raises :class:`WallClockError` naming the first such value — never shifted, never the earlier of
    two. The fast path is Arrow's ``assume_timezone`` (vectorised, with its own time zone database); where Arrow
    has none (``arrow_zones`` False, or detected: some minimal images), ``zoneinfo`` with the tzdata package.
    """
    if arrow_zones is None:
        arrow_zones = _arrow_knows(zone.key)
    if arrow_zones:
        try:
            local = pc.assume_timezone(array, zone.key, ambiguous="raise", nonexistent="raise")
        except pa.ArrowInvalid:
            pass  # find the offending value the same way the zoneinfo path does, for the same message
        else:
            return local.cast(pa.timestamp("us", tz="UTC"))
    moments: list[datetime | None] = []
    for index, value in enumerate(array.to_pylist()):
        if value is None:
            moments.append(None)
            continue
        reason = wall_clock_problem(value, zone)
        if reason:
            raise WallClockError(index, reason)
        moments.append(value.replace(tzinfo=zone).astimezone(UTC))
    return pa.array(moments, pa.timestamp("us", tz="UTC"))


def wall_clock_problem(value: datetime, zone: ZoneInfo) -> str:
    """Why the naive ``value`` is not one instant in ``zone`` ("" when it is), by ``zoneinfo``'s two folds."""
    early, late = value.replace(tzinfo=zone, fold=0), value.replace(tzinfo=zone, fold=1)
    if early.utcoffset() == late.utcoffset():
        return ""
    first, second = sorted((early.astimezone(UTC), late.astimezone(UTC)))
    if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        return f"{value.isoformat(' ')} does not exist in {zone.key}: the clocks skipped it (a DST gap)"
    return (
        f"{value.isoformat(' ')} happened twice in {zone.key} (at {first:%H:%M} and {second:%H:%M} UTC, "
        "a DST fall-back): which one is meant is not in the data"
    )


@cache
def _arrow_knows(zone: str) -> bool:
    """Whether Arrow can read ``zone`` from a time zone database (absent from some minimal images)."""
    try:
        pc.assume_timezone(pa.array([0], pa.timestamp("us")), zone)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True
