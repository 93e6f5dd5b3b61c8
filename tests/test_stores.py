"""The lake stores against the real things: a folder under tmp_path and S3 as served by moto over HTTP.

The behavioural tests run on both stores, because the exporter and the loader must not care which one
they got. S3-only tests cover what a folder cannot show: multipart uploads and errors from the service.
"""

from __future__ import annotations

import gc
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import botocore.awsrequest
import botocore.exceptions
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from pipeline.errors import StoreError
from pipeline.stores import LocalStore, ObjectInfo, S3Store, Store, open_store
from pipeline.stores.s3 import MIB, MIN_PART_SIZE, _error
from tests.aws import MotoServer, refuse_upload_part

KEY = "orders_daily/dt=2024-01-01/part-00000.parquet"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each store kind, rooted below the top (a sub-folder, an S3 prefix) so key joining is exercised too."""
    if request.param == "local":
        return LocalStore(tmp_path / "lake")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(bucket, "lake/v1", part_size=MIN_PART_SIZE)


@pytest.fixture
def s3_store(s3_bucket: str) -> S3Store:
    return S3Store(s3_bucket, "lake/v1", part_size=MIN_PART_SIZE)


def leftovers(store: Store) -> list[str]:
    """Everything physically there, as addresses, including what ``list`` hides: temp files, open uploads."""
    if isinstance(store, LocalStore):
        return sorted(str(path) for path in store.root.rglob("*") if path.is_file())
    assert isinstance(store, S3Store)
    objects = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    found = [f"s3://{store.bucket}/{item['Key']}" for item in objects]
    return sorted(found + [f"upload:s3://{store.bucket}/{item['Key']}" for item in uploads])


def write_in_chunks(writer: Any, data: bytes, chunk: int = 1_000_003) -> None:
    """Odd-sized chunks, so part boundaries never line up with writes."""
    for start in range(0, len(data), chunk):
        writer.write(data[start : start + chunk])


# -- both stores -----------------------------------------------------------------------------------------------


def test_written_object_round_trips_with_size_and_sha256(store: Store) -> None:
    data = os.urandom(100_000)
    with store.open_write(KEY) as writer:
        writer.write(data[:10])
        writer.write(memoryview(data)[10:50_000])
        writer.write(bytearray(data[50_000:]))
        assert writer.tell() == len(data)
        assert not store.exists(KEY)  # invisible until committed
    assert writer.closed
    assert (writer.key, writer.size, writer.sha256) == (KEY, len(data), hashlib.sha256(data).hexdigest())
    assert store.exists(KEY)
    assert store.get_bytes(KEY) == data
    assert store.list("") == [ObjectInfo(KEY, len(data))]
    assert store.list("orders_daily/") == [ObjectInfo(KEY, len(data))]
    assert store.list("other/") == []
    assert store.uri(KEY) == f"{store.url}/{KEY}"


def test_empty_object_is_committed(store: Store) -> None:
    with store.open_write("empty.csv") as writer:
        pass
    assert writer.sha256 == hashlib.sha256(b"").hexdigest()
    assert store.list("") == [ObjectInfo("empty.csv", 0)]
    assert store.get_bytes("empty.csv") == b""


def test_list_is_recursive_sorted_and_uses_string_prefixes(store: Store) -> None:
    for key in ["b/2024-02/x", "a/z", "b/2024-01/y", "b/2024-01/a/deep", "b2/w"]:
        store.put_bytes(key, key.encode())
    assert [info.key for info in store.list("")] == ["a/z", "b/2024-01/a/deep", "b/2024-01/y", "b/2024-02/x", "b2/w"]
    assert [info.key for info in store.list("b/2024-0")] == ["b/2024-01/a/deep", "b/2024-01/y", "b/2024-02/x"]
    assert [info.key for info in store.list("b")] == ["b/2024-01/a/deep", "b/2024-01/y", "b/2024-02/x", "b2/w"]
    assert [info.size for info in store.list("a/")] == [3]
    assert store.list("missing/folder/") == []


def test_open_writer_is_not_listed(store: Store) -> None:
    """A half-written object (a temp file, an open multipart upload) must not look like data to the loader."""
    writer = store.open_write(KEY)
    writer.write(os.urandom(MIN_PART_SIZE + 1))  # on S3 this has started a multipart upload
    assert store.list("") == []
    assert not store.exists(KEY)
    assert len(leftovers(store)) == 1  # the temp file or the multipart upload is there all the same
    writer.abort()
    assert leftovers(store) == []


def test_what_an_abandoned_writer_left_is_discarded_under_its_prefix_only(store: Store) -> None:
    """A killed process never aborts: its temp file or multipart upload stays until a retry discards it — and only
    under the prefix the retry owns; finished objects, and other runs' leftovers, stay."""
    mine, theirs = "k/day=2024-01-01/run=r1", "k/day=2024-01-01/run=r2"
    with store.open_write(f"{mine}/part-00000.parquet") as done:
        done.write(b"complete")
    abandoned = [store.open_write(f"{prefix}/part-00001.parquet") for prefix in (mine, mine, theirs)]
    for writer in abandoned:
        writer.write(os.urandom(MIN_PART_SIZE + 1))  # on S3 each has started a multipart upload
    assert len(leftovers(store)) == 4
    assert store.discard_incomplete(mine + "/") == 2
    assert store.discard_incomplete(mine + "/") == 0  # nothing left to discard
    assert store.list("") == [ObjectInfo(f"{mine}/part-00000.parquet", 8)]
    assert len(leftovers(store)) == 2  # the finished object and the other run's abandoned write
    assert store.get_bytes(f"{mine}/part-00000.parquet") == b"complete"
    abandoned[2].abort()
    assert store.discard_incomplete("") == 0


def test_abort_leaves_nothing(store: Store) -> None:
    writer = store.open_write(KEY)
    writer.write(os.urandom(MIN_PART_SIZE + MIB))  # one part uploaded, one buffered
    writer.abort()
    writer.abort()  # idempotent
    writer.close()  # after abort, close must not commit
    assert writer.write(b"late footer") == 11  # swallowed: see StoreWriter.write
    with pytest.raises(StoreError, match="aborted"):
        writer.commit()
    assert leftovers(store) == []
    assert store.list("") == []
    if isinstance(store, LocalStore):  # nor the folders the temp file was written in: they would look like a run
        assert list(store.root.iterdir()) == []


def test_exception_inside_with_aborts(store: Store) -> None:
    writer = store.open_write(KEY)

    def fail_half_way() -> None:
        with writer:
            write_in_chunks(writer, os.urandom(MIN_PART_SIZE + MIB))
            raise ValueError("half way")

    with pytest.raises(ValueError, match="half way"):
        fail_half_way()
    assert writer.closed
    assert leftovers(store) == []


def test_close_commits_once(store: Store) -> None:
    writer = store.open_write(KEY)
    writer.write(b"abc")
    writer.close()
    writer.commit()  # idempotent after close
    writer.abort()  # a committed object is final
    assert store.get_bytes(KEY) == b"abc"
    with pytest.raises(StoreError, match="after commit"):
        writer.write(b"more")


def test_open_write_refuses_an_existing_key(store: Store) -> None:
    store.put_bytes(KEY, b"old")
    with pytest.raises(StoreError, match="already exists") as caught:
        store.open_write(KEY)
    assert caught.value.where == store.uri(KEY)
    assert store.get_bytes(KEY) == b"old"


@pytest.mark.parametrize("size", [100, MIN_PART_SIZE + 1], ids=["single-put", "multipart"])
def test_commit_refuses_a_key_taken_meanwhile(store: Store, size: int) -> None:
    """Two runs racing on one key: the second commit fails and discards its data; the first object stays."""
    writer = store.open_write(KEY)
    writer.write(os.urandom(size))
    store.put_bytes(KEY, b"winner")
    with pytest.raises(StoreError, match="appeared at this key") as caught:
        writer.commit()
    assert caught.value.where == store.uri(KEY)
    assert store.get_bytes(KEY) == b"winner"
    assert leftovers(store) == [store.uri(KEY)]  # no temp file, no open upload


def test_put_bytes_overwrites_atomically(store: Store) -> None:
    store.put_bytes("manifests/orders_daily.json", b'{"v": 1}')
    store.put_bytes("manifests/orders_daily.json", b'{"v": 22}')
    assert store.get_bytes("manifests/orders_daily.json") == b'{"v": 22}'
    assert store.list("") == [ObjectInfo("manifests/orders_daily.json", 9)]
    assert leftovers(store) == [store.uri("manifests/orders_daily.json")]  # no temp file left next to it


def test_put_many_stores_each_object_in_order(store: Store) -> None:
    items = [(f"kpi/day=2024-01-0{n}/run=r/_manifest.json", f'{{"n": {n}}}'.encode()) for n in (1, 2, 3)]
    store.put_many(items)
    assert [store.get_bytes(key) for key, _ in items] == [data for _, data in items]
    assert leftovers(store) == sorted(store.uri(key) for key, _ in items)


def test_put_many_in_a_folder_publishes_none_when_one_cannot_be_written(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    store.put_bytes("kpi/blocked", b"a file where the second manifest's folder would be")
    with pytest.raises(StoreError, match="could not create a file") as caught:
        store.put_many([("kpi/day=1/_manifest.json", b"{}"), ("kpi/blocked/_manifest.json", b"{}")])
    assert caught.value.where == store.uri("kpi/blocked/_manifest.json")
    assert not store.exists("kpi/day=1/_manifest.json")  # written to a temp file, never renamed, removed
    assert leftovers(store) == [store.uri("kpi/blocked")]


def test_a_folder_syncs_published_files_by_the_next_put(tmp_path: Path) -> None:
    """A data file is committed by the manifest that names it: its commit publishes it without waiting for the
    disk, and the store's next put makes it, its folder and the new folders above durable first."""
    store = LocalStore(tmp_path / "lake")
    with store.open_write("kpi/day=1/run=r/part-00000.parquet") as writer:
        writer.write(b"rows")
    run = tmp_path / "lake" / "kpi" / "day=1" / "run=r"
    assert list(store._unsynced_files) == [run / "part-00000.parquet"]
    # the file's folder, and the folder above each one created for it (the lake's root included: new too)
    assert set(store._unsynced_folders) == {run, run.parent, run.parent.parent, tmp_path / "lake", tmp_path}
    store.put_bytes("kpi/day=1/run=r/_manifest.json", b"{}")
    assert (store._unsynced_files, store._unsynced_folders) == ({}, {})


def test_a_file_aborted_after_publishing_is_skipped_by_the_sync(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    with store.open_write("kpi/day=1/run=r/part-00000.parquet") as writer:
        writer.write(b"rows of a partition that failed its checks")
    store.delete(["kpi/day=1/run=r/part-00000.parquet"])  # what PartitionFiles.abort does
    store.put_bytes("kpi/day=2/run=r/_manifest.json", b"{}")  # no error for the file and folders now gone
    assert store.list("") == [ObjectInfo("kpi/day=2/run=r/_manifest.json", 2)]


def test_missing_key_names_the_key(store: Store) -> None:
    with pytest.raises(StoreError, match="no object") as caught:
        store.get_bytes("nope/x.parquet")
    assert caught.value.where == store.uri("nope/x.parquet")
    assert "nope/x.parquet" in str(caught.value)
    assert not store.exists("nope/x.parquet")


def test_delete_removes_objects_and_ignores_missing_keys(store: Store) -> None:
    for key in ["p/dt=1/a", "p/dt=1/b", "p/dt=2/a", "keep"]:
        store.put_bytes(key, b"x")
    store.delete(["p/dt=1/a", "p/dt=1/b", "p/dt=2/a", "never/existed"])
    store.delete([])
    assert store.list("") == [ObjectInfo("keep", 1)]
    if isinstance(store, LocalStore):  # emptied partition folders go too, the root stays
        assert sorted(path.name for path in store.root.iterdir()) == ["keep"]


@pytest.mark.parametrize("key", ["", "/abs", "../escape", "a/../../b", "a//b", "a/./b", "a\\b", "dir/"])
def test_bad_keys_are_refused(store: Store, key: str) -> None:
    with pytest.raises(StoreError, match="not a valid object key"):
        store.put_bytes(key, b"x")
    with pytest.raises(StoreError, match="not a valid object key"):
        store.open_write(key)
    assert leftovers(store) == []


def test_parquet_writer_writes_straight_into_the_store(store: Store) -> None:
    table = pa.table(
        {
            "id": pa.array(range(50_000), pa.int64()),
            "name": pa.array([f"user-{i}" for i in range(50_000)]),
            "amount": pa.array([i / 7 for i in range(50_000)], pa.float64()),
        }
    )
    with store.open_write(KEY) as writer:
        parquet = pq.ParquetWriter(writer, table.schema)
        for batch in table.to_batches(max_chunksize=10_000):
            parquet.write_batch(batch)
        parquet.close()
    data = store.get_bytes(KEY)
    assert pq.read_table(io.BytesIO(data)).equals(table)
    assert (writer.size, writer.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_csv_writer_writes_straight_into_the_store(store: Store) -> None:
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b,c", 'd"e']})
    with store.open_write("x.csv") as writer, pcsv.CSVWriter(writer, table.schema) as csv:
        csv.write_table(table)
    assert pcsv.read_csv(io.BytesIO(store.get_bytes("x.csv"))).equals(table)


def test_failed_parquet_export_leaves_nothing_even_after_gc(store: Store) -> None:
    """The ParquetWriter outlives the aborted sink; when collected it writes its footer, which must go nowhere."""
    table = pa.table({"id": list(range(1000))})
    orphans: list[pq.ParquetWriter] = []

    def export() -> None:
        with store.open_write(KEY) as writer:
            parquet = pq.ParquetWriter(writer, table.schema)
            orphans.append(parquet)
            parquet.write_table(table)
            raise RuntimeError("a check failed")

    with pytest.raises(RuntimeError, match="check failed"):
        export()
    assert leftovers(store) == []
    orphans.clear()
    gc.collect()
    assert leftovers(store) == []


# -- S3 only ---------------------------------------------------------------------------------------------------


def test_multipart_upload_round_trips(s3_store: S3Store) -> None:
    data = os.urandom(12 * MIB)
    with s3_store.open_write(KEY) as writer:
        write_in_chunks(writer, data)
    assert s3_store.get_bytes(KEY) == data
    assert writer.sha256 == hashlib.sha256(data).hexdigest()
    assert s3_store.list("") == [ObjectInfo(KEY, len(data))]
    etag = s3_store.client.head_object(Bucket=s3_store.bucket, Key=f"lake/v1/{KEY}")["ETag"]
    assert etag.endswith('-3"')  # 5 + 5 + 2 MiB


@pytest.mark.parametrize(("size", "parts"), [(MIN_PART_SIZE, 0), (MIN_PART_SIZE + 1, 2)])
def test_part_boundary(s3_store: S3Store, size: int, parts: int) -> None:
    """Exactly one part's worth is a single PutObject; one byte more is a two-part upload."""
    data = os.urandom(size)
    with s3_store.open_write(KEY) as writer:
        writer.write(data)
    etag = s3_store.client.head_object(Bucket=s3_store.bucket, Key=f"lake/v1/{KEY}")["ETag"]
    assert etag.endswith(f'-{parts}"') if parts else "-" not in etag, etag
    assert s3_store.get_bytes(KEY) == data


def test_error_mid_upload_aborts_the_multipart_upload(s3_store: S3Store) -> None:
    calls = refuse_upload_part(s3_store.client, nth=2)
    writer = s3_store.open_write(KEY)
    with pytest.raises(StoreError, match="access denied") as caught, writer:
        write_in_chunks(writer, os.urandom(12 * MIB))
    assert len(calls) == 2  # a 403 is not retried
    assert caught.value.where == s3_store.uri(KEY)
    assert "s3:PutObject" in caught.value.hint
    assert not caught.value.retryable
    assert "testing" not in str(caught.value)  # no credentials in messages
    assert writer.closed
    assert leftovers(s3_store) == []


def test_part_size_below_the_s3_minimum_is_refused(aws_env: MotoServer) -> None:
    with pytest.raises(ValueError, match="at least 5242880"):
        S3Store("kpi-lake", part_size=MIN_PART_SIZE - 1)


def test_delete_batches_requests(s3_store: S3Store) -> None:
    requests: list[int] = []
    s3_store.client.meta.events.register(
        "before-call.s3.DeleteObjects", lambda params, **_: requests.append(len(params["body"]))
    )
    s3_store.delete_batch = 2
    keys = [f"k/{i}" for i in range(5)]
    for key in keys:
        s3_store.put_bytes(key, b"x")
    s3_store.delete([*keys, "k/missing"])
    assert len(requests) == 3
    assert leftovers(s3_store) == []


def test_unknown_bucket_says_so(aws_env: MotoServer) -> None:
    store = S3Store("kpi-no-such-bucket")
    for action in (lambda: store.get_bytes("a/b"), lambda: store.list(""), lambda: store.put_bytes("a/b", b"x")):
        with pytest.raises(StoreError, match="bucket 'kpi-no-such-bucket' does not exist") as caught:
            action()
        assert "lake URL" in caught.value.hint
        assert not caught.value.retryable
    writer = store.open_write("a/b")
    writer.write(b"x")
    with pytest.raises(StoreError, match="does not exist"):
        writer.commit()


@pytest.mark.parametrize(
    ("error", "expected", "retryable"),
    [
        (botocore.exceptions.ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"), "SlowDown", True),
        (
            botocore.exceptions.ClientError(
                {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "UploadPart"
            ),
            "failed: InternalError",
            True,
        ),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "could not", True),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), "timeout", True),
        (botocore.exceptions.NoCredentialsError(), "no AWS credentials", False),
        (botocore.exceptions.ClientError({"Error": {"Code": "InvalidAccessKeyId"}}, "GetObject"), "credentials", False),
    ],
)
def test_service_errors_say_whether_to_retry(error: Exception, expected: str, retryable: bool) -> None:
    """Faults moto cannot be made to produce quickly (botocore retries them with backoff first)."""
    translated = _error(error, "PutObject", "s3://b/k", "b")
    assert expected.lower() in str(translated).lower()
    assert translated.retryable is retryable
    assert translated.where == "s3://b/k"


# -- open_store ------------------------------------------------------------------------------------------------


def test_open_store_s3_urls(aws_env: MotoServer) -> None:
    plain = open_store("s3://kpi-lake")
    assert isinstance(plain, S3Store)
    assert (plain.bucket, plain.prefix, plain.url) == ("kpi-lake", "", "s3://kpi-lake")
    assert plain.uri("a/b") == "s3://kpi-lake/a/b"
    nested = open_store("s3://kpi-lake/prod/kpi/")
    assert isinstance(nested, S3Store)
    assert (nested.bucket, nested.prefix, nested.url) == ("kpi-lake", "prod/kpi", "s3://kpi-lake/prod/kpi")
    assert nested.uri("a/b") == "s3://kpi-lake/prod/kpi/a/b"


def test_open_store_local_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url, root in [
        (f"file://{tmp_path}/lake", tmp_path / "lake"),
        (f"file://localhost{tmp_path}/lake", tmp_path / "lake"),
        (str(tmp_path / "abs"), tmp_path / "abs"),
        ("relative/lake", tmp_path / "relative" / "lake"),
        ("./lake", tmp_path / "lake"),
    ]:
        store = open_store(url)
        assert isinstance(store, LocalStore), url
        assert store.root == root.resolve(), url
        assert store.url == str(root.resolve())


@pytest.mark.parametrize(
    "url", ["", "gs://bucket/x", "s3:bucket", "s3://", "s3://Bad_Bucket", "file://host/x", "https://example.com/x"]
)
def test_open_store_refuses_other_urls(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert "s3://bucket" in caught.value.hint or "file:///" in caught.value.hint


def test_open_store_never_echoes_credentials() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("s3://AKIAEXAMPLE:hunter2@kpi-lake/x")
    assert "hunter2" not in str(caught.value)
    assert "AKIAEXAMPLE" not in str(caught.value)
