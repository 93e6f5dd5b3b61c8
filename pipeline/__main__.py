"""``python -m pipeline`` is the ``kpi`` command."""

from pipeline.cli import main

main()
