"""Export and load many partitions: what ``kpi run``, ``kpi backfill`` and ``kpi demo`` have in common.

Work arrives as jobs — one KPI and one batch of contiguous partitions, exported by one source query — and runs
on a thread pool. Each source has its own limit of queries at once (``parallel`` in kpi.toml), so a backfill
cannot hammer the OLTP database whatever the pool size; loads run outside that limit, each job's committed
partitions as one batch (one warehouse transaction). A job that fails marks its partitions failed and the others
go on: the caller sees every partition's outcome and decides the exit code. Within a job, a partition that fails a
header check fails alone: the export commits the others, which are loaded as the batch.
After a stop request (:mod:`pipeline.interrupts`) no job starts, exports in flight end without a commit, and no
further load starts; :meth:`Runner.run` returns the outcomes of what finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pipeline import interrupts
from pipeline.core.anomaly import Anomaly
from pipeline.core.lake import manifest_key, partition_name
from pipeline.errors import KpiError, ProblemsError
from pipeline.export import ChecksFailed, export
from pipeline.flows.run import Job  # planned by pipeline.flows.run; run here
from pipeline.load import load_manifests
from pipeline.settings import Environment
from pipeline.sources import Source, open_source
from pipeline.stores import Store, open_store
from pipeline.warehouses import Warehouse, open_warehouse

LOADED, SKIPPED, FAILED = "loaded", "skipped", "failed"


@dataclass(frozen=True)
class Outcome:
    kpi: str
    partition: str
    status: str  # loaded | skipped (already loaded, or an older run) | failed
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    message: str = ""  # a failure's whole reason (every line of it), or why a load was skipped
    kind: str = ""  # a failure's KpiError.kind: source, export, checks, lake, load…
    hint: str = ""
    where: str = ""
    anomalies: tuple[Anomaly, ...] = ()  # found by the scoring after the load (pipeline.flows.anomalies)
    scoring_error: str = ""  # why scoring failed; the partition is loaded all the same

    @classmethod
    def failure(cls, kpi: str, partition: str, error: KpiError, seconds: float) -> Outcome:
        """The error's fields as they are: the summary and ``--json`` show the whole reason, not its first line."""
        message = str(error) if isinstance(error, ProblemsError) else error.message  # every problem, with its hint
        return cls(kpi, partition, FAILED, 0, 0, seconds, message, error.kind, error.hint, error.where)

    def failure_dict(self) -> dict[str, str]:
        return {
            "partition": self.partition,
            "kind": self.kind,
            "message": self.message,
            "hint": self.hint,
            "where": self.where,
        }


@dataclass
class KpiSummary:
    """One line of the summary table."""

    kpi: str
    partitions: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failed: list[Outcome] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)  # the partitions loaded (not skipped, not failed)
    anomalies: list[Anomaly] = field(default_factory=list)
    scoring_errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "ok" if not self.failed else f"{len(self.failed)} failed"

    def as_dict(self) -> dict[str, object]:
        return {
            "kpi": self.kpi,
            "partitions": self.partitions,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "status": self.status,
            "failed": [outcome.failure_dict() for outcome in self.failed],
            "loaded": sorted(self.loaded),
            "anomalies": [anomaly.to_json() for anomaly in self.anomalies],
            "scoring_errors": self.scoring_errors,
        }


def summarize(outcomes: Iterable[Outcome]) -> list[KpiSummary]:
    summaries: dict[str, KpiSummary] = {}
    for outcome in outcomes:
        line = summaries.setdefault(outcome.kpi, KpiSummary(outcome.kpi))
        line.partitions += 1
        line.rows += outcome.rows
        line.bytes += outcome.bytes
        line.seconds += outcome.seconds
        if outcome.status == FAILED:
            line.failed.append(outcome)
        elif outcome.status == LOADED:
            line.loaded.append(outcome.partition)
        line.anomalies.extend(outcome.anomalies)
        if outcome.scoring_error:
            line.scoring_errors.append(f"{outcome.partition}: {outcome.scoring_error}")
    return sorted(summaries.values(), key=lambda s: s.kpi)


class Runner:
    """Runs jobs in one environment: its sources (with their limits), its lake and its warehouse."""

    def __init__(self, environment: Environment, *, parallel: int | None = None, force: bool = False) -> None:
        self.environment = environment
        self.force = force
        self.store: Store = open_store(environment.lake)
        self.warehouse: Warehouse = open_warehouse(environment.warehouse)
        self._parallel = parallel
        self._limits: dict[str, threading.Semaphore] = {}
        self._sizes: dict[str, int] = {}
        self._sources: dict[str, Source] = {}  # one per source for the whole run (a DuckDB file stays open)
        self._sources_lock = threading.Lock()

    def run(self, jobs: Sequence[Job], on_outcome: Callable[[Outcome], None] = lambda _: None) -> list[Outcome]:
        """Every job, each source at most at its limit at once; outcomes in completion order."""
        for job in jobs:  # unknown sources fail here, before any query runs
            name = job.kpi.source
            limit = self._parallel or self.environment.source(name, kpi=job.kpi.name).parallel
            self._sizes.setdefault(name, limit)
            self._limits.setdefault(name, threading.Semaphore(limit))
        outcomes: list[Outcome] = []
        lock = threading.Lock()

        def work(job: Job) -> None:
            for outcome in self._run_job(job):
                with lock:
                    outcomes.append(outcome)
                    on_outcome(outcome)

        workers = max(1, min(len(jobs), sum(self._sizes.values())))
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kpi") as pool:
                for future in [pool.submit(work, job) for job in jobs]:
                    future.result()
        finally:
            self.warehouse.close()
            self._close_sources()
        return outcomes

    def _source(self, name: str, kpi: str) -> Source:
        """The run's source called ``name``: opened once, so that jobs after the first skip the set-up (a DuckDB
        file's connection per thread; see :meth:`pipeline.sources.duckdb.DuckDbSource.hold_connections`)."""
        with self._sources_lock:
            if name not in self._sources:
                setting = self.environment.source(name, kpi=kpi)
                source = open_source(setting.url, explain_max_rows=self.environment.explain_max_rows)
                hold = getattr(source, "hold_connections", None)
                if callable(hold):
                    hold()
                self._sources[name] = source
            return self._sources[name]

    def _close_sources(self) -> None:
        with self._sources_lock:
            sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            close = getattr(source, "close", None)
            if callable(close):
                close()

    def _run_job(self, job: Job) -> list[Outcome]:
        kpi, started = job.kpi, time.monotonic()
        outcomes: list[Outcome] = []
        try:
            with self._limits[kpi.source]:
                interrupts.check()  # a job that waited for its source's turn does not start after a stop
                source = self._source(kpi.source, kpi.name)
                manifests = export(kpi, job.intervals, source=source, store=self.store)
        except interrupts.Interrupted:
            return []  # nothing committed: the export removed its files
        except ChecksFailed as error:  # partitions judged one by one: the failing ones, each with its own reason
            seconds = (time.monotonic() - started) / len(job.partitions)
            outcomes = [Outcome.failure(kpi.name, p, error.of(p), seconds) for p in error.failures]
            manifests = error.committed  # … and the others, committed, are loaded below
        except KpiError as error:
            seconds = time.monotonic() - started
            return [Outcome.failure(kpi.name, p, error, seconds) for p in job.partitions]
        if not manifests:
            return outcomes
        exported = (time.monotonic() - started) / max(len(job.partitions), 1)
        if interrupts.requested():
            return outcomes  # committed but not loaded: a rerun exports and loads the partitions again
        loading = time.monotonic()
        intervals = {partition_name(i): i for i in job.intervals or (None,)}
        keys = [manifest_key(kpi, intervals[m.partition], m.run_id) for m in manifests]
        try:  # the job's committed partitions as one batch: one warehouse transaction, all of them or none
            loaded = load_manifests(self.store, keys, self.warehouse, force=self.force)
        except KpiError as error:
            seconds = exported + (time.monotonic() - loading) / len(manifests)
            return outcomes + [Outcome.failure(kpi.name, m.partition, error, seconds) for m in manifests]
        seconds = exported + (time.monotonic() - loading) / len(manifests)
        return outcomes + [
            Outcome(
                kpi.name,
                m.partition,
                LOADED if r.loaded else SKIPPED,
                m.rows,
                m.bytes,
                seconds,
                r.reason,
                anomalies=r.anomalies,
                scoring_error=r.scoring_error,
            )
            for m, r in loaded
        ]
