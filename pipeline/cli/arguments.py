"""Argument forms shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from pipeline.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


ENV_HELP = "Environment of kpi.toml: its sources, lake and warehouse (env: KPI_ENV; default local)."


def env_option(command: F) -> F:
    """``--env NAME``: the environment of kpi.toml the command works in. ``kpi --env NAME COMMAND`` works as well
    as ``kpi COMMAND --env NAME`` (the command's own wins); either beats ``KPI_ENV``, which the group reads."""
    option = click.option("--env", "env_name", metavar="NAME", callback=_or_the_groups, help=ENV_HELP)
    return option(command)


def _or_the_groups(ctx: click.Context, _: click.Parameter, value: str | None) -> str | None:
    return value or ctx.find_root().params.get("env_name")


def allow_options(command: F) -> F:
    """``--allow-incomplete`` and ``--allow-before-start``: write partitions a run refuses by default."""
    incomplete = click.option(
        "--allow-incomplete",
        is_flag=True,
        help="Also run partitions that are not over yet: they load partial (or no) rows and count as the newest.",
    )
    early = click.option("--allow-before-start", is_flag=True, help="Also run partitions before the header's `start`.")
    return incomplete(early(command))


def now_option(command: F) -> F:
    """``--now ISO``, hidden: decide as at this moment instead of the wall clock (an offset, or UTC). For tests
    and for reproducing a scheduled run; the commands read the clock only through :func:`clock`."""
    option = click.option("--now", "now_text", metavar="ISO", hidden=True, help="Decide as at this moment.")
    return option(command)


def clock(now_text: str | None) -> datetime:
    """The moment a command decides at: ``--now`` (naive: UTC), or the wall clock. Aware, in UTC."""
    if now_text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(now_text)
    except ValueError:
        raise UsageError(
            f"--now '{now_text}' is not an ISO date-time", hint="e.g. --now 2024-03-10T12:00+09:00"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def param_pairs(items: tuple[str, ...]) -> dict[str, str]:
    """``--param NAME=VALUE`` options as a dict (values stay text: the KPI's declared types convert them)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param '{item}' is not NAME=VALUE", hint="e.g. --param country=JP")
        pairs[key.strip()] = value
    return pairs


# --end of every range: a day or a month names all of its partitions (pipeline.core.selection.end_moment)
END_HELP = (
    "Last partition of the range, included; a day or month includes all of it (2024-03-07 on an hourly KPI: to T23)."
)
