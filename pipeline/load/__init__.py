"""The loader: a committed partition (its manifest) into the warehouse, exactly once, verified."""

from pipeline.load.flow import load_manifest, newest_manifest, split_manifest_url

__all__ = ["load_manifest", "newest_manifest", "split_manifest_url"]
