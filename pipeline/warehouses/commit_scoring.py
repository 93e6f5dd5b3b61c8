"""Scoring by the load itself: a batch that writes one new partition is scored as it commits.

Why: scored after its commit, a load paid for scoring on its own — a history query, the scores' insert and its
own commit; on BigQuery two jobs more per load, one after the other (``bench/anomaly_bench.py`` measures the
three ways; the README's *Anomalies* section has the figures), and a loader stopped between the commit and the
scoring left a loaded partition unscored, its anomaly never told. Most loads of a scheduled KPI write one
partition, the newest, and its expected range depends only on the partitions before it
(:func:`pipeline.core.anomaly.expect`): it can be known before the partition's rows are, and the rows judged by
the transaction that writes them.

- **BigQuery**: the history query is started before the staging table's load jobs. With the exporter's totals
  (a version 4 manifest: :mod:`pipeline.core.totals`), a thread beside the upload (:class:`Beside`) awaits it,
  judges the totals and appends the scores to ``_kpi_anomalies`` by a streaming insert — no job, no DML — before
  the transaction script runs; the script is then the one an unscored load sends. Written before the commit, the
  scores are read only once it commits: every reader reads the scores of the run loaded
  (:func:`~pipeline.warehouses.anomalies.scores_sql`), so those of a load that then fails, or is killed, are
  never read. Without totals (an older exporter's manifest, a dimension whose text the warehouses spell apart)
  the batch script sums the staged rows and inserts the scores
  (:func:`pipeline.warehouses.bigquery_sql.judged_sql`) inside its transaction and reads them back as its last
  statement.
- **DuckDB**: the history is read inside the load's transaction, after the insert (the new partition in it),
  the expectations computed from the partitions before it and the new sums judged (:meth:`InCommit.judge`), the
  scores inserted: one commit for both. The exporter's totals are not needed here. (Judging them beside the
  load instead — the history read on a second connection in a thread from the load's first statement, the
  scores inserted in the transaction — was measured twice, ``bench/anomaly_bench.py``: it saved 1–2 ms of the
  scoring's 5–7 ms while the load's plan took 4–6 ms, for 3 ms more CPU; once the plan took 0.6 ms
  (:func:`pipeline.warehouses.duckdb._plan_audit`), 0.8 ms for 3.7 ms more CPU. Not kept: the cost stays the
  history query, the core and the scores' insert, whichever thread runs them.)

A partition is then never loaded without its scores, and scores of a load that did not commit are never read
(DuckDB's are never even written). Everything else — a batch of
several partitions (a backfill), a reload of a partition with newer ones after it (whose scores it changes) — is
scored after the commit as before (:func:`pipeline.flows.anomalies.score_loaded`).

Scoring never fails a load: a history query that fails, an error of the scoring code or a statement of the
scores' refused by the warehouse gives up scoring inside the transaction (the load is then committed without it)
and leaves the partition to the scoring after the commit, which reports why it failed, if it fails again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pipeline.core.anomaly import Anomaly, Expectation, Observation, Score, expect
from pipeline.core.manifest import Manifest
from pipeline.core.spec import ANOMALY_GRAINS, AnomalySettings
from pipeline.warehouses.anomalies import History, history_of
from pipeline.warehouses.base import LoadResult

STREAMED = "insertAll"  # the job_id of scores a BigQuery load streamed beside its upload: no job wrote them


@dataclass(frozen=True)
class InCommit:
    """The one partition a batch writes, scored inside the batch's transaction."""

    manifest: Manifest
    settings: AnomalySettings
    history: History

    @property
    def target(self) -> str:
        return self.manifest.partition

    def expectations(self, observations: Sequence[Observation]) -> list[Expectation] | None:
        """The target's expectations from the history read before the load, or None when partitions after the
        target are loaded (a reload of an old partition changes their scores too: scored after the commit)."""
        if any(o.partition > self.target for o in observations):
            return None
        return expect(self.manifest.kpi, self.manifest.grain, self.settings, observations, self.target)

    @property
    def totals(self) -> bool:
        """Whether the exporter summed the partition for exactly the measures scored (a version 4 manifest of a
        dimension it can name, its settings as exported — a partition with rows has a total of each): then its
        scores are known before its rows are loaded (:meth:`judge_totals`)."""
        totals = self.manifest.totals
        if totals is None:
            return False
        return {t.measure for t in totals} == set(self.history.measures) if self.manifest.rows else not totals

    def judge_totals(self, expectations: Sequence[Expectation]) -> list[Score]:
        """The target's scores: each expectation against the exporter's totals (:mod:`pipeline.core.totals`)."""
        totals = self.manifest.totals or ()
        return self.judge(expectations, [Observation(self.target, t.measure, t.dimension, t.value) for t in totals])

    def judge(self, expectations: Sequence[Expectation], loaded: Sequence[Observation]) -> list[Score]:
        """The target's scores: each expectation against the target's sum in ``loaded`` (a history read after
        the target's rows were written; a series the target lacks counts 0) — :func:`pipeline.core.anomaly.score`'s
        result, in two steps."""
        values = {(o.measure, o.dimension): o.value for o in loaded if o.partition == self.target}
        return [e.judge(values.get((e.measure, e.dimension), 0.0)) for e in expectations]


T = TypeVar("T")


class Beside(Generic[T]):
    """A call run in a thread of its own, beside the caller (a load's upload), awaited by :meth:`result`. A
    daemon thread: a process that stops (an error, a signal) does not wait for a network call it no longer
    needs."""

    def __init__(self, call: Callable[..., T], *args: Any) -> None:
        self._outcome: list[T] = []
        self._error: list[BaseException] = []

        def run() -> None:
            try:
                self._outcome.append(call(*args))
            except BaseException as error:  # handed to the caller, raised there
                self._error.append(error)

        self._thread = threading.Thread(target=run, name="kpi-scores", daemon=True)
        self._thread.start()

    def result(self) -> T:
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._outcome[0]


def in_commit(write: Sequence[Manifest]) -> InCommit | None:
    """The in-transaction scoring of a batch's plan (``write``: the partitions it writes), or None when the plan
    is not one partition of a scored KPI."""
    if len(write) != 1:
        return None
    (manifest,) = write
    settings = manifest.anomaly_settings
    if settings is None or manifest.grain not in ANOMALY_GRAINS or not manifest.time_column:
        return None
    return InCommit(manifest, settings, history_of(manifest, settings, manifest.partition))


def with_scores(
    results: Sequence[LoadResult], scores: Sequence[Score], partitions: Collection[str]
) -> list[LoadResult]:
    """``results`` with each of ``partitions`` marked scored, carrying the anomalies among ``scores``."""
    found: dict[str, list[Anomaly]] = {}
    for item in scores:
        anomaly = item.anomaly()
        if anomaly is not None:
            found.setdefault(item.partition, []).append(anomaly)
    return [
        replace(r, anomalies=tuple(found.get(r.partition, ())), scored=True) if r.partition in partitions else r
        for r in results
    ]
