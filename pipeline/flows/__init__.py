"""Flows: what a command or a Lambda handler does, between parsing its input and reporting its result.

Entry points (``pipeline.cli``, ``pipeline.lambdas``) parse, call a flow, and print or return; the flow decides.
``run`` plans a run: which partitions (due or asked for, refused when unsafe) and the source queries (jobs);
``runner`` executes jobs (export, then load) on a pool; ``backfill`` plans a range against what is loaded.
``status``, ``preview`` and ``read`` only read: the warehouse through its own reader, opened read-only.
``removal``, ``diff``, ``explain_check``, ``scaffold`` and ``dashboard`` are the flows of ``kpi remove``,
``kpi diff``, ``kpi check --explain``, ``kpi new`` and ``kpi dashboard``.
"""
