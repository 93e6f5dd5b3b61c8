"""The ``kpi`` command line. Commands parse arguments, call the library and report; they hold no logic."""

from pipeline.cli import authoring, clone, demo, exporting, loading, preview, running, suspend  # noqa: F401  (register the commands on the group)
from pipeline.cli.app import cli, main

__all__ = ["cli", "main"]
