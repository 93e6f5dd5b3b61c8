"""Where the lake lives: a folder or an S3 prefix, behind one small interface (``Store``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pipeline.errors import StoreError
from pipeline.stores.base import ObjectInfo, Store, StoreWriter
from pipeline.stores.local import LocalStore

if TYPE_CHECKING:
    from pipeline.stores.s3 import S3Store

__all__ = ["LocalStore", "ObjectInfo", "S3Store", "Store", "StoreWriter", "open_store"]

_FORMS = "s3://bucket, s3://bucket/prefix, file:///absolute/path, or a plain folder path"
# Two letters at least, so that a Windows drive (C:\lake) reads as a path, not as a scheme.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def open_store(url: str) -> Store:
    """The store a lake URL names; StoreError listing the accepted forms for anything else.

    The URL is echoed in errors only when it cannot hold credentials (no ``user:secret@`` part).
    """
    scheme = _SCHEME.match(url)
    if not url.strip():
        raise StoreError("the lake URL is empty", hint=f"use {_FORMS}")
    if scheme is None:
        return LocalStore(Path(url))
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise StoreError("the lake URL must not contain credentials", hint="let boto3 find them (profile, env, role)")
    name = scheme.group(1).lower()
    if name == "s3" and url[3:5] == "//":
        if not _BUCKET.match(parts.netloc) or parts.query or parts.fragment:
            raise StoreError(f"'{url}' does not name an S3 bucket", hint=f"use {_FORMS}")
        from pipeline.stores.s3 import S3Store

        return S3Store(parts.netloc, unquote(parts.path))
    if name == "file" and url[5:7] == "//":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StoreError(f"'{url}' is not a local file URL", hint="use file:///absolute/path (three slashes)")
        return LocalStore(Path(unquote(parts.path)))
    raise StoreError(f"'{url}' is not a lake URL this pipeline understands", hint=f"use {_FORMS}")


def __getattr__(name: str) -> Any:
    """``S3Store`` on first use: boto3 takes a sixth of a second to import, and a local lake never needs it."""
    if name == "S3Store":
        from pipeline.stores.s3 import S3Store

        return S3Store
    raise AttributeError(name)
