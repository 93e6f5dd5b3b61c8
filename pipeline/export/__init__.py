"""The exporter: a KPI's query streamed from its source into committed partitions in the lake."""

from pipeline.export.files import FileOptions
from pipeline.export.flow import ChecksFailed, export

__all__ = ["ChecksFailed", "FileOptions", "export"]
