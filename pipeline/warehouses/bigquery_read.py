"""Reading BigQuery: a KPI table's schema (for ``kpi preview``) and its rows between partitions (``pipeline.read``).

Apart from :mod:`pipeline.warehouses.bigquery`, the loader, because reading needs pyarrow (the rows arrive as
Arrow) and the loader Lambda's package has none: pyarrow is imported when rows are read. A leaf: the warehouse
passes its client and its bounds in. Both keep the client's retries bounded: a preview waits
:data:`SCHEMA_DEADLINE` seconds for the table's types (it still stands without them), a read retries as the
loader does (``retry``: :data:`~pipeline.warehouses.bigquery.RETRY`) and waits at most ``timeout`` seconds
(:data:`~pipeline.warehouses.bigquery.JOB_TIMEOUT`) for its query.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from pipeline.core.manifest import SchemaField
from pipeline.core.types import BqType
from pipeline.errors import KpiError
from pipeline.warehouses.reading import canonical, not_loaded, order_by, row_range

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.core.spec import Kpi

SCHEMA_DEADLINE = 10.0  # seconds: a preview waits seconds for the warehouse's types, not the client's ten minutes
LEGACY_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}  # how the API may name standard types


def standard_type(field_type: str) -> str:
    return LEGACY_TYPES.get(field_type, field_type)


def table_schema(client: bigquery.Client, table_id: str) -> list[SchemaField] | None:
    """The table's columns in standard type names; None when BigQuery has no such table."""
    retry = bigquery.DEFAULT_RETRY.with_deadline(SCHEMA_DEADLINE)
    try:
        table = client.get_table(table_id, retry=retry, timeout=SCHEMA_DEADLINE)
    except google_errors.NotFound:
        return None
    return [SchemaField(f.name, standard_type(f.field_type)) for f in table.schema]


def read_rows(
    client: bigquery.Client,
    table_id: str,
    kpi: Kpi,
    first: datetime | None,
    last: datetime | None,
    *,
    url: str,
    retry: Any,
    timeout: float,
) -> pa.Table:
    """One query job: the columns the table has, the partitions' rows by the time column's range (query
    parameters in the column's type), ordered by it; the rows come back through the REST API as Arrow."""
    try:
        schema = client.get_table(table_id, retry=retry).schema
    except google_errors.NotFound:
        raise not_loaded(kpi, url) from None
    types = {f.name: BqType(standard_type(f.field_type)) for f in schema}
    bounds = row_range(kpi, types, first, last)
    column_type = types.get(kpi.time_column or "")
    parameters = [
        bigquery.ScalarQueryParameter(f"p{index}", column_type.value if column_type else "STRING", value)
        for index, (_, value) in enumerate(bounds)
    ]
    where = " AND ".join(f"`{kpi.time_column}` {op} @p{index}" for index, (op, _) in enumerate(bounds))
    ordered = order_by(kpi)
    sql = (
        f"SELECT {', '.join(f'`{name}`' for name in types)} FROM `{table_id}`"
        + (f" WHERE {where}" if where else "")
        + (f" ORDER BY `{ordered}`" if ordered else "")
    )
    config = bigquery.QueryJobConfig(query_parameters=parameters, labels={"kpi": kpi.name.lower()})
    try:
        job = client.query(sql, job_config=config, retry=retry)
        rows = job.result(timeout=timeout)
        table = rows.to_arrow(create_bqstorage_client=False)
    except (google_errors.GoogleAPICallError, google_errors.RetryError) as error:
        raise KpiError(f"BigQuery refused the query: {error}", where=kpi.name) from None
    return canonical(table, types)
