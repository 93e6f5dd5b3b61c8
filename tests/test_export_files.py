"""Parquet files of a partition: dictionaries only for columns of few values, and the values unchanged."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.export.files import FileOptions, PartitionFiles, dictionary_columns
from pipeline.stores import LocalStore


def test_only_columns_of_few_distinct_values_get_a_dictionary(tmp_path: Path) -> None:
    rows = 40_000
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "status": pa.array(["paid", "refunded", "cancelled", "paid"] * (rows // 4)),
            "note": pa.array([f"note {i}" if i % 3 else None for i in range(rows)]),
            "paid": pa.array([i % 2 == 0 for i in range(rows)]),
            "day": pa.array([i % 30 for i in range(rows)], pa.int32()),
        }
    )
    assert dictionary_columns(table) == ["status", "day"]
    assert dictionary_columns(None) == []
    store = LocalStore(tmp_path)
    files = PartitionFiles(store, "kpi/p", table.schema, FileOptions(row_group_rows=16_384))
    for batch in table.to_batches(max_chunksize=5_000):
        files.write(batch)
    (written,) = files.close()
    parquet = pq.ParquetFile(tmp_path / written.path)
    assert parquet.read().equals(table)
    assert parquet.metadata.num_row_groups == 2  # flushed at 20,000 rows (4 batches), then the rest
    group = parquet.metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: set(group.column(i).encodings) for i in range(group.num_columns)}
    dictionary = {name for name, used in encodings.items() if used & {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}}
    assert dictionary == {"status", "day"}
