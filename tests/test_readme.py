"""The README is part of the product: it must document every header key the checker knows."""

from __future__ import annotations

from pipeline.core.header_rules import COLUMN_KEYS, HEADER_KEYS
from tests.conftest import ROOT


def test_readme_documents_every_header_key() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [key for key in HEADER_KEYS if f"| `{key}` |" not in readme]
    assert missing == []
    assert all(f"`{key}`" in readme for key in COLUMN_KEYS)
