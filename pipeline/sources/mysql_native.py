"""The C hot loop of the MySQL reader (``mysql_wire.c``), loaded with ctypes when it was built for this machine.

Why C: the pure-Python reader (:mod:`pipeline.sources.mysql_wire`) walks every row packet in a Python loop and
splits columns with a dozen Arrow kernels per column and batch; measured on 2M rows × 7 columns it spent about
twice connectorx's CPU per row. ``kpi_walk`` and ``kpi_split`` do the same work in one pass over the bytes,
writing Arrow's offsets, validity bitmaps and value bytes directly into buffers pyarrow allocated.

Why ctypes and not a CPython extension: the library uses no Python API, so one build per architecture serves
every Python version and needs no Python headers — ``zig cc`` (PyPI's ``ziglang``) cross-compiles it for
Lambda's arm64 and x86_64 without Docker (``infra/native.py``; ``make install`` and ``make package`` run it).
Where it was not built, :func:`load` returns None and the reader uses its pure-Python path, which gives the same
arrays (tests/test_mysql_wire.py compares the two on every case). ``KPI_WIRE=python`` forces that path.
"""

from __future__ import annotations

import ctypes
import os
import platform
from functools import cache
from pathlib import Path

import pyarrow as pa
from pymysql import err

LIBRARY_NAME = "_mysql_wire.{machine}.so"
_I64 = ctypes.c_int64
_P = ctypes.c_void_p


def library_path(machine: str | None = None) -> Path:
    """Where the build for ``machine`` (``platform.machine()`` spelling: x86_64, aarch64) lives."""
    return Path(__file__).with_name(LIBRARY_NAME.format(machine=machine or platform.machine()))


class NativeWire:
    """The three C functions, typed, and the bookkeeping around them."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._walk = library.kpi_walk
        self._walk.restype = _I64
        self._walk.argtypes = [_P, _I64, _I64, _P, _I64, ctypes.POINTER(_I64), ctypes.POINTER(ctypes.c_int32)]
        self._split = library.kpi_split
        self._split.restype = _I64
        self._split.argtypes = [_P, _I64, _P, _I64, ctypes.c_int32, _P, _P, _P, _P]
        self._gather = library.kpi_gather
        self._gather.restype = None
        self._gather.argtypes = [_P, _P, _P, _I64, _P]

    @staticmethod
    def starts(capacity: int) -> ctypes.Array[ctypes.c_int64]:
        """A reusable array for the payload offsets of up to ``capacity`` rows."""
        return (_I64 * capacity)()

    def walk(self, buf: bytearray, pos: int, starts: ctypes.Array[ctypes.c_int64], count: int) -> tuple[int, int, bool]:
        """Walk complete packets from ``pos``, appending payload offsets at ``starts[count:]``.

        Returns (rows appended, where to walk next, stopped at a packet of the maximum size).
        """
        room = len(starts) - count
        if room <= 0 or len(buf) - pos < 4:
            return 0, pos, False
        view = (ctypes.c_char * len(buf)).from_buffer(buf)
        try:
            following, long_row = _I64(), ctypes.c_int32()
            target = ctypes.addressof(starts) + 8 * count
            added = self._walk(view, len(buf), pos, target, room, ctypes.byref(following), ctypes.byref(long_row))
        finally:
            del view  # a bytearray cannot grow or shrink while a ctypes view of it exists
        return int(added), following.value, bool(long_row.value)

    def split(self, buf: bytearray, starts: ctypes.Array[ctypes.c_int64], rows: int, columns: int) -> list[pa.Array]:
        """One binary array per column for the ``rows`` row payloads at ``starts[:rows]``."""
        offsets = [pa.allocate_buffer(4 * (rows + 1)) for _ in range(columns)]
        validity = [pa.allocate_buffer((rows + 7) // 8) for _ in range(columns)]
        value_starts = pa.allocate_buffer(8 * max(rows, 1) * columns)
        nulls = (_I64 * columns)()
        pointers = _P * columns
        view = (ctypes.c_char * len(buf)).from_buffer(buf)
        try:
            code = self._split(
                view,
                len(buf),
                ctypes.addressof(starts),
                rows,
                columns,
                pointers(*(b.address for b in offsets)),
                pointers(*(b.address for b in validity)),
                pointers(*(value_starts.address + 8 * rows * c for c in range(columns))),
                nulls,
            )
            if code < 0:
                row = -code - 1
                if row >= rows:
                    raise err.InternalError(f"row {row - rows + 1} of a batch: a column holds over 2 GiB")
                raise err.InternalError(
                    f"malformed row packet (row {row + 1} of a batch): column lengths do not add up to its length"
                )
            arrays = []
            for c in range(columns):
                total = ctypes.c_int32.from_address(offsets[c].address + 4 * rows).value
                data = pa.allocate_buffer(total)
                if total:
                    self._gather(view, value_starts.address + 8 * rows * c, offsets[c].address, rows, data.address)
                null_count = int(nulls[c])
                arrays.append(
                    pa.Array.from_buffers(
                        pa.binary(), rows, [validity[c] if null_count else None, offsets[c], data], null_count
                    )
                )
        finally:
            del view
        return arrays


def load() -> NativeWire | None:
    """The C reader for this machine, or None: not built here (or older than its source), or ``KPI_WIRE=python``."""
    if os.environ.get("KPI_WIRE", "").lower() == "python":
        return None
    return _library()


@cache
def _library() -> NativeWire | None:
    path = library_path()
    if not path.is_file():
        return None
    source = Path(__file__).with_name("mysql_wire.c")  # only in a source tree; packages ship the library alone
    if source.is_file() and source.stat().st_mtime > path.stat().st_mtime:
        return None  # a stale build: `python -m infra.native` (make install) rebuilds it
    try:
        return NativeWire(ctypes.CDLL(str(path)))
    except (OSError, AttributeError):  # built for another C library, or an older build without a function
        return None
