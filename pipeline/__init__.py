"""kpi-pipeline: KPI queries as plain SQL files, exported from MySQL and loaded into BigQuery by partition."""

__version__ = "0.1.0"

__all__ = ["__version__"]
