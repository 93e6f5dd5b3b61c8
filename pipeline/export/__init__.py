"""The exporter: a KPI's query streamed from its source into committed partitions in the lake."""

from pipeline.export.files import FileOptions
from pipeline.export.flow import export

__all__ = ["FileOptions", "export"]
