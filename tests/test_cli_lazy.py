"""The command line imports a command's module only when it runs: the map must name every command exactly."""

from __future__ import annotations

import importlib
import subprocess
import sys

from pipeline.cli import COMMANDS, cli


def test_the_lazy_map_names_exactly_the_commands_the_modules_register() -> None:
    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(module)
    assert sorted(cli.commands) == sorted(COMMANDS)
    for name, module in COMMANDS.items():
        assert cli.commands[name].callback is not None
        assert cli.commands[name].callback.__module__ == module, name


def test_a_command_imports_its_own_module_and_not_the_others() -> None:
    probe = (
        "import sys\n"
        "from pipeline.cli import cli\n"
        "try:\n"
        "    cli.main(['check', '--help'], prog_name='kpi')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('pipeline.cli.')))\n"
        "print('duckdb' in sys.modules, 'boto3' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules, heavy = done.stdout.strip().splitlines()[-2:]
    assert modules == "['pipeline.cli.app', 'pipeline.cli.arguments', 'pipeline.cli.authoring', 'pipeline.cli.output']"
    assert heavy == "False False"


def test_help_lists_every_command() -> None:
    entry = "from pipeline.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", entry, "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert f"  {name} " in done.stdout, name
