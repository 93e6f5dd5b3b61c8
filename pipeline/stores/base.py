"""The lake's storage interface: what the exporter writes through and the loader reads through."""

from __future__ import annotations

import builtins
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Literal, Protocol

from pipeline.errors import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectInfo:
    """One object of a listing; ``key`` is relative to the store's root and '/'-separated."""

    key: str
    size: int


def check_key(key: str) -> str:
    """Refuse keys that could escape the root or mean different things to S3 and to a folder.

    S3 would accept ``a//b`` or ``../x`` as opaque names, a folder would not; refusing them in both keeps the
    two stores interchangeable and makes path traversal impossible in the local one.
    """
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(part in ("", ".", "..") for part in parts):
        raise StoreError(
            f"'{key}' is not a valid object key",
            hint="use a relative, '/'-separated key without empty, '.' or '..' segments, e.g. kpi/dt=2024-01-01/x",
        )
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix is a key or the start of one ("" = everything); a trailing '/' is fine."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


class StoreWriter:
    """A binary, write-only, forward-only stream that becomes ONE new object when committed.

    pyarrow's Parquet and CSV writers accept it as their sink (it has ``write``, ``tell``, ``flush``, ``close``,
    ``closed``, ``writable``). Size and SHA-256 are computed while writing, so the manifest can record them
    without reading the object back. As a context manager it commits on a clean exit and aborts on an
    exception, so a half-written file never appears under its final key.

    Subclasses implement ``_write``, ``_commit`` and ``_abort``; this class owns the state machine (open →
    committed | aborted) that makes ``commit``, ``close`` and ``abort`` idempotent in any order.
    """

    def __init__(self, key: str, where: str) -> None:
        self.key = key
        self.where = where
        self.size = 0
        self.sha256 = ""
        self._hash = hashlib.sha256()
        self._state: Literal["open", "committed", "aborted"] = "open"

    # -- what subclasses provide -------------------------------------------------------------------------------

    def _write(self, data: memoryview) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError

    # -- the stream ----------------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; a failed write aborts the whole object, since its bytes may be partly stored.

        Writes after ``abort`` are swallowed: a pyarrow writer that is finalised later by the garbage collector
        writes its footer into the aborted sink, and that must neither resurrect the object nor fail noisily.
        """
        view = memoryview(data).cast("B")
        if self._state == "aborted":
            return len(view)
        if self._state == "committed":
            raise StoreError("written to after commit", where=self.where, hint="this is a bug in the caller")
        try:
            self._write(view)
        except BaseException:
            self.abort()
            raise
        self._hash.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        """Nothing to do: data is durable only once committed, and ``commit`` takes care of that."""

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._state != "open"

    def close(self) -> None:
        """Commit unless aborted: file-like consumers signal "done" by closing their sink."""
        if self._state == "open":
            self.commit()

    # -- the transaction -----------------------------------------------------------------------------------------

    def commit(self) -> None:
        """Make the object visible under its final key; a failed commit aborts, so nothing is left behind."""
        if self._state == "committed":
            return
        if self._state == "aborted":
            raise StoreError("cannot commit: the write was aborted, nothing was stored", where=self.where)
        self.sha256 = self._hash.hexdigest()
        try:
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._state = "committed"

    def abort(self) -> None:
        """Discard everything written. Never raises: it runs while another error is already propagating.

        After a commit it does nothing: a committed object is final and may already be referenced elsewhere.
        """
        if self._state == "committed":
            log.warning("%s: abort after commit ignored; the object stays", self.where)
            return
        if self._state == "aborted":
            return
        self._state = "aborted"
        try:
            self._abort()
        except Exception as error:
            log.warning("%s: could not clean up an aborted write: %s", self.where, error)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is None:
            self.commit()
        else:
            self.abort()


class Store(Protocol):
    """A root (a folder or an S3 prefix) holding immutable data files and small overwritable manifests."""

    url: str
    """Display form without credentials: ``s3://bucket/prefix`` or ``/abs/path``."""

    def open_write(self, key: str) -> StoreWriter:
        """Start a new object; StoreError if one exists at ``key`` already (data files are immutable). Committed,
        it is visible; durable at once on S3, in a folder by the next ``put_bytes``/``put_many`` of the store
        (which commits it by naming it in a manifest: see :mod:`pipeline.stores.local`)."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object atomically (readers see all or nothing); overwriting is allowed. Durable on
        return, and so is every object this store's writers committed before."""
        ...

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """``put_bytes`` of each (key, data), in order; a folder writes and syncs them together."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object; StoreError naming the key when it is missing."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """A seekable binary file of the object, never held whole in memory (a local file, or an S3 object
        streamed into a temporary file); close it when done. StoreError naming the key when it is missing."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` ("" = all), recursively, sorted by key."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; missing keys are fine."""
        ...

    def discard_incomplete(self, prefix: str) -> int:
        """Remove what writes that never finished left under ``prefix`` ("" = everything) — a killed process's
        hidden temp files in a folder, its multipart uploads on S3 — and nothing else; return how many.

        Only for a prefix no live writer uses (a run folder being retried): it cannot tell a write in progress
        from an abandoned one."""
        ...

    def uri(self, key: str) -> str:
        """Full address of ``key``, for messages and for BigQuery load jobs."""
        ...
