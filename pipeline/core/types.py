"""Warehouse column types as a KPI header names them: BigQuery's standard SQL type names.

The header declares BigQuery names because that is where dashboard builders meet the data; the exporter maps
MySQL's result types onto them and the DuckDB warehouse has an equivalent for each
(https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class BqType(StrEnum):
    STRING = "STRING"
    INT64 = "INT64"
    NUMERIC = "NUMERIC"
    BIGNUMERIC = "BIGNUMERIC"
    FLOAT64 = "FLOAT64"
    BOOL = "BOOL"
    DATE = "DATE"
    DATETIME = "DATETIME"
    TIMESTAMP = "TIMESTAMP"
    TIME = "TIME"
    JSON = "JSON"
    BYTES = "BYTES"


# The numeric types: what a report charts, a diff compares and anomaly scoring sums as a measure. A StrEnum's
# members equal their text, so a type name from a manifest or a schema ("INT64") is found in it as it is.
MEASURE_TYPES = frozenset({BqType.INT64, BqType.NUMERIC, BqType.BIGNUMERIC, BqType.FLOAT64})


# Other spellings people bring from MySQL, legacy BigQuery SQL or pandas. The header keeps one spelling per
# type so that files stay uniform and searchable; these only feed the "did you mean" of the error message.
TYPE_ALIASES: dict[str, BqType] = {
    "INT": BqType.INT64,
    "INTEGER": BqType.INT64,
    "BIGINT": BqType.INT64,
    "SMALLINT": BqType.INT64,
    "TINYINT": BqType.INT64,
    "FLOAT": BqType.FLOAT64,
    "DOUBLE": BqType.FLOAT64,
    "REAL": BqType.FLOAT64,
    "DECIMAL": BqType.NUMERIC,
    "BIGDECIMAL": BqType.BIGNUMERIC,
    "BOOLEAN": BqType.BOOL,
    "VARCHAR": BqType.STRING,
    "TEXT": BqType.STRING,
    "CHAR": BqType.STRING,
    "BLOB": BqType.BYTES,
    "BINARY": BqType.BYTES,
    "VARBINARY": BqType.BYTES,
}

# Types that may carry a partition at each grain (BigQuery time-unit column partitioning).
PARTITION_TYPES: dict[str, frozenset[BqType]] = {
    "day": frozenset({BqType.DATE, BqType.DATETIME, BqType.TIMESTAMP}),
    "month": frozenset({BqType.DATE, BqType.DATETIME, BqType.TIMESTAMP}),
    "hour": frozenset({BqType.DATETIME, BqType.TIMESTAMP}),
    # A week is BigQuery's DAY partition of its first day, so its rows hold exactly that date.
    "week": frozenset({BqType.DATE}),
}

# BigQuery clusters only on these top-level types.
CLUSTER_TYPES = frozenset(
    {
        BqType.STRING,
        BqType.INT64,
        BqType.NUMERIC,
        BqType.BIGNUMERIC,
        BqType.BOOL,
        BqType.DATE,
        BqType.DATETIME,
        BqType.TIMESTAMP,
    }
)

# Types a query parameter (`params`) may have: those both pymysql and DuckDB bind natively.
PARAM_TYPES = frozenset(
    {
        BqType.STRING,
        BqType.INT64,
        BqType.NUMERIC,
        BqType.FLOAT64,
        BqType.BOOL,
        BqType.DATE,
        BqType.DATETIME,
        BqType.TIMESTAMP,
    }
)


def coerce_param(param_type: BqType, value: Any) -> object:
    """A parameter value from YAML or the command line as the Python value the drivers bind."""
    text = value if isinstance(value, str) else None
    try:
        if param_type is BqType.STRING:
            return str(value)
        if param_type is BqType.BOOL:
            if isinstance(value, bool):
                return value
            if text is not None and text.lower() in ("true", "false"):
                return text.lower() == "true"
        elif param_type is BqType.INT64 and not isinstance(value, bool):
            return int(value) if isinstance(value, int) else int(str(text))
        elif param_type is BqType.NUMERIC and not isinstance(value, bool):
            return Decimal(str(value))
        elif param_type is BqType.FLOAT64 and not isinstance(value, bool):
            return float(value) if isinstance(value, int | float) else float(str(text))
        elif param_type is BqType.DATE:
            if isinstance(value, date) and not isinstance(value, datetime):
                return value
            return date.fromisoformat(str(text))
        elif param_type in (BqType.DATETIME, BqType.TIMESTAMP):
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(text))
            if param_type is BqType.DATETIME and moment.tzinfo is not None:
                raise ValueError("a DATETIME has no time zone")
            return moment
    except (ValueError, TypeError, InvalidOperation):
        pass
    raise ValueError(f"{value!r} is not a valid {param_type.value}")
