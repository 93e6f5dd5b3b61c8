"""``kpi diff``: how a change to a KPI's SQL changes its numbers, before the pull request is merged.

The base version is the KPI file as it is at a git ref (``git show REF:path``); the head version is the file as
it is now. Each runs **once**, read-only (the sources' own read-only sessions), over the last N complete
partitions as one batched query, and its rows are routed to partitions as the exporter routes them
(:class:`~pipeline.export.split.Splitter`). Nothing is written anywhere. The comparison is
:mod:`pipeline.core.valuediff`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.convert import Conversion
from pipeline.core.intervals import Interval, latest_complete, preceding
from pipeline.core.parse import parse_kpi
from pipeline.core.render import bind_values
from pipeline.core.spec import Kpi
from pipeline.core.typeplan import plan_columns
from pipeline.core.valuediff import PartitionSummary, ValueDiff, column_changes, compare, measures_of
from pipeline.errors import SpecError, UsageError
from pipeline.export.split import Splitter
from pipeline.settings import Environment
from pipeline.sources import Source, open_source
from pipeline.sources.explain import guard_export

GIT_TIMEOUT = 30  # seconds


def base_version(head: Kpi, ref: str) -> Kpi | None:
    """The KPI as its file is at ``ref``; None when the file did not exist there (a new KPI)."""
    path = Path(head.path).resolve()
    root = Path(_git(["rev-parse", "--show-toplevel"], path.parent).decode().strip())
    relative = path.relative_to(root).as_posix()
    shown = f"{ref}:{relative}"
    exists = subprocess.run(
        ["git", "cat-file", "-e", shown], cwd=root, capture_output=True, timeout=GIT_TIMEOUT, check=False
    )
    if exists.returncode != 0:
        _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root, what=f"'{ref}' is not a commit")
        return None
    kpi, problems = parse_kpi(shown, _git(["show", shown], root), default_name=path.stem)
    if kpi is None:
        raise SpecError(problems)
    return kpi


def last_partitions(kpi: Kpi, count: int, now: datetime) -> list[Interval]:
    """The ``count`` newest complete partitions, oldest first."""
    if count < 1:
        raise UsageError(f"--partitions {count}: at least 1", hint="e.g. --partitions 7")
    parts = [latest_complete(kpi.grain, kpi.zone, now, kpi.first_weekday)]
    while len(parts) < count:
        parts.insert(0, preceding(parts[0], kpi.zone))
    return parts


def diff_kpi(
    head: Kpi, ref: str, environment: Environment, *, partitions: int = 7, now: datetime | None = None
) -> tuple[ValueDiff | None, list[str]]:
    """The comparison (None for a KPI the base does not have) and the partitions compared."""
    base = base_version(head, ref)
    if base is None:
        return None, []
    _refuse_unaligned(base, head)
    intervals = last_partitions(head, partitions, now or datetime.now(head.zone)) if head.incremental else []
    names = [i.partition for i in intervals] or ["snapshot"]
    base_columns = {c.name: c.type.value for c in base.columns}
    head_columns = {c.name: c.type.value for c in head.columns}
    measures = [m for m in measures_of(head_columns, head.time_column) if base_columns.get(m) == head_columns[m]]
    shared = [name for name in head_columns if name in base_columns]
    summaries = [
        summarise(
            kpi,
            open_source(
                environment.source(kpi.source, kpi=kpi.name).url, explain_max_rows=environment.explain_max_rows
            ),
            intervals,
            measures,
            shared,
        )
        for kpi in (base, head)
    ]
    changes = column_changes(base_columns, head_columns)
    return compare(head.name, ref, names, summaries[0], summaries[1], changes, measures), names


def summarise(
    kpi: Kpi, source: Source, intervals: Sequence[Interval], measures: Sequence[str], shared: Sequence[str]
) -> dict[str, PartitionSummary]:
    """One query over all ``intervals``; per partition its rows, measure sums and rows over ``shared`` columns."""
    whole = Interval(intervals[0].start, intervals[-1].end, kpi.grain) if intervals else None
    rendered = source.render(kpi.query, bind_values(kpi, whole))
    names = [i.partition for i in intervals] or ["snapshot"]
    summaries = {name: PartitionSummary() for name in names}
    guard_export(kpi, source, rendered, list(intervals) or [None])  # EXPLAIN first, as an export does
    with source.stream(rendered, timeout=kpi.timeout, zone=kpi.source_zone, where=kpi.name) as result:
        plans = plan_columns(kpi, result.columns)
        conversion = Conversion(kpi.name, plans, kpi.source_zone)
        splitter = None
        if intervals:
            column_type = next(p.type for p in plans if p.name == kpi.time_column)
            splitter = Splitter(kpi, list(intervals), column_type)
        row = 1
        for arrays in result.batches:
            batch = conversion.batch(arrays, row, text=result.text)
            routed = splitter.split(batch, row) if splitter else [(0, batch, None)]
            for index, rows, _ in routed:
                _add(summaries[names[index]], rows, measures, shared)
            row += batch.num_rows
    return summaries


def _add(summary: PartitionSummary, rows: pa.RecordBatch, measures: Sequence[str], shared: Sequence[str]) -> None:
    summary.rows += rows.num_rows
    for name in measures:
        total = pc.sum(rows.column(name)).as_py()
        if total is not None:
            summary.sums[name] = summary.sums.get(name, 0) + total
    columns = [rows.column(name).to_pylist() for name in shared]
    summary.content.update(zip(*columns, strict=True))


def _refuse_unaligned(base: Kpi, head: Kpi) -> None:
    before = (base.grain, base.week_start, base.timezone)
    after = (head.grain, head.week_start, head.timezone)
    if before != after:
        raise UsageError(
            f"{head.name}: the partitions changed ({base.grain.value}, {base.timezone} → {head.grain.value}, "
            f"{head.timezone}), so its values cannot be compared partition by partition",
            where=head.path,
            hint="compare with `kpi preview` on both versions instead",
        )


def _git(args: list[str], cwd: Path, *, what: str = "") -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UsageError(f"cannot run git: {error}", hint="kpi diff needs git on PATH") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(
            what or f"git {' '.join(args)}: {detail[-1] if detail else 'failed'}",
            where=str(cwd),
            hint="run kpi diff inside the repository's work tree; --base names a commit, branch or tag "
            "(in CI fetch it first: git fetch origin main)",
        )
    return done.stdout
