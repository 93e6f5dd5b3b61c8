"""What an S3 notification announces — directly (S3 → Lambda) or wrapped by SQS (S3 → SQS → Lambda).

The exporter writes a batch index (``_batch.json``) after the manifests of each export job; the deployed
notification announces those, and the loader lands each batch in one warehouse transaction. A bare
``_manifest.json`` is still understood (a batch of one: an older notification, or a hand-made event).

S3 URL-encodes object keys in events (a space arrives as ``+``), sends an ``s3:TestEvent`` when a notification is
configured, and delivers at least once and in any order: the loader ignores everything but newly created
batch indexes and manifests, and leaves duplicates and ordering to the warehouse's audit table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from pipeline.core.lake import BATCH_NAME, MANIFEST_NAME


def announced(event: Mapping[str, Any]) -> list[str]:
    """``s3://bucket/key`` of every batch index or manifest the event announces, in order, each once."""
    found: list[str] = []
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:sqs":
            try:
                body = json.loads(record.get("body") or "{}")
            except ValueError:
                continue
            found.extend(announced(body) if isinstance(body, dict) else [])
        elif record.get("eventSource") == "aws:s3" and str(record.get("eventName", "")).startswith("ObjectCreated:"):
            s3 = record.get("s3") or {}
            bucket = (s3.get("bucket") or {}).get("name")
            key = unquote_plus((s3.get("object") or {}).get("key") or "")
            if bucket and key.endswith(("/" + MANIFEST_NAME, "/" + BATCH_NAME)):
                found.append(f"s3://{bucket}/{key}")
    return list(dict.fromkeys(found))


def announced_manifests(event: Mapping[str, Any]) -> list[str]:
    """The bare manifests among :func:`announced`."""
    return [url for url in announced(event) if url.endswith("/" + MANIFEST_NAME)]
