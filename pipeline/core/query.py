"""A query that passed the SQL gate (:mod:`pipeline.core.sqlgate`), as plain values.

Apart from the gate so that a :class:`~pipeline.core.spec.Kpi` can be built, pickled and read back (the parse
cache) without importing sqlglot, which alone costs about 0.18 s of CPU per process: a command that needs a
cached KPI and no SQL tree never pays for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot import exp


@dataclass(frozen=True)
class Placeholder:
    """A ``:name`` in the SQL; ``start``/``end`` are character offsets of ``:name`` in ``Query.sql``."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class OutputColumn:
    """A column of the result, named by the outermost SELECT list; ``offset`` locates it in the SQL."""

    name: str
    offset: int


@dataclass(frozen=True)
class Query:
    """A query that passed the gate: its text, its placeholders in order of appearance, its output columns."""

    sql: str
    placeholders: tuple[Placeholder, ...]
    columns: tuple[OutputColumn, ...]
    parsed: exp.Expr | None = field(default=None, compare=False, repr=False)

    @property
    def parameter_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.placeholders)

    @property
    def tree(self) -> exp.Expr:
        """sqlglot's tree of ``sql``; parsed again when the query came from the parse cache (which keeps none)."""
        if self.parsed is None:
            import sqlglot

            with quiet_sqlglot():
                object.__setattr__(self, "parsed", sqlglot.parse_one(self.sql, read="mysql"))
        assert self.parsed is not None
        return self.parsed

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the tree: it is large, and the text alone decides it."""
        return {**self.__dict__, "parsed": None}


@contextmanager
def quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to a raw Command; the gate reports that itself. Here, beside the
    query, and not in :mod:`pipeline.core.sqlgate`: the lazily parsed tree needs it without the gate. logging is
    imported here, with sqlglot (which imports it anyway): a command that reads cached KPIs needs neither."""
    import logging

    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
