"""Source databases the exporter reads from, chosen by URL (``KPI_SOURCE``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline.errors import SourceError
from pipeline.sources.base import ResultStream, Source

__all__ = ["ResultStream", "Source", "open_source"]


def open_source(url: str, *, explain_max_rows: int | None = None) -> Source:
    """``mysql://…`` (also ``mariadb://``, ``aurora://``) or ``duckdb:///path/file.duckdb``. With
    ``explain_max_rows``, a MySQL source EXPLAINs each query before sending it and refuses a full scan over that
    many rows (:mod:`pipeline.sources.explain`)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("mysql", "mariadb", "aurora"):
        from pipeline.sources.mysql import MySqlSource

        source = MySqlSource(url)
        if explain_max_rows is not None:
            from pipeline.sources.explain import ExplainGuard

            source.explain_guard = ExplainGuard(explain_max_rows)
        return source
    if scheme == "duckdb":
        from pipeline.sources.duckdb import DuckDbSource

        return DuckDbSource(url)
    raise SourceError(
        f"unknown source URL scheme {scheme!r}" if scheme else "the source URL has no scheme",
        hint="use mysql://user@host:3306/db or duckdb:///path/to/file.duckdb",
    )
