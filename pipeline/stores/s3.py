"""The lake on S3: immutable data files via multipart upload, manifests via single PUTs."""

from __future__ import annotations

import builtins
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO, cast

import boto3
import botocore.config
import botocore.exceptions

from pipeline.errors import StoreError
from pipeline.stores.base import ObjectInfo, StoreWriter, check_key, check_prefix

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # S3 refuses smaller parts (except the last) at CompleteMultipartUpload
DEFAULT_PART_SIZE = 8 * MIB
MAX_PARTS = 10_000

# The IAM action a policy must allow for each API call, so an AccessDenied says what to grant.
_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListObjectsV2": "s3:ListBucket",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "DeleteObjects": "s3:DeleteObject",
}
_DENIED = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
_TRANSIENT = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "ServiceUnavailable"}
_EXISTS = {"PreconditionFailed", "ConditionalRequestConflict"}


def _error(error: Exception, operation: str, where: str, bucket: str) -> StoreError:
    """Translate a botocore failure into a StoreError that says what to do; never echoes credentials."""
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        detail = str(error.response.get("Error", {}).get("Message", "")) or code
        if code == "NoSuchBucket":
            hint = "check the bucket name in the lake URL, and AWS_REGION / AWS_ENDPOINT_URL if you set them"
            return StoreError(f"bucket '{bucket}' does not exist", where=where, hint=hint)
        if code in ("NoSuchKey", "404", "NotFound"):
            return StoreError("no object at this key", where=where)
        if code in _EXISTS:
            hint = "data files are immutable; another run wrote the same key at the same time"
            return StoreError("an object appeared at this key while it was being written", where=where, hint=hint)
        if code in _CREDENTIALS:
            hint = "check the AWS credentials in use (profile, environment, role) and the system clock"
            return StoreError(f"S3 rejected the credentials ({code})", where=where, hint=hint)
        if code in _DENIED or status == 403:
            action = _ACTIONS.get(operation, operation)
            hint = f"allow {action} on arn:aws:s3:::{bucket}/* (and s3:ListBucket on the bucket) in the IAM policy"
            return StoreError(f"access denied: {action} ({operation})", where=where, hint=hint)
        retryable = code in _TRANSIENT or status >= 500 or status == 429
        return StoreError(f"S3 {operation} failed: {detail}", where=where, retryable=retryable)
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        hint = "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where a role is attached"
        return StoreError("no AWS credentials found", where=where, hint=hint)
    if isinstance(error, botocore.exceptions.HTTPClientError | botocore.exceptions.ConnectionError):
        hint = "S3 could not be reached; check the network, AWS_REGION and AWS_ENDPOINT_URL"
        return StoreError(f"S3 {operation} failed: {error}", where=where, hint=hint, retryable=True)
    return StoreError(f"S3 {operation} failed: {error}", where=where)


class S3Writer(StoreWriter):
    """Buffers at most one part; an object smaller than a part becomes one PutObject at commit, a larger
    one a multipart upload started when the first part is full. Both refuse to overwrite (If-None-Match)."""

    def __init__(self, store: S3Store, key: str, part_size: int) -> None:
        super().__init__(key, store.uri(key))
        self._store = store
        self._object_key = store.object_key(key)
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _call(self, operation: str, **params: Any) -> Any:
        return self._store.call(operation, self.where, Key=self._object_key, **params)

    def _write(self, data: memoryview) -> None:
        while data:
            if len(self._buffer) == self._part_size:  # upload only once more data arrives: the last part may be it
                self._upload_part()
            room = self._part_size - len(self._buffer)
            self._buffer += data[:room]
            data = data[room:]

    def _upload_part(self) -> None:
        """Upload the buffer as the next part. CRC32 per part, as s3transfer does, so S3 verifies every part
        and the completed object carries a checksum."""
        if self._upload_id is None:
            self._upload_id = self._call("create_multipart_upload", ChecksumAlgorithm="CRC32")["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            hint = "split the partition into more files, or raise the store's part_size"
            raise StoreError(
                f"object larger than {MAX_PARTS} parts of {self._part_size} bytes", where=self.where, hint=hint
            )
        response = self._call(
            "upload_part",
            UploadId=self._upload_id,
            PartNumber=number,
            Body=self._buffer,
            ChecksumAlgorithm="CRC32",
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:  # absent from some S3-compatible stores
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        self._parts.append(part)
        self._buffer = bytearray()

    def _commit(self) -> None:
        if self._upload_id is None:
            self._call("put_object", Body=self._buffer, IfNoneMatch="*")
        else:
            self._upload_part()
            self._call(
                "complete_multipart_upload",
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
                IfNoneMatch="*",
            )
        self._buffer = bytearray()

    def _abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:
            self._call("abort_multipart_upload", UploadId=self._upload_id)


class S3Store:
    """An S3 bucket, optionally under a prefix. One boto3 client per store, reused for every call.

    Credentials, region and endpoint come from boto3's usual chain (environment, profile, role); the
    standard retry mode retries throttling and 5xx with backoff before an error reaches us.
    """

    delete_batch = 1000  # DeleteObjects' limit per request; tests lower it to exercise batching

    def __init__(self, bucket: str, prefix: str = "", *, part_size: int = DEFAULT_PART_SIZE) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum), got {part_size}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60
        )
        self.client: Any = boto3.client("s3", config=config)

    def object_key(self, key: str) -> str:
        """The S3 key of a store key: joined under the store's prefix."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def call(self, operation: str, where: str, **params: Any) -> Any:
        """One client call on this bucket, with any botocore failure turned into a StoreError about ``where``."""
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            name = "".join(word.title() for word in operation.split("_"))  # put_object → PutObject
            raise _error(error, name, where, self.bucket) from None

    def open_write(self, key: str) -> StoreWriter:
        if self.exists(key):
            raise StoreError(
                "an object already exists at this key",
                where=self.uri(key),
                hint="data files are immutable; write under a new key or delete the old one first",
            )
        return S3Writer(self, key, self.part_size)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.call("put_object", self.uri(key), Key=self.object_key(key), Body=data)

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """One PutObject each, in order: S3 has no batch put, and each is durable when it returns."""
        for key, data in items:
            self.put_bytes(key, data)

    def get_bytes(self, key: str) -> bytes:
        response = self.call("get_object", self.uri(key), Key=self.object_key(key))
        try:
            body: bytes = response["Body"].read()
        except (botocore.exceptions.BotoCoreError, OSError) as error:
            raise _error(error, "GetObject", self.uri(key), self.bucket) from None
        return body

    def open_read(self, key: str) -> BinaryIO:
        """The object streamed (multipart, in parallel ranges) into a temporary file, deleted when closed; it has a
        path (``.name``) so that readers such as DuckDB's Parquet scan can open it themselves."""
        spool = tempfile.NamedTemporaryFile(prefix="kpi-", suffix="-" + key.rsplit("/", 1)[-1])  # noqa: SIM115
        try:
            self.client.download_fileobj(self.bucket, self.object_key(key), spool)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as error:
            spool.close()
            raise _error(error, "GetObject", self.uri(key), self.bucket) from None
        spool.seek(0)
        return cast(BinaryIO, spool)  # the wrapper delegates every file method to the real file

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _error(error, "HeadObject", self.uri(key), self.bucket) from None
        except botocore.exceptions.BotoCoreError as error:
            raise _error(error, "HeadObject", self.uri(key), self.bucket) from None
        return True

    def list(self, prefix: str) -> builtins.list[ObjectInfo]:
        check_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        where = f"s3://{self.bucket}/{full}"
        found: builtins.list[ObjectInfo] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                found.extend(
                    ObjectInfo(item["Key"][strip:], int(item["Size"]))
                    for item in page.get("Contents", [])
                    if not item["Key"].endswith("/")  # "folder" markers made by consoles are not objects
                )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise _error(error, "ListObjectsV2", where, self.bucket) from None
        return sorted(found, key=lambda info: info.key)

    def delete(self, keys: Iterable[str]) -> None:
        """DeleteObjects in batches; it reports failures per key in a 200 response, so those are checked too."""
        pending = [self.object_key(key) for key in keys]
        for start in range(0, len(pending), self.delete_batch):
            batch = pending[start : start + self.delete_batch]
            objects = {"Objects": [{"Key": key} for key in batch], "Quiet": True}
            response = self.call("delete_objects", f"s3://{self.bucket}/{batch[0]}", Delete=objects)
            for failure in response.get("Errors", []):
                where = f"s3://{self.bucket}/{failure.get('Key', '')}"
                error = botocore.exceptions.ClientError({"Error": failure}, "DeleteObjects")
                raise _error(error, "DeleteObjects", where, self.bucket)

    def discard_incomplete(self, prefix: str) -> int:
        """Abort the multipart uploads under ``prefix`` that were never completed: a killed writer's parts, which
        cost storage and would otherwise wait for the bucket's lifecycle rule (AbortIncompleteMultipartUpload)."""
        check_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        where = f"s3://{self.bucket}/{full}"
        uploads: builtins.list[tuple[str, str]] = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full):
                uploads.extend((u["Key"], u["UploadId"]) for u in page.get("Uploads", []))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise _error(error, "ListMultipartUploads", where, self.bucket) from None
        for key, upload in uploads:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            except botocore.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload":  # aborted meanwhile: fine
                    raise _error(error, "AbortMultipartUpload", f"s3://{self.bucket}/{key}", self.bucket) from None
            except botocore.exceptions.BotoCoreError as error:
                raise _error(error, "AbortMultipartUpload", f"s3://{self.bucket}/{key}", self.bucket) from None
        return len(uploads)
