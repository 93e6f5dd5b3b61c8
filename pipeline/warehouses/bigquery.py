"""BigQuery: each manifest becomes one partition of the KPI's table, by one load job, verified, audited.

A single-file partition (the usual case: files are cut at 256 MB) is one load job into the partition decorator
(``table$20240301``) with WRITE_TRUNCATE and the manifest's explicit schema. BigQuery applies a load job
atomically, so a re-run replaces the partition and a failed job leaves it as it was. A partition of several files
is loaded into a staging table first, one job per file, and moved into the decorator by one copy job with
WRITE_TRUNCATE — still one atomic step on the KPI's table. Snapshots (no time column) replace the whole table.

Before a job starts, each file was checked against the manifest (size, SHA-256, row count) by the loader; after
it, the job's output rows and a ``COUNT(*)`` of the partition must both equal the manifest's, or the load fails
loudly. Files stream from the lake into the upload in :data:`UPLOAD_CHUNK` pieces; nothing holds a file whole.

Nothing here imports pyarrow or pandas: the loader Lambda's package has neither (its size budget).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from google.api_core import exceptions as google_errors
from google.cloud import bigquery
from google.cloud.bigquery import client as bigquery_client

from pipeline.core.drift import Drift, schema_drift
from pipeline.core.manifest import DataFile, Manifest, SchemaField
from pipeline.core.types import BqType
from pipeline.errors import LoadError
from pipeline.warehouses.base import (
    AUDIT_TABLE,
    Bounds,
    LoadRecord,
    LoadResult,
    OpenFile,
    Removal,
    current_loads,
    partition_bounds,
    refuse_drift,
    superseded,
    where,
)

URL_FORM = "bigquery://PROJECT/DATASET[?location=asia-northeast1&secret=ARN&region=R&endpoint=URL]"
# google-cloud-bigquery uploads a file of unknown size in 100 MB pieces, each held in memory; 8 MB keeps the
# loader's memory flat (a multiple of 256 KiB, as resumable uploads require). Set where the client reads it.
UPLOAD_CHUNK = 8 * 1024 * 1024
bigquery_client._DEFAULT_CHUNKSIZE = UPLOAD_CHUNK
JOB_TIMEOUT = timedelta(minutes=10)  # the loader Lambda's budget is 15 minutes
# The client retries transient API errors for 10 minutes by default; a loader that then fails anyway has no time
# left to say so. One minute, and the event is retried instead.
RETRY = bigquery.DEFAULT_RETRY.with_deadline(60)
STAGING_EXPIRY = timedelta(days=1)  # a staging table a crashed load left behind removes itself
PARTITIONING = {
    "hour": bigquery.TimePartitioningType.HOUR,
    "day": bigquery.TimePartitioningType.DAY,
    "month": bigquery.TimePartitioningType.MONTH,
    "week": bigquery.TimePartitioningType.DAY,  # BigQuery has no week partitions: a week is its first day's
}
DECORATOR_FORMAT = {"hour": "%Y%m%d%H", "day": "%Y%m%d", "month": "%Y%m", "week": "%Y%m%d"}
LEGACY_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}  # how the API may name standard types
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
    def __init__(self, url: str, client: bigquery.Client | None = None) -> None:
        self.url = url
        self.target = parse_bigquery_url(url)
        self._client = client
        self._owns_client = client is None

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

    def last_load(self, kpi: str, partition: str) -> LoadRecord | None:
        sql = f"SELECT {_RECORD_COLUMNS} FROM `{self._audit}` WHERE kpi = @kpi AND `partition` = @partition"
        try:
            rows = self._query(sql, {"kpi": ("STRING", kpi), "partition": ("STRING", partition)}, kpi)
        except google_errors.NotFound:
            return None
        return current_loads(LoadRecord(*row.values()) for row in rows).get(partition)  # none since a removal

    def loads(self, kpi: str) -> dict[str, LoadRecord]:
        sql = f"SELECT {_RECORD_COLUMNS} FROM `{self._audit}` WHERE kpi = @kpi"
        try:
            rows = self._query(sql, {"kpi": ("STRING", kpi)}, kpi)
        except google_errors.NotFound:
            return {}
        return current_loads(LoadRecord(*row.values()) for row in rows)  # removals taken into account

    def load(self, manifest: Manifest, open_file: OpenFile, *, force: bool = False) -> LoadResult:
        with _google_errors(manifest):
            self._ensure_dataset()
            skip = superseded(manifest, self.last_load(manifest.kpi, manifest.partition), force=force)
            if skip:
                return skip
            drift = self._prepare_table(manifest)
            job_id = self._replace_partition(manifest, open_file)
            self._verify(manifest)
            record = LoadRecord.of(manifest, job_id)
            self._record(record)
        return LoadResult.replaced(manifest, record, drift)

    @property
    def _audit(self) -> str:
        return self.target.table(AUDIT_TABLE)

    def _ensure_dataset(self) -> None:
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

    def _prepare_table(self, manifest: Manifest) -> Drift | None:
        """Create the KPI's table, or follow the header: new columns, descriptions, clustering. Drift that is not
        additive stops here, before any data moves."""
        try:
            table = self.client.get_table(self.target.table(manifest.kpi), retry=RETRY)
        except google_errors.NotFound:
            self.client.create_table(kpi_table(self.target.table(manifest.kpi), manifest), exists_ok=True, retry=RETRY)
            return None
        current = [SchemaField(f.name, LEGACY_TYPES.get(f.field_type, f.field_type)) for f in table.schema]
        drift = schema_drift(current, manifest.schema)
        refuse_drift(drift, manifest)
        if drift.added:  # DDL rather than a schema patch: the column exists for every later statement at once
            columns = ", ".join(f"ADD COLUMN IF NOT EXISTS `{f.name}` {f.type}" for f in drift.added)
            self._query(f"ALTER TABLE `{table.full_table_id.replace(':', '.')}` {columns}", {}, manifest.kpi)
            table = self.client.get_table(table.reference, retry=RETRY)
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
        return drift

    def _replace_partition(self, manifest: Manifest, open_file: OpenFile) -> str:
        destination = self.target.table(manifest.kpi)
        if manifest.decorator:
            check_alignment(manifest)
            destination += "$" + manifest.decorator
        if len(manifest.files) == 1:
            job = self._load_file(manifest, manifest.files[0], open_file, destination, truncate=True)
            _expect_rows(manifest, job.output_rows, "the load job wrote")
            return str(job.job_id)
        staging = self.target.table(f"_kpi_staging_{manifest.kpi}_{manifest.decorator or 'all'}_{manifest.run_id}")
        table = bigquery.Table(staging, schema=schema_fields(manifest.schema))
        table.expires = datetime.now().astimezone() + STAGING_EXPIRY
        self.client.create_table(table, exists_ok=True, retry=RETRY)
        try:
            for position, entry in enumerate(manifest.files):
                self._load_file(manifest, entry, open_file, staging, truncate=position == 0, into_kpi_table=False)
            _expect_rows(manifest, self.client.get_table(staging, retry=RETRY).num_rows, "the staging table holds")
            config = bigquery.CopyJobConfig(
                write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
                labels=job_labels(manifest),
            )
            copy = self.client.copy_table(
                staging, destination, job_config=config, job_id_prefix=job_prefix(manifest), retry=RETRY
            )
            copy.result(timeout=JOB_TIMEOUT.total_seconds())
            return str(copy.job_id)
        finally:
            self.client.delete_table(staging, not_found_ok=True, retry=RETRY)

    def _load_file(
        self,
        manifest: Manifest,
        entry: DataFile,
        open_file: OpenFile,
        destination: str,
        *,
        truncate: bool,
        into_kpi_table: bool = True,
    ) -> bigquery.LoadJob:
        config = load_job_config(manifest, truncate=truncate, into_kpi_table=into_kpi_table)
        with open_file(entry) as handle:
            # Always a resumable upload, in UPLOAD_CHUNK pieces (no ``size``: a small file would go as one multipart
            # request instead, a path some BigQuery emulators reject).
            job = self.client.load_table_from_file(
                handle, destination, job_config=config, job_id_prefix=job_prefix(manifest)
            )
            job.result(timeout=JOB_TIMEOUT.total_seconds())
        return job

    def _verify(self, manifest: Manifest) -> None:
        table = self.target.table(manifest.kpi)
        bounds = partition_bounds(manifest)
        if bounds is None:
            sql, params = f"SELECT COUNT(*) AS n FROM `{table}`", {}
        else:
            column, column_type, start, end = bounds
            sql = f"SELECT COUNT(*) AS n FROM `{table}` WHERE `{column}` >= @start AND `{column}` < @end"
            params = {"start": (column_type.value, start), "end": (column_type.value, end)}
        (row,) = self._query(sql, params, manifest.kpi)
        _expect_rows(manifest, row["n"], "the partition holds")

    def _record(self, record: LoadRecord) -> None:
        values = record.__dict__
        sql = f"INSERT INTO `{self._audit}` ({', '.join(f'`{name}`' for name in values)}) VALUES " + (
            "(" + ", ".join(f"@{name}" for name in values) + ")"
        )
        types = {f.name: f.field_type for f in AUDIT_SCHEMA}
        self._query(sql, {name: (types[name], value) for name, value in values.items()}, record.kpi)

    def _query(self, sql: str, params: dict[str, tuple[str, Any]], label: str) -> list[Any]:
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(name, kind, value) for name, (kind, value) in params.items()
            ],
            labels={"kpi": _label(label)},
        )
        job = self.client.query(sql, job_config=config, retry=RETRY)
        return list(job.result(timeout=JOB_TIMEOUT.total_seconds()))

    def remove(self, kpi: str, removals: Sequence[Removal], *, whole_table: bool = False) -> list[LoadRecord]:
        """One multi-statement transaction, DML only: a DELETE per partition (one for the whole table), then the
        removal rows into the audit table; BigQuery commits it whole or rolls it back. The values are typed
        literals, not query parameters: they are our own partition bounds and names, and BigQuery emulators
        refuse parameters inside a script. DML does not count toward the table's daily modification limit. The
        removal rows' ``loaded_at`` is BigQuery's CURRENT_TIMESTAMP() in the table (this machine's clock in the
        records returned)."""
        job_id = f"kpi_remove_{_label(kpi)}_{uuid.uuid4().hex[:12]}"  # BigQuery's own job id starts with it
        records = [removal.record(job_id, datetime.now(UTC)) for removal in removals]
        table = self.target.table(kpi)
        statements = ["BEGIN TRANSACTION;"]
        for bounds in [None] if whole_table else [r.bounds for r in removals]:
            statements.append(f"DELETE FROM `{table}` WHERE {_bounds_predicate(bounds)};")
        columns = ", ".join(f"`{f.name}`" for f in AUDIT_SCHEMA)
        types = [f.field_type for f in AUDIT_SCHEMA[:-1]]
        # loaded_at by BigQuery's clock, not the operator's: what is loaded is judged by loads after a removal, and
        # a laptop's clock running ahead would otherwise hide the loads of the next minutes.
        values = ", ".join(
            "("
            + ", ".join(_literal(t, v) for t, v in zip(types, list(r.__dict__.values())[:-1], strict=True))
            + ", CURRENT_TIMESTAMP())"
            for r in records
        )
        statements += [f"INSERT INTO `{self._audit}` ({columns}) VALUES {values};", "COMMIT TRANSACTION;"]
        config = bigquery.QueryJobConfig(labels={"kpi": _label(kpi)})
        try:
            script = "\n".join(statements)
            job = self.client.query(script, job_config=config, job_id_prefix=job_id + "_", retry=RETRY)
            job.result(timeout=JOB_TIMEOUT.total_seconds())
        except (google_errors.GoogleAPICallError, google_errors.RetryError, TimeoutError) as error:
            details = "; ".join(e.get("message", "") for e in getattr(error, "errors", None) or []) or str(error)
            raise LoadError(
                f"BigQuery refused the removal: {details}",
                where=f"{kpi} in {self.target.project}.{self.target.dataset}",
                hint="nothing was removed (one transaction); run the same command again once BigQuery allows it",
                retryable=not isinstance(error, google_errors.ClientError),
            ) from None
        return records


def _expect_rows(manifest: Manifest, found: int | None, what: str) -> None:
    if found != manifest.rows:
        raise LoadError(
            f"{what} {found} rows, the manifest says {manifest.rows}",
            where=where(manifest),
            hint="the files and the manifest disagree: export the partition again",
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


def load_job_config(manifest: Manifest, *, truncate: bool, into_kpi_table: bool = True) -> bigquery.LoadJobConfig:
    """The job BigQuery receives: explicit schema (never autodetect), no bad record tolerated, CREATE_NEVER (the
    table is created with its partitioning beforehand; a load must never create an unpartitioned one) and, into
    the KPI's table, its partitioning and clustering restated (BigQuery checks them against the table's)."""
    disposition = bigquery.WriteDisposition.WRITE_TRUNCATE if truncate else bigquery.WriteDisposition.WRITE_APPEND
    config = bigquery.LoadJobConfig(
        schema=schema_fields(manifest.schema),
        write_disposition=disposition,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        max_bad_records=0,
        labels=job_labels(manifest),
    )
    if into_kpi_table:
        config.time_partitioning = time_partitioning(manifest)
        config.clustering_fields = list(manifest.cluster_by) or None
    if manifest.format == "csv":
        config.source_format = bigquery.SourceFormat.CSV
        config.skip_leading_rows = 1
        config.allow_quoted_newlines = True
        config.encoding = "UTF-8"
    else:
        config.source_format = bigquery.SourceFormat.PARQUET
    return config


def schema_fields(fields: Sequence[SchemaField]) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(f.name, f.type, f.mode, description=f.description) for f in fields]


def check_alignment(manifest: Manifest) -> None:
    """A KPI partition must be exactly one BigQuery partition. BigQuery cuts TIMESTAMP columns at UTC days and
    DATETIME columns at their own midnight, so a Japan-time day of a TIMESTAMP column spans two of them, and
    BigQuery would refuse the rows that fall outside the decorator's partition."""
    bounds = partition_bounds(manifest)
    if bounds is None or manifest.decorator is None:
        return
    column, column_type, start, end = bounds
    first, stop = (v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in (start, end))  # UTC wall clock
    last = stop - (timedelta(microseconds=1) if isinstance(stop, datetime) else timedelta(days=1))
    if manifest.grain == "week":
        last = first  # every row of a week holds its first day (the exporter checks), one DAY partition
    fmt = DECORATOR_FORMAT[manifest.grain]
    partitions = sorted({first.strftime(fmt), last.strftime(fmt)})
    if partitions == [manifest.decorator]:
        return
    zone = "UTC" if column_type is BqType.TIMESTAMP else manifest.source_timezone or manifest.timezone
    raise LoadError(
        f"the {manifest.timezone} {manifest.grain} {manifest.partition} runs from {first} to {stop} ({zone}) in "
        f"{column_type.value} column '{column}', which BigQuery keeps in partitions {' and '.join(partitions)}",
        where=where(manifest),
        hint="BigQuery partitions TIMESTAMP columns by UTC time: declare the time column as DATE, or as DATETIME "
        "in the KPI's timezone, or set the KPI's timezone to UTC",
    )


def job_prefix(manifest: Manifest) -> str:
    """Job ids that say what they loaded, for the BigQuery console's job history."""
    return f"kpi_{manifest.kpi}_{manifest.decorator or 'snapshot'}_".lower()


def job_labels(manifest: Manifest) -> dict[str, str]:
    return {"kpi": _label(manifest.kpi), "run": _label(manifest.run_id)}


def _label(text: str) -> str:
    """BigQuery label values: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in text.lower())[:63]


def _described(fields: Sequence[bigquery.SchemaField]) -> list[tuple[str, str]]:
    return [(f.name, f.description or "") for f in sorted(fields, key=lambda f: f.name)]


@contextmanager
def _google_errors(manifest: Manifest) -> Iterator[None]:
    """BigQuery's errors as LoadErrors naming the partition; server-side and quota errors are retryable."""
    try:
        yield
    except (google_errors.GoogleAPICallError, google_errors.RetryError, TimeoutError) as error:
        retryable = not isinstance(error, google_errors.ClientError) or isinstance(
            error, google_errors.TooManyRequests | google_errors.Forbidden
        )
        details = "; ".join(e.get("message", "") for e in getattr(error, "errors", None) or []) or str(error)
        raise LoadError(
            f"BigQuery refused the load: {details}",
            where=where(manifest),
            hint="the partition is unchanged; "
            + ("the load can be retried" if retryable else "fix what BigQuery names, then load again"),
            retryable=retryable,
        ) from None


def _bounds_predicate(bounds: Bounds | None) -> str:
    """The rows between a partition's bounds (see :func:`partition_bounds`), as SQL; every row for None."""
    if bounds is None:
        return "TRUE"
    column, column_type, start, end = bounds
    return f"`{column}` >= {_literal(column_type.value, start)} AND `{column}` < {_literal(column_type.value, end)}"


def _literal(kind: str, value: Any) -> str:
    """A typed GoogleSQL literal of one of our own values (partition bounds, audit fields)."""
    if value is None:
        return "NULL"
    if kind in {"INT64", "INTEGER"}:
        return str(int(value))
    if kind == "STRING":
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    if kind in {"DATE", "DATETIME", "TIMESTAMP"}:
        text = (
            value.isoformat() if isinstance(value, date) and not isinstance(value, datetime) else value.isoformat(" ")
        )
        return f"{kind} '{text}'"
    raise LoadError(
        f"a partition bound of type {kind} cannot be written",
        hint="declare the time column DATE, DATETIME or TIMESTAMP",
    )
