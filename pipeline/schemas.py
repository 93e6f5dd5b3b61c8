"""Schema snapshots in ``schemas/`` and the schema-aware part of ``kpi check``.

``kpi schema pull`` writes one ``schemas/<source>.json`` per source of an environment (the folder next to the
queries folder). ``kpi check`` checks each KPI against its source's snapshot when one is committed — offline,
as CI runs it — or, with ``--env E``, against the live sources of that environment (their ``information_schema``
only). A KPI whose source has neither is checked as before, and the JSON output says which sources went
unchecked. The masking rules of the clone module (``masking/*.yaml``) say which columns hold personal data.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.catalog import Catalog
from pipeline.core.schema import SourceSchema, from_text, to_text
from pipeline.errors import Problem, UsageError
from pipeline.settings import Environment

if TYPE_CHECKING:
    from pipeline.core.spec import Kpi
    from pipeline.schema_cache import Result
    from pipeline.sources.duckdb_check import DemoBinder

__all__ = ["SchemaReport", "check_catalog", "personal_columns", "pull", "read_snapshots", "schemas_folder", "write"]

MASKING = Path("masking")


def schemas_folder(queries: Path) -> Path:
    """``schemas/`` beside the queries folder (``queries/`` → ``schemas/``)."""
    return queries.parent / "schemas"


def pull(environment: Environment, sources: Iterable[str] = ()) -> list[SourceSchema]:
    """The live schema of each source of ``environment`` (or of those named)."""
    from pipeline.sources.schema_pull import pull_schema

    names = list(sources) or sorted(environment.sources)
    return [pull_schema(name, environment.source(name).url) for name in names]


def write(folder: Path, schema: SourceSchema) -> Path:
    """Write ``folder/<source>.json`` atomically (a half-written snapshot would fail every check)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{schema.source}.json"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{schema.source}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(to_text(schema))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_snapshots(folder: Path) -> dict[str, SourceSchema]:
    """Every ``*.json`` snapshot of ``folder`` by source name (none when the folder does not exist)."""
    found: dict[str, SourceSchema] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        schema = from_text(str(path), path.read_text(encoding="utf-8"))
        found[schema.source] = schema
    return found


def personal_columns(database: str, folder: Path = MASKING) -> dict[str, set[str]]:
    """Table → the columns that the masking rules of ``database`` mask (every rule but ``keep``; every column of
    a truncated table is personal by the rule's own judgement). Rule files with problems are left to
    ``kpi clone plan``, which reports them; an unreadable file marks nothing here."""
    from pipeline.clone.model import Strategy
    from pipeline.clone.rules import parse_rules

    personal: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        rules, _ = parse_rules(str(path), path.read_text(encoding="utf-8"))
        if rules is None or rules.database != database:
            continue
        for table in rules.tables.values():
            if table.truncate:
                personal.setdefault(table.name, set()).add("*")
            masked = {name for name, rule in table.columns.items() if rule.strategy is not Strategy.KEEP}
            if masked:
                personal.setdefault(table.name, set()).update(masked)
    return personal


@dataclass
class SchemaReport:
    """What the schema check added to ``kpi check``: problems, warnings, the schema each source was checked
    against (a file or a live URL) and the sources no schema was found for."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    checked: dict[str, str] = field(default_factory=dict)
    unchecked: list[str] = field(default_factory=list)


def check_catalog(
    found: Catalog, schemas: Mapping[str, SourceSchema], *, within: Path | None = None, masking: Path = MASKING
) -> SchemaReport:
    """Check every valid KPI of ``found`` against its source's schema. With ``within`` (the queries folder), only
    KPI files below it: a project's snapshots describe its own sources, not those of a file checked from
    elsewhere."""
    report = SchemaReport()
    if not schemas:
        report.unchecked = sorted({kpi.source for kpi in found.kpis.values()})
        return report
    from pipeline.schema_cache import SchemaCache

    personal = {name: personal_columns(schema.database, masking) for name, schema in schemas.items()}
    folder = within.resolve() if within is not None else None
    binders: dict[str, DemoBinder] = {}
    cache = SchemaCache()
    for kpi in sorted(found.kpis.values(), key=lambda k: k.path):
        schema = schemas.get(kpi.source)
        if folder is not None and not Path(kpi.path).resolve().is_relative_to(folder):
            schema = None
        if schema is None:
            if kpi.source not in report.unchecked:
                report.unchecked.append(kpi.source)
            continue
        report.checked[kpi.source] = schema.origin
        masked = _masked(personal[kpi.source], schema)

        def run(kpi: Kpi = kpi, schema: SourceSchema = schema, masked: dict[str, set[str]] = masked) -> Result:
            from pipeline.core.mysql_on_duckdb import unordered_group_concats
            from pipeline.core.schemacheck import check_against  # sqlglot's optimizer: only on a cache miss

            findings = check_against(kpi, schema, masked)
            warnings = [*findings.warnings, *unordered_group_concats(kpi)]  # differs between servers and the demo
            if schema.dialect == "duckdb" and not findings.problems:
                demo = binders.get(kpi.source) or binders.setdefault(kpi.source, _binder(schema))
                refused = demo.problem(kpi)
                if refused is not None:
                    warnings.append(refused)  # valid MySQL that only the embedded stand-in cannot run
            return findings.problems, warnings

        problems, warnings = cache.check(kpi, schema, masked, run)
        report.problems.extend(problems)
        report.warnings.extend(warnings)
    cache.save()
    for binder in binders.values():
        binder.close()
    return report


def _masked(personal: Mapping[str, set[str]], schema: SourceSchema) -> dict[str, set[str]]:
    """Table → masked columns; a truncated table (``*``) stands for all of its columns."""
    masked = {}
    for table, columns in personal.items():
        every = {c.name for c in schema.tables[table].columns} if "*" in columns and table in schema.tables else set()
        masked[table] = (columns - {"*"}) | every
    return masked


def _binder(schema: SourceSchema) -> DemoBinder:
    from pipeline.sources.duckdb_check import DemoBinder  # DuckDB only for a DuckDB source's snapshot

    return DemoBinder(schema)


def schemas_for_check(
    queries: Path, environment: Environment | None, sources: Iterable[str]
) -> dict[str, SourceSchema]:
    """The committed snapshots, or — with an environment — the live schema of each source the KPIs use."""
    if environment is None:
        return read_snapshots(schemas_folder(queries))
    wanted = sorted(set(sources))
    unknown = [name for name in wanted if name not in environment.sources]
    if unknown:
        raise UsageError(
            f"the environment '{environment.name}' has no source {', '.join(unknown)}",
            hint=f"add it under [environments.{environment.name}.sources] in kpi.toml",
        )
    return {schema.source: schema for schema in pull(environment, wanted)}
