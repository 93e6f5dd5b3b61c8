"""The ``kpi`` command line. Commands parse arguments, call the library and report; they hold no logic."""

from pipeline.cli.app import KpiGroup, cli, main

# Which module defines each command; it is imported when the command runs (KpiGroup). tests/test_cli_lazy.py
# checks that this is exactly what the modules register.
COMMANDS = {
    "anomalies": "pipeline.cli.anomalies",
    "check": "pipeline.cli.authoring",
    "list": "pipeline.cli.authoring",
    "render": "pipeline.cli.authoring",
    "new": "pipeline.cli.authoring",
    "clone": "pipeline.cli.clone",
    "demo": "pipeline.cli.demo",
    "diff": "pipeline.cli.diffing",
    "export": "pipeline.cli.exporting",
    "load": "pipeline.cli.loading",
    "dashboard": "pipeline.cli.loading",
    "preview": "pipeline.cli.preview",
    "remove": "pipeline.cli.removing",
    "run": "pipeline.cli.running",
    "backfill": "pipeline.cli.running",
    "status": "pipeline.cli.running",
    "suspend": "pipeline.cli.suspend",
    "schema": "pipeline.cli.schema",
    "lineage": "pipeline.cli.schema",
    "impact": "pipeline.cli.schema",
}
KpiGroup.lazy = COMMANDS

__all__ = ["COMMANDS", "cli", "main"]
