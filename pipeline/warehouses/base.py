"""What the loader needs from a warehouse: land a batch of partitions from their manifests, atomically, audited.

A *batch* is the unit of a load: the partitions one export job committed (one source query), or a single
manifest. All of a batch's partitions land in one transaction, or none does — so a backfill costs one warehouse
transaction per batch, not one per partition.

The rules both warehouses share live here, pure, so that the embedded DuckDB warehouse and BigQuery decide alike:
what a batch may hold (:func:`check_batch`), which run wins (:func:`superseded`), which partitions a load writes
and which it skips (:func:`plan_batch`), which rows a partition is (:func:`partition_bounds`), which schema
changes stop a load (:func:`refuse_drift`) and what a wrong row count says (:func:`count_mismatch`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from zoneinfo import ZoneInfo

from pipeline.core.bounds import column_bound
from pipeline.core.drift import DRIFT_HINT, Drift
from pipeline.core.manifest import DataFile, Manifest, SchemaField
from pipeline.core.types import BqType
from pipeline.errors import LoadError
from pipeline.warehouses.audit_rule import REMOVED as REMOVED
from pipeline.warehouses.audit_rule import current_loads_sql as current_loads_sql
from pipeline.warehouses.audit_rule import plan_audit_sql as plan_audit_sql

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.core.anomaly import Anomaly, Observation
    from pipeline.core.spec import Kpi
    from pipeline.warehouses.anomalies import History, StoredScore

AUDIT_TABLE = "_kpi_loads"

OpenFile = Callable[[DataFile], BinaryIO]  # the lake's file, seekable, checked against its size, checksum and rows


@dataclass(frozen=True)
class LoadRecord:
    """One row of the audit table ``_kpi_loads``: the source of truth for status, freshness and resume."""

    kpi: str
    partition: str
    run_id: str
    sql_hash: str
    rows: int
    bytes: int
    job_id: str
    loaded_at: datetime

    @classmethod
    def of(cls, manifest: Manifest, job_id: str, loaded_at: datetime) -> LoadRecord:
        return cls(
            manifest.kpi,
            manifest.partition,
            manifest.run_id,
            manifest.sql_hash,
            manifest.rows,
            manifest.bytes,
            job_id,
            loaded_at,
        )


@dataclass(frozen=True)
class LoadResult:
    """What happened to one partition of a batch."""

    partition: str
    loaded: bool  # False: skipped, see `reason`
    reason: str  # for people: "replaced …", "run … is older than run … already loaded"
    record: LoadRecord | None = None
    added_columns: tuple[str, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()  # found by scoring the partition (pipeline.warehouses.commit_scoring)
    scoring_error: str = ""  # why the partition could not be scored; the load stands
    scored: bool = False  # scored with this load: in its transaction, or after it (pipeline.flows.anomalies)

    @classmethod
    def replaced(cls, manifest: Manifest, record: LoadRecord, drift: Drift | None) -> LoadResult:
        added = tuple(f.name for f in drift.added) if drift else ()
        reason = f"replaced {manifest.partition} with {manifest.rows:,} rows"
        return cls(manifest.partition, True, reason, record, added)


class Warehouse(Protocol):
    """A warehouse the loader writes and everything else reads: ``kpi status``, ``kpi preview``, the notebook API
    and the demo's report read it only through :meth:`loads`, :meth:`schema` and :meth:`read`, on a warehouse
    opened with ``open_warehouse(url, read_only=True)`` (a DuckDB file is then neither created nor locked for
    writing; :meth:`load` and :meth:`remove` refuse)."""

    url: str
    kind: str  # "BigQuery" | "DuckDB": how messages name it

    def load(self, manifests: Sequence[Manifest], open_file: OpenFile, *, force: bool = False) -> list[LoadResult]:
        """Land the batch — every partition :func:`plan_batch` writes, in one transaction, audited — and return one
        result per manifest, in order. Raises LoadError, leaving every table as it was, on a batch that is not
        one (:func:`check_batch`), on schema drift that is not additive or on a row-count mismatch."""
        ...

    def loads(self, kpi: str) -> dict[str, LoadRecord]:
        """The newest run loaded for each partition of the KPI (one query: loads plan with it, backfills resume
        with it, ``kpi status`` reports from it); empty when nothing was ever loaded."""
        ...

    def schema(self, kpi: str) -> list[SchemaField] | None:
        """The KPI table's columns, in order, in BigQuery type names; None when the warehouse has no table for it
        (nothing is created). What ``kpi preview`` shows and judges drift against."""
        ...

    def read(self, kpi: Kpi, first: datetime | None = None, last: datetime | None = None) -> pa.Table:
        """The KPI's rows in the partitions from the one starting at ``first`` to the one ending at ``last``
        (exclusive; open-ended when None), ordered by the time column, every column in its canonical Arrow type
        (:func:`pipeline.warehouses.reading.canonical`). Raises UsageError when the KPI was never loaded."""
        ...

    def native_type(self, bq_type: str) -> str:
        """The name the warehouse's own catalogue shows for a BigQuery type (DuckDB: ``DECIMAL(38,9)``…)."""
        ...

    def close(self) -> None:
        """Release connections (the DuckDB file lock); the warehouse reopens on next use."""
        ...

    def history(self, history: History) -> list[Observation]:
        """Per partition from ``history.since`` on (and dimension value), the sums of the measures anomaly scoring
        reads (:func:`pipeline.warehouses.anomalies.history_sql`, one query); empty when nothing was loaded."""
        ...

    def record_scores(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append rows to ``_kpi_anomalies`` (:func:`pipeline.warehouses.anomalies.score_rows`)."""
        ...

    def scores(self, kpi: str, first: str, last: str) -> list[StoredScore]:
        """The newest score per partition, measure and dimension value from ``first`` to ``last`` (partitions)."""
        ...

    def remove(self, kpi: str, removals: Sequence[Removal], *, whole_table: bool = False) -> list[LoadRecord]:
        """Delete the rows of each removal's partition (every row of the KPI's table with ``whole_table``) and
        append a removal row per partition to the audit table, all in one transaction; return those rows. Raises
        LoadError, leaving table and audit as they were, when the warehouse refuses."""
        ...


@dataclass(frozen=True)
class BatchPlan:
    """Which partitions of a batch a load writes, and which it skips and why (their reasons are the results)."""

    write: tuple[Manifest, ...]
    skip: tuple[tuple[Manifest, str], ...]
    order: tuple[str, ...]  # the batch's partitions, as given

    def results(self, written: Mapping[str, LoadResult]) -> list[LoadResult]:
        """One result per manifest of the batch, in the batch's order: ``written`` for the partitions written."""
        skipped = {manifest.partition: reason for manifest, reason in self.skip}
        return [written[name] if name in written else LoadResult(name, False, skipped[name]) for name in self.order]


def where(manifest: Manifest) -> str:
    """How messages name a load: KPI, partition and run."""
    return f"{manifest.kpi} {manifest.partition} (run {manifest.run_id})"


def check_batch(manifests: Sequence[Manifest]) -> None:
    """A batch is one KPI's partitions, each once, with one schema and one file format: what one export job
    commits. Anything else is refused before a warehouse is touched."""
    if not manifests:
        raise LoadError("a batch to load holds no manifest", hint="name at least one committed partition")
    first = manifests[0]
    kpis = sorted({m.kpi for m in manifests})
    if len(kpis) > 1:
        raise LoadError(
            f"a batch holds partitions of {len(kpis)} KPIs ({', '.join(kpis)})",
            where=where(first),
            hint="load each KPI's manifests as a batch of their own",
        )
    seen: set[str] = set()
    for manifest in manifests:
        if manifest.partition in seen:
            raise LoadError(
                f"partition {manifest.partition} appears twice in one batch",
                where=where(manifest),
                hint="a batch names each partition once: load the runs one after the other",
            )
        seen.add(manifest.partition)
        if [(f.name, f.type) for f in manifest.schema] != [(f.name, f.type) for f in first.schema] or (
            manifest.format != first.format
        ):
            raise LoadError(
                f"partition {manifest.partition} has other columns or another file format than {first.partition}",
                where=where(manifest),
                hint="a batch is what one export committed: load these manifests one at a time",
            )


def superseded(newest_loaded: LoadRecord | None, manifest: Manifest, *, force: bool) -> str | None:
    """Why the manifest must not be loaded, or None when it must. *Never older*: run ids sort by their start
    time, and a run older than the one loaded never replaces it, even with ``force`` — an S3 event delivered late
    or twice never puts older numbers back on a dashboard. *Exactly once*: the run already loaded is skipped,
    unless ``force`` asks to reload that same run."""
    if newest_loaded is None or manifest.run_id > newest_loaded.run_id:
        return None
    if manifest.run_id == newest_loaded.run_id:
        if force:
            return None
        why = "is already loaded"
    else:
        why = f"is older than run {newest_loaded.run_id}"
    return f"run {manifest.run_id} {why}, loaded {newest_loaded.loaded_at:%Y-%m-%d %H:%M} UTC"


def removed_again(removal: LoadRecord | None, manifest: Manifest, *, force: bool) -> str | None:
    """Why the manifest must not be loaded into a partition whose latest audit row is ``removal`` (no load since):
    it is the very run ``kpi remove`` took out — a late or repeated S3 event of it would undo the removal. Any
    other run (the one before, to undo a wrong load; a new export) loads; ``force`` loads this one too."""
    if removal is None or force or manifest.run_id != removal.run_id:
        return None
    return (
        f"run {manifest.run_id} was removed by `kpi remove` at {removal.loaded_at:%Y-%m-%d %H:%M} UTC; "
        "load it again with --force"
    )


def audit_for_plan(records: Iterable[LoadRecord]) -> tuple[dict[str, LoadRecord], dict[str, LoadRecord]]:
    """What a load plans from, out of :func:`~pipeline.warehouses.audit_rule.plan_audit_sql`'s rows (BigQuery) or
    every audit row of the batch's partitions (DuckDB: the same answer, the rule applied here): the current loads
    (:func:`current_loads`), and the latest removal row of each partition that no load followed (those in the
    current loads had one) — ``plan_batch``'s ``loaded`` and ``removed``."""
    rows = list(records)
    loaded = current_loads(rows)
    removed: dict[str, LoadRecord] = {}
    for record in rows:
        if is_removal(record) and record.partition not in loaded:
            best = removed.get(record.partition)
            if best is None or record.loaded_at > best.loaded_at:
                removed[record.partition] = record
    return loaded, removed


def plan_batch(
    manifests: Sequence[Manifest],
    loaded: Mapping[str, LoadRecord],
    *,
    force: bool,
    removed: Mapping[str, LoadRecord] | None = None,
) -> BatchPlan:
    """The plan of a load from the audit (``loaded``: :meth:`Warehouse.loads` of the KPI; ``removed``: the
    latest removal of each partition not loaded since, :func:`audit_for_plan`). Each warehouse makes it again
    inside its transaction — DuckDB under its write lock, BigQuery by re-checking the audit in the transaction
    script — so that a plan made before another load or a removal committed is never acted on."""
    check_batch(manifests)
    write: list[Manifest] = []
    skip: list[tuple[Manifest, str]] = []
    gone = removed or {}
    for manifest in manifests:
        reason = superseded(loaded.get(manifest.partition), manifest, force=force) or removed_again(
            gone.get(manifest.partition), manifest, force=force
        )
        if reason is None:
            write.append(manifest)
        else:
            skip.append((manifest, reason))
    return BatchPlan(tuple(write), tuple(skip), tuple(m.partition for m in manifests))


def refuse_drift(drift: Drift | None, manifest: Manifest) -> None:
    if drift and drift.blocking:
        raise LoadError(
            "the table's columns changed in a way the warehouse cannot follow:\n  - " + "\n  - ".join(drift.problems()),
            where=where(manifest),
            hint=DRIFT_HINT,
        )


def count_mismatch(manifest: Manifest, found: int, what: str = "the partition holds") -> LoadError:
    """The error of a partition whose rows in the warehouse are not the manifest's count (the whole batch is
    rolled back)."""
    return LoadError(
        f"{what} {found} rows after the load, the manifest says {manifest.rows}",
        where=where(manifest),
        hint="the files and the manifest disagree: export the partition again",
    )


def partition_bounds(manifest: Manifest) -> tuple[str, BqType, date | datetime, date | datetime] | None:
    """(time column, its type, first value, end value exclusive) of the manifest's partition; None for a snapshot,
    whose partition is the whole table. TIMESTAMP bounds are UTC instants: BigQuery's own clock for that type, so
    a Japan-time hour or day of a TIMESTAMP column is a plain range whatever BigQuery's partitions are."""
    if manifest.interval_start is None or manifest.interval_end is None or not manifest.time_column:
        return None
    column_type = BqType(next(f.type for f in manifest.schema if f.name == manifest.time_column))
    zone = ZoneInfo(manifest.source_timezone or manifest.timezone)
    start, end = (
        column_bound(datetime.fromisoformat(text), column_type, zone)
        for text in (manifest.interval_start, manifest.interval_end)
    )
    return manifest.time_column, column_type, start, end


# -- removing partitions (``kpi remove``) ------------------------------------------------------------------------
#
# A removal deletes a partition's rows and appends an audit row that records it: the removed run's id and rows,
# no SQL hash, and a job id starting with REMOVED. The audit table stays append-only, so it still tells what was
# loaded when and what was taken out. What is loaded now is decided by :func:`current_loads`: the loads after a
# partition's latest removal. A removal therefore resets "never older": the next load of the partition is
# accepted whatever its run (an older one too: undoing a wrong load may mean loading the earlier run again) but
# the removed run itself, which only --force loads again (:func:`removed_again`), and from that load on the rule
# holds again as before.

Bounds = tuple[str, BqType, date | datetime, date | datetime]  # a partition's rows: see partition_bounds


@dataclass(frozen=True)
class Removal:
    """One partition to remove: the load being removed, and the rows it is — ``bounds`` (time column, its type,
    first value, end value exclusive) as :func:`partition_bounds` gives them; None for the whole table."""

    load: LoadRecord
    bounds: Bounds | None

    def record(self, job_id: str, at: datetime) -> LoadRecord:
        """The audit row of this removal."""
        load = self.load
        return LoadRecord(load.kpi, load.partition, load.run_id, "", load.rows, 0, REMOVED + job_id, at)


def changed_since_planned(
    removals: Sequence[Removal], current: Mapping[str, LoadRecord], *, whole_table: bool = False
) -> str:
    """Why the loads a removal was planned from are no longer the current ones (empty: they still are).

    A removal is planned from the audit table (what ``kpi remove`` shows and asks about), then carried out in a
    transaction of its own; a load that commits in between — a scheduled run, a backfill, a second operator —
    would otherwise see its fresh rows deleted under a removal record naming the older run. Both warehouses
    judge it again inside the removal's transaction and remove nothing when anything changed; for the whole
    table, a partition loaded since counts as a change too (its rows would go without a removal record)."""
    planned = {r.load.partition: (r.load.run_id, r.load.job_id) for r in removals}
    now = {p: (r.run_id, r.job_id) for p, r in current.items() if whole_table or p in planned}
    changes = []
    for partition in sorted(set(planned) | set(now)):
        then, found = planned.get(partition), now.get(partition)
        if then == found:
            continue
        if found is None:
            changes.append(f"{partition} is no longer loaded")
        elif then is None:
            changes.append(f"{partition} was loaded (run {found[0]})")
        else:
            changes.append(f"{partition} was loaded again (run {found[0]})")
    return "; ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")


def changed_error(kpi: str, changes: str, where: str) -> LoadError:
    """The refusal of a removal whose plan a concurrent load or removal overtook."""
    return LoadError(
        f"{kpi}'s loads changed after the removal was planned: {changes}",
        where=where,
        hint="nothing was removed (one transaction); run the same `kpi remove` again: it shows what it would remove "
        "now",
    )


def is_removal(record: LoadRecord) -> bool:
    return record.job_id.startswith(REMOVED)


def current_loads(records: Iterable[LoadRecord]) -> dict[str, LoadRecord]:
    """The newest run loaded for each partition since its latest removal (by ``loaded_at``), from every audit row
    of a KPI; a partition whose latest row is a removal is not loaded."""
    rows = list(records)
    removed: dict[str, datetime] = {}
    for record in filter(is_removal, rows):
        removed[record.partition] = max(record.loaded_at, removed.get(record.partition, record.loaded_at))
    current: dict[str, LoadRecord] = {}
    for record in rows:
        cut = removed.get(record.partition)
        if is_removal(record) or (cut is not None and record.loaded_at <= cut):
            continue
        best = current.get(record.partition)
        if best is None or (record.run_id, record.loaded_at) > (best.run_id, best.loaded_at):
            current[record.partition] = record
    return current
