"""The parse cache and the single-KPI path of the catalog: faster, and never a different answer.

A warm catalog must be equal to a cold one (every KPI, every problem of the broken corpus), a changed file must
be parsed again, a cache of another parser must be ignored, and ``load_one`` must answer exactly as
``load(...).get`` would — duplicates, broken files, names set in the header, names spelt with YAML escapes.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from pipeline import catalog, parse_cache
from pipeline.core.render import render_duckdb
from pipeline.errors import SpecError, UsageError
from tests.conftest import CORPUS, ROOT

QUERIES = ROOT / "queries"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("KPI_CACHE", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


def _entries(folder: Path) -> dict[str, object]:
    fmt, fingerprint, entries = pickle.loads((folder / parse_cache.FILE_NAME).read_bytes())
    assert (fmt, fingerprint) == (parse_cache.FORMAT, f"{parse_cache.fingerprint()} entries=2")
    assert isinstance(entries, dict)
    return entries


def _copy(tmp_path: Path, *folders: Path) -> Path:
    target = tmp_path / "queries"
    for folder in folders:
        shutil.copytree(folder, target, dirs_exist_ok=True)
    return target


def test_a_warm_catalog_equals_a_cold_one_for_every_kpi_and_every_problem(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy(tmp_path, QUERIES, CORPUS)
    monkeypatch.setenv("KPI_CACHE", "off")
    uncached = catalog.load([folder])
    assert not cache_dir.exists()
    monkeypatch.setenv("KPI_CACHE", str(cache_dir))
    cold = catalog.load([folder])
    warm = catalog.load([folder])
    assert len(_entries(cache_dir)) == len(uncached.files) > 40
    assert uncached.kpis == cold.kpis == warm.kpis
    assert set(warm.kpis) >= {"hourly_orders", "users_by_plan"}  # the corpus claims daily_sales twice
    assert uncached.problems == cold.problems == warm.problems
    assert len(warm.problems) > 40
    # The SQL tree is not cached; it is parsed again on demand and renders the same DuckDB SQL.
    kpi = warm.kpis["hourly_orders"]
    assert kpi.query.parsed is None
    fresh = uncached.kpis["hourly_orders"]
    assert (
        render_duckdb(kpi.query, {"start": 1, "end": 2}).sql == render_duckdb(fresh.query, {"start": 1, "end": 2}).sql
    )


def test_a_changed_file_is_parsed_again(cache_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tmp_path, QUERIES)
    assert catalog.load([folder]).kpis["daily_sales"].lookback == 2
    path = folder / "daily_sales.sql"
    path.write_text(path.read_text(encoding="utf-8").replace("lookback: 2", "lookback: 5"), encoding="utf-8")
    assert catalog.load([folder]).kpis["daily_sales"].lookback == 5
    path.write_text(path.read_text(encoding="utf-8").replace("lookback: 5", "lookback: two"), encoding="utf-8")
    broken = catalog.load([folder])
    assert "daily_sales" not in broken.kpis
    assert [p.rule for p in broken.problems] == ["wrong-type"]


def test_the_same_bytes_under_another_path_are_their_own_entry(cache_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tmp_path, QUERIES)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(folder / "hourly_orders.sql", other / "hourly_orders.sql")
    assert catalog.load([folder]).kpis["hourly_orders"].path == "queries/hourly_orders.sql"
    assert catalog.load([other]).kpis["hourly_orders"].path == "other/hourly_orders.sql"


def test_a_cache_of_another_parser_or_a_damaged_cache_is_ignored(cache_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tmp_path, QUERIES)
    right = catalog.load([folder])
    entries = _entries(cache_dir)
    forged: dict[str, tuple[None, list[object]]] = dict.fromkeys(
        entries, (None, [])
    )  # every file "parsed" to nothing: must never be believed
    cache_file = cache_dir / parse_cache.FILE_NAME
    cache_file.write_bytes(pickle.dumps((parse_cache.FORMAT, "another parser", forged)))
    assert catalog.load([folder]).kpis == right.kpis
    assert len(_entries(cache_dir)) == len(entries)  # rewritten with this parser's fingerprint
    cache_file.write_bytes(b"not a pickle")
    assert catalog.load([folder]).kpis == right.kpis


def test_each_entry_is_read_on_its_own_and_a_damaged_one_is_parsed_again(cache_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tmp_path, QUERIES)
    right = catalog.load([folder])
    entries = _entries(cache_dir)
    assert all(isinstance(blob, bytes) for blob in entries.values())  # unpickled only when asked for
    damaged = dict.fromkeys(entries, b"not a pickle")
    (cache_dir / parse_cache.FILE_NAME).write_bytes(
        pickle.dumps((parse_cache.FORMAT, f"{parse_cache.fingerprint()} entries=2", damaged))
    )
    cache = parse_cache.ParseCache(cache_dir)
    assert catalog.load([folder]).kpis == right.kpis
    assert cache.parse("queries/x.sql", b"not a KPI", "x")[0] is None
    assert cache.misses == 1
    assert all(isinstance(blob, bytes) and pickle.loads(blob) for blob in _entries(cache_dir).values())  # kept again


def test_no_cache_when_off_and_no_error_where_it_cannot_be_written(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy(tmp_path, QUERIES)
    monkeypatch.setenv("KPI_CACHE", "off")
    assert "daily_sales" in catalog.load([folder]).kpis
    assert not cache_dir.exists()
    blocked = tmp_path / "read-only"
    blocked.mkdir()
    blocked.chmod(0o500)
    try:
        monkeypatch.setenv("KPI_CACHE", str(blocked / "cache"))
        if os.access(blocked, os.W_OK):  # root writes anyway: a file where the folder should be blocks it too
            (blocked / "cache").write_text("a file, not a folder")
        assert "daily_sales" in catalog.load([folder]).kpis
    finally:
        blocked.chmod(0o700)


def test_the_default_cache_is_the_users_cache_folder_never_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KPI_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.chdir(tmp_path)
    folder = _copy(tmp_path, QUERIES)
    catalog.load([folder])
    assert (tmp_path / "user-cache" / "kpi-pipeline" / parse_cache.FILE_NAME).is_file()
    assert not (tmp_path / ".kpi").exists()  # a planted project file is never unpickled
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_cache.folder_from_environment() == tmp_path / "home" / ".cache" / "kpi-pipeline"
    assert parse_cache.folder_from_environment({"KPI_CACHE": "off", "XDG_CACHE_HOME": "/x"}) is None


# -- load_one: the files that could claim the name, and the same answer as load().get


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def _named(source: str, name_line: str) -> str:
    """An example KPI file with its `name:` line replaced (or added) by ``name_line``."""
    text = (QUERIES / source).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("name:")]
    return "\n".join([lines[0], name_line, *lines[1:]]) + "\n"


def _same_answer(paths: list[Path], name: str) -> object:
    """What load_one answers, after checking that load().get answers the same (a KPI or the same error)."""
    try:
        expected: object = catalog.load(paths).get(name)
    except (SpecError, UsageError) as error:
        expected = (type(error), str(error), error.hint)
    try:
        got: object = catalog.load_one(paths, name)
    except (SpecError, UsageError) as error:
        got = (type(error), str(error), error.hint)
    assert got == expected
    return got


def test_load_one_parses_only_the_files_that_could_claim_the_name(cache_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tmp_path, QUERIES)
    for index in range(30):
        _write(folder, f"other_{index:02d}.sql", _named("users_by_plan.sql", f"name: other_{index:02d}"))
    kpi = catalog.load_one([folder], "daily_sales")
    assert kpi.name == "daily_sales"
    assert len(_entries(cache_dir)) == 1  # only daily_sales.sql was parsed (and cached)


def test_load_one_finds_a_name_set_in_the_header_and_spelt_with_an_escape(cache_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "queries"
    _write(folder, "a_file.sql", _named("daily_sales.sql", "name: revenue"))
    _write(folder, "b_file.sql", _named("users_by_plan.sql", 'name: "\\x70lans"'))  # "\x70" is "p"
    _write(folder, "c_file.sql", _named("users_by_plan.sql", "name: 'quoted'"))
    assert isinstance(_same_answer([folder], "revenue"), object)
    assert catalog.load_one([folder], "revenue").path == "queries/a_file.sql"
    assert catalog.load_one([folder], "plans").path == "queries/b_file.sql"
    assert catalog.load_one([folder], "quoted").path == "queries/c_file.sql"
    for name in ("revenue", "plans", "quoted", "a_file"):
        _same_answer([folder], name)


def test_load_one_still_refuses_a_duplicate_name_and_reports_a_broken_file(cache_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "queries"
    _write(folder, "daily_sales.sql", (QUERIES / "daily_sales.sql").read_text(encoding="utf-8"))
    _write(folder, "zz_copy.sql", _named("daily_sales.sql", "name: daily_sales"))
    duplicate = _same_answer([folder], "daily_sales")
    assert isinstance(duplicate, tuple)
    assert duplicate[0] is SpecError
    assert "already used by queries/daily_sales.sql" in duplicate[1]

    broken = tmp_path / "broken"
    _write(broken, "refunds.sql", _named("daily_sales.sql", "name: refunds").replace("lookback: 2", "lookback: x"))
    answer = _same_answer([broken], "refunds")
    assert isinstance(answer, tuple)
    assert answer[0] is SpecError
    assert "'lookback' must be a whole number" in answer[1]


def test_load_one_of_an_unknown_name_lists_the_known_ones(cache_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tmp_path, QUERIES)
    answer = _same_answer([folder], "daily_sale")
    assert isinstance(answer, tuple)
    assert answer[0] is UsageError
    assert "did you mean 'daily_sales'" in answer[1]
    assert _same_answer([folder], "Not A Name")[0] is UsageError  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "path", "text", "claims"),
    [
        ("daily_sales", "daily_sales.sql", b"/*---\n---*/\n", True),  # by its file name
        ("revenue", "a.sql", b"/*---\nname: revenue\n---*/\n", True),
        ("revenue", "a.sql", b'/*---\nname: "\\x72evenue"\n---*/\n', True),  # an escape: any backslash
        ("revenue", "a.sql", b"/*---\nname: sales\n---*/\n", False),
        ("revenue", "a.sql", b"/*---\nname: reve\n  nue\n---*/\n", False),  # folding makes 'reve nue'
    ],
)
def test_could_claim(name: str, path: str, text: bytes, claims: bool) -> None:
    assert catalog.could_claim(name, Path(path), text) is claims


@pytest.mark.parametrize("size", [0, 1, 65_536, catalog.MAX_FILE_BYTES - 1, catalog.MAX_FILE_BYTES])
def test_a_file_up_to_the_limit_is_read_whole(tmp_path: Path, size: int) -> None:
    """The reader sizes its read by the file (no 1 MiB buffer per file): every byte comes back, to the last."""
    path = tmp_path / "k.sql"
    content = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(content)
    assert catalog._read(path, "queries/k.sql") == content


def test_a_file_over_the_limit_or_unreadable_is_a_problem_of_its_path(tmp_path: Path) -> None:
    big = tmp_path / "big.sql"
    big.write_bytes(b"-" * (catalog.MAX_FILE_BYTES + 1))
    problem = catalog._read(big, "queries/big.sql")
    assert not isinstance(problem, bytes)
    assert (problem.location.path, problem.rule) == ("queries/big.sql", "file-too-large")
    missing = catalog._read(tmp_path / "gone.sql", "queries/gone.sql")
    assert not isinstance(missing, bytes)
    assert (missing.location.path, missing.rule, missing.message) == (
        "queries/gone.sql",
        "unreadable",
        "cannot read the file: No such file or directory",
    )


def test_discover_orders_files_as_paths_do_and_writes_them_as_paths_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk keeps strings, not Paths (1,000 Paths were 10 ms of a single-KPI command), yet must give the same
    files in the same order: the first file to claim a name wins, so the order decides which is the duplicate."""
    for relative in ("a/x.sql", "a-b/x.sql", "a/b/y.sql", "a.sql", "b.sql", "A.sql", "z/.hidden.sql", ".git/h.sql"):
        _write((tmp_path / relative).parent, Path(relative).name, "/*---\n---*/\nSELECT 1 AS n\n")
    monkeypatch.chdir(tmp_path)
    for root in (Path("."), tmp_path, Path("a")):
        files, problems = catalog.discover([root])
        assert problems == []
        expected = sorted(
            Path(dirpath, name)
            for dirpath, dirnames, names in os.walk(root)
            if not any(part.startswith(".") for part in Path(dirpath).relative_to(root).parts)
            for name in names
            if name.endswith(".sql") and not name.startswith(".")
        )
        assert files == expected
        assert [str(f) for f in files] == [str(Path(f)) for f in files]  # "a.sql", never "./a.sql"
    files, _ = catalog.discover([Path(".")])
    shown = [str(f) for f in files]
    assert shown == ["A.sql", "a/b/y.sql", "a/x.sql", "a-b/x.sql", "a.sql", "b.sql"]
    assert shown != sorted(shown)  # the strings alone would put a-b/ and a.sql before a/


@pytest.mark.parametrize("text", ["a/b.sql", "/a/b.sql", "//a/b.sql", "/", "//", "x.sql", "../up/k.sql"])
def test_the_sort_key_of_a_path_string_is_its_paths_parts(text: str) -> None:
    assert catalog._parts(str(Path(text))) == Path(text).parts


@pytest.mark.parametrize("text", ["daily.sql", "q/daily.sql", "q/a.b.sql", "q/.sql", "q/noext", "q/trail.", "x"])
def test_the_stem_of_a_path_string_is_its_paths_stem(text: str) -> None:
    assert catalog._stem(text) == Path(text).stem
