"""The DuckDB text of KPI queries kept between runs, beside the parse cache (:mod:`pipeline.parse_cache`).

Why: a command that shows a query as the embedded DuckDB demo receives it — ``kpi backfill --dry-run`` on the
default environment — otherwise imports sqlglot, parses the query and transpiles it: measured with a cached KPI,
0.53 s of the dry run's 0.70 s under cProfile, and twice its CPU time against a warm transpile (0.35 s against
0.17 s, on a machine at load 10). Only what the parse cache cannot give: it keeps the parse, not the SQL.

A transpile depends on the query's text alone, given the transpiler: entries are keyed by the text and belong
to the parse cache's fingerprint (the source of ``pipeline/core``, where the transpile rules live, and the
installed sqlglot), so a changed rule or library misses. Same folder, same writing (atomic, after a run that
transpiled something new, quietly not where it cannot), same trust model: the user's own cache folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.core.render import DUCKDB_SQL_MAX, known_duckdb_sql, remember_duckdb_sql
from pipeline.parse_cache import fingerprint, folder_from_environment, read_entries, write_entries

FILE_NAME = "kpi-duckdb-sql.pickle"


@contextmanager
def transpiles_kept() -> Iterator[None]:
    """Renders inside the block find the transpiles of earlier runs; new ones are kept for the next."""
    folder = folder_from_environment()
    if folder is None:
        yield
        return
    path = folder / FILE_NAME
    stored = {k: v for k, v in read_entries(path, fingerprint()).items() if isinstance(v, str)}
    remember_duckdb_sql(stored)
    yield
    new = {text: sql for text, sql in known_duckdb_sql().items() if text not in stored}
    if new:
        kept = dict(list({**stored, **new}.items())[-DUCKDB_SQL_MAX:])  # the newest, when there are too many
        write_entries(path, fingerprint(), kept)
