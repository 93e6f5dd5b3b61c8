"""What the exporter needs from a source database: render a KPI for it, then stream one result as Arrow arrays."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # annotations only: `kpi backfill --dry-run` renders queries without Arrow (tests/test_imports.py)
    import pyarrow as pa

    from pipeline.core.query import Query
    from pipeline.core.render import Rendered
    from pipeline.core.typeplan import SourceColumn

BATCH_ROWS = 16_384  # rows per Arrow batch: large enough for vectorised work, small enough for flat memory


@dataclass
class ResultStream:
    """An open result: its columns (known before any row arrives) and its rows in batches.

    ``text`` tells how the arrays hold values: MySQL text-protocol bytes (True) or typed Arrow values (False).
    """

    columns: list[SourceColumn]
    batches: Iterator[list[pa.Array]]
    text: bool


class Source(Protocol):
    url: str  # for messages and manifests: never contains a password
    dialect: str  # the SQL dialect `kpi render` shows for it

    def render(self, query: Query, values: Mapping[str, Any]) -> Rendered: ...

    def stream(
        self, rendered: Rendered, *, timeout: timedelta, zone: ZoneInfo, where: str
    ) -> AbstractContextManager[ResultStream]:
        """Run ``rendered`` read-only within ``timeout``, with the session's clock in ``zone``; ``where`` names
        the KPI for error messages."""
        ...
