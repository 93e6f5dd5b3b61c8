"""BigQuery: a batch of partitions lands through a staging table and one transaction, verified, audited.

1. One audit read plans the batch (:func:`pipeline.warehouses.base.plan_batch`): which partitions to write.
2. The KPI's table is created if missing (on NotFound, never "create if not exists" on every load); drift is
   judged and refused before any data moves; new nullable columns are added with ``ALTER TABLE ADD COLUMN`` —
   outside the transaction (DDL cannot run in one), the only change a failed load may leave behind.
3. The plan's files are loaded into a fresh staging table (``_kpi_staging_<kpi>_<run>_<random>``, expiring
   after a day if a crashed load leaves it), one load job per file (WRITE_APPEND, CREATE_NEVER, no bad record,
   CSV ``null_marker`` from the manifest); each job's rows and the staging table's total are checked.
4. One script (:mod:`pipeline.warehouses.bigquery_sql`) takes the row of the KPI's own lock table
   (``_kpi_lock_<kpi>``, created with the KPI's table, or when the script finds it missing), re-checks the
   audit, replaces the partitions' rows with DML (DELETE ranges + INSERT … SELECT), counts them and writes the
   audit rows in one multi-statement transaction. A newer run found there → plan again; a concurrent
   transaction on the KPI (a load or a removal) → BigQuery cancels one, which retries (at most
   :data:`COMMIT_ATTEMPTS`, paced with jitter); a count mismatch → LoadError, rolled back. Loads of other KPIs
   lock other tables: BigQuery judges conflicts per table, so they commit side by side. The staging table is
   deleted in any case.

No partition decorators and no WRITE_TRUNCATE: rows are chosen by the time column's range in BigQuery's own
clock (UTC instants for TIMESTAMP), so a Japan-time hour or day of a TIMESTAMP column loads like any other. DML
does not count toward BigQuery's daily table-modification limit; per batch the jobs are one audit query, one
load job per file into the staging table and one script — none of them a load or copy job into the KPI's table.
A scored KPI's batch of one partition adds its history query, started before the upload; the exporter's totals
judged against it and the scores streamed into ``_kpi_anomalies`` beside the upload, the script stays an
unscored load's (for a manifest without totals, the script inserts the scores in its transaction and returns
them: :mod:`pipeline.warehouses.commit_scoring`).

Before a job starts, each file was checked against the manifest (size, SHA-256, row count) by the loader. Files
stream from the lake into the upload in :data:`UPLOAD_CHUNK` pieces; nothing holds a file whole.

Nothing here imports pyarrow or pandas: the loader Lambda's package has neither (its size budget).
"""

from __future__ import annotations

import logging
import random
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from google.api_core import exceptions as google_errors
from google.cloud import bigquery
from google.cloud.bigquery import client as bigquery_client

from pipeline import interrupts
from pipeline.core.anomaly import Expectation, Observation, Score
from pipeline.core.drift import Drift, schema_drift
from pipeline.core.manifest import DataFile, Manifest, SchemaField
from pipeline.errors import LoadError, bigquery_retryable
from pipeline.warehouses.anomalies import ANOMALY_TABLE, History, StoredScore, score_rows, scoring_failure
from pipeline.warehouses.base import (
    AUDIT_TABLE,
    BatchPlan,
    LoadRecord,
    LoadResult,
    OpenFile,
    Removal,
    audit_for_plan,
    changed_error,
    changed_since_planned,
    check_batch,
    count_mismatch,
    current_loads,
    current_loads_sql,
    plan_audit_sql,
    plan_batch,
    refuse_drift,
    where,
)
from pipeline.warehouses.bigquery_read import LEGACY_TYPES, read_rows, table_schema
from pipeline.warehouses.bigquery_removal import CHANGED, removal_script
from pipeline.warehouses.bigquery_sql import (
    COUNT,
    SUPERSEDED,
    Tables,
    batch_script,
    count_error,
    judged_sql,
    lock_table,
)
from pipeline.warehouses.commit_scoring import STREAMED, Beside, InCommit, in_commit, with_scores

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.core.spec import Kpi

URL_FORM = "bigquery://PROJECT/DATASET[?location=asia-northeast1&secret=ARN&region=R&endpoint=URL]"
# google-cloud-bigquery uploads a file of unknown size in 100 MB pieces, each held in memory; 8 MB keeps the
# loader's memory flat (a multiple of 256 KiB, as resumable uploads require). Set where the client reads it.
UPLOAD_CHUNK = 8 * 1024 * 1024
bigquery_client._DEFAULT_CHUNKSIZE = UPLOAD_CHUNK
log = logging.getLogger(__name__)
JOB_TIMEOUT = timedelta(minutes=10)  # the loader Lambda's budget is 15 minutes
# The client retries transient API errors for 10 minutes by default; a loader that then fails anyway has no time
# left to say so. One minute, and the event is retried instead.
RETRY = bigquery.DEFAULT_RETRY.with_deadline(60)
STAGING_EXPIRY = timedelta(days=1)  # a staging table a crashed load left behind removes itself
COMMIT_ATTEMPTS = 8  # transactions cancelled by a concurrent load of the KPI, retried
RETRY_PACE = 0.5  # seconds, doubled per attempt (at most 30), times a jitter in [0.5, 1.5)
CONCURRENT = ("concurrent update", "Transaction is aborted")  # BigQuery's words for a cancelled transaction
PARTITIONING = {
    "hour": bigquery.TimePartitioningType.HOUR,
    "day": bigquery.TimePartitioningType.DAY,
    "month": bigquery.TimePartitioningType.MONTH,
    "week": bigquery.TimePartitioningType.DAY,  # BigQuery has no week partitions: a week is its first day's
}
AUDIT_SCHEMA = (
    bigquery.SchemaField("kpi", "STRING", "REQUIRED"),
    bigquery.SchemaField("partition", "STRING", "REQUIRED"),
    bigquery.SchemaField("run_id", "STRING", "REQUIRED"),
    bigquery.SchemaField("sql_hash", "STRING"),
    bigquery.SchemaField("rows", "INT64"),
    bigquery.SchemaField("bytes", "INT64"),
    bigquery.SchemaField("job_id", "STRING"),
    bigquery.SchemaField("loaded_at", "TIMESTAMP", "REQUIRED"),
)
LOCK_SCHEMA = (
    bigquery.SchemaField("kpi", "STRING", "REQUIRED"),
    bigquery.SchemaField("run_id", "STRING"),
    bigquery.SchemaField("locked_at", "TIMESTAMP"),
)
_RECORD_COLUMNS = "kpi, `partition`, run_id, sql_hash, `rows`, bytes, job_id, loaded_at"
_AUTH_HINT = (
    "give the loader Google credentials: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS naming a "
    "Workload Identity Federation config), or a service-account key in Secrets Manager (?secret=ARN in the URL)"
)


@dataclass(frozen=True)
class BigQueryTarget:
    """Where a ``bigquery://`` URL points, and how to authenticate there."""

    project: str
    dataset: str
    location: str | None = None
    secret: str | None = None  # Secrets Manager ARN of a service-account key (JSON)
    region: str | None = None  # of that secret
    endpoint: str | None = None  # an emulator's address; anonymous credentials

    def table(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"


def parse_bigquery_url(url: str) -> BigQueryTarget:
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    dataset = parts.path.strip("/")
    unknown = sorted(set(query) - {"location", "secret", "region", "endpoint"})
    if parts.scheme != "bigquery" or not parts.netloc or not dataset or "/" in dataset or unknown:
        problem = f"unknown parameter {', '.join(unknown)}" if unknown else "it names no project and dataset"
        raise LoadError(f"cannot use the warehouse URL {url!r}: {problem}", hint=f"use {URL_FORM}")
    return BigQueryTarget(parts.netloc, dataset, **query)


def make_client(target: BigQueryTarget) -> bigquery.Client:
    """A client for the target: the emulator's endpoint anonymously, a key from Secrets Manager, or ADC."""
    import google.auth.exceptions
    from google.api_core.client_options import ClientOptions

    credentials: Any = None
    options = None
    if target.endpoint:
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        options = ClientOptions(api_endpoint=target.endpoint)
    elif target.secret:
        credentials = service_account_credentials(target)
    try:
        return bigquery.Client(
            project=target.project, credentials=credentials, location=target.location, client_options=options
        )
    except google.auth.exceptions.DefaultCredentialsError as error:
        raise LoadError(f"no Google credentials found: {error}", where=target.project, hint=_AUTH_HINT) from None


def service_account_credentials(target: BigQueryTarget) -> Any:
    from google.oauth2 import service_account

    from pipeline.secrets import json_secret

    assert target.secret is not None
    info = json_secret(target.secret, region=target.region, what="BigQuery key", where=target.project, error=LoadError)
    try:
        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=["https://www.googleapis.com/auth/bigquery"]
        )
    except (ValueError, KeyError) as error:
        raise LoadError(
            f"the secret {target.secret} is not a service-account key: {error}",
            where=target.project,
            hint="store the JSON key file of the service account, as downloaded from the Google Cloud console",
        ) from None


class BigQueryWarehouse:
    kind = "BigQuery"

    def __init__(
        self,
        url: str,
        client: bigquery.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.url = url
        self.target = parse_bigquery_url(url)
        self._client = client
        self._owns_client = client is None
        self._sleep, self._jitter = sleep, jitter
        self._meta_missing = False  # the last audit read found no dataset or audit table

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            self._client = make_client(self.target)
        return self._client

    def close(self) -> None:
        """Close the client this warehouse made (one handed in belongs to the caller)."""
        if self._client is not None and self._owns_client:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    def loads(self, kpi: str) -> dict[str, LoadRecord]:
        sql = current_loads_sql(_RECORD_COLUMNS, f"`{self._audit}`", "@kpi", "`partition`")
        try:
            rows = self._query(sql, {"kpi": ("STRING", kpi)}, kpi)
        except google_errors.NotFound:
            self._meta_missing = True
            return {}
        self._meta_missing = False
        return current_loads(LoadRecord(*row.values()) for row in rows)  # removals taken into account

    def _plan_audit(self, kpi: str) -> tuple[dict[str, LoadRecord], dict[str, LoadRecord]]:
        """What a load plans from, in the one audit query a batch sends: the current loads, and the latest
        removal of each partition not loaded since (:func:`~pipeline.warehouses.audit_rule.plan_audit_sql`)."""
        sql = plan_audit_sql(_RECORD_COLUMNS, f"`{self._audit}`", "@kpi", "`partition`")
        try:
            rows = self._query(sql, {"kpi": ("STRING", kpi)}, kpi)
        except google_errors.NotFound:
            self._meta_missing = True
            return {}, {}
        self._meta_missing = False
        return audit_for_plan(LoadRecord(*row.values()) for row in rows)

    def schema(self, kpi: str) -> list[SchemaField] | None:
        return table_schema(self.client, self.target.table(kpi))

    def read(self, kpi: Kpi, first: datetime | None = None, last: datetime | None = None) -> pa.Table:
        table_id = self.target.table(kpi.name)
        timeout = JOB_TIMEOUT.total_seconds()
        return read_rows(self.client, table_id, kpi, first, last, url=self.url, retry=RETRY, timeout=timeout)

    def native_type(self, bq_type: str) -> str:
        return bq_type

    def history(self, history: History) -> list[Observation]:
        from pipeline.warehouses import bigquery_anomalies

        return bigquery_anomalies.history(self, history)

    def record_scores(self, rows: Sequence[tuple[Any, ...]]) -> None:
        from pipeline.warehouses import bigquery_anomalies

        bigquery_anomalies.record_scores(self, rows)

    def scores(self, kpi: str, first: str, last: str) -> list[StoredScore]:
        from pipeline.warehouses import bigquery_anomalies

        return bigquery_anomalies.scores(self, kpi, first, last)

    def query(self, sql: str, params: dict[str, tuple[str, Any]], label: str) -> list[Any]:
        """A query's rows, labelled with the KPI (for the anomaly module)."""
        return self._query(sql, params, label)

    def load(self, manifests: Sequence[Manifest], open_file: OpenFile, *, force: bool = False) -> list[LoadResult]:
        check_batch(manifests)
        with _google_errors(manifests[0]):
            loaded, removed = self._plan_audit(manifests[0].kpi)
            plan = plan_batch(manifests, loaded, force=force, removed=removed)
            if not plan.write:
                return plan.results({})
            if self._meta_missing:
                self._create_meta()
            newest = max(plan.write, key=lambda m: m.run_id)
            table, drift = self._prepare_table(newest)
            scoring = in_commit(plan.write)
            history = self._start_history(scoring) if scoring else None  # runs while the files upload
            # with the exporter's totals, the scores are judged and written beside the upload too, on the same
            # client: google-cloud-bigquery's docs say its client (requests underneath) is safe to share across
            # threads (googleapis/python-bigquery#132)
            streamed = Beside(self._stream_scores, scoring, history) if scoring and history and scoring.totals else None
            try:
                staging = self._stage(plan.write, open_file)
            except Exception:  # never fails with its scores still being written (a Lambda frozen after it returned
                if streamed is not None:  # would write them on its next call); a stop (Ctrl-C, SIGTERM) does not wait
                    streamed.result()
                raise
            try:
                if scoring is not None and streamed is not None:
                    scores = streamed.result()  # written before the commit: read only once it commits
                    plan, job_id, _ = self._commit(manifests, plan, staging, force)
                    scores = scores if list(plan.write) == [scoring.manifest] else None
                else:
                    expected = self._expectations(scoring, history) if scoring and history else None
                    judged = (scoring, expected) if scoring and expected is not None else None
                    plan, job_id, scores = self._commit(manifests, plan, staging, force, judged)
            finally:
                self.client.delete_table(self.target.table(staging), not_found_ok=True, retry=RETRY)
            if plan.write:
                self._describe(table, newest)
            loaded_at = datetime.now().astimezone()
            written = {
                m.partition: LoadResult.replaced(m, LoadRecord.of(m, job_id, loaded_at), drift) for m in plan.write
            }
        results = plan.results(written)
        return results if scores is None or scoring is None else with_scores(results, scores, {scoring.target})

    def _start_history(self, scoring: InCommit) -> bigquery.QueryJob | None:
        """The history query of the partition scored in the commit, started, not awaited; None when BigQuery
        refused to start it (scored after the commit then)."""
        from pipeline.warehouses import bigquery_anomalies

        try:
            return bigquery_anomalies.start_history(self, scoring.history)
        except google_errors.GoogleAPICallError as error:
            log.warning("the history query of %s did not start (%s): scored after the load", scoring.target, error)
            return None

    def _expectations(self, scoring: InCommit, history: bigquery.QueryJob) -> list[Expectation] | None:
        """The expectations of the partition scored in the commit, from its history query's rows; None when
        the query or the scoring failed (scored after the commit then, which reports why)."""
        from pipeline.warehouses import bigquery_anomalies

        try:
            observations = bigquery_anomalies.observations(
                history, scoring.history, timeout=JOB_TIMEOUT.total_seconds()
            )
            return scoring.expectations(observations)
        except Exception as error:  # scoring never fails a load
            log.warning("%s (%s): scored after the load", scoring_failure(error), scoring.target)
            return None

    def _stream_scores(self, scoring: InCommit, history: bigquery.QueryJob) -> list[Score] | None:
        """The partition's scores — its history's expectations, judged by the exporter's totals — appended to
        ``_kpi_anomalies`` by a streaming insert, beside the upload (:mod:`pipeline.warehouses.commit_scoring`).
        None when they were given up (scored after the commit then, which reports why it fails, if it does)."""
        from pipeline.warehouses import bigquery_anomalies

        expectations = self._expectations(scoring, history)
        if expectations is None:
            return None
        scores = scoring.judge_totals(expectations)
        rows = score_rows(scores, {scoring.target: scoring.manifest.run_id}, STREAMED, datetime.now(UTC))
        try:
            bigquery_anomalies.stream_scores(self, rows)
        except Exception as error:  # scoring never fails a load
            log.warning("%s (%s): scored after the load", scoring_failure(error), scoring.target)
            return None
        return scores

    @property
    def _audit(self) -> str:
        return self.target.table(AUDIT_TABLE)

    def _create_meta(self) -> None:
        """The dataset and the audit table — made when a read found them missing. The shared ``_kpi_lock`` the
        loader once made here is neither made nor used any more: each KPI has its own (:meth:`_create_lock`)."""
        dataset = bigquery.Dataset(f"{self.target.project}.{self.target.dataset}")
        if self.target.location:
            dataset.location = self.target.location
        self.client.create_dataset(dataset, exists_ok=True, retry=RETRY)
        audit = bigquery.Table(self._audit, schema=list(AUDIT_SCHEMA))
        audit.description = "One row per partition load by kpi-pipeline: what `kpi status` and backfills read."
        audit.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.MONTH, field="loaded_at"
        )
        audit.clustering_fields = ["kpi", "partition"]
        self.client.create_table(audit, exists_ok=True, retry=RETRY)

    def _create_lock(self, kpi: str) -> None:
        """The KPI's lock table ``_kpi_lock_<kpi>`` (:func:`~pipeline.warehouses.bigquery_sql.lock_table`): made
        with the KPI's table, or when a script finds it missing (a dataset from before it). Its one row is
        inserted by the script itself."""
        lock = bigquery.Table(self.target.table(lock_table(kpi)), schema=list(LOCK_SCHEMA))
        lock.description = (
            f"kpi-pipeline's lock of the KPI {kpi}: one row, updated by each of its loads' and removals' "
            "transactions, so that BigQuery cancels one of two that overlap. Holds no data."
        )
        self.client.create_table(lock, exists_ok=True, retry=RETRY)

    def _create_scores(self) -> None:
        """``_kpi_anomalies``: made by the first load that scores into it."""
        from pipeline.warehouses import bigquery_anomalies

        bigquery_anomalies.create_table(self)

    def _prepare_table(self, manifest: Manifest) -> tuple[bigquery.Table, Drift | None]:
        """The KPI's table: created on NotFound, or its drift judged (refused before any data moves) and new
        nullable columns added — DDL, outside the transaction."""
        try:
            table = self.client.get_table(self.target.table(manifest.kpi), retry=RETRY)
        except google_errors.NotFound:
            wanted = kpi_table(self.target.table(manifest.kpi), manifest)
            created = self.client.create_table(wanted, exists_ok=True, retry=RETRY)
            self._create_lock(manifest.kpi)  # a new KPI: its script need not fail first to have it made
            return created, None
        current = [SchemaField(f.name, LEGACY_TYPES.get(f.field_type, f.field_type)) for f in table.schema]
        drift = schema_drift(current, manifest.schema)
        refuse_drift(drift, manifest)
        if drift.added:  # DDL rather than a schema patch: the column exists for every later statement at once
            columns = ", ".join(f"ADD COLUMN IF NOT EXISTS `{f.name}` {f.type}" for f in drift.added)
            self._query(f"ALTER TABLE `{table.full_table_id.replace(':', '.')}` {columns}", {}, manifest.kpi)
            table = self.client.get_table(table.reference, retry=RETRY)
        return table, drift

    def _describe(self, table: bigquery.Table, manifest: Manifest) -> None:
        """Descriptions and clustering follow the header of the newest load (a metadata update, only on change)."""
        wanted = kpi_table(table.reference, manifest)
        changed = [
            name
            for name, now, then in (
                ("schema", _described(wanted.schema), _described(table.schema)),
                ("description", wanted.description or "", table.description or ""),
                ("clustering_fields", wanted.clustering_fields or [], table.clustering_fields or []),
            )
            if now != then
        ]
        if changed:
            order = [f.name for f in table.schema]  # the table's column order, added columns last
            table.schema = sorted(wanted.schema, key=lambda f: order.index(f.name) if f.name in order else len(order))
            table.description = wanted.description
            table.clustering_fields = wanted.clustering_fields
            self.client.update_table(table, changed, retry=RETRY)

    def _stage(self, write: Sequence[Manifest], open_file: OpenFile) -> str:
        """A fresh staging table holding the files of ``write``, one load job per file, every count checked."""
        first = write[0]
        name = f"_kpi_staging_{first.kpi}_{_label(max(m.run_id for m in write))}_{secrets.token_hex(4)}"
        table = bigquery.Table(self.target.table(name), schema=schema_fields(first.schema, nullable=True))
        table.expires = datetime.now().astimezone() + STAGING_EXPIRY
        self.client.create_table(table, retry=RETRY)
        try:
            for manifest in write:
                for entry in manifest.files:  # each file's rows were checked as it was read from the lake
                    self._load_file(manifest, entry, open_file, self.target.table(name))
            staged = self.client.get_table(self.target.table(name), retry=RETRY).num_rows
            expected = sum(m.rows for m in write)
            if staged != expected:
                raise LoadError(
                    f"the staging table holds {staged} rows, the manifests say {expected}",
                    where=where(first),
                    hint="the files and the manifests disagree: export the partitions again",
                )
        except BaseException:
            self.client.delete_table(self.target.table(name), not_found_ok=True, retry=RETRY)
            raise
        return name

    def _load_file(self, manifest: Manifest, entry: DataFile, open_file: OpenFile, destination: str) -> Any:
        with open_file(entry) as handle:
            # Always a resumable upload, in UPLOAD_CHUNK pieces (no ``size``: a small file would go as one multipart
            # request instead, a path some BigQuery emulators reject).
            job = self.client.load_table_from_file(
                handle, destination, job_config=load_job_config(manifest), job_id_prefix=job_prefix(manifest)
            )
            job.result(timeout=JOB_TIMEOUT.total_seconds())
        return job

    def _commit(
        self,
        manifests: Sequence[Manifest],
        plan: BatchPlan,
        staging: str,
        force: bool,
        scoring: tuple[InCommit, list[Expectation]] | None = None,
    ) -> tuple[BatchPlan, str, list[Score] | None]:
        """Run the batch's transaction until it commits: planned again when the audit shows a newer run, retried
        when BigQuery cancelled it for a concurrent load or removal of the KPI. Returns the plan that committed,
        its job id (empty when nothing was left to write) and, with ``scoring``, the partition's scores (None when
        they were given up: the script refused them, or the plan changed)."""
        staged = {m.partition for m in plan.write}
        kpi = manifests[0].kpi
        tables = Tables(self.target.project, self.target.dataset, kpi, staging)
        for attempt in range(COMMIT_ATTEMPTS):
            job_id = f"{job_prefix(plan.write[0])}{uuid.uuid4().hex}"
            if scoring is not None and list(plan.write) != [scoring[0].manifest]:
                scoring = None  # planned again: the partition scored is no longer the batch's one
            judged = None
            if scoring is not None and scoring[1]:
                judged = judged_sql(
                    tables.name(staging), scoring[0].manifest, scoring[0].history, scoring[1], job_id, datetime.now(UTC)
                )
            try:
                script = batch_script(tables, plan.write, force=force, job_id=job_id, judged=judged)
                returned = self._query(script, {}, kpi, job_id=job_id)
                scores = [StoredScore.of(tuple(row.values())).score for row in returned] if judged else []
                return plan, job_id, scores if scoring is not None else None
            except google_errors.GoogleAPICallError as error:
                message = _details(error)
                if isinstance(error, google_errors.NotFound) and _names(message, lock_table(kpi)):
                    self._create_lock(kpi)  # a KPI loaded before it had a lock table of its own
                elif isinstance(error, google_errors.NotFound) and judged and ANOMALY_TABLE in message:
                    self._create_scores()  # a dataset from before scores were written in the load's transaction
                elif SUPERSEDED in message:
                    loaded, removed = self._plan_audit(kpi)
                    plan = plan_batch(manifests, loaded, force=force, removed=removed)
                    plan = BatchPlan(tuple(m for m in plan.write if m.partition in staged), plan.skip, plan.order)
                    if not plan.write:
                        return plan, "", None
                elif COUNT in message and (found := count_error(message)):
                    partition, rows = found
                    raise count_mismatch(next(m for m in plan.write if m.partition == partition), rows) from None
                elif any(text in message for text in CONCURRENT) and attempt + 1 < COMMIT_ATTEMPTS:
                    self._sleep(min(RETRY_PACE * 2**attempt, 30.0) * (0.5 + self._jitter()))
                elif judged:  # scoring never fails a load: the script again without the scores
                    log.warning("the load's transaction refused its scores (%s): scored after it", message)
                    scoring = None
                else:
                    raise
        raise LoadError(
            f"the load's transaction was cancelled {COMMIT_ATTEMPTS} times by concurrent loads or removals of {kpi}",
            where=where(plan.write[0]),
            hint="the tables are unchanged; the load can be retried",
            retryable=True,
        )

    def _query(
        self, sql: str, params: dict[str, tuple[str, Any]], label: str, *, job_id: str | None = None
    ) -> list[Any]:
        return list(self.start_query(sql, params, label, job_id=job_id).result(timeout=JOB_TIMEOUT.total_seconds()))

    def start_query(
        self, sql: str, params: dict[str, tuple[str, Any]], label: str, *, job_id: str | None = None
    ) -> bigquery.QueryJob:
        """A query job, started and not awaited, labelled with the KPI."""
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(name, kind, value) for name, (kind, value) in params.items()
            ],
            labels={"kpi": _label(label)},
        )
        if job_id is None:
            return self.client.query(sql, job_config=config, retry=RETRY)
        # our own id (the audit rows name it): a failed job is retried by the commit loop, not the client
        return self.client.query(sql, job_config=config, job_id=job_id, retry=RETRY, job_retry=None)

    def remove(self, kpi: str, removals: Sequence[Removal], *, whole_table: bool = False) -> list[LoadRecord]:
        """One multi-statement transaction, DML only (:func:`~pipeline.warehouses.bigquery_removal.removal_script`):
        serialised with the KPI's loads through the row of its lock table, the plan judged again inside it,
        BigQuery commits it whole or rolls it back. The job's id is ours, so that a stop (Ctrl-C, SIGTERM) can
        cancel it on BigQuery even while it is being sent: a cancelled script rolls back, and
        :class:`~pipeline.interrupts.Interrupted` says so; a script that committed before the cancel reached it is
        reported as done. The removal rows' ``loaded_at`` is BigQuery's CURRENT_TIMESTAMP() in the table (this
        machine's clock in the records returned). A KPI loaded before it had a lock table of its own gets it, and
        the removal is sent once more."""
        try:
            return self._remove(kpi, removals, whole_table)
        except google_errors.NotFound as error:
            if not _names(_details(error), lock_table(kpi)):
                raise self._refused(kpi, error) from None
            self._create_lock(kpi)
            return self._remove(kpi, removals, whole_table)

    def _remove(self, kpi: str, removals: Sequence[Removal], whole_table: bool) -> list[LoadRecord]:
        job_id = f"kpi_remove_{_label(kpi)}_{uuid.uuid4().hex}"
        records = [removal.record(job_id, datetime.now(UTC)) for removal in removals]
        tables = Tables(self.target.project, self.target.dataset, kpi, "")
        script = removal_script(tables, kpi, removals, records, whole_table=whole_table)
        config = bigquery.QueryJobConfig(labels={"kpi": _label(kpi)})
        where_ = f"{kpi} in {self.target.project}.{self.target.dataset}"

        def cancel() -> None:
            with suppress(google_errors.GoogleAPICallError):  # a job gone already: nothing left to cancel
                self.client.cancel_job(job_id, location=self.target.location, retry=RETRY)

        try:
            with interrupts.on_stop(cancel):  # a stop requested already: nothing is sent
                job = self.client.query(script, job_config=config, job_id=job_id, retry=RETRY, job_retry=None)
                if interrupts.requested():
                    cancel()  # the stop came while the job was being sent: the hook found no job yet
                job.result(timeout=JOB_TIMEOUT.total_seconds())
        except google_errors.NotFound:
            interrupts.check()
            raise  # perhaps the lock table: remove() decides
        except (google_errors.GoogleAPICallError, google_errors.RetryError, TimeoutError) as error:
            interrupts.check()  # cancelled by a stop: rolled back, nothing was removed
            details = _details(error)
            if CHANGED in details:  # said as DuckDB says it, from the audit as it is now
                found = changed_since_planned(removals, self.loads(kpi), whole_table=whole_table)
                raise changed_error(kpi, found or details.split(CHANGED, 1)[1].strip(), where_) from None
            raise self._refused(kpi, error) from None
        return records

    def _refused(self, kpi: str, error: Exception) -> LoadError:
        details = _details(error)
        concurrent = any(text in details for text in CONCURRENT)
        return LoadError(
            f"BigQuery refused the removal: {details}",
            where=f"{kpi} in {self.target.project}.{self.target.dataset}",
            hint="nothing was removed (one transaction); "
            + ("a load of the KPI was committing at the same moment: " if concurrent else "")
            + "run the same command again once BigQuery allows it",
            retryable=concurrent or not isinstance(error, google_errors.ClientError),
        )


def kpi_table(table_id: Any, manifest: Manifest) -> bigquery.Table:
    """The KPI's table as its header describes it: typed, described, partitioned at its grain, clustered."""
    table = bigquery.Table(table_id, schema=schema_fields(manifest.schema))
    table.description = manifest.description or None
    table.time_partitioning = time_partitioning(manifest)
    table.clustering_fields = list(manifest.cluster_by) or None
    return table


def time_partitioning(manifest: Manifest) -> bigquery.TimePartitioning | None:
    """Partitioned on the time column at the KPI's grain; a snapshot is not partitioned."""
    if not manifest.time_column or manifest.grain not in PARTITIONING:
        return None
    return bigquery.TimePartitioning(type_=PARTITIONING[manifest.grain], field=manifest.time_column)


def load_job_config(manifest: Manifest) -> bigquery.LoadJobConfig:
    """The job BigQuery receives for one file into the batch's staging table: explicit schema (never
    autodetect), appended (the staging table is fresh), never creating a table, no bad record tolerated; CSV with
    the manifest's null marker (version 1 manifests: NULL was an empty unquoted field, BigQuery's default)."""
    config = bigquery.LoadJobConfig(
        schema=schema_fields(manifest.schema, nullable=True),
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        max_bad_records=0,
        labels=job_labels(manifest),
    )
    if manifest.format == "csv":
        config.source_format = bigquery.SourceFormat.CSV
        config.skip_leading_rows = 1
        config.allow_quoted_newlines = True
        config.encoding = "UTF-8"
        if manifest.null_marker is not None:
            config.null_marker = manifest.null_marker
    else:
        config.source_format = bigquery.SourceFormat.PARQUET
    return config


def schema_fields(fields: Sequence[SchemaField], *, nullable: bool = False) -> list[bigquery.SchemaField]:
    """BigQuery's schema of the columns; ``nullable`` for a staging table (the KPI's table keeps the modes)."""
    return [
        bigquery.SchemaField(f.name, f.type, "NULLABLE" if nullable else f.mode, description=f.description)
        for f in fields
    ]


def job_prefix(manifest: Manifest) -> str:
    """Job ids that say what they loaded, for the BigQuery console's job history."""
    return f"kpi_{manifest.kpi}_{manifest.decorator or 'snapshot'}_".lower()


def _names(message: str, table: str) -> bool:
    """Whether an error's message names ``table`` — as a whole name: the lock of KPI ``dai`` is not named by a
    message about ``_kpi_lock_daily``."""
    return re.search(rf"(?<![\w-]){re.escape(table)}(?![\w-])", message) is not None


def _details(error: Any) -> str:
    """Every message of a Google API error (a script's ERROR() text is among them)."""
    messages = [str(e.get("message", "")) for e in getattr(error, "errors", None) or [] if isinstance(e, dict)]
    return "; ".join([m for m in messages if m] or [str(getattr(error, "message", "") or error)])


def job_labels(manifest: Manifest) -> dict[str, str]:
    return {"kpi": _label(manifest.kpi), "run": _label(manifest.run_id)}


def _label(text: str) -> str:
    """BigQuery label values: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in text.lower())[:63]


def _described(fields: Sequence[bigquery.SchemaField]) -> list[tuple[str, str]]:
    return [(f.name, f.description or "") for f in sorted(fields, key=lambda f: f.name)]


@contextmanager
def _google_errors(manifest: Manifest) -> Iterator[None]:
    """BigQuery's errors as LoadErrors naming the batch; retryable as :func:`bigquery_retryable` decides."""
    try:
        yield
    except (google_errors.GoogleAPICallError, google_errors.RetryError, TimeoutError) as error:
        retryable = bigquery_retryable(error)
        raise LoadError(
            f"BigQuery refused the load: {_details(error)}",
            where=where(manifest),
            hint="the tables are unchanged; "
            + ("the load can be retried" if retryable else "fix what BigQuery names, then load again"),
            retryable=retryable,
        ) from None
