"""Exact row counts of lake files without pyarrow, so the loader can check them against the manifest.

The BigQuery loader Lambda ships without pyarrow (it would blow the package budget), yet before a file reaches
the warehouse the loader must know that it holds exactly the rows its manifest promises. For Parquet the footer
is the cheap, exact answer: ``num_rows`` sits in the FileMetaData at the end of the file, a few kilobytes read
with one ranged GET, decoded here with just enough of Thrift's compact protocol. For CSV there is no footer, so
the file is streamed through :class:`CsvRecordCounter`, which counts record ends outside quotes without a
per-byte Python loop.

Pure: no I/O, standard library only.
"""

from __future__ import annotations

PARQUET_MAGIC = b"PAR1"
PARQUET_TAIL_BYTES = 8  # <4-byte little-endian footer length>PAR1

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)
_NUM_ROWS_FIELD = 3
_MAX_DEPTH = 64  # Parquet's metadata nests a handful of levels; deeper means garbage, not a RecursionError


def parquet_footer_length(tail: bytes) -> int:
    """The length of the FileMetaData that precedes the last 8 bytes of a Parquet file (``tail`` may be longer)."""
    if len(tail) < PARQUET_TAIL_BYTES or tail[-4:] != PARQUET_MAGIC:
        raise ValueError(f"not a Parquet file: the file does not end with {PARQUET_MAGIC!r} (tail {tail[-8:]!r})")
    length = int.from_bytes(tail[-8:-4], "little")
    if length == 0:
        raise ValueError("not a Parquet file: the footer length is 0")
    return length


def parquet_rows(footer: bytes) -> int:
    """``num_rows`` (field 3, i64) of the Thrift-compact FileMetaData ``footer``; every other field is skipped."""
    reader = _CompactReader(footer)
    field_id = 0
    while (header := reader.byte()) & 0x0F != _STOP:
        field_type, delta = header & 0x0F, header >> 4
        field_id = field_id + delta if delta else reader.zigzag()
        if field_id == _NUM_ROWS_FIELD:
            if field_type != _I64:
                raise ValueError(f"garbled Parquet footer: num_rows has compact type {field_type}, not i64")
            rows = reader.zigzag()
            if rows < 0:
                raise ValueError(f"garbled Parquet footer: num_rows is {rows}")
            return rows
        reader.skip(field_type, depth=1)
    raise ValueError("garbled Parquet footer: FileMetaData has no num_rows (field 3)")


class _CompactReader:
    """A cursor over Thrift compact-protocol bytes that can skip any value without knowing its schema."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError(f"truncated Parquet footer: ran out of bytes at offset {self.pos}")
        self.pos += 1
        return self.data[self.pos - 1]

    def advance(self, count: int) -> None:
        if count < 0 or self.pos + count > len(self.data):
            raise ValueError(f"truncated Parquet footer: {count} bytes wanted at offset {self.pos} of {len(self.data)}")
        self.pos += count

    def varint(self) -> int:
        value = shift = 0
        while (byte := self.byte()) & 0x80:
            value |= (byte & 0x7F) << shift
            shift += 7
            if shift > 63:
                raise ValueError(f"garbled Parquet footer: varint longer than 10 bytes at offset {self.pos}")
        return value | (byte << shift)

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def skip(self, value_type: int, depth: int, in_collection: bool = False) -> None:
        """Skip one value. A bool is folded into its field header, but takes one byte as a list or map element."""
        if depth > _MAX_DEPTH:
            raise ValueError(f"garbled Parquet footer: values nested deeper than {_MAX_DEPTH} levels")
        if value_type in (_TRUE, _FALSE):
            self.advance(1 if in_collection else 0)
        elif value_type == _BYTE:
            self.advance(1)
        elif value_type in (_I16, _I32, _I64):
            self.varint()
        elif value_type == _DOUBLE:
            self.advance(8)
        elif value_type == _BINARY:
            self.advance(self.varint())
        elif value_type in (_LIST, _SET):
            header = self.byte()
            size = header >> 4 if header >> 4 != 15 else self.varint()
            self._skip_elements(size, [header & 0x0F], depth)
        elif value_type == _MAP:
            size = self.varint()
            if size:
                kinds = self.byte()
                self._skip_elements(size, [kinds >> 4, kinds & 0x0F], depth)
        elif value_type == _STRUCT:
            while (header := self.byte()) & 0x0F != _STOP:
                if not header >> 4:
                    self.zigzag()  # long-form field id; ids do not matter when skipping
                self.skip(header & 0x0F, depth + 1)
        else:
            raise ValueError(f"garbled Parquet footer: unknown compact type {value_type} at offset {self.pos}")

    def _skip_elements(self, size: int, types: list[int], depth: int) -> None:
        # Every element takes at least one byte, so a size beyond the bytes left is garbage (and would spin).
        if size * len(types) > len(self.data) - self.pos:
            raise ValueError(f"truncated Parquet footer: {size} elements cannot fit in the bytes left")
        for _ in range(size):
            for element_type in types:
                self.skip(element_type, depth + 1, in_collection=True)


class CsvRecordCounter:
    """Counts the data records of a CSV file fed chunk by chunk, not counting its header line.

    Written for pyarrow's CSV writer with ``quoting_style="needed"``: ``\\n`` line ends, and any field holding a
    quote, comma or line break is wrapped in double quotes with its quotes doubled. So a record ends at a ``\\n``
    outside quotes, and splitting a chunk on ``"`` leaves outside-quote text in every other part. A doubled
    quote toggles the state twice, which keeps the count right even when ``""`` straddles two chunks. The
    counting runs in C (``split``/``count``), which matters for files of hundreds of megabytes.
    """

    def __init__(self) -> None:
        self._line_ends = 0
        self._in_quotes = False
        self._open_line = False  # bytes seen since the last record end: a final record without its newline

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        parts = chunk.split(b'"')
        outside = parts[1::2] if self._in_quotes else parts[::2]
        self._line_ends += sum(part.count(b"\n") for part in outside)
        if (len(parts) - 1) % 2:
            self._in_quotes = not self._in_quotes
        self._open_line = self._in_quotes or not chunk.endswith(b"\n")

    @property
    def records(self) -> int:
        """Data records so far: lines (a last one without ``\\n`` included) less the header; 0 for an empty file."""
        return max(self._line_ends + self._open_line - 1, 0)
