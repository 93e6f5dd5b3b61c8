"""The ``kpi`` group and the one place where outcomes become exit codes: :func:`exit_code`.

A :class:`~pipeline.errors.KpiError` is a user mistake or an environment problem: it is printed with its
location and hint, never with a traceback, and the process exits 1 (2 for a wrong command line, as click does).
A command that ran to its end and reported what failed (a stale KPI, a failed partition, a check with problems)
raises :class:`Failed` after printing: exit 1. A stop by SIGINT or SIGTERM (:mod:`pipeline.interrupts`) exits
128 + the signal's number: 130, 143. Anything else is a bug of ours and keeps its traceback. No command calls
``sys.exit`` or ``ctx.exit`` itself.
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

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CHANGED = 3  # `kpi diff`: the values changed (not a failure)


class Failed(Exception):
    """A command finished and has printed what failed; the process exits :data:`EXIT_FAILED`.

    ``reason`` says which outcome it was (``"stale"``, ``"problems"``, ``"partitions failed"``…), for tests and
    for readers of the code; it is not printed again.
    """

    def __init__(self, reason: str, *, code: int = EXIT_FAILED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code  # EXIT_CHANGED for `kpi diff`'s "values changed"


def exit_code(outcome: BaseException | None) -> int:
    """The exit code of a command that ended with ``outcome`` (None: it returned normally).

    The table the README lists: 0 done; 1 an error of ours (:class:`KpiError`) or a reported failure
    (:class:`Failed`; 3 for `kpi diff`'s changed values); 2 a wrong command line (:class:`UsageError`; click's
    own usage errors exit 2 as well); 128 + the signal's number when stopped (130 SIGINT, 143 SIGTERM).
    """
    if outcome is None:
        return EXIT_OK
    if isinstance(outcome, Interrupted):
        return 128 + outcome.signum
    if isinstance(outcome, KeyboardInterrupt):
        return 128 + signal.SIGINT
    if isinstance(outcome, UsageError):
        return EXIT_USAGE
    if isinstance(outcome, Failed):
        return outcome.code
    if isinstance(outcome, KpiError):
        return EXIT_FAILED
    raise TypeError(f"no exit code for {type(outcome).__name__}: a bug, keep its traceback") from outcome


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
            ctx.exit(exit_code(error))
        except (Failed, Interrupted) as outcome:  # the command has said what failed or what finished
            ctx.exit(exit_code(outcome))
        except KeyboardInterrupt as stop:  # Ctrl-C in a command that has nothing to cancel or report
            stderr().print("[yellow]interrupted[/] (SIGINT)")
            ctx.exit(exit_code(stop))


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
