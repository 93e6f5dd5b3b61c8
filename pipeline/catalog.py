"""The KPI files of a project: find them, read them, check them together.

The only I/O of the authoring flow lives here (reading ``.sql`` files); each file is checked by the pure
``pipeline.core.parse``, and rules that span files (two files claiming one KPI name) are checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.header_rules import KPI_NAME, suggest
from pipeline.core.spec import Kpi
from pipeline.errors import Location, Problem, SpecError, UsageError
from pipeline.parse_cache import ParseCache, folder_from_environment

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
    """Read and check every KPI file below ``paths`` (through the parse cache: only changed files are parsed)."""
    return _load(discover(list(paths)))


def _load(files: Iterable[Path], raws: dict[Path, bytes] | None = None) -> Catalog:
    catalog = Catalog()
    claimed: dict[str, Kpi] = {}
    cache = ParseCache(folder_from_environment())
    shown_paths = _Shown()
    for path in files:
        shown = shown_paths.path(path)
        catalog.files.append(shown)
        try:
            raw = raws[path] if raws and path in raws else path.read_bytes()
        except OSError as error:
            catalog.problems.append(
                Problem(
                    Location(shown), "unreadable", f"cannot read the file: {error.strerror}", "check its permissions"
                )
            )
            continue
        kpi, problems = cache.parse(shown, raw, default_name=path.stem)
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
    cache.save()
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
    return _Shown().path(path)


class _Shown:
    """:func:`display_path` for many files of few folders: each folder and the working directory are resolved
    once (``Path.resolve`` of every file took 0.3 s of a 1,000-file ``kpi check``). A file that is itself a
    symbolic link is resolved whole, so the result is always ``path.resolve()`` relative to the working
    directory."""

    def __init__(self) -> None:
        self.cwd = Path.cwd().resolve()
        self.folders: dict[Path, Path] = {}

    def path(self, path: Path) -> str:
        try:
            return str(self.resolve(path).relative_to(self.cwd))
        except ValueError:
            return str(path)

    def resolve(self, path: Path) -> Path:
        if path.name in ("", ".", "..") or path.is_symlink():
            return path.resolve()
        parent = path.parent
        folder = self.folders.get(parent)
        if folder is None:
            folder = self.folders[parent] = parent.resolve()
        return folder / path.name


def load_one(paths: Iterable[Path], name: str) -> Kpi:
    """One valid KPI by name; other files' problems do not stand in the way of an analyst's iteration.

    The same answer as ``load(paths).get(name)``, without parsing the whole folder: only the files that could
    claim ``name`` are parsed (:func:`could_claim`), in the same order, so a duplicate name is still caught. When
    none of them yields the KPI or a problem of it, the answer is an error that lists every known KPI — then the
    whole folder is loaded for it.
    """
    files = discover(list(paths))
    if KPI_NAME.match(name):
        raws: dict[Path, bytes] = {}
        for path in files:
            with suppress(OSError):  # an unreadable file claims nothing; the full load below reports it
                raws[path] = path.read_bytes()
        candidates = [p for p in files if p in raws and could_claim(name, p, raws[p])]
        found = _load(candidates, raws)
        if name in found.kpis or any(p.kpi == name for p in found.problems):
            return found.get(name)
    return _load(files).get(name)


def could_claim(name: str, path: Path, raw: bytes) -> bool:
    """Whether the file could declare the KPI ``name`` (a valid KPI name): by its file name, or by a header whose
    ``name:`` value decodes to it. A YAML value equals ``name`` only if the text holds it literally — plain and
    single-quoted scalars have no escapes, and folding a line break makes a space, which no KPI name holds — or
    through a double-quoted escape (``"\\x64aily"``), which needs a backslash. A file must be UTF-8 to declare
    anything, so its bytes hold ``name``'s UTF-8 bytes. A superset, never a guess: every file it lets through is
    parsed."""
    return path.stem == name or name.encode() in raw or b"\\" in raw
