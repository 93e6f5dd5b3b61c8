"""The lake as a folder: for development, tests and single-machine runs."""

from __future__ import annotations

import builtins
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import StoreError
from pipeline.stores.base import ObjectInfo, StoreWriter, check_key, check_prefix

TEMP_SUFFIX = ".tmp"


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _error(error: OSError, action: str, where: str) -> StoreError:
    """An OSError as a StoreError: the reason without the traceback, and what to check."""
    reason = error.strerror or str(error)
    if isinstance(error, PermissionError):
        return StoreError(f"permission denied to {action}", where=where, hint="check the folder's owner and mode")
    if error.errno == errno.ENOSPC:
        return StoreError(f"no space left to {action}", where=where, hint="free disk space or use an S3 lake")
    return StoreError(f"could not {action}: {reason}", where=where)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename: on POSIX the directory entry is durable only once the directory itself is synced."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_file(target: Path) -> tuple[int, Path]:
    """A hidden temp file next to ``target``, so the final rename stays on one filesystem (hence atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    return fd, Path(name)


def _prune(path: Path, root: Path) -> None:
    """Remove the folders above ``path`` that are left empty, up to (not including) ``root``: an aborted or deleted
    file must not leave an empty run folder behind, which would look like a run that never committed."""
    for parent in path.parents:
        if parent == root or not parent.is_relative_to(root):
            break
        try:
            parent.rmdir()
        except OSError:  # not empty (or not ours to remove): stop climbing
            break


class LocalWriter(StoreWriter):
    """Writes to a hidden temp file; commit publishes it under the final name without ever overwriting."""

    def __init__(self, key: str, target: Path, root: Path) -> None:
        super().__init__(key, str(target))
        self._target = target
        self._root = root
        try:
            fd, self._temp = _temp_file(target)
        except OSError as error:
            raise _error(error, "create a file", str(target)) from None
        self._file = os.fdopen(fd, "wb")

    def _write(self, data: memoryview) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            raise _error(error, "write", self.where) from None

    def _commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._publish()
            self._temp.unlink()
            _fsync_dir(self._target.parent)
        except OSError as error:
            raise _error(error, "commit", self.where) from None

    def _publish(self) -> None:
        """Link, not rename: ``os.link`` fails atomically if the name was taken meanwhile, ``os.replace`` would
        silently overwrite. Filesystems without hard links fall back to check-then-replace."""
        try:
            os.link(self._temp, self._target)
        except FileExistsError:
            raise self._taken() from None
        except OSError:
            if self._target.exists():
                raise self._taken() from None
            os.replace(self._temp, self._target)

    def _taken(self) -> StoreError:
        return StoreError(
            "an object appeared at this key while it was being written",
            where=self.where,
            hint="two runs wrote the same key at once; files are immutable, so this write was discarded",
        )

    def _abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)
        _prune(self._temp, self._root)


class LocalStore:
    """A folder as a lake. Keys map to relative paths; temp files are hidden and never listed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def open_write(self, key: str) -> StoreWriter:
        target = self._path(key)
        if target.exists():
            raise StoreError(
                "an object already exists at this key",
                where=str(target),
                hint="data files are immutable; write under a new key or delete the old one first",
            )
        return LocalWriter(key, target, self.root)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        try:
            fd, temp = _temp_file(target)
        except OSError as error:
            raise _error(error, "create a file", str(target)) from None
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
            _fsync_dir(target.parent)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise _error(error, "write", str(target)) from None

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as handle:
            try:
                return handle.read()
            except OSError as error:
                raise _error(error, "read", str(self._path(key))) from None

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise StoreError(
                "no object at this key", where=str(path), hint=f"is the lake {self.url} the right one?"
            ) from None
        except OSError as error:
            raise _error(error, "read", str(path)) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> builtins.list[ObjectInfo]:
        found = [ObjectInfo(key, path.stat().st_size) for key, path in self._files(prefix) if not _is_temp(path.name)]
        return sorted(found, key=lambda info: info.key)

    def _files(self, prefix: str) -> Iterator[tuple[str, Path]]:
        """(key, path) of every file under ``prefix``, temp files included: the walk covers only the deepest
        folder the prefix names, then filters by the string prefix (S3's semantics)."""
        folder = check_prefix(prefix).rpartition("/")[0]
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        for dirpath, _, filenames in os.walk(start, onerror=self._walk_error):
            base = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if base == "." else f"{base}/{name}"
                if key.startswith(prefix):
                    yield key, Path(dirpath) / name

    def _walk_error(self, error: OSError) -> None:
        """A missing folder is an empty listing; anything else (permissions) must not look like one."""
        if not isinstance(error, FileNotFoundError | NotADirectoryError):
            raise _error(error, "list", error.filename or self.url)

    def delete(self, keys: Iterable[str]) -> None:
        """Delete files, then the folders they leave empty, so deleted partitions do not linger as folders."""
        for key in keys:
            self._remove(self._path(key))

    def discard_incomplete(self, prefix: str) -> int:
        """The hidden temp files (``.<name>.<random>.tmp``) under ``prefix``: what a process killed in the middle of
        a write (or of a manifest's ``put_bytes``) leaves; a clean failure removes its own."""
        found = [path for _, path in self._files(prefix) if _is_temp(path.name)]
        for path in found:
            self._remove(path)
        return len(found)

    def _remove(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise _error(error, "delete", str(path)) from None
        _prune(path, self.root)
