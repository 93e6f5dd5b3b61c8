"""Scoring inside the load's own transaction: a batch that writes one new partition is scored as it commits.

Why: scored after its commit, a load paid for scoring on its own — a history query, the scores' insert and its
own commit; on BigQuery two jobs more per load, one after the other (``bench/anomaly_bench.py`` measures the
three ways; the README's *Anomalies* section has the figures), and a loader stopped between the commit and the
scoring left a loaded partition unscored, its anomaly never told. Most loads of a scheduled KPI write one
partition, the newest, and its expected range depends only on the partitions before it
(:func:`pipeline.core.anomaly.expect`): it can be known before the partition's rows are, and the rows judged by
the transaction that writes them.

- **BigQuery**: the history query is started before the staging table's load jobs and read after them (it runs
  while the files upload); the batch script inserts the scores (:func:`pipeline.warehouses.bigquery_sql.judged_sql`)
  into ``_kpi_anomalies`` inside its transaction and reads them back as its last statement — the scores need no
  job of their own, the history one beside the upload.
- **DuckDB**: the history is read inside the load's transaction, after the insert (the new partition in it),
  the expectations computed from the partitions before it and the new sums judged (:meth:`InCommit.judge`), the
  scores inserted: one commit for both. (Computing the expectations beside the insert, on a cursor of its own
  in a second thread, as BigQuery does, was tried: on this busy 2-core machine it was within the noise — the
  scoring is Python, and the load's own Python competes with it for the GIL — so the simpler order stays.)

A partition is then never loaded without its scores, nor scored without its load. Everything else — a batch of
several partitions (a backfill), a reload of a partition with newer ones after it (whose scores it changes) — is
scored after the commit as before (:func:`pipeline.flows.anomalies.score_loaded`).

Scoring never fails a load: a history query that fails, an error of the scoring code or a statement of the
scores' refused by the warehouse gives up scoring inside the transaction (the load is then committed without it)
and leaves the partition to the scoring after the commit, which reports why it failed, if it fails again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from pipeline.core.anomaly import Anomaly, Expectation, Observation, Score, expect
from pipeline.core.manifest import Manifest
from pipeline.core.spec import ANOMALY_GRAINS, AnomalySettings
from pipeline.warehouses.anomalies import History, history_of
from pipeline.warehouses.base import LoadResult


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

    def judge(self, expectations: Sequence[Expectation], loaded: Sequence[Observation]) -> list[Score]:
        """The target's scores: each expectation against the target's sum in ``loaded`` (a history read after
        the target's rows were written; a series the target lacks counts 0) — :func:`pipeline.core.anomaly.score`'s
        result, in two steps."""
        values = {(o.measure, o.dimension): o.value for o in loaded if o.partition == self.target}
        return [e.judge(values.get((e.measure, e.dimension), 0.0)) for e in expectations]


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
