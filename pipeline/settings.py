"""Where things are: an environment of ``kpi.toml`` (``--env NAME``, default ``local``), overridden by variables.

An environment names its sources (as KPI headers' ``source:`` refers to them), its lake and its warehouse, as
URLs. ``KPI_SOURCE`` (the ``default`` source), ``KPI_SOURCE_<NAME>``, ``KPI_LAKE`` and ``KPI_WAREHOUSE``
override the file — the Lambdas are configured that way, with no file at all. Without a file, ``local`` is the
embedded default under ``.kpi/`` (git-ignored): a DuckDB demo source, a lake folder and a DuckDB warehouse, so
that a newcomer's first command needs no server and no cloud account.

Secrets never live in the file: a URL with a password is refused; use ``?secret=ARN`` (Secrets Manager) or
``iam=true`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.core.alert_routing import Routing, from_variables, routing
from pipeline.errors import KpiError, UsageError

CONFIG_FILE = "kpi.toml"
OPS_TABLES = ("suspend", "clone")  # the ops modules' own tables, read by pipeline.suspend and pipeline.clone
DEFAULT_ENV = "local"
EMBEDDED_SOURCE = "duckdb://.kpi/demo.duckdb"
EMBEDDED_LAKE = ".kpi/lake"
EMBEDDED_WAREHOUSE = "duckdb://.kpi/warehouse.duckdb"
DEFAULT_PARALLEL = 2  # queries at once per source: a backfill must not hammer an OLTP database
_ENV_KEYS = {"sources", "lake", "warehouse", "backfill_state_machine", "explain_max_rows", "alerts"}
ALERTS_TABLE = (
    "alerts"  # [alerts] for every environment, [environments.NAME.alerts] for one (pipeline.core.alert_routing)
)
DEFAULT_EXPLAIN_MAX_ROWS = 1_000_000  # the EXPLAIN guard refuses full scans over this many rows (pipeline.core.explain)
_SOURCE_KEYS = {"url", "parallel"}


@dataclass(frozen=True)
class SourceSetting:
    url: str
    parallel: int = DEFAULT_PARALLEL


@dataclass(frozen=True)
class Environment:
    name: str
    sources: Mapping[str, SourceSetting] = field(default_factory=dict)
    lake: str = EMBEDDED_LAKE
    warehouse: str = EMBEDDED_WAREHOUSE
    origin: str = "the embedded default"  # where it was read from, for messages
    backfill_state_machine: str = ""  # ARN of the deployed backfill state machine (`kpi backfill --via sfn`)
    variables: tuple[str, ...] = ()  # the KPI_* variables that changed it, for titles ("local" is not all it is)
    explain_max_rows: int = DEFAULT_EXPLAIN_MAX_ROWS  # kpi.toml `explain_max_rows`, KPI_EXPLAIN_MAX_ROWS
    alerts: Routing = field(default_factory=Routing)  # [alerts] / [environments.NAME.alerts], KPI_ALERTS_*

    @property
    def label(self) -> str:
        """The name, and what variables put in place of the file's settings: ``local``, or
        ``local, KPI_SOURCE=mysql://kpi@db:3306/shop`` — a summary titled "local" must not hide a production
        source. Never shows a password."""
        shown = {
            "KPI_LAKE": self.lake,
            "KPI_WAREHOUSE": self.warehouse,
            "KPI_SOURCE": self.sources["default"].url if "default" in self.sources else "",
        }
        parts = [self.name]
        for variable in self.variables:
            value = shown.get(variable)
            if value is None and variable.startswith("KPI_SOURCE_"):
                setting = self.sources.get(variable.removeprefix("KPI_SOURCE_").lower())
                value = setting.url if setting else ""
            if value is not None:
                parts.append(f"{variable}={redact(value)}")
        return ", ".join(parts)

    def source(self, name: str, *, kpi: str = "") -> SourceSetting:
        """The source a KPI's header names; a UsageError listing the known ones."""
        found = self.sources.get(name)
        if found is None:
            known = ", ".join(sorted(self.sources)) or "none"
            raise UsageError(
                f"the environment '{self.name}' ({self.origin}) has no source '{name}' (known: {known})",
                where=kpi,
                hint=f"add it under [environments.{self.name}.sources] in {CONFIG_FILE}, "
                f"or set KPI_SOURCE_{name.upper()}",
            )
        return found

    def overridden(
        self, *, source: str | None = None, lake: str | None = None, warehouse: str | None = None
    ) -> Environment:
        """This environment with command-line choices on top (``--source`` replaces the ``default`` source)."""
        sources = dict(self.sources)
        if source:
            sources["default"] = replace(sources.get("default", SourceSetting(source)), url=source)
        return replace(self, sources=sources, lake=lake or self.lake, warehouse=warehouse or self.warehouse)


def load_environment(
    name: str | None = None, *, config: Path | None = None, environ: Mapping[str, str] | None = None
) -> Environment:
    """The environment ``name`` (default ``KPI_ENV`` or ``local``) of ``config`` (default ``KPI_CONFIG`` or
    ``./kpi.toml``), with the ``KPI_*`` variables applied on top."""
    environ = os.environ if environ is None else environ
    name = name or environ.get("KPI_ENV") or DEFAULT_ENV
    path = config or Path(environ.get("KPI_CONFIG") or CONFIG_FILE)
    if path.is_file():
        environment = _from_file(path, name)
    elif name == DEFAULT_ENV:
        environment = Environment(DEFAULT_ENV, {"default": SourceSetting(EMBEDDED_SOURCE)})
    else:
        raise UsageError(
            f"no {path} to read the environment '{name}' from",
            hint=f"create {CONFIG_FILE} at the repository root (see the README), or leave out --env",
        )
    return _with_variables(environment, environ)


MAX_CONFIG_BYTES = 1 << 20  # kpi.toml is a few kilobytes; a larger file is a mistake, not a configuration


def read_config(path: Path, error: type[KpiError] = UsageError) -> dict[str, Any]:
    """The whole of ``kpi.toml`` as data; unreadable or bad TOML is ``error`` (each reader's own family). Read with
    limits: at most MAX_CONFIG_BYTES, and nesting that would exhaust tomllib's recursion is refused. tomllib is
    imported here, when there is a file: the embedded default and the Lambdas (variables only) never need it."""
    import tomllib

    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise error(
                f"{path} is larger than {MAX_CONFIG_BYTES // 1024} KiB",
                hint=f"{CONFIG_FILE} holds environments and the ops modules' tables: a few kilobytes",
            )
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as failure:
        raise error(
            f"cannot read {path}: it is not UTF-8 (byte 0x{raw[failure.start]:02x} at offset {failure.start})",
            hint="save the file as UTF-8",
        ) from None
    except RecursionError:
        raise error(f"cannot read {path}: arrays or tables nest too deeply", hint="flatten the TOML") from None
    except (OSError, tomllib.TOMLDecodeError) as failure:
        reason = failure.strerror if isinstance(failure, OSError) and failure.strerror else failure
        raise error(f"cannot read {path}: {reason}", hint="fix the TOML syntax") from None


def config_table(path: Path, name: str, error: type[KpiError], example: str) -> dict[str, Any] | None:
    """The ``[name]`` table of ``path`` (an ops module's: ``[suspend]``, ``[clone]``); None without the file."""
    if not path.is_file():
        return None
    found = read_config(path, error).get(name, {})
    if not isinstance(found, dict):
        raise error(f"{path}: {name} is not a table", hint=f"write it as a table:\n{example}")
    return dict(found)


def _from_file(path: Path, name: str) -> Environment:
    data = read_config(path)
    environments = data.get("environments", {})
    unknown = sorted(set(data) - {"environments", ALERTS_TABLE, *OPS_TABLES})
    if unknown or not isinstance(environments, dict):
        raise UsageError(
            f"{path}: unknown top-level key {', '.join(unknown)}"
            if unknown
            else f"{path}: [environments] is not a table",
            hint="the file holds only [environments.NAME] tables",
        )
    shared = _alerts(data.get(ALERTS_TABLE), f"{path} [alerts]")
    if name not in environments:
        if name == DEFAULT_ENV:
            return Environment(DEFAULT_ENV, {"default": SourceSetting(EMBEDDED_SOURCE)}, alerts=shared)
        raise UsageError(
            f"{path} has no environment '{name}'",
            hint=f"environments there: {', '.join(sorted(environments)) or 'none'}",
        )
    environment = _environment(path, name, environments[name])
    own = environments[name].get(ALERTS_TABLE)
    return replace(environment, alerts=_alerts(own, f"{path} [environments.{name}.alerts]") if own else shared)


def _alerts(table: object, where: str) -> Routing:
    """An alerts table read (an environment's replaces the shared one whole: no merging to reason about)."""
    if table is None:
        return Routing()
    if not isinstance(table, dict):
        raise UsageError(f"{where} is not a table", hint='write [alerts] and under it default = "sns:arn:…"')
    return routing(table, where)


def _environment(path: Path, name: str, table: Any) -> Environment:
    where = f"{path} [environments.{name}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} is not a table", hint="write lake = …, warehouse = … and a sources table")
    unknown = sorted(set(table) - _ENV_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {', '.join(unknown)}", hint=f"keys: {', '.join(sorted(_ENV_KEYS))}")
    sources = {}
    listed = table.get("sources") or {}
    if not isinstance(listed, dict):
        raise UsageError(
            f"{where}: sources must be a table of named sources, found {_toml_kind(listed)}",
            hint=f'write [environments.{name}.sources] and under it default = "mysql://kpi_reader@host:3306/shop"',
        )
    for source_name, value in listed.items():
        setting = value if isinstance(value, dict) else {"url": value}
        bad = sorted(set(setting) - _SOURCE_KEYS)
        url, parallel = setting.get("url"), setting.get("parallel", DEFAULT_PARALLEL)
        counted = isinstance(parallel, int) and not isinstance(parallel, bool)  # TOML's true is not a number
        if bad or not isinstance(url, str) or not counted or parallel < 1:
            raise UsageError(
                f"{where}: source '{source_name}' must be a URL or {{url = …, parallel = N ≥ 1}}",
                hint='e.g. default = { url = "mysql://kpi_reader@host:3306/shop?secret=ARN", parallel = 2 }',
            )
        sources[str(source_name)] = SourceSetting(_no_password(url, where), parallel)
    lake, warehouse = table.get("lake", EMBEDDED_LAKE), table.get("warehouse", EMBEDDED_WAREHOUSE)
    machine = table.get("backfill_state_machine", "")
    if not all(isinstance(value, str) for value in (lake, warehouse, machine)):
        raise UsageError(f"{where}: lake, warehouse and backfill_state_machine are text", hint='e.g. lake = "s3://b/k"')
    limit = _explain_max_rows(table.get("explain_max_rows", DEFAULT_EXPLAIN_MAX_ROWS), f"{where}: explain_max_rows")
    return Environment(name, sources, lake, _no_password(warehouse, where), str(path), machine, explain_max_rows=limit)


def _explain_max_rows(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(
            f"{where} must be a whole number of rows ≥ 0",
            hint="e.g. explain_max_rows = 5_000_000 (full scans estimated over it are refused)",
        )
    return value


def _toml_kind(value: object) -> str:
    """What a TOML value is, without echoing it (it may hold a secret)."""
    kinds = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "an array"}
    return kinds.get(type(value), "a date" if not isinstance(value, dict) else "a table")


def _no_password(url: str, where: str) -> str:
    try:
        password = urlsplit(url).password if "://" in url else None
    except ValueError:  # urlsplit refuses a malformed [IPv6] host; the password question cannot be answered
        raise UsageError(
            f"{where}: a URL cannot be read (a malformed [IPv6] address?)", hint="e.g. mysql://kpi_reader@[::1]:3306/db"
        ) from None
    if password:
        raise UsageError(
            f"{where}: a URL holds a password; secrets never go into the configuration file",
            hint="keep the password in AWS Secrets Manager and write ?secret=ARN (or iam=true) in the URL",
        )
    return url


def _with_variables(environment: Environment, environ: Mapping[str, str]) -> Environment:
    sources = dict(environment.sources)
    used = []
    for key, value in sorted(environ.items()):
        if value and (key == "KPI_SOURCE" or key.startswith("KPI_SOURCE_")):
            name = "default" if key == "KPI_SOURCE" else key.removeprefix("KPI_SOURCE_").lower()
            sources[name] = replace(sources.get(name, SourceSetting(value)), url=value)
            used.append(key)
    used += [key for key in ("KPI_LAKE", "KPI_WAREHOUSE") if environ.get(key)]
    return replace(
        environment,
        sources=sources,
        lake=environ.get("KPI_LAKE") or environment.lake,
        warehouse=environ.get("KPI_WAREHOUSE") or environment.warehouse,
        backfill_state_machine=environ.get("KPI_BACKFILL_STATE_MACHINE") or environment.backfill_state_machine,
        variables=tuple(used),
        alerts=from_variables(environ) or environment.alerts,
        explain_max_rows=_explain_max_rows(environ["KPI_EXPLAIN_MAX_ROWS"], "KPI_EXPLAIN_MAX_ROWS")
        if environ.get("KPI_EXPLAIN_MAX_ROWS")
        else environment.explain_max_rows,
    )


def redact(url: str) -> str:
    """``url`` without its password, for anything printed: ``mysql://kpi:pw@db/shop`` → ``mysql://kpi@db/shop``."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # unreadable: show no more than its scheme
        return url.split("://", 1)[0] + "://…"
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].split(":", 1)[0]
    return parts._replace(netloc=f"{user}@{netloc}" if user else netloc).geturl()
