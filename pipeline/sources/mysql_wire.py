"""MySQL result rows read straight off pymysql's socket, as one Arrow binary array per column and batch.

Why not ``cursor.fetchmany``: pymysql builds a Python object per value (≈ 114k rows/s measured); reading the
text protocol ourselves and splitting the columns with Arrow kernels is several times faster and keeps memory
flat. The protocol is simple and stable (https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset.html):
each row is a packet ``<3-byte length><1-byte sequence><payload>``; the payload holds one length-encoded string
per column (``0xFB`` = NULL; ``0xFC``/``0xFD`` = 2/3-byte length follows); ``0xFE`` with a payload under 9 bytes
ends the result; ``0xFF`` is an error (a timeout, a killed query). Rows of 16 MiB and more span several packets.

One Python loop walks the packet headers (one step per row); everything per value — lengths, NULLs, gathering
each column's bytes into a contiguous array — runs in Arrow's C++ kernels over the whole buffer.
This relies on pymysql internals (``_rfile``, ``_next_seq_id``, the result's ``unbuffered_active``); the pinned
pymysql version is the one tested (tests/test_mysql_wire.py includes rows over 16 MiB).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterator
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pymysql import err
from pymysql.constants import CR
from pymysql.protocol import MysqlPacket

from pipeline.core.arrays import arange
from pipeline.sources.mysql_native import NativeWire
from pipeline.sources.mysql_native import load as load_native

MAX_PACKET = 0xFFFFFF
_READ_SIZE = 1 << 16
_NATIVE_READ_SIZE = 1 << 18  # the C reader's cost per read is a copy, not a Python step per row
_NULL, _TWO_BYTES, _THREE_BYTES = 0xFB, 0xFC, 0xFD
_ZERO = pa.Array.from_buffers(pa.int32(), 1, [None, pa.py_buffer(array("i", [0]))])


class DeadlineExceeded(Exception):
    """The client-side deadline passed while rows were still arriving."""


def read_batches(
    connection: Any,
    result: Any,
    columns: int,
    *,
    deadline: float,
    batch_rows: int = 65_536,
    native: NativeWire | Literal["auto"] | None = "auto",
) -> Iterator[list[pa.Array]]:
    """Yield the rows of the unbuffered result that ``result`` (pymysql's MySQLResult) has started.

    Stops after the server's end-of-result packet and hands the connection back to pymysql in a clean state.
    Raises pymysql's own errors for error packets and lost connections, :class:`DeadlineExceeded` at ``deadline``
    (``time.monotonic()``). On any exception the connection is left mid-result: close it, do not reuse it.

    ``native``: the C reader (:mod:`pipeline.sources.mysql_native`; ``"auto"``: the one built for this machine,
    if any) or None for the pure-Python path. Both yield the same arrays.
    """
    wire = load_native() if native == "auto" else native
    if wire is not None:
        return _read_native(wire, connection, result, columns, deadline, batch_rows)
    return _read_python(connection, result, columns, deadline, batch_rows)


def _read_native(
    wire: NativeWire, connection: Any, result: Any, columns: int, deadline: float, batch_rows: int
) -> Iterator[list[pa.Array]]:
    """The C reader: it walks packets and splits columns straight out of the receive buffer."""
    rfile = connection._rfile
    buf = bytearray()
    scan = 0  # where the next packet header starts
    starts = wire.starts(batch_rows)  # payload offsets of the rows walked but not yet yielded
    count = 0
    while True:
        data = rfile.read1(_NATIVE_READ_SIZE)
        if not data:
            raise err.OperationalError(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query")
        if time.monotonic() > deadline:
            raise DeadlineExceeded
        buf += data
        while True:  # consume what is buffered; read again only when a packet is incomplete
            added, scan, long_row = wire.walk(buf, scan, starts, count)
            count += added
            if count:
                last = starts[count - 1]
                if _ends_result(connection, result, buf, last):
                    count -= 1
                    if count:
                        yield wire.split(buf, starts, count, columns)
                    _hand_back(connection, result, buf, last)
                    return
            if long_row:
                whole = _long_row(buf, scan)
                if whole is None:
                    break  # its remaining packets have not arrived yet
                if count:
                    yield wire.split(buf, starts, count, columns)
                    count = 0
                payload, end = whole
                yield _single_row(payload, columns)
                del buf[:end]
                scan = 0
                continue
            if count >= batch_rows or (count and scan > (64 << 20)):
                yield wire.split(buf, starts, count, columns)
                count = 0
                del buf[:scan]
                scan = 0
                continue  # more complete packets may be buffered already
            break


def _ends_result(connection: Any, result: Any, buf: bytearray, last: int) -> bool:
    """Raise the server's error if the packet at ``last`` is an error packet; True if it ends the result set."""
    length = buf[last - 4] | (buf[last - 3] << 8) | (buf[last - 2] << 16)
    if length and buf[last] == 0xFF:  # an error packet is always the last of a response
        result.unbuffered_active = False
        MysqlPacket(bytes(buf[last : last + length]), connection.encoding).raise_for_error()
    return length > 0 and buf[last] == 0xFE and length < 9


def _hand_back(connection: Any, result: Any, buf: bytearray, last: int) -> None:
    """After the end-of-result packet: the connection is pymysql's again, ready for the next statement."""
    connection._next_seq_id = (buf[last - 1] + 1) % 256
    result.unbuffered_active = False
    result.connection = None


def _read_python(
    connection: Any, result: Any, columns: int, deadline: float, batch_rows: int
) -> Iterator[list[pa.Array]]:
    """The pure-Python reader: one Python step per row packet, columns split by Arrow kernels."""
    rfile = connection._rfile
    buf = bytearray()
    scan = 0  # where the next packet header starts
    starts: list[int] = []  # payload offsets of the rows walked but not yet yielded
    while True:
        data = rfile.read1(_READ_SIZE)
        if not data:
            raise err.OperationalError(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query")
        if time.monotonic() > deadline:
            raise DeadlineExceeded
        buf += data
        while True:  # consume what is buffered; read again only when a packet is incomplete
            scan, long_row = _walk(buf, scan, starts)
            if starts:
                last = starts[-1]
                if _ends_result(connection, result, buf, last):
                    starts.pop()
                    if starts:
                        yield _split(bytes(buf[: last - 4]), starts, last - 4, columns)
                    _hand_back(connection, result, buf, last)
                    return
            if long_row:
                whole = _long_row(buf, scan)
                if whole is None:
                    break  # its remaining packets have not arrived yet
                if starts:
                    yield _split(bytes(buf[:scan]), starts, scan, columns)
                    starts.clear()
                payload, end = whole
                yield _single_row(payload, columns)
                del buf[:end]
                scan = 0
                continue
            if len(starts) >= batch_rows or (starts and scan > (64 << 20)):
                yield _split(bytes(buf[:scan]), starts, scan, columns)
                starts.clear()
                del buf[:scan]
                scan = 0
            break


def _walk(buf: bytearray, pos: int, starts: list[int]) -> tuple[int, bool]:
    """Append the payload offset of every complete packet from ``pos``; return where the walk stopped and
    whether it stopped at a packet of the maximum size (the first piece of a row of 16 MiB or more).

    The hot loop of the exporter: one iteration per row, nothing per value.
    """
    add = starts.append
    stop = len(buf) - 4
    while pos <= stop:
        length = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)
        if length == MAX_PACKET:
            return pos, True
        pos += 4
        add(pos)
        pos += length
    if pos > len(buf):  # the last packet is incomplete: walk it again when the rest has arrived
        pos = starts.pop() - 4
    return pos, False


def _long_row(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A row split over several packets (16 MiB and more): its payload and where it ends, if all arrived."""
    pieces: list[bytes] = []
    while True:
        if pos + 4 > len(buf):
            return None
        length = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)
        end = pos + 4 + length
        if end > len(buf):
            return None
        pieces.append(bytes(buf[pos + 4 : end]))
        pos = end
        if length < MAX_PACKET:
            return b"".join(pieces), end


def _single_row(payload: bytes, columns: int) -> list[pa.Array]:
    """Parse one row in Python (only for rows of 16 MiB and more, where per-value cost does not matter)."""
    values: list[bytes | None] = []
    pos = 0
    for _ in range(columns):
        lead = payload[pos]
        if lead < _NULL:
            size, pos = lead, pos + 1
        elif lead == _NULL:
            values.append(None)
            pos += 1
            continue
        else:
            width = {_TWO_BYTES: 2, _THREE_BYTES: 3, 0xFE: 8}[lead]
            size = int.from_bytes(payload[pos + 1 : pos + 1 + width], "little")
            pos += 1 + width
        values.append(payload[pos : pos + size])
        pos += size
    if pos != len(payload):
        raise err.InternalError(f"malformed row packet: {len(payload) - pos} bytes left after {columns} columns")
    return [pa.array([value], pa.binary()) for value in values]


def _split(buf: bytes, starts: list[int], stop: int, columns: int) -> list[pa.Array]:
    """Cut ``columns`` binary arrays out of the row payloads at ``starts`` (rows end at the next header)."""
    octets = pa.Array.from_buffers(pa.uint8(), len(buf), [None, pa.py_buffer(buf)])
    rows = len(starts)
    position = _int64s(starts)
    row_ends = pa.concat_arrays([pc.subtract(position.slice(1), 4), _int64s([stop])])
    last = len(buf) - 1
    arrays = []
    for _ in range(columns):
        lead = pc.take(octets, position)
        highest = pc.max(lead).as_py()
        validity = None
        if highest < _NULL:
            sizes, header = lead.cast(pa.int32()), 1
        else:
            is_null = pc.equal(lead, _NULL)
            if pc.any(is_null).as_py():
                validity = pc.invert(is_null).buffers()[1]
            sizes = pc.if_else(is_null, 0, lead).cast(pa.int32())
            header = 1
            if highest > _NULL:
                sizes, header = _long_lengths(octets, position, lead, sizes, last)
        value_starts = pc.add(position, header)
        arrays.append(_gather(octets, value_starts, sizes, rows, validity))
        position = pc.add(value_starts, sizes)
    if not pc.all(pc.equal(position, row_ends)).as_py():
        raise err.InternalError("malformed row packets: column lengths do not add up to the packet lengths")
    return arrays


def _int64s(values: list[int]) -> pa.Array:
    """A list of ints as an Arrow array through the stdlib's packed ``array`` (faster than ``pa.array``, and it
    does not make pyarrow import pandas to inspect the list)."""
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(array("q", values))])


def _long_lengths(
    octets: pa.Array, position: pa.Array, lead: pa.Array, sizes: pa.Array, last: int
) -> tuple[pa.Array, pa.Array]:
    """Sizes and header widths where some values have a 2- or 3-byte length (251 bytes to 16 MiB)."""
    if pc.any(pc.equal(lead, 0xFE)).as_py():
        raise err.InternalError("8-byte value length in a row under 16 MiB")

    def byte(offset: int) -> pa.Array:
        at = pc.min_element_wise(pc.add(position, offset), last)
        return pc.take(octets, at).cast(pa.int32())

    two = pc.add(byte(1), pc.shift_left(byte(2), 8))
    three = pc.add(two, pc.shift_left(byte(3), 16))
    is_two, is_three = pc.equal(lead, _TWO_BYTES), pc.equal(lead, _THREE_BYTES)
    sizes = pc.if_else(is_two, two, pc.if_else(is_three, three, sizes)).cast(pa.int32())
    header = pc.if_else(is_two, 3, pc.if_else(is_three, 4, 1)).cast(pa.int32())
    return sizes, header


def _gather(
    octets: pa.Array, value_starts: pa.Array, sizes: pa.Array, rows: int, validity: pa.Buffer | None
) -> pa.Array:
    """A binary array of ``octets[start:start+size]`` per row, copied contiguously by Arrow's ``take``."""
    ends = pc.cumulative_sum_checked(sizes)
    offsets = pa.concat_arrays([_ZERO, ends])
    total = ends[-1].as_py() if rows else 0
    if total:
        parents = pc.list_parent_indices(pa.ListArray.from_arrays(offsets, octets.slice(0, total)))
        shift = pc.subtract(value_starts, offsets.slice(0, rows))
        data = pc.take(octets, pc.add(pc.take(shift, parents), arange(total))).buffers()[1]
    else:
        data = pa.py_buffer(b"")
    return pa.Array.from_buffers(pa.binary(), rows, [validity, offsets.buffers()[1], data])
