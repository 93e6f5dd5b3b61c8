"""Flows: what a command or a Lambda handler does, between parsing its input and reporting its result.

Entry points (``pipeline.cli``, ``pipeline.lambdas``) parse, call a flow, and print or return; the flow decides.
``run`` plans a run: which partitions (due or asked for, refused when unsafe) and the source queries (jobs).
``preview`` runs a KPI for one partition as the exporter would and reports what it saw, writing nothing; ``read``
reads loaded partitions back. Both read the warehouse only through its own reader, opened read-only.
"""
