"""The C reader against the pure-Python reader on packets built here: the same arrays, the same refusals.

tests/test_mysql_wire.py runs both readers against the real server and pymysql; this file reaches what a server
rarely sends: every length class at its edges, NULLs in every position, the walk stopping at every possible byte
of an incomplete packet, and malformed packets, which both readers must refuse rather than misread.
"""

from __future__ import annotations

import ctypes
import platform
import random
from pathlib import Path

import pyarrow as pa
import pytest
from pymysql import err

from infra import native as native_build
from pipeline.sources import mysql_native, mysql_wire
from pipeline.sources.mysql_native import NativeWire


@pytest.fixture(scope="module")
def native() -> NativeWire:
    wire = mysql_native.load()
    assert wire is not None, f"the C reader is not built for {platform.machine()}: run `python -m infra.native`"
    return wire


def lenenc(value: bytes | None) -> bytes:
    if value is None:
        return b"\xfb"
    size = len(value)
    if size < 0xFB:
        return bytes([size]) + value
    if size < 1 << 16:
        return b"\xfc" + size.to_bytes(2, "little") + value
    if size < 1 << 24:
        return b"\xfd" + size.to_bytes(3, "little") + value
    return b"\xfe" + size.to_bytes(8, "little") + value


def packet(payload: bytes, sequence: int) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence % 256]) + payload


SIZES = [0, 1, 250, 251, 252, 65_535, 65_536, 70_000]


def rows_of(seed: int, count: int, columns: int, sizes: list[int] = SIZES) -> list[list[bytes | None]]:
    pick = random.Random(seed)
    return [
        [None if pick.random() < 0.2 else bytes([65 + c]) * pick.choice(sizes) for c in range(columns)]
        for _ in range(count)
    ]


def python_split(buf: bytes, starts: list[int], columns: int) -> list[pa.Array]:
    last = starts[-1]
    stop = last + int.from_bytes(buf[last - 4 : last - 1], "little")
    return mysql_wire._split(buf[:stop], starts, stop, columns)


def native_walk_all(native: NativeWire, buf: bytearray) -> tuple[list[int], int]:
    starts = native.starts(len(buf))
    count, following, long_row = native.walk(buf, 0, starts, 0)
    assert not long_row
    return list(starts[:count]), following


@pytest.mark.parametrize("seed", range(6))
def test_split_gives_the_arrays_of_the_python_reader(native: NativeWire, seed: int) -> None:
    columns = 1 + seed % 4
    rows = rows_of(seed, 40, columns)
    buf = bytearray(b"".join(packet(b"".join(lenenc(v) for v in row), i) for i, row in enumerate(rows)))
    starts, following = native_walk_all(native, buf)
    python_starts: list[int] = []
    assert mysql_wire._walk(buf, 0, python_starts) == (following, False)
    assert starts == python_starts
    assert following == len(buf)
    arrays = native.split(buf, native_starts(native, starts), len(starts), columns)
    expected = python_split(bytes(buf), starts, columns)
    for got, want, column in zip(arrays, expected, zip(*rows, strict=True), strict=True):
        got.validate(full=True)
        assert got.equals(want)
        assert got.to_pylist() == list(column)
        assert got.null_count == sum(v is None for v in column)


def native_starts(native: NativeWire, starts: list[int]) -> ctypes.Array[ctypes.c_int64]:
    array = native.starts(max(1, len(starts)))
    for index, value in enumerate(starts):
        array[index] = value
    return array


def test_the_walk_stops_before_an_incomplete_packet_at_every_byte(native: NativeWire) -> None:
    rows = rows_of(99, 8, 2, sizes=[0, 1, 250, 251, 300])
    whole = b"".join(packet(b"".join(lenenc(v) for v in row), i) for i, row in enumerate(rows))
    for cut in range(len(whole) + 1):
        buf = bytearray(whole[:cut])
        starts, following = native_walk_all(native, buf)
        python_starts: list[int] = []
        assert mysql_wire._walk(buf, 0, python_starts)[0] == following
        assert starts == python_starts


def test_the_walk_stops_after_an_end_or_error_packet_and_at_a_long_packet(native: NativeWire) -> None:
    row = packet(lenenc(b"x"), 1)
    end = packet(b"\xfe\x00\x00\x02\x00", 2)
    buf = bytearray(row + end + row)
    starts, following = native_walk_all(native, buf)
    assert starts == [4, len(row) + 4]
    assert following == len(row) + len(end)
    error = packet(b"\xff\x10\x04#HY000boom", 2)
    starts, following = native_walk_all(native, bytearray(row + error + row))
    assert len(starts) == 2
    assert following == len(row) + len(error)
    long_start = bytearray(row + b"\xff\xff\xff\x02" + b"x" * 10)
    capacity = native.starts(4)
    count, following, long_row = native.walk(long_start, 0, capacity, 0)
    assert (count, following, long_row) == (1, len(row), True)


@pytest.mark.parametrize(
    "payload",
    [
        lenenc(b"abc") + b"extra",  # bytes left after the last column
        b"\x05ab",  # a value running past its packet
        b"\xfc\x10",  # a 2-byte length cut short
        b"\xff",  # 0xFF is no length
        b"",  # a column missing
    ],
)
def test_a_malformed_row_is_refused_by_both_readers(native: NativeWire, payload: bytes) -> None:
    buf = bytearray(packet(lenenc(b"ok") + lenenc(None), 1) + packet(payload, 2))
    starts = [4, 4 + 4 + 4]
    with pytest.raises(err.InternalError):
        native.split(buf, native_starts(native, starts), 2, 2 if payload else 1)
    with pytest.raises((err.InternalError, pa.ArrowInvalid, IndexError)):
        python_split(bytes(buf), starts, 2 if payload else 1)


def test_an_empty_batch_and_empty_values(native: NativeWire) -> None:
    buf = bytearray(packet(lenenc(b"") + lenenc(None) + lenenc(b""), 1))
    arrays = native.split(buf, native_starts(native, [4]), 1, 3)
    assert [a.to_pylist() for a in arrays] == [[b""], [None], [b""]]
    assert [a.null_count for a in arrays] == [0, 1, 0]


@pytest.mark.infra  # a zig cross-compile per architecture, arm64 run under qemu-user: about 100 s each
@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_reader_builds_and_runs_on_both_lambda_architectures(machine: str, tmp_path: Path) -> None:
    """The same C, cross-compiled by zig for each of Lambda's architectures and run there (arm64 under qemu-user,
    which `make test` installs), decodes every length class and refuses a malformed row."""
    assert native_build.check(machine, tmp_path) == "ok: 300 rows, 963 values"
    library = native_build.build(machine, tmp_path / "lib", portable=True)
    header = library.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == {"x86_64": 62, "aarch64": 183}[machine]  # ELF e_machine
