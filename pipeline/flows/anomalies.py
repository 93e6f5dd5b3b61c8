"""Anomaly scoring as the loader and ``kpi anomalies`` run it: read the history, score, store, report.

A load of one new partition is scored inside its own transaction by the warehouse
(:mod:`pipeline.warehouses.commit_scoring`); after any other load (:func:`score_loaded`, called by
:func:`pipeline.load.flow.load_manifests`: a backfill's batches, a reload with newer partitions after it) the
batch's new partitions are scored with the settings their manifest carries; on demand (:func:`score_range`, ``kpi
anomalies``) any loaded range is scored with the KPI file's. Both read the history with one warehouse query
(:meth:`~pipeline.warehouses.base.Warehouse.history`), score in pure Python (:func:`pipeline.core.anomaly.score`)
and append every score to ``_kpi_anomalies``, newest winning.

Scoring must never fail a load: here the load is committed before scoring starts, and whatever goes wrong while
scoring (the warehouse refusing the history query, a calendar missing from the package…) is reported on each
partition's result (:attr:`~pipeline.warehouses.base.LoadResult.scoring_error`), not raised.
:func:`anomalies_of_run` gives a run's new anomalies — what alerts are sent from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from pipeline.core.anomaly import Anomaly, Score, history_partitions, score
from pipeline.core.manifest import Manifest
from pipeline.core.spec import ANOMALY_GRAINS as GRAINS
from pipeline.core.spec import AnomalySettings, Kpi
from pipeline.core.totals import scored_measures
from pipeline.errors import UsageError
from pipeline.warehouses.anomalies import (
    History,
    first_needed,
    history_of,
    score_rows,
    scoring_failure,
)
from pipeline.warehouses.base import LoadResult, Warehouse
from pipeline.warehouses.commit_scoring import with_scores

__all__ = [
    "ON_DEMAND",
    "RangeScores",
    "anomalies_of_run",
    "newest_anomalies",
    "score_loaded",
    "score_range",
    "stored_anomalies",
]

ON_DEMAND = "kpi-anomalies"  # the job id of scores computed by `kpi anomalies`
DEFAULT_DAYS = 30  # `kpi anomalies` without --from: the last 30 days of partitions
log = logging.getLogger(__name__)


def score_loaded(
    warehouse: Warehouse, manifests: Sequence[Manifest], results: Sequence[LoadResult], *, now: datetime | None = None
) -> list[LoadResult]:
    """``results`` with the anomalies of each partition the load wrote (its manifest carrying anomaly settings),
    or with why it could not be scored; never raises for a scoring failure."""
    written = [
        (m, r) for m, r in zip(manifests, results, strict=True) if r.loaded and r.record is not None and not r.scored
    ]
    newest = max((m for m, _ in written), key=lambda m: m.run_id, default=None)
    settings = newest.anomaly_settings if newest is not None else None
    if newest is None or settings is None or newest.grain not in GRAINS or not newest.time_column:
        return list(results)
    targets = sorted(m.partition for m, _ in written)
    history = history_of(newest, settings, targets[0])
    job_id = next(r.record.job_id for _, r in written if r.record is not None)
    run_ids = {m.partition: m.run_id for m, _ in written}
    try:
        scores = _score(warehouse, history, settings, targets, run_ids, job_id, now or datetime.now(UTC), later=True)
    except Exception as error:  # any failure of scoring is reported: it never fails the committed load
        reason = scoring_failure(error)
        log.warning("%s (%s, partitions %s)", reason, newest.kpi, ", ".join(targets))
        return [replace(r, scoring_error=reason) if r.partition in run_ids else r for r in results]
    return with_scores(results, scores, run_ids)


class HasAnomalies(Protocol):
    """A load's result (:class:`~pipeline.warehouses.base.LoadResult`) or a run's outcome
    (:class:`pipeline.flows.runner.Outcome`): both carry the anomalies their load found."""

    @property
    def anomalies(self) -> tuple[Anomaly, ...]: ...


def anomalies_of_run(results: Iterable[HasAnomalies]) -> list[Anomaly]:
    """The new anomalies a run's loads found, in the results' order: what alerts are sent from
    (``load_manifests``' results, or ``Runner.run``'s outcomes)."""
    return [anomaly for result in results for anomaly in result.anomalies]


@dataclass(frozen=True)
class RangeScores:
    """What ``kpi anomalies`` found: every partition scored in the range, and the anomalies among them."""

    kpi: str
    first: str
    last: str
    partitions: tuple[str, ...]  # loaded in the range, each scored (unless its history was too short)
    scores: tuple[Score, ...]

    @property
    def anomalies(self) -> list[Anomaly]:
        return [a for s in self.scores if (a := s.anomaly()) is not None]


def score_range(warehouse: Warehouse, kpi: Kpi, first: date | None, last: date | None, *, now: datetime) -> RangeScores:
    """Score every loaded partition of ``kpi`` from ``first`` to ``last`` (days, both included; by default the
    last :data:`DEFAULT_DAYS` days up to the newest loaded partition) with the KPI file's settings, store the
    scores, and return them."""
    settings = _settings(kpi)
    loaded = warehouse.loads(kpi.name)
    newest = max(loaded, default=None)
    end = last or (date.fromisoformat(newest[:10]) if newest else now.date())
    start = first or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise UsageError(f"--from {start} is after --to {end}", where=kpi.name, hint="give the earlier day with --from")
    low, high = start.isoformat(), f"{end.isoformat()}T99"  # T99: after every hour of the last day
    targets = sorted(p for p in loaded if low <= p <= high)
    if not targets:
        return RangeScores(kpi.name, start.isoformat(), end.isoformat(), (), ())
    assert kpi.time_column is not None  # a day or hour grain (checked with the header)
    columns = [(c.name, c.type.value) for c in kpi.columns]
    history = History(
        kpi.name,
        kpi.time_column,
        next(c.type for c in kpi.columns if c.name == kpi.time_column),
        kpi.grain.value,
        kpi.timezone,
        kpi.source_zone.key,
        scored_measures(settings.measures, columns, kpi.time_column),
        settings.by,
        first_needed(targets[0], kpi.grain.value),
    )
    run_ids = {p: loaded[p].run_id for p in targets}
    scores = _score(warehouse, history, settings, targets, run_ids, ON_DEMAND, now)
    return RangeScores(kpi.name, start.isoformat(), end.isoformat(), tuple(targets), tuple(scores))


def newest_anomalies(warehouse: Warehouse, kpi: Kpi, partition: str | None) -> list[Anomaly] | None:
    """The anomalies stored for ``partition`` (the KPI's newest, for ``kpi status``): None when the KPI is not
    scored or the partition has no score yet, else the list (empty: scored, nothing found)."""
    if kpi.anomaly is None or partition is None:
        return None
    stored = warehouse.scores(kpi.name, partition, partition)
    if not stored:
        return None
    return [a for s in stored if (a := s.score.anomaly()) is not None]


def stored_anomalies(warehouse: Warehouse, kpi: Kpi, first: str, last: str) -> list[Anomaly]:
    """The anomalies stored for ``kpi``'s partitions from ``first`` to ``last`` (partition names; the newest
    score of each wins): what the report marks."""
    if kpi.anomaly is None:
        return []
    return [a for s in warehouse.scores(kpi.name, first, last) if (a := s.score.anomaly()) is not None]


def _settings(kpi: Kpi) -> AnomalySettings:
    if kpi.anomaly is None:
        raise UsageError(
            f"{kpi.name} is not scored for anomalies: its header has no `anomaly` key",
            where=kpi.path,
            hint="add `anomaly: {}` to the header (the README's header keys table lists its parts), then load",
        )
    if kpi.grain.value not in GRAINS:
        raise UsageError(
            f"{kpi.name} has grain {kpi.grain.value}; anomalies are scored for day and hour grains",
            where=kpi.path,
            hint="remove its `anomaly` key",
        )
    return kpi.anomaly


def _score(
    warehouse: Warehouse,
    history: History,
    settings: AnomalySettings,
    targets: Sequence[str],
    run_ids: dict[str, str],
    job_id: str,
    now: datetime,
    *,
    later: bool = False,
) -> list[Score]:
    """Score ``targets``, store the scores and return them. With ``later``, the partitions loaded after the
    targets whose history the targets are part of are scored again and stored as well (not returned): a
    backfill's batches load in parallel, and a month that commits after the next one would otherwise leave the
    next one scored against a gap (the demo test missed the demo's outage day once so, its November batch
    committed before October's). A load of the newest partitions has none: it costs nothing then."""
    observations = warehouse.history(history)
    # The partitions the history covers are those with rows, and the targets (an empty target is a 0, not a
    # gap): the audit is not read again (40 ms of a 100 ms load for two years of days, measured).
    loaded = {o.partition for o in observations} | set(targets)
    after = sorted(p for p in loaded if p > targets[-1])[: history_partitions(history.grain)] if later else []
    ids = dict(run_ids)
    if after:
        current = warehouse.loads(history.kpi)
        ids |= {p: current[p].run_id for p in after if p in current}
    scores = score(history.kpi, history.grain, settings, observations, [*targets, *after], loaded)
    warehouse.record_scores(score_rows(scores, ids, job_id, now))
    return [s for s in scores if s.partition in run_ids]
