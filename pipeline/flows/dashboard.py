"""A Looker Studio report on a KPI's BigQuery table, as a Linking API URL (no API call, no credentials needed).

https://developers.google.com/looker-studio/integrate/linking-api — ``reporting/create`` opens a new report with
one BigQuery data source configured; the viewer needs read access to the table, and "Edit and share" saves it.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from pipeline.core.spec import Kpi
from pipeline.errors import UsageError

LINKING_API = "https://lookerstudio.google.com/reporting/create"


def bigquery_dataset(warehouse_url: str) -> tuple[str, str]:
    """``bigquery://project/dataset`` → (project, dataset)."""
    parts = urlsplit(warehouse_url)
    dataset = parts.path.strip("/")
    if parts.scheme != "bigquery" or not parts.netloc or not dataset or "/" in dataset:
        raise UsageError(
            f"Looker Studio reads BigQuery, and the warehouse is {warehouse_url}",
            hint="set KPI_WAREHOUSE (or --warehouse) to bigquery://PROJECT/DATASET",
        )
    return parts.netloc, dataset


def report_url(kpi: Kpi, warehouse_url: str) -> str:
    project, dataset = bigquery_dataset(warehouse_url)
    title = kpi.description or kpi.name
    parameters = {
        "c.reportName": title,
        "ds.ds0.datasourceName": kpi.name,
        "ds.ds0.connector": "bigQuery",
        "ds.ds0.type": "TABLE",
        "ds.ds0.projectId": project,
        "ds.ds0.datasetId": dataset,
        "ds.ds0.tableId": kpi.name,
    }
    return f"{LINKING_API}?{urlencode(parameters)}"
