"""Results of ``parse_kpi`` kept between runs, keyed by what decides them: the file's bytes, the path shown, the
default name, and the parser itself.

Why: parsing one KPI file (PyYAML with positions, sqlglot's tokenizer and parser) costs about 5 ms, so a catalog
of 1,000 files took 5.1 s for every ``kpi check``. A warm check reads each file, hashes it and finds the result
here instead (``make bench`` measures both; ``bench/catalog_bench.py``).

A key is the SHA-256 of the shown path, the default name and the raw bytes, and the whole cache belongs to one
parser: its fingerprint (the source of ``pipeline/core`` and ``pipeline/errors.py``, the installed sqlglot,
PyYAML, cronsim and tzdata, Python's version) is stored with it, and a cache of another fingerprint is ignored.
A changed file, a moved file or a changed parser therefore misses; a hit returns exactly what parsing the same
bytes returned. The SQL's sqlglot tree is not stored: :class:`~pipeline.core.query.Query` parses it again when
something asks.

Storage: one pickle file in the user's cache folder (``$XDG_CACHE_HOME/kpi-pipeline``, else
``~/.cache/kpi-pipeline``; ``KPI_CACHE=DIR`` moves it, ``KPI_CACHE=off`` disables it), replaced atomically after
a run that parsed something new, so concurrent runs never read half a file — at worst one run's new entries are
lost and parsed again. Not in the project folder: unpickling runs code, and a pull request could carry a planted
``.kpi/`` file into the CI job that checks it; the user's cache folder is written only by the user's own runs.
Anything unreadable or of another format is ignored, never an error; a folder that cannot be written (Lambda's
read-only file system, no home folder) just means no cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import sys
from collections.abc import Mapping
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.core.spec import Kpi
from pipeline.errors import Problem

CACHE_FOLDER = "kpi-pipeline"
FILE_NAME = "kpi-parse.pickle"
FORMAT = 1  # the file's layout (shared with the schema check's cache): (FORMAT, owner, entries)
ENTRY_FORMAT = 2  # the parse cache's entries: each result pickled on its own (2), not the whole dict at once (1)
MAX_ENTRIES = 20_000  # beyond this, entries not used by the current run are dropped on the next write

Parsed = tuple[Kpi | None, list[Problem]]


@cache
def fingerprint() -> str:
    """What decides a parse besides the file: our parser's source, and the installed libraries it runs on —
    sqlglot, PyYAML, cronsim (schedules), tzdata (zone names) — by their files' paths, sizes and modification
    times: reinstalling one changes it, and nothing is imported."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"{FORMAT} {sys.version}".encode())
    for library in ("sqlglot", "yaml", "cronsim", "tzdata"):
        spec = importlib.util.find_spec(library)
        origin = spec.origin if spec else None
        stat = os.stat(origin) if origin else None
        digest.update(f"{library} {origin} {stat.st_size if stat else 0} {stat.st_mtime_ns if stat else 0}".encode())
    for path in [*sorted((root / "core").glob("*.py")), root / "errors.py"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def folder_from_environment(environ: Mapping[str, str] | None = None) -> Path | None:
    """``KPI_CACHE`` (a folder, or ``off``), else the user's cache folder; None when there is none."""
    environ = os.environ if environ is None else environ
    value = environ.get("KPI_CACHE", "").strip()
    if value.lower() in ("off", "0", "false", "no"):
        return None
    if value:
        return Path(value)
    if environ.get("XDG_CACHE_HOME", "").strip():
        return Path(environ["XDG_CACHE_HOME"]) / CACHE_FOLDER
    try:
        return Path.home() / ".cache" / CACHE_FOLDER
    except (KeyError, RuntimeError):  # no HOME and no passwd entry
        return None


class ParseCache:
    """``parse_kpi`` through the cache; :meth:`save` writes what this run parsed anew.

    Each entry is kept as its own pickle, unpickled only when its file is asked for: a command about one KPI
    then reads the cache of a 1,000-file catalog without building the other 999 KPIs (measured: 0.9 ms against
    40 ms to unpickle them all, in a cache of 1,000 entries)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.hits = 0
        self.misses = 0
        self._entries: dict[str, bytes] = self._read() if folder is not None else {}
        self._used: set[str] = set()

    def parse(self, shown: str, raw: bytes, default_name: str) -> Parsed:
        if self.folder is None:
            return _parse(shown, raw, default_name)
        key = _key(shown, raw, default_name)
        self._used.add(key)
        found = _unpickled(self._entries.get(key))
        if found is not None:
            self.hits += 1
            kpi, problems = found
            return kpi, list(problems)
        self.misses += 1
        result = _parse(shown, raw, default_name)
        with suppress(pickle.PicklingError, TypeError, AttributeError):  # kept only when it can be
            self._entries[key] = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        return result

    def save(self) -> None:
        """Write the cache when this run parsed a file it did not hold; quietly not, where it cannot."""
        if self.folder is None or not self.misses:
            return
        entries = self._entries
        if len(entries) > MAX_ENTRIES:
            entries = {key: value for key, value in entries.items() if key in self._used}
        write_entries(self.folder / FILE_NAME, _owner(), entries)

    def _read(self) -> dict[str, bytes]:
        assert self.folder is not None
        entries = read_entries(self.folder / FILE_NAME, _owner())
        return {key: blob for key, blob in entries.items() if isinstance(blob, bytes)}


def _owner() -> str:
    """The parse cache's entries belong to this parser and this entry format."""
    return f"{fingerprint()} entries={ENTRY_FORMAT}"


def _unpickled(blob: bytes | None) -> Parsed | None:
    """One cached result, or None for a missing or unreadable one (then the file is parsed again)."""
    if blob is None:
        return None
    try:
        found: Any = pickle.loads(blob)
    except (EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError, IndexError):
        return None
    if not (isinstance(found, tuple) and len(found) == 2 and isinstance(found[1], list)):
        return None
    kpi, problems = found
    return (kpi if isinstance(kpi, Kpi) else None), problems


def write_entries(path: Path, owner: str, entries: Mapping[str, Any]) -> None:
    """Replace the cache file ``path`` atomically with ``entries`` of the code ``owner`` (a fingerprint);
    quietly not, where it cannot. Shared by the parse cache and the schema check's (:mod:`pipeline.schemas`).
    tempfile (with shutil, random, bz2, lzma) is imported here: a warm run, which writes nothing, never needs it."""
    import tempfile

    with suppress(OSError, pickle.PicklingError, TypeError, AttributeError):
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as out:
                pickle.dump((FORMAT, owner, dict(entries)), out, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary)
            raise


def read_entries(path: Path, owner: str) -> dict[str, Any]:
    """The entries of the cache file ``path`` when ``owner`` wrote it; empty for anything else."""
    try:
        data: Any = pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return {}
    if not (isinstance(data, tuple) and len(data) == 3 and data[0] == FORMAT and data[1] == owner):
        return {}
    entries = data[2]
    return entries if isinstance(entries, dict) else {}


def _parse(shown: str, raw: bytes, default_name: str) -> Parsed:
    from pipeline.core.parse import parse_kpi  # sqlglot and the YAML reader: imported only when a file is parsed

    return parse_kpi(shown, raw, default_name=default_name)


def _key(shown: str, raw: bytes, default_name: str) -> str:
    digest = hashlib.sha256(shown.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(default_name.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(raw)
    return digest.hexdigest()
