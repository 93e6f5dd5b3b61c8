"""The KPI files of a project: find them, read them, check them together.

The only I/O of the authoring flow lives here (reading ``.sql`` files); each file is checked by the pure
``pipeline.core.parse``, and rules that span files (two files claiming one KPI name) are checked here.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from pipeline.core.identifiers import KPI_NAME
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
        from pipeline.core.validator import suggest  # the header's validator (cronsim, difflib): for errors only

        known = sorted(self.kpis)
        raise UsageError(
            f"no KPI named '{name}'{suggest(name, known)}",
            hint=f"known KPIs: {', '.join(known)}" if known else "no valid KPI found; run `kpi check`",
        )


MAX_FILE_BYTES = 1 << 20  # a KPI file is a few kilobytes; reading one must stay cheap whatever a pull request holds
_PIECE = 1 << 16  # what _read reads at a time past a file's size: small enough to be no big allocation


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    """The ``.sql`` files named, or found below the folders named (hidden files and folders skipped), and the
    problems met on the way: a broken symlink, a symlink loop or a symlinked folder is reported with its path,
    never skipped in silence (a KPI that vanished without a word would simply stop being exported)."""
    files, problems = _discover(paths)
    return [Path(file) for file in files], problems


def _discover(paths: Sequence[Path]) -> tuple[list[str], list[Problem]]:
    """:func:`discover`'s files as the strings of their paths, in the same order. A single-KPI command looks at
    every file of the folder and parses one: building a Path for each of 1,000 files took 10 ms of it."""
    found: list[str] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            _walk(path, found, problems)
        elif path.is_file():
            found.append(str(path))
        elif path.is_symlink():
            problems.append(_broken_link(path))
        else:
            raise UsageError(f"no such file or folder: {path}", hint="pass KPI files or folders, or set KPI_QUERIES")
    if not found and not problems:
        shown = ", ".join(str(p) for p in paths)
        raise UsageError(f"no KPI files (*.sql) in {shown}", hint="add one with `kpi new NAME`")
    return sorted(found, key=_parts), problems


def _parts(path: str) -> tuple[str, ...]:
    """The sort key of ``Path(path)``, which orders by parts (``a/x.sql`` before ``a-b/x.sql``, unlike the
    strings), for a path written as ``str(Path)`` writes it — as :func:`_walk` writes them: only a leading
    slash needs a thought (``/`` is a part of its own, and POSIX keeps exactly two as ``//``)."""
    if not path.startswith("/"):
        return tuple(path.split("/"))
    root = "//" if path.startswith("//") and not path.startswith("///") else "/"
    rest = path[len(root) :]
    return (root, *rest.split("/")) if rest else (root,)


def _walk(root: Path, found: list[str], problems: list[Problem]) -> None:
    """Every ``*.sql`` below ``root``. Symlinked files are read; symlinked folders are not followed (the Lambda
    packages, built from the same tree, would not carry their files) and are reported, as are broken links.
    Paths are written as ``str(Path)`` would write them (``x.sql`` in ``.``, not ``./x.sql``)."""
    pending = [str(root)]
    while pending:
        folder = pending.pop()
        prefix = "" if folder == "." else folder if folder.endswith("/") else f"{folder}/"
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            problems.append(
                Problem(
                    Location(display_path(Path(folder))),
                    "unreadable",
                    f"cannot read the folder: {error.strerror}",
                    "check its permissions",
                )
            )
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = prefix + entry.name
            link = entry.is_symlink()
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow symlinks
                if link and not (is_dir or is_file):
                    os.stat(path)  # a link to nothing, or a loop, raises here
            except OSError:
                if link:
                    problems.append(_broken_link(Path(path)))
                continue
            if is_dir and link:
                problems.append(_loop(Path(path)) if _inside(Path(path), root) else _linked_folder(Path(path)))
            elif is_dir:
                pending.append(path)
            elif entry.name.endswith(".sql") and is_file:
                found.append(path)
            elif entry.name.endswith(".sql"):
                problems.append(_not_a_file(Path(path)))


def _inside(link: Path, root: Path) -> bool:
    """Whether a symlinked folder points at ``root`` or a folder above the link: following it would never end."""
    target = link.resolve()
    return link.parent.resolve().is_relative_to(target) or root.resolve().is_relative_to(target)


def _linked_folder(path: Path) -> Problem:
    return Problem(
        Location(display_path(path)),
        "symlinked-folder",
        f"{path.name} is a symlink to a folder ({os.readlink(path)}): KPI files in it would be neither checked nor "
        "deployed",
        "move the KPI files into the queries folder, or link them one by one",
    )


def _broken_link(path: Path) -> Problem:
    target = os.readlink(path)
    try:
        path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return _loop(path)
    return Problem(
        Location(display_path(path)),
        "broken-symlink",
        f"broken symlink: it points to {target}, which does not exist",
        "point the link at the KPI file, or delete the link",
    )


def _not_a_file(path: Path) -> Problem:
    target = f" (it points to {os.readlink(path)})" if path.is_symlink() else ""
    return Problem(
        Location(display_path(path)),
        "not-a-file",
        f"not a regular file{target}: a device, socket or pipe cannot be a KPI file",
        "replace it by the KPI file, or delete it",
    )


def _loop(path: Path) -> Problem:
    return Problem(
        Location(display_path(path)),
        "symlink-loop",
        f"symlink loop: {path.name} → {os.readlink(path)} leads back to where it started",
        "point the link at a file or a folder outside the loop, or delete it",
    )


def load(paths: Iterable[Path]) -> Catalog:
    """Read and check every KPI file below ``paths`` (through the parse cache: only changed files are parsed)."""
    files, problems = discover(list(paths))
    return _load(files, problems=problems)


def _load(
    files: Iterable[Path], raws: dict[Path, bytes | Problem] | None = None, problems: Sequence[Problem] = ()
) -> Catalog:
    """``files`` checked (``raws``: their bytes already read), after the ``problems`` of finding them."""
    catalog = Catalog()
    claimed: dict[str, Kpi] = {}
    catalog.problems.extend(problems)
    catalog.files.extend(problem.location.path for problem in problems)
    cache = ParseCache(folder_from_environment())
    shown_paths = _Shown()
    for path in files:
        shown = shown_paths.path(path)
        catalog.files.append(shown)
        raw = raws[path] if raws and path in raws else _read(path, shown)
        if isinstance(raw, Problem):
            catalog.problems.append(raw)
            continue
        try:
            kpi, problems = cache.parse(shown, raw, default_name=path.stem)
        except RecursionError:  # a last guard: the readers refuse the nesting they know of before recursing
            kpi, problems = None, [_too_deep(shown)]
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


def _read(path: Path | str, shown: str) -> bytes | Problem:
    """The file's bytes, at most MAX_FILE_BYTES of them (a link to /dev/zero must not fill the memory).

    Read with ``os.read`` sized by the file's own size: a buffered ``read(MAX_FILE_BYTES + 1)`` allocates a 1 MiB
    buffer for every file, which made reading a 1,000-file folder take 50 ms of every single-KPI command (12 ms
    this way). A file that grows while it is read is read on, in small pieces, up to the limit."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(descriptor).st_size
            chunks = [os.read(descriptor, min(size, MAX_FILE_BYTES) + 1)]
            read = len(chunks[0])
            while chunks[-1] and read <= MAX_FILE_BYTES:  # past its size (it grew), or a file of no size
                chunks.append(os.read(descriptor, min(_PIECE, MAX_FILE_BYTES + 1 - read)))
                read += len(chunks[-1])
        finally:
            os.close(descriptor)
    except OSError as error:
        return Problem(
            Location(shown), "unreadable", f"cannot read the file: {error.strerror}", "check its permissions"
        )
    if read > MAX_FILE_BYTES:
        return Problem(
            Location(shown),
            "file-too-large",
            f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, the most a KPI file may be",
            "a KPI is one header and one query: move data into a table of the source database",
        )
    return chunks[0] if len(chunks) <= 2 else b"".join(chunks)


def _too_deep(shown: str) -> Problem:
    return Problem(
        Location(shown), "too-deep", "the file nests too deeply to be checked", "flatten the header and the SQL"
    )


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
    once (``Path.resolve`` of every file took 0.3 s of a 1,000-file ``kpi check``). A symlink is shown where it
    lies, not where it points (that is where the person looks, and a loop points nowhere)."""

    def __init__(self) -> None:
        self.cwd = Path.cwd().resolve()
        self.folders: dict[Path, Path] = {}

    def path(self, path: Path) -> str:
        try:
            return str(self.resolve(path).relative_to(self.cwd))
        except (ValueError, OSError, RuntimeError):
            return str(path)

    def resolve(self, path: Path) -> Path:
        if path.name in ("", ".", ".."):
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
    paths = list(paths)
    files, problems = _discover(paths)
    if KPI_NAME.match(name):
        raws: dict[Path, bytes | Problem] = {}
        for file in files:
            raw = _read(file, file)
            if isinstance(raw, bytes) and could_claim(name, file, raw):
                raws[Path(file)] = raw
        found = _load(raws, raws)
        if name in found.kpis or any(p.kpi == name for p in found.problems):
            return found.get(name)
    return _load([Path(file) for file in files], problems=problems).get(name)


def could_claim(name: str, path: Path | str, raw: bytes) -> bool:
    """Whether the file could declare the KPI ``name`` (a valid KPI name): by its file name, or by a header whose
    ``name:`` value decodes to it. A YAML value equals ``name`` only if the text holds it literally — plain and
    single-quoted scalars have no escapes, and folding a line break makes a space, which no KPI name holds — or
    through a double-quoted escape (``"\\x64aily"``), which needs a backslash. A file must be UTF-8 to declare
    anything, so its bytes hold ``name``'s UTF-8 bytes. A superset, never a guess: every file it lets through is
    parsed."""
    return _stem(path) == name or name.encode() in raw or b"\\" in raw


def _stem(path: Path | str) -> str:
    """``Path(path).stem``, without building a Path for a string."""
    if isinstance(path, PurePath):
        return path.stem
    base = path.rpartition("/")[2]
    dot = base.rfind(".")
    return base[:dot] if 0 < dot < len(base) - 1 else base
