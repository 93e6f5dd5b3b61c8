"""The loader: committed partitions (their manifests, a batch at a time) into the warehouse, exactly once, verified."""

from pipeline.load.flow import load_batch, load_manifest, load_manifests, newest_manifest, split_manifest_url

__all__ = ["load_batch", "load_manifest", "load_manifests", "newest_manifest", "split_manifest_url"]
