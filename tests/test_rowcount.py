"""Row counts without pyarrow: the loader Lambda's Parquet-footer decoder and CSV record counter, checked against
files pyarrow itself wrote (and against pyarrow's own reading of them)."""

from __future__ import annotations

import io
import random
import struct
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pipeline.core.manifest import CSV_NULL_MARKER
from pipeline.core.rowcount import PARQUET_TAIL_BYTES, CsvRecordCounter, parquet_footer_length, parquet_rows

# ---------------------------------------------------------------------------------------------------- Parquet


def _rows_from_footer(data: bytes) -> int:
    """What the loader does: read the tail, then the footer it points to, then decode num_rows."""
    length = parquet_footer_length(data[-PARQUET_TAIL_BYTES:])
    return parquet_rows(data[-PARQUET_TAIL_BYTES - length : -PARQUET_TAIL_BYTES])


def _footer(path: Path) -> bytes:
    data = path.read_bytes()
    length = parquet_footer_length(data[-PARQUET_TAIL_BYTES:])
    return data[-PARQUET_TAIL_BYTES - length : -PARQUET_TAIL_BYTES]


def _wide_table(rows: int) -> pa.Table:
    """Every kind of column the exporter writes, with nulls sprinkled through all of them."""
    start = datetime(2024, 3, 1, tzinfo=UTC)

    def nullable(values: list[Any]) -> list[Any]:
        return [None if i % 7 == 3 else v for i, v in enumerate(values)]

    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "small": pa.array(nullable([i % 100 for i in range(rows)]), pa.int16()),
            "name": pa.array(nullable([f'név-{i}, "q"\n' * (i % 3) for i in range(rows)]), pa.string()),
            "amount": pa.array(nullable([Decimal(i) / 100 for i in range(rows)]), pa.decimal128(18, 2)),
            "big": pa.array(nullable([Decimal(i) ** 3 for i in range(rows)]), pa.decimal128(38, 0)),
            "at": pa.array(nullable([start + timedelta(seconds=i) for i in range(rows)]), pa.timestamp("us", "UTC")),
            "naive": pa.array(nullable([datetime(2024, 1, 1) + timedelta(minutes=i) for i in range(rows)])),
            "day": pa.array(nullable([date(2024, 1, 1) + timedelta(days=i % 400) for i in range(rows)]), pa.date32()),
            "flag": pa.array(nullable([i % 2 == 0 for i in range(rows)]), pa.bool_()),
            "ratio": pa.array(nullable([i / 3 for i in range(rows)]), pa.float64()),
            "blob": pa.array(nullable([bytes([i % 256]) * (i % 5) for i in range(rows)]), pa.binary()),
            "always_null": pa.nulls(rows, pa.string()),
            "tags": pa.array(nullable([[f"t{i % 4}", None] for i in range(rows)]), pa.list_(pa.string())),
            "point": pa.array(nullable([{"x": i, "y": str(i)} for i in range(rows)])),
        }
    )


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"compression": "zstd", "compression_level": 1, "write_statistics": True}, id="exporter"),
        pytest.param({"compression": "none", "write_statistics": False, "use_dictionary": False}, id="bare"),
        pytest.param({"compression": "gzip", "version": "1.0", "data_page_version": "2.0"}, id="v1-gzip"),
        pytest.param({"compression": "snappy", "write_page_index": True, "store_schema": False}, id="page-index"),
        pytest.param(
            {"compression": "zstd", "write_statistics": ["id", "name"], "use_dictionary": ["name"]}, id="mixed"
        ),
    ],
)
def test_parquet_rows_match_pyarrow_across_row_groups_and_writer_options(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    table = _wide_table(2_500).replace_schema_metadata({b"k": b"v", b"kpi": "日次売上".encode()})
    path = tmp_path / "wide.parquet"
    pq.write_table(table, path, row_group_size=600, **options)

    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups == 5
    assert metadata.num_columns == 15  # the list and the struct add leaves
    assert parquet_footer_length(path.read_bytes()[-PARQUET_TAIL_BYTES:]) == metadata.serialized_size
    assert parquet_rows(_footer(path)) == metadata.num_rows == 2_500


def test_a_large_zstd_file_with_key_value_metadata(tmp_path: Path) -> None:
    rows = 100_000
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "label": [f"row {i}" for i in range(rows)]})
    path = tmp_path / "large.parquet"
    pq.write_table(table.replace_schema_metadata({b"k": b"v"}), path, compression="zstd", row_group_size=30_000)

    metadata = pq.ParquetFile(path).metadata
    assert (metadata.num_row_groups, metadata.metadata[b"k"]) == (4, b"v")
    assert _rows_from_footer(path.read_bytes()) == metadata.num_rows == rows


def test_the_exporters_writer_one_row_group_per_write(tmp_path: Path) -> None:
    """The exporter's own ParquetWriter settings, several write_table calls into one file."""
    table = _wide_table(1_000)
    path = tmp_path / "part-00000.parquet"
    with pq.ParquetWriter(path, table.schema, compression="zstd", compression_level=1, write_statistics=True) as w:
        for offset in range(0, 1_000, 300):
            chunk = table.slice(offset, 300)
            w.write_table(chunk, row_group_size=max(chunk.num_rows, 1))
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    assert _rows_from_footer(path.read_bytes()) == 1_000


def test_an_empty_table_has_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(_wide_table(0), path, compression="zstd")
    assert pq.ParquetFile(path).metadata.num_rows == 0
    assert _rows_from_footer(path.read_bytes()) == 0


def test_an_empty_writer_has_zero_rows(tmp_path: Path) -> None:
    """A partition without rows still gets a file: the writer opened and closed with nothing written."""
    path = tmp_path / "empty.parquet"
    pq.ParquetWriter(path, _wide_table(0).schema, compression="zstd").close()
    assert _rows_from_footer(path.read_bytes()) == 0


def test_the_tail_may_be_longer_than_eight_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)
    data = path.read_bytes()
    assert (
        parquet_footer_length(data[-64:])
        == parquet_footer_length(data[-8:])
        == pq.ParquetFile(path).metadata.serialized_size
    )


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        b"PAR1",
        b"PAR1PAR",
        b"\x10\x00\x00\x00PAR2",
        b"a,b\n1,2\n",
        b"\x10\x00\x00\x00PARE",
        b"\x00\x00\x00\x00PAR1",
    ],
)
def test_a_tail_without_a_parquet_footer_is_refused(tail: bytes) -> None:
    with pytest.raises(ValueError, match="not a Parquet file"):
        parquet_footer_length(tail)


def test_every_truncation_of_a_footer_is_refused_until_num_rows_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_wide_table(50).replace_schema_metadata({b"k": b"v"}), path, compression="zstd")
    footer = _footer(path)

    decoded: dict[int, int] = {}
    refusals: list[str] = []
    for cut in range(len(footer) + 1):
        try:
            decoded[cut] = parquet_rows(footer[:cut])
        except ValueError as error:
            refusals.append(str(error))
    assert all("Parquet footer" in message for message in refusals)
    # Once the prefix holds num_rows every longer one decodes too; to get there the whole schema was skipped.
    first = min(decoded)
    assert list(decoded) == list(range(first, len(footer) + 1))
    assert len(refusals) == first
    assert set(decoded.values()) == {50}
    assert all(name.encode() in footer[:first] for name in _wide_table(0).column_names)
    assert first < len(footer) // 2  # row groups follow num_rows: never read


def test_garbage_only_ever_raises_value_error(tmp_path: Path) -> None:
    """Random bytes and bit-flipped footers: a wrong count is possible, but never IndexError or RecursionError."""
    path = tmp_path / "t.parquet"
    pq.write_table(_wide_table(20), path)
    footer = _footer(path)
    rng = random.Random(20240301)
    samples = [rng.randbytes(rng.randrange(0, 200)) for _ in range(2_000)]
    samples += [bytes([0x19, 0xFC]) * 100, b"\x1c" * 10_000, b"\x19\xf9" + b"\xff" * 20]
    for _ in range(2_000):
        flipped = bytearray(footer)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        samples.append(bytes(flipped))
    refused = 0
    for sample in samples:
        try:
            assert parquet_rows(sample) >= 0
        except ValueError:
            refused += 1
    assert refused > 2_000


# A hand-written compact encoder, to reach every type the skipper knows (pyarrow's footers use only some).


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> bytes:
    return _varint((value << 1) ^ (value >> 63))


def _field(delta: int, kind: int, payload: bytes = b"") -> bytes:
    return bytes([delta << 4 | kind]) + payload


def _long_field(field_id: int, kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + _zigzag(field_id) + payload


NESTED = (
    _field(1, 1)  # bool true, no payload
    + _field(1, 2)  # bool false
    + _field(1, 3, b"\xff")  # byte
    + _field(1, 4, _zigzag(-300))  # i16
    + _long_field(1000, 8, _varint(3) + b"abc")  # binary under a long-form id
    + _field(1, 12, _field(1, 6, _zigzag(7)) + b"\x00")  # struct in a struct; ids restart
    + b"\x00"
)
EVERY_TYPE = (
    _field(1, 5, _zigzag(2))  # version: i32
    + _field(1, 9, bytes([2 << 4 | 12]) + NESTED + NESTED)  # schema: list<struct>
    + _long_field(-5, 7, struct.pack("<d", 1.5))  # double under a negative long-form id
    + _field(1, 9, bytes([4 << 4 | 1]) + b"\x01\x02\x01\x02")  # list<bool>: one byte per element
    + _field(1, 10, bytes([0xF0 | 5]) + _varint(20) + b"".join(_zigzag(i) for i in range(20)))  # set<i32>, long size
    + _field(1, 11, _varint(0))  # empty map: no type byte
    + _field(1, 11, _varint(2) + bytes([8 << 4 | 1]) + _varint(1) + b"k\x01" + _varint(1) + b"v\x02")  # map<bin,bool>
    + _field(1, 9, bytes([1 << 4 | 9]) + bytes([2 << 4 | 7]) + b"\x00" * 16)  # list<list<double>>
    + _field(1, 9, bytes([0 << 4 | 12]))  # empty list
)


@pytest.mark.parametrize("rows", [0, 1, 63, 64, 2**31, 2**62 + 12345])
def test_the_skipper_crosses_every_compact_type_to_reach_num_rows(rows: int) -> None:
    footer = EVERY_TYPE + _long_field(3, 6, _zigzag(rows)) + _field(1, 12, NESTED) + b"\x00"
    assert parquet_rows(footer) == rows


def test_num_rows_found_by_delta_after_other_fields() -> None:
    footer = _field(1, 5, _zigzag(1)) + _field(1, 9, bytes([0 << 4 | 12])) + _field(1, 6, _zigzag(42)) + b"\x00"
    assert parquet_rows(footer) == 42


@pytest.mark.parametrize(
    ("footer", "message"),
    [
        pytest.param(EVERY_TYPE + b"\x00", "no num_rows", id="missing"),
        pytest.param(b"\x00", "no num_rows", id="stop-only"),
        pytest.param(b"", "truncated", id="empty"),
        pytest.param(EVERY_TYPE, "truncated", id="no-stop"),
        pytest.param(_field(3, 5, _zigzag(10)) + b"\x00", "not i64", id="wrong-type"),
        pytest.param(_field(3, 6, _zigzag(-1)) + b"\x00", "num_rows is -1", id="negative"),
        pytest.param(_field(3, 6, b"\xff" * 11), "varint", id="endless-varint"),
        pytest.param(_field(1, 13) + b"\x00", "unknown compact type 13", id="unknown-type"),
        pytest.param(_field(1, 8, _varint(100) + b"abc"), "truncated", id="short-binary"),
        pytest.param(_field(1, 9, bytes([0xF0 | 5]) + _varint(10**9)), "cannot fit", id="huge-list"),
        pytest.param(_field(1, 12) + _field(1, 12) * 100 + b"\x00" * 101, "nested deeper", id="deep"),
    ],
)
def test_garbled_footers_are_refused_with_a_reason(footer: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parquet_rows(footer)


# ---------------------------------------------------------------------------------------------------- CSV


def _csv(table: pa.Table, batch_rows: int = 1_000) -> bytes:
    """Bytes as the exporter writes them: one CSVWriter, batch after batch."""
    sink = io.BytesIO()
    options = pacsv.WriteOptions(quoting_style="needed", null_string=CSV_NULL_MARKER)
    with pacsv.CSVWriter(sink, table.schema, write_options=options) as writer:
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write_batch(batch)
    return sink.getvalue()


def _count(data: bytes, chunk_size: int) -> int:
    counter = CsvRecordCounter()
    for offset in range(0, len(data), chunk_size):
        counter.feed(data[offset : offset + chunk_size])
    return counter.records


TRICKY_STRINGS = [
    "plain",
    "",
    None,
    "line\nbreak",
    "\n",
    "\n\n\n",
    '"',
    '""',
    '"\n"',
    'he said "hi"\nthen left',
    "a,b,c",
    ',"\n,',
    "trailing newline\n",
    "\r\nwindows\r\n",
    "ünïcödé — 日本語\n🎉",
    '"quoted at both ends"',
]


def _tricky_table() -> pa.Table:
    rows = len(TRICKY_STRINGS) * 3
    return pa.table(
        {
            'col "one"\n': pa.array(TRICKY_STRINGS * 3, pa.string()),
            "n": pa.array([None if i % 4 == 0 else i for i in range(rows)], pa.int64()),
            "amount": pa.array(
                [Decimal(i * 1_000_003) / 1_000_000 if i % 5 else None for i in range(rows)], pa.decimal128(20, 6)
            ),
            "at": pa.array([datetime(2024, 3, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(rows)]),
            "note": pa.array(list(reversed(TRICKY_STRINGS * 3)), pa.string()),
        }
    )


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 10**9])
def test_csv_records_with_quotes_newlines_commas_nulls_and_unicode(chunk_size: int) -> None:
    table = _tricky_table()
    data = _csv(table, batch_rows=5)
    assert data.count(b"\n") > table.num_rows + 1  # embedded newlines: counting lines would be wrong
    assert pacsv.read_csv(io.BytesIO(data)).num_rows == table.num_rows == 48
    assert _count(data, chunk_size) == 48


def test_csv_random_chunk_boundaries() -> None:
    data = _csv(_tricky_table())
    rng = random.Random(7)
    for _ in range(200):
        counter = CsvRecordCounter()
        offset = 0
        while offset < len(data):
            step = rng.randrange(0, 12)  # 0: empty chunks are allowed too
            counter.feed(data[offset : offset + step])
            offset += step
        assert counter.records == 48


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_a_single_column_of_nulls_and_empty_strings(chunk_size: int) -> None:
    """A null is ``\\N`` and an empty string is ``""``: both records. Files of version-1 manifests wrote a null as an
    empty line, which is a record too."""
    table = pa.table({"only": pa.array([None, "", None, "\n", None], pa.string())})
    data = _csv(table)
    assert data == b'"only"\n\\N\n""\n\\N\n"\n"\n\\N\n'
    assert _count(data, chunk_size) == 5
    version_1 = data.replace(b"\\N", b"")
    assert version_1 == b'"only"\n\n""\n\n"\n"\n\n'
    assert _count(version_1, chunk_size) == 5


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 10**9])
def test_header_only_and_empty_files_count_zero(chunk_size: int) -> None:
    header_only = _csv(_tricky_table().slice(0, 0))
    assert header_only == b'"col ""one""\n","n","amount","at","note"\n'
    assert _count(header_only, chunk_size) == 0
    assert _count(b"", chunk_size) == 0
    assert CsvRecordCounter().records == 0


@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b"a,b", 0),  # a header without its newline
        (b"a,b\n", 0),
        (b"a,b\n1,2", 1),  # a final record without a trailing newline
        (b"a,b\n1,2\n", 1),
        (b'a\n"x\ny"', 1),
        (b'a\n"x\ny"\n"z"', 2),
        (b'a\n"unterminated\n', 1),  # the quote never closes: its newline is inside the field
        (b'"a\n"\n"""\n"\n', 1),
    ],
)
def test_hand_written_edges(data: bytes, records: int) -> None:
    for chunk_size in (1, 2, len(data) or 1):
        assert _count(data, chunk_size) == records


def test_a_large_csv_fed_in_lambda_sized_chunks() -> None:
    rows = 100_000
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "text": pa.array([f'r{i}\n"q",x' if i % 3 == 0 else (None if i % 3 == 1 else "") for i in range(rows)]),
        }
    )
    data = _csv(table, batch_rows=8_192)
    assert _count(data, 1 << 16) == rows
    assert _count(data, 8 << 20) == rows
