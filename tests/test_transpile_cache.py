"""The DuckDB text of queries kept between runs: read when its fingerprint is this code's, written after a miss."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pipeline.core.mysql_on_duckdb import to_duckdb
from pipeline.core.parse import parse_kpi
from pipeline.core.query import Query
from pipeline.core.render import render_duckdb
from pipeline.parse_cache import fingerprint, read_entries, write_entries
from pipeline.transpile_cache import FILE_NAME, transpiles_kept


def fresh_query() -> Query:
    """A query whose text this process has never rendered (the transpiles of a process are kept in memory)."""
    text = (
        "/*---\ngrain: none\ncolumns:\n  x: {type: STRING}\n---*/\n"
        f"SELECT YEARWEEK(created_at) AS x FROM orders WHERE status <> '{uuid.uuid4().hex}'\n"
    )
    kpi, problems = parse_kpi("q.sql", text.encode(), "q")
    assert problems == []
    assert kpi is not None
    return kpi.query


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KPI_CACHE", str(tmp_path))
    return tmp_path / FILE_NAME


def test_a_transpile_is_kept_for_the_next_run(cache: Path) -> None:
    query = fresh_query()
    with transpiles_kept():
        rendered = render_duckdb(query, {})
    assert rendered.sql == to_duckdb(query.tree)
    assert "MYSQL_YEARWEEK(" in rendered.sql
    assert read_entries(cache, fingerprint())[query.sql] == rendered.sql


def test_a_kept_transpile_is_used_instead_of_transpiling(cache: Path) -> None:
    query = fresh_query()
    write_entries(cache, fingerprint(), {query.sql: "SELECT 'kept by an earlier run'"})
    with transpiles_kept():
        assert render_duckdb(query, {}).sql == "SELECT 'kept by an earlier run'"


def test_transpiles_of_other_code_are_ignored(cache: Path) -> None:
    query = fresh_query()
    write_entries(cache, "another version of the transpiler", {query.sql: "SELECT 'stale'"})
    with transpiles_kept():
        assert render_duckdb(query, {}).sql == to_duckdb(query.tree)
    kept = read_entries(cache, fingerprint())
    assert kept[query.sql] == to_duckdb(query.tree)
    assert "SELECT 'stale'" not in kept.values()


def test_without_a_cache_folder_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPI_CACHE", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    query = fresh_query()
    with transpiles_kept():
        assert render_duckdb(query, {}).sql == to_duckdb(query.tree)
    assert list(tmp_path.iterdir()) == []
