"""The notebook API: loaded KPIs and previews as pandas DataFrames (``pipeline.read``, ``pipeline.preview``).

Only the pandas side lives here: reading is :mod:`pipeline.flows.read` (the warehouse's own reader, opened
read-only) and previewing :mod:`pipeline.flows.preview` (``kpi preview``'s engine); this module turns their
Arrow tables into DataFrames without losing a type. pandas is imported inside these functions only (it is not a
runtime dependency, and no Lambda package has it); importing this module imports neither pandas nor NumPy.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipeline import settings
from pipeline.errors import UsageError
from pipeline.flows.preview import DEFAULT_LIMIT, Severity, run_preview
from pipeline.flows.read import Moment, as_moment, queries_folder, read_arrow

if TYPE_CHECKING:
    import pandas as pd


def read(
    name: str,
    start: Moment = None,
    end: Moment = None,
    env: str | None = None,
    *,
    queries: str | Path | None = None,
    warehouse: str | None = None,
) -> pd.DataFrame:
    """A KPI's loaded partitions from the environment's warehouse (BigQuery or DuckDB) as a pandas DataFrame.

    ``start`` and ``end`` name partitions (``"2024-03-01"``, ``"2024-03"``, ``"2024-03-01T09"``, a ``date`` or a
    ``datetime`` read in the KPI's timezone): both are included, either may be left open. ``queries`` is the KPI
    folder (default ``KPI_QUERIES`` or ``queries/``); ``warehouse`` a URL instead of the environment's.

    Types are kept: INT64 → ``Int64`` (nullable), NUMERIC and BIGNUMERIC → ``decimal.Decimal`` objects (exact,
    never float), DATE → ``date32[pyarrow]`` (values are ``datetime.date``), DATETIME → naive ``datetime64[us]``,
    TIMESTAMP → ``datetime64[us, UTC]``, BOOL → ``boolean``, TIME → ``time64[us][pyarrow]``.
    """
    return to_dataframe(read_arrow(name, start, end, env, queries=queries, warehouse=warehouse))


def preview(
    name: str,
    date: Moment = None,
    limit: int = DEFAULT_LIMIT,
    env: str | None = None,
    *,
    queries: str | Path | None = None,
    params: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """What ``kpi preview`` shows, as a DataFrame of the first ``limit`` rows (typed as :func:`read` types them).

    ``df.attrs["columns"]`` holds each column's source, Arrow, warehouse and declared types and its findings;
    ``df.attrs["findings"]`` every finding; a finding that would stop the export is also raised as a
    :class:`PreviewWarning`. Nothing is written anywhere.
    """
    result = run_preview(
        name,
        queries=queries_folder(queries),
        environment=settings.load_environment(env),
        date=as_moment(date),
        limit=limit,
        params=params,
    )
    frame = to_dataframe(result.rows)
    summary = result.to_dict()
    del summary["rows"]
    frame.attrs.update(summary)
    for finding in result.findings:
        if finding.severity is Severity.STOP:
            fix = f" — fix: {finding.fix}" if finding.fix else ""
            warnings.warn(f"{finding.column}: {finding.message}{fix}", PreviewWarning, stacklevel=2)
    return frame


class PreviewWarning(UserWarning):
    """The export or the load would stop on what the preview saw."""


def to_dataframe(table: pa.Table) -> pd.DataFrame:
    """Arrow → pandas without losing a type: nullable integers and booleans, exact decimals, dates as dates."""
    try:
        import pandas as pd
    except ImportError:
        raise UsageError(
            "pandas is not installed", hint="pip install pandas (the notebook API needs it; the pipeline does not)"
        ) from None

    def dtype(arrow: pa.DataType) -> Any:
        if pa.types.is_int64(arrow):
            return pd.Int64Dtype()
        if pa.types.is_boolean(arrow):
            return pd.BooleanDtype()
        if pa.types.is_date32(arrow) or pa.types.is_time64(arrow):
            return pd.ArrowDtype(arrow)
        return None  # decimals: Decimal objects; timestamps: datetime64[us] (UTC-aware for TIMESTAMP)

    return table.to_pandas(types_mapper=dtype, coerce_temporal_nanoseconds=False)


__all__: Sequence[str] = ["PreviewWarning", "preview", "read", "to_dataframe"]
