"""The README is part of the product: it must document every header key, masking rule and [clone] key."""

from __future__ import annotations

from pipeline.core.header_rules import COLUMN_KEYS, HEADER_KEYS
from tests.conftest import ROOT


def test_readme_documents_every_header_key() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [key for key in HEADER_KEYS if f"| `{key}` |" not in readme]
    assert missing == []
    assert all(f"`{key}`" in readme for key in COLUMN_KEYS)


def test_readme_documents_every_masking_rule_and_clone_key() -> None:
    from dataclasses import fields

    from pipeline.clone.config import CloneConfig
    from pipeline.clone.rules import Strategy

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Cloning production into staging") :]
    rules = [s.value for s in Strategy if f"| `{s.value}` |" not in section and f"| `{{{s.value}:" not in section]
    assert rules == []
    keys = [f.name for f in fields(CloneConfig) if f.name != "origin" and f"\n{f.name} = " not in section]
    assert keys == []
