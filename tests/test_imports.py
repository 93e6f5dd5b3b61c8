"""No import circle anywhere in pipeline/, and the clone package's one export list resolves.

Every ``import`` and ``from … import`` of a pipeline module counts: at module level, under ``TYPE_CHECKING``
and inside functions (a lazy import still ties the two modules together: neither can be read, moved or
tested without the other). ``from package import name`` is an edge to ``package.name`` when that is a module.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from tests.conftest import ROOT

PIPELINE = ROOT / "pipeline"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PIPELINE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The pipeline modules ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..core import y
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "pipeline.core.validator" in graph["pipeline.core.header_rules"]  # module level
    assert "pipeline.catalog" in graph["pipeline.cli.output"]  # inside a function
    assert "pipeline.clone.cloud" in graph["pipeline.clone.workflow"]  # from package import module
    assert "pipeline.clone.stubs" in graph["pipeline.clone.errors"]  # the leaf that broke the old circle


def test_no_import_cycle_between_pipeline_modules() -> None:
    try:
        order = list(TopologicalSorter(import_graph()).static_order())
    except CycleError as error:
        cycle = " → ".join(error.args[1])
        pytest.fail(f"import cycle: {cycle}; move what both need into a leaf module", pytrace=False)
    assert len(order) == len(_modules())


def test_a_cycle_would_be_found() -> None:
    graph = import_graph()
    graph["pipeline.core.validator"] = {*graph["pipeline.core.validator"], "pipeline.core.header_rules"}
    with pytest.raises(CycleError):
        list(TopologicalSorter(graph).static_order())


def test_the_clone_package_exports_what_its_modules_define() -> None:
    clone = importlib.import_module("pipeline.clone")
    assert set(clone.__all__) == {
        *("JOURNAL_TABLE", "CloneError", "Column", "CompletionMarker", "Coverage", "CoverageError", "Finding"),
        *("KeyPads", "MaskingPlan", "MaskingReport", "RuleFile", "RuleFileError", "Schema", "Strategy", "Stub"),
        *("Table", "apply_stubs", "build_plan", "check_coverage", "check_databases", "find_pii", "journal_state"),
        *("load_rule_folder", "load_rules", "mask", "new_rule_file", "parse_rules", "plan_masking"),
        "reference_value",
    }
    for name in clone.__all__:
        assert getattr(clone, name) is not None, name
    assert clone.Stub is importlib.import_module("pipeline.clone.stubs").Stub
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = clone.nope


def test_the_ops_lambdas_configuration_readers_need_no_yaml() -> None:
    """The ops zip carries no PyYAML (infra/package.py): [suspend] and [clone] are read with the validator's
    table reader, which must not pull in the YAML reader of the positional one."""
    code = (
        "import sys, pipeline.suspend.config, pipeline.clone.config, pipeline.lambdas.suspend, pipeline.lambdas.clone;"
        "print(sorted(m for m in ('yaml', 'sqlglot', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


HEAVY = ("pyarrow", "duckdb", "google", "boto3", "sqlglot", "yaml", "pandas")
_PROBE = (
    "import json, sys\n"
    "from pipeline.cli import cli\n"
    "try:\n"
    "    cli.main(sys.argv[1:], prog_name='kpi')\n"
    "except SystemExit as stop:\n"
    "    assert not stop.code, stop.code\n"
    "print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)\n"
)


def _heavy_imports(tmp_path: Path, *args: str, heavy: tuple[str, ...] = HEAVY, warm: bool = True) -> list[str]:
    """The ``heavy`` libraries a ``kpi`` command imported, run in a fresh process on the example KPIs, with a parse
    cache and a warehouse of its own under ``tmp_path`` (the cache warm: the same command ran once before; with
    ``warm`` False, the first run's, which parsed the file)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KPI_CACHE": str(tmp_path / "cache"),
        "KPI_WAREHOUSE": f"duckdb://{tmp_path}/warehouse.duckdb",
        "KPI_LAKE": str(tmp_path / "lake"),
    }
    command = [sys.executable, "-c", _PROBE.format(heavy=heavy), "--queries", str(ROOT / "queries"), *args]
    for _ in range(2 if warm else 1):
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
        assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return found


def test_listing_and_rendering_one_kpi_import_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    """Start-up is most of a single-KPI command (README, Performance): `kpi list` and `kpi render` of a cached
    KPI need neither sqlglot nor PyYAML, nor a driver, Arrow or a cloud SDK."""
    assert _heavy_imports(tmp_path, "list") == []
    assert _heavy_imports(tmp_path, "render", "daily_sales", "--date", "2024-03-01") == []


def test_rendering_a_kpi_just_edited_parses_it_without_rich_or_the_scoring_code(tmp_path: Path) -> None:
    """A cold ``kpi render`` (the file changed, so its cache entry is new) must parse it — sqlglot and PyYAML —
    and nothing it does not need: not rich (about 30 ms of start-up; its few coloured lines use click's styles)
    nor the anomaly scorer (checking the ``anomaly`` key needs the defaults only)."""
    render = ("render", "daily_sales", "--date", "2024-03-01")
    lighter = ("rich", "pipeline.core.anomaly", "statistics", "sqlglot", "yaml")
    assert _heavy_imports(tmp_path, *render, heavy=lighter, warm=False) == ["sqlglot", "yaml"]
    assert _heavy_imports(tmp_path, *render, heavy=lighter) == []


def test_a_warm_render_imports_neither_the_settings_nor_the_validator_nor_what_writes(tmp_path: Path) -> None:
    """What a warm ``kpi render`` of 1,000 files spends is mostly start-up (README, Performance): kpi.toml's reader
    (the settings, tomllib), the header validator (cronsim, difflib: a parse or an error needs it), logging (only
    with sqlglot) and tempfile (only to write a cache) are each a few milliseconds it does not need."""
    render = ("render", "daily_sales", "--date", "2024-03-01")
    unneeded = ("pipeline.settings", "tomllib", "pipeline.core.validator", "cronsim", "difflib", "logging", "tempfile")
    assert _heavy_imports(tmp_path, *render, heavy=unneeded) == []


def test_a_backfill_dry_run_imports_no_exporter_library(tmp_path: Path) -> None:
    """The plan needs the warehouse's loads (none: its file does not exist yet, so not even DuckDB is imported)
    and the queries in the demo's DuckDB dialect — transpiled by the first run, kept for the second
    (:mod:`pipeline.transpile_cache`); never the exporter's Arrow nor a driver."""
    args = ("backfill", "daily_sales", "--start", "2024-01-01", "--end", "2024-03-31", "--dry-run")
    assert _heavy_imports(tmp_path, *args) == []
    assert (tmp_path / "cache" / "kpi-duckdb-sql.pickle").is_file()


def test_a_backfill_dry_run_prints_its_plan_without_rich(tmp_path: Path) -> None:
    """rich (about 55 ms of CPU to import) is for the run's progress and summary; the dry run's few lines and its
    batches' table are drawn without it (tests/test_table_output.py: the same table as rich's)."""
    args = ("backfill", "daily_sales", "--start", "2024-01-01", "--end", "2024-03-31", "--dry-run")
    assert _heavy_imports(tmp_path, *args, heavy=("rich", "logging", "tempfile")) == []
