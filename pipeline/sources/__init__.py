"""Source databases the exporter reads from, chosen by URL (``KPI_SOURCE``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pipeline.core.query import Query
from pipeline.core.render import Rendered, render_duckdb, render_mysql
from pipeline.errors import SourceError
from pipeline.sources.base import ResultStream, Source

__all__ = ["ResultStream", "Source", "open_source", "renderer"]

MYSQL_SCHEMES = ("mysql", "mariadb", "aurora")


def renderer(url: str) -> Callable[[Query, Mapping[str, Any]], Rendered]:
    """What ``open_source(url).render`` does, without importing the source's driver (DuckDB and pyarrow cost
    ``kpi backfill --dry-run`` more than half of its 0.3 s budget); a SourceError for an unknown scheme."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in MYSQL_SCHEMES:
        return render_mysql
    if scheme == "duckdb":
        return render_duckdb
    raise _unknown(scheme)


def open_source(url: str, *, explain_max_rows: int | None = None) -> Source:
    """``mysql://…`` (also ``mariadb://``, ``aurora://``) or ``duckdb:///path/file.duckdb``. With
    ``explain_max_rows``, a MySQL source EXPLAINs each query before sending it and refuses a full scan over that
    many rows (:mod:`pipeline.sources.explain`)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in MYSQL_SCHEMES:
        from pipeline.sources.mysql import MySqlSource

        source = MySqlSource(url)
        if explain_max_rows is not None:
            from pipeline.sources.explain import ExplainGuard

            source.explain_guard = ExplainGuard(explain_max_rows)
        return source
    if scheme == "duckdb":
        from pipeline.sources.duckdb import DuckDbSource

        return DuckDbSource(url)
    raise _unknown(scheme)


def _unknown(scheme: str) -> SourceError:
    return SourceError(
        f"unknown source URL scheme {scheme!r}" if scheme else "the source URL has no scheme",
        hint="use mysql://user@host:3306/db or duckdb:///path/to/file.duckdb",
    )
