"""The production EXPLAIN guard at the source: ask MySQL/MariaDB for the plan of a KPI's query — ``EXPLAIN
FORMAT=JSON`` only, which reads no row of data — and refuse a full scan over the environment's row limit before
the query itself is sent (the judgement is :mod:`pipeline.core.explain`).

It runs before every export from a MySQL source opened with a limit (``kpi run``, ``kpi backfill``, ``kpi export``
and the exporter Lambda: ``explain_max_rows`` in kpi.toml or ``KPI_EXPLAIN_MAX_ROWS``), and for ``kpi check
--explain``. Plans are cached per process by source, SQL hash and bound values: a batch that ``kpi check --explain``
judged, or an export retried in the same process, is not explained again. Only accepted plans are cached: a
refused one is asked again, since the index its hint names may exist by then.

The EXPLAIN runs on its own short connection with the exporter's session settings (read-only transaction, the
pinned ``time_zone``, a statement time limit), so its bound values mean what the export's will.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.core.explain import (
    Dialect,
    Refusal,
    TableAccess,
    dialect_of,
    filtered_columns,
    judge,
    parse_plan,
    unreadable_plan,
)
from pipeline.core.explain import query_tables as tables_of
from pipeline.core.intervals import Interval
from pipeline.core.lake import partition_name
from pipeline.core.render import Rendered
from pipeline.core.spec import Kpi
from pipeline.errors import SourceError

EXPLAIN_TIMEOUT = timedelta(seconds=10)  # planning a KPI's query takes milliseconds; a stuck server must not hang us
_CACHE_SIZE = 512
_cache: OrderedDict[tuple[str, str], ExplainReport] = OrderedDict()


class FullScanRefused(SourceError):
    """The guard refuses the query: its plan reads a whole large table, or the plan is in a shape the guard cannot
    read (it fails closed); not retryable (the same plan would come back)."""


@dataclass(frozen=True)
class ExplainReport:
    kpi: str
    partition: str  # `2024-01-05`, or `2024-01-01…2024-01-31` for a batch of partitions
    dialect: Dialect
    accesses: tuple[TableAccess, ...]
    refusals: tuple[Refusal, ...]
    seconds: float
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.kpi,
            "partition": self.partition,
            "dialect": self.dialect.value,
            "tables": [
                {"table": a.table, "access_type": a.access_type, "rows": a.rows, "key": a.key} for a in self.accesses
            ],
            "refused": [
                {"table": r.table, "rows": r.rows, "message": r.message, "hint": r.hint} for r in self.refusals
            ],
            "seconds": round(self.seconds, 4),
        }


class ExplainGuard:
    """A row limit for full scans, attached to a MySQL source (:func:`pipeline.sources.open_source`)."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows

    def report(self, kpi: Kpi, source: Any, rendered: Rendered, partition: str) -> ExplainReport:
        """The plan of ``rendered`` judged against the limit; from the cache when this process has seen it."""
        key = (source.url, _key(rendered, self.max_rows, kpi.allow_full_scan))
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return ExplainReport(found.kpi, partition, found.dialect, found.accesses, found.refusals, 0.0, True)
        started = time.monotonic()
        dialect, document = explain_json(source, rendered, zone=kpi.source_zone, where=kpi.name)
        unreadable = None if kpi.allow_full_scan else unreadable_plan(document, partition)  # it accepts any plan
        if unreadable:
            raise FullScanRefused(
                unreadable,
                where=kpi.name,
                hint="the guard asks for EXPLAIN's JSON format version 1 (SET SESSION explain_json_format_version "
                "= 1, MySQL 8.3 and later); check that the source login may set it, or set `allow_full_scan: true` "
                "in the header if this query may scan whole tables",
            )
        accesses = tuple(parse_plan(document, dialect))
        refusals = judge(
            accesses,
            max_rows=self.max_rows,
            allow_full_scan=kpi.allow_full_scan,
            tables=tables_of(kpi.query.tree),
            filters=filtered_columns(kpi.query.tree),
            partition=partition,
        )
        report = ExplainReport(kpi.name, partition, dialect, accesses, tuple(refusals), time.monotonic() - started)
        if not refusals:  # a refusal is asked again next time: the index it names may have been added since
            _cache[key] = report
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return report

    def enforce(self, kpi: Kpi, source: Any, rendered: Rendered, partition: str) -> ExplainReport:
        report = self.report(kpi, source, rendered, partition)
        if report.refusals:
            first = report.refusals[0]
            more = f" (and {len(report.refusals) - 1} more table(s))" if len(report.refusals) > 1 else ""
            raise FullScanRefused(first.message + more, where=kpi.name, hint=first.hint)
        return report


def guard_export(kpi: Kpi, source: Any, rendered: Rendered, parts: Sequence[Interval | None]) -> None:
    """The hook of every command that runs a KPI's query on a source — the exporter, ``kpi preview`` (whose
    ``LIMIT`` still lets the server scan the whole table first) and ``kpi diff`` — called before the query opens:
    nothing for a source without a guard."""
    guard = getattr(source, "explain_guard", None)
    if isinstance(guard, ExplainGuard):
        guard.enforce(kpi, source, rendered, span(parts))


def span(parts: Sequence[Interval | None]) -> str:
    """``2024-01-05``, ``2024-01-01…2024-01-31`` for a batch, ``snapshot``."""
    first, last = partition_name(parts[0]), partition_name(parts[-1])
    return first if first == last else f"{first}…{last}"


def explain_json(source: Any, rendered: Rendered, *, zone: ZoneInfo, where: str) -> tuple[Dialect, dict[str, Any]]:
    """``EXPLAIN FORMAT=JSON`` of the rendered query on ``source`` (a MySqlSource: :meth:`MySqlSource.explain`
    opens the session as the query's own would be), with its bound values; the plan's dialect from the server's
    version."""
    version, plan = source.explain(rendered, zone=zone, where=where, timeout=EXPLAIN_TIMEOUT)
    if not isinstance(plan, str | bytes):
        raise SourceError(f"{source.url} returned no EXPLAIN plan", where=where, hint="is the source MySQL or MariaDB?")
    return dialect_of(version), json.loads(plan)


def _key(rendered: Rendered, max_rows: int, allowed: bool) -> str:
    values: Mapping[str, Any] = rendered.values or {}
    text = json.dumps([rendered.sql, sorted((k, repr(v)) for k, v in values.items()), max_rows, allowed])
    return hashlib.sha256(text.encode()).hexdigest()


def clear_cache() -> None:
    """Forget every plan (tests; a long-lived process after an index was added)."""
    _cache.clear()
