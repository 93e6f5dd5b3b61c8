"""kpi-pipeline: KPI queries as plain SQL files, exported from MySQL and loaded into BigQuery by partition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import date, datetime

    import pandas

__version__ = "0.1.0"

__all__ = ["__version__", "preview", "read"]


def read(
    name: str,
    start: str | date | datetime | None = None,
    end: str | date | datetime | None = None,
    env: str | None = None,
    **options: Any,
) -> pandas.DataFrame:
    """A KPI's loaded partitions, ``start`` to ``end`` included, from the environment's warehouse as a DataFrame
    with its types kept (see :func:`pipeline.notebook.read`). pandas is imported here, never by ``import pipeline``."""
    from pipeline.notebook import read as read_kpi

    return read_kpi(name, start, end, env, **options)


def preview(
    name: str, date: str | date | datetime | None = None, limit: int = 20, env: str | None = None, **options: Any
) -> pandas.DataFrame:
    """What ``kpi preview`` shows, as a DataFrame of the first ``limit`` rows; nothing is written anywhere (see
    :func:`pipeline.notebook.preview`)."""
    from pipeline.notebook import preview as preview_kpi

    return preview_kpi(name, date, limit, env, **options)
