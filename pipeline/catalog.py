"""The KPI files of a project: find them, read them, check them together.

The only I/O of the authoring flow lives here (reading ``.sql`` files); each file is checked by the pure
``pipeline.core.parse``, and rules that span files (two files claiming one KPI name) are checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.header_rules import suggest
from pipeline.core.parse import parse_kpi
from pipeline.core.spec import Kpi
from pipeline.errors import Location, Problem, SpecError, UsageError

DEFAULT_QUERIES = Path("queries")


@dataclass
class Catalog:
    """Every KPI that checked clean, and every problem of the files that did not."""

    files: list[str] = field(default_factory=list)
    kpis: dict[str, Kpi] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def get(self, name: str) -> Kpi:
        """The KPI called ``name``; a broken or unknown KPI is an error that says what to do."""
        if name in self.kpis:
            return self.kpis[name]
        broken = [p for p in self.problems if p.kpi == name]
        if broken:
            raise SpecError(broken)
        known = sorted(self.kpis)
        raise UsageError(
            f"no KPI named '{name}'{suggest(name, known)}",
            hint=f"known KPIs: {', '.join(known)}" if known else "no valid KPI found; run `kpi check`",
        )


def discover(paths: Sequence[Path]) -> list[Path]:
    """The ``.sql`` files named, or found below the folders named (hidden files and folders skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*.sql"))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}", hint="pass KPI files or folders, or set KPI_QUERIES")
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise UsageError(f"no KPI files (*.sql) in {shown}", hint="add one with `kpi new NAME`")
    return found


def load(paths: Iterable[Path]) -> Catalog:
    """Read and check every KPI file below ``paths``."""
    catalog = Catalog()
    claimed: dict[str, Kpi] = {}
    for path in discover(list(paths)):
        shown = display_path(path)
        catalog.files.append(shown)
        try:
            raw = path.read_bytes()
        except OSError as error:
            catalog.problems.append(
                Problem(
                    Location(shown), "unreadable", f"cannot read the file: {error.strerror}", "check its permissions"
                )
            )
            continue
        kpi, problems = parse_kpi(shown, raw, default_name=path.stem)
        catalog.problems.extend(problems)
        if kpi is None:
            continue
        first = claimed.get(kpi.name)
        if first is not None:
            catalog.problems.append(_duplicate(kpi, first))
            catalog.kpis.pop(kpi.name, None)
            continue
        claimed[kpi.name] = kpi
        catalog.kpis[kpi.name] = kpi
    return catalog


def _duplicate(kpi: Kpi, first: Kpi) -> Problem:
    return Problem(
        Location(kpi.path, kpi.name_line, 1),
        "duplicate-name",
        f"KPI name '{kpi.name}' is already used by {first.path}",
        "each KPI is one warehouse table: give one of them another `name:` (or rename the file)",
        kpi.name,
    )


def display_path(path: Path) -> str:
    """A path as a person typed it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_one(paths: Iterable[Path], name: str) -> Kpi:
    """One valid KPI by name; other files' problems do not stand in the way of an analyst's iteration."""
    return load(paths).get(name)
