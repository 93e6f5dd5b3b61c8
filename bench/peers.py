"""The peers of ``kpi export``, each as its users write it: ``python -m bench.peers KIND URL TABLE OUT``.

Run by ``bench/export_bench.py`` with the Python of the benchmark's own virtual environment (``.venv-bench``,
built by ``make bench`` from ``bench/peers.txt``), so that pandas, dlt, connectorx and polars never enter the
project's dependencies. Standard library only at the top: each peer imports its own libraries. Each writes
Parquet under OUT and a ``report.json`` there with the rows it wrote and what ``DECIMAL`` became.

* ``pandas``: ``pd.read_sql(sql, connection, chunksize=50_000)`` over an unbuffered pymysql cursor (so it does
  stream), each chunk through ``pa.Table.from_pandas`` into one ``ParquetWriter``;
* ``dlt``: ``sql_table(..., backend="pyarrow")`` into the ``filesystem`` destination as Parquet (telemetry off:
  the benchmark sends nothing beyond loopback);
* ``connectorx``: ``cx.read_sql(url, sql, return_type="arrow")`` then ``pq.write_table`` (zstd);
* ``polars``: ``pl.read_database_uri(sql, url)`` (connectorx underneath) then ``write_parquet`` (zstd).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

COLUMNS = "id, user_id, created_at, status, amount, note, is_paid"


def _connect_args(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.strip("/"),
        "charset": "utf8mb4",
    }


def pandas(url: str, table: str, out: Path) -> dict[str, Any]:
    import warnings

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pymysql
    import pymysql.cursors

    rows, writer, dtype = 0, None, ""
    connection = pymysql.connect(cursorclass=pymysql.cursors.SSCursor, **_connect_args(url))
    with connection as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "pandas only supports SQLAlchemy connectable …"
        for chunk in pd.read_sql(f"SELECT {COLUMNS} FROM {table}", conn, chunksize=50_000):
            batch = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(out / "pandas.parquet", batch.schema)
                dtype = str(chunk["amount"].dtype)
            writer.write_table(batch.cast(writer.schema))
            rows += len(chunk)
    if writer is not None:
        writer.close()
    return {"rows": rows, "amount": f"{dtype} (pandas dtype)"}


def dlt(url: str, table: str, out: Path) -> dict[str, Any]:
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt as dlt_
    from dlt.sources.sql_database import sql_table

    source = sql_table(
        credentials=url.replace("mysql://", "mysql+pymysql://", 1),
        table=table,
        backend="pyarrow",
        chunk_size=50_000,
    )
    pipeline = dlt_.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(out / "pipelines"),
        destination=dlt_.destinations.filesystem(bucket_url=str(out / "lake")),
        dataset_name="bench",
    )
    pipeline.run(source, loader_file_format="parquet")
    return {"rows": None, "amount": _parquet_type(out / "lake", "amount")}


def connectorx(url: str, table: str, out: Path) -> dict[str, Any]:
    import connectorx as cx
    import pyarrow.parquet as pq

    result = cx.read_sql(url, f"SELECT {COLUMNS} FROM {table}", return_type="arrow")
    pq.write_table(result, out / "connectorx.parquet", compression="zstd")
    return {"rows": result.num_rows, "amount": str(result.schema.field("amount").type)}


def polars(url: str, table: str, out: Path) -> dict[str, Any]:
    import polars as pl

    frame = pl.read_database_uri(f"SELECT {COLUMNS} FROM {table}", url)
    frame.write_parquet(out / "polars.parquet", compression="zstd")
    return {"rows": frame.height, "amount": str(frame.schema["amount"])}


def _parquet_type(folder: Path, column: str) -> str:
    import pyarrow.parquet as pq

    files = sorted(folder.rglob("*.parquet"))
    return str(pq.read_schema(files[0]).field(column).type) if files else "?"


def versions() -> dict[str, str]:
    """The peers' versions, for the report."""
    from importlib.metadata import version

    return {name: version(name) for name in ("pandas", "dlt", "connectorx", "polars", "pyarrow", "pymysql")}


PEERS = {"pandas": pandas, "dlt": dlt, "connectorx": connectorx, "polars": polars}


def main(argv: list[str]) -> int:
    if argv == ["versions"]:
        print(json.dumps(versions()))
        return 0
    kind, url, table, out = argv
    facts = PEERS[kind](url, table, Path(out))
    (Path(out) / "report.json").write_text(json.dumps(facts), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
