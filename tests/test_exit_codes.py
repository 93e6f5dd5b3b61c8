"""Exit codes are decided in one place, ``pipeline.cli.app.exit_code``, from the outcome a command ended with.

Three tables: the outcome → code mapping itself; real commands through click's runner, one row per family; and
the source of every CLI module, which must not exit on its own (no ``sys.exit``, ``ctx.exit``, ``SystemExit``).
"""

from __future__ import annotations

import ast
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.cli.app import EXIT_CHANGED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Failed, exit_code
from pipeline.errors import KpiError, LoadError, RenderError, UsageError
from pipeline.interrupts import Interrupted
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (None, EXIT_OK),
        (Failed("stale"), EXIT_FAILED),
        (Failed("values changed", code=EXIT_CHANGED), 3),
        (KpiError("a source cannot be reached"), EXIT_FAILED),
        (RenderError("unknown parameter x"), EXIT_FAILED),
        (LoadError("the warehouse refused the load"), EXIT_FAILED),
        (UsageError("unknown KPI"), EXIT_USAGE),
        (Interrupted(signal.SIGINT), 130),
        (Interrupted(signal.SIGTERM), 143),
        (KeyboardInterrupt(), 130),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, int) else str(value),
)
def test_each_outcome_has_one_exit_code(outcome: BaseException | None, code: int) -> None:
    assert exit_code(outcome) == code


def test_a_bug_has_no_exit_code_and_keeps_its_traceback() -> None:
    bug = ZeroDivisionError("ours")
    with pytest.raises(TypeError, match="no exit code for ZeroDivisionError") as raised:
        exit_code(bug)
    assert raised.value.__cause__ is bug


BROKEN = (ROOT / "tests/corpus/header/unknown_key.sql").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["check"], 0, "ok: 6 KPIs in 6 files, no problems"),
        (["check", "{broken}"], 1, "{broken}:3:1: unknown header key 'grian' (did you mean 'grain'?)"),
        (["--queries", "{folder}", "list"], 1, "1 problems left some files out; run `kpi check`"),
        (["render", "large_orders", "--param", "x=1"], 1, "large_orders: error: unknown parameter x"),
        (["render", "nope"], 2, "error: no KPI named 'nope'"),
        (["check", "nope/"], 2, "error: no such file or folder: nope"),
        (["render", "--no-such-option"], 2, "Error: No such option '--no-such-option'."),
        (["status", "--now", "soon"], 2, "error: --now 'soon' is not an ISO date-time"),
    ],
    ids=["ok", "problems", "files-left-out", "kpi-error", "usage-error", "usage-path", "click-usage", "usage-now"],
)
def test_commands_exit_with_the_code_of_their_outcome(
    runner: CliRunner, in_project: Path, tmp_path: Path, args: list[str], code: int, line: str
) -> None:
    broken = tmp_path / "broken.sql"
    broken.write_text(BROKEN, encoding="utf-8")
    values = {"broken": str(broken), "folder": str(tmp_path)}
    result = runner.invoke(cli, [arg.format(**values) for arg in args])
    assert result.exit_code == code, result.output
    assert line.format(**values) in result.output.splitlines()
    assert "Traceback" not in result.output


def _exits(tree: ast.AST) -> list[str]:
    """Calls of ``sys.exit``/``*.exit`` and raises of ``SystemExit`` in a module, as ``name:line``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exit":
            found.append(f"{ast.unparse(node.func)}:{node.lineno}")
        if isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc):
            found.append(f"raise SystemExit:{node.lineno}")
    return found


def test_no_cli_module_but_app_exits_on_its_own() -> None:
    cli_folder = ROOT / "pipeline" / "cli"
    exits = {
        path.name: _exits(ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(cli_folder.glob("*.py"))
        if path.name != "app.py"
    }
    assert {name: found for name, found in exits.items() if found} == {}
    in_app = _exits(ast.parse((cli_folder / "app.py").read_text(encoding="utf-8")))
    # KpiGroup.invoke's three handlers, each ctx.exit(exit_code(…)), and main()'s sys.exit of click's result
    assert sorted(found.partition(":")[0] for found in in_app) == ["ctx.exit", "ctx.exit", "ctx.exit", "sys.exit"]
