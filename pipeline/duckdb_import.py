"""DuckDB, imported so that its statements stop looking for pandas where pandas is not installed.

Why: DuckDB's Python binding (1.5.5) imports pandas on every ``execute`` — to see whether a parameter or a
replacement scan is a DataFrame; a meta-path hook counts one to two ``import pandas`` a statement. Where pandas is
installed the first import is cached. Where it is not — the Lambda packages, ``.venv-lambda`` and any install
without the notebook's pandas, the runtime this package is built for — every attempt fails only after searching
each entry of ``sys.path``: sampled with py-spy, that search was 4.2 s of ``kpi demo``'s 11.6 s in
``.venv-lambda`` (the same demo took 6.4 s in the development venv, which has pandas). A module that is absent is
therefore marked absent once, as the import system provides for (``None`` in ``sys.modules`` makes ``import``
fail at once with :class:`ModuleNotFoundError`); where pandas is installed nothing changes, and it is not
imported here (0.26 s of CPU).

Every module of this package that uses DuckDB imports it from here: ``from pipeline.duckdb_import import duckdb``.
"""

from __future__ import annotations

import importlib.util
import sys

# what DuckDB's binding imports by name on every statement (counted: pandas only; the standard library's decimal
# and uuid once, and they are always there)
LOOKED_FOR = ("pandas",)


def mark_absent(names: tuple[str, ...]) -> list[str]:
    """Mark each of ``names`` that cannot be imported as absent in ``sys.modules``; the names marked."""
    marked = []
    for name in names:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]  # the import system's "known absent"
            marked.append(name)
    return marked


mark_absent(LOOKED_FOR)

import duckdb  # noqa: E402  # after the marking: its own imports see it

__all__ = ["duckdb"]
