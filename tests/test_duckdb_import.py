"""pipeline.duckdb_import: DuckDB's statements stop searching for pandas where it is not installed, and nothing
changes where it is.

"Not installed" is made real, not pretended: the child Python runs without ``site`` on a copy of this venv's
site-packages (symlinks) that leaves pandas out, so ``import pandas`` fails there as it does in a Lambda package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COUNT = """
import json, sys

class Count:  # sees every import of pandas the import system starts (it finds nothing itself)
    looked = 0

    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            Count.looked += 1
        return None

sys.meta_path.insert(0, Count())
import duckdb

connection = duckdb.connect()
for _ in range(5):
    connection.execute("SELECT ? + 1", [1]).fetchall()
plain = Count.looked
from pipeline.duckdb_import import duckdb as imported
marked = Count.looked
for _ in range(5):
    connection.execute("SELECT ? + 1", [1]).fetchall()
try:
    import pandas
    refused = None
except ImportError as error:
    refused = type(error).__name__
print(json.dumps({"plain": plain, "marked": marked, "after": Count.looked, "refused": refused,
                  "same": imported is duckdb}))
"""


def _site_without_pandas(folder: Path) -> Path:
    site = folder / "site-packages"
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith("pandas"):
            (site / entry.name).symlink_to(entry)
    return site


def test_without_pandas_duckdb_looks_for_it_once_then_never(tmp_path: Path) -> None:
    site = _site_without_pandas(tmp_path)
    child = subprocess.run(
        [sys.executable, "-S", "-c", COUNT],
        env={"PYTHONPATH": f"{ROOT}:{site}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(child.stdout)
    assert seen["plain"] >= 5  # DuckDB as it is: at least one failed search a statement
    assert seen["marked"] == seen["plain"] + 1  # the module's own look, once
    assert seen["after"] == seen["marked"]  # five statements more, no search
    assert seen["refused"] == "ModuleNotFoundError"
    assert seen["same"] is True


def test_with_pandas_installed_nothing_is_marked_nor_imported() -> None:
    code = (
        "import sys; from pipeline.duckdb_import import mark_absent;"
        "print(sys.modules.get('pandas', 'unimported'), mark_absent(('pandas', 'kpi_no_such_module')),"
        "sys.modules['kpi_no_such_module'])"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert child.stdout.split() == ["unimported", "['kpi_no_such_module']", "None"]


def test_every_module_of_the_package_imports_duckdb_from_here() -> None:
    """An ``import duckdb`` anywhere else (but under ``if TYPE_CHECKING``) would run statements unmarked."""
    import ast

    direct = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        if path.name == "duckdb_import.py":
            continue
        tree = ast.parse(path.read_text())
        typing_only = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
            for node in ast.walk(block)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import) or id(node) in typing_only:
                continue
            if any(alias.name == "duckdb" for alias in node.names):
                direct.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert direct == []
