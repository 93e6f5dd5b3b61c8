"""The ``kpi`` group and the one place where errors become exit codes.

A :class:`~pipeline.errors.KpiError` is a user mistake or an environment problem: it is printed with its
location and hint, never with a traceback, and the process exits 1 (2 for a wrong command line, as click does).
A stop by SIGINT or SIGTERM (:mod:`pipeline.interrupts`) exits 128 + the signal's number: 130, 143. Anything
else is a bug of ours and keeps its traceback.
"""

from __future__ import annotations

import importlib
import signal
import sys
from pathlib import Path
from typing import Any

import click

from pipeline import __version__
from pipeline.cli.arguments import ENV_HELP
from pipeline.cli.output import print_error, stderr
from pipeline.errors import KpiError, UsageError
from pipeline.interrupts import Interrupted

EXIT_FAILED = 1
EXIT_USAGE = 2


class KpiGroup(click.Group):
    """Runs a sub-command and turns our errors into a printed message and an exit code.

    Commands are imported when they run (``lazy``: command name → the module that defines it), not all at start:
    every module imports what its commands need (rich tables, DuckDB, boto3…), and a command that needs one KPI
    should cost one KPI, not the whole command line's imports. ``kpi --help`` imports them all.
    """

    lazy: dict[str, str] = {}  # noqa: RUF012 (filled once by pipeline.cli)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            importlib.import_module(self.lazy[cmd_name])  # registers the command on this group
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KpiError as error:
            print_error(error)
            ctx.exit(EXIT_USAGE if isinstance(error, UsageError) else EXIT_FAILED)
        except Interrupted as stop:  # the command has said what finished
            ctx.exit(stop.exit_code)
        except KeyboardInterrupt:  # Ctrl-C in a command that has nothing to cancel or report
            stderr().print("[yellow]interrupted[/] (SIGINT)")
            ctx.exit(Interrupted(signal.SIGINT).exit_code)


@click.group(cls=KpiGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--queries",
    type=click.Path(path_type=Path),
    envvar="KPI_QUERIES",
    default=Path("queries"),
    show_default=True,
    help="Folder of KPI files (env: KPI_QUERIES).",
)
@click.option("--env", "env_name", envvar="KPI_ENV", metavar="NAME", help=ENV_HELP)
@click.version_option(__version__, prog_name="kpi")
@click.pass_context
def cli(ctx: click.Context, queries: Path, env_name: str | None) -> None:
    """KPI pipeline: SQL files in, warehouse partitions out.

    \b
    Analysts: kpi new NAME → edit queries/NAME.sql → kpi check → kpi render NAME
    """
    ctx.obj = queries  # the environment (--env) is read by each command's own --env, which falls back to this one


def main() -> None:
    """Console entry point (``kpi``)."""
    sys.exit(cli.main(prog_name="kpi"))
