"""The ``kpi`` command line. Commands parse arguments, call the library and report; they hold no logic."""

from pipeline.cli import authoring  # noqa: F401  (registers the analysts' commands on the group)
from pipeline.cli.app import cli, main

__all__ = ["cli", "main"]
