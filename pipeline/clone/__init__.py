"""Clone: a masked copy of production for staging — masking rules as files, a coverage gate, the engine.

The masking stages, in the order a clone goes through them (only ``mysql``, ``masking`` and ``scan`` talk to
the database):

- ``rules``    masking rule files (``masking/<database>.yaml``), parsed with positions (pure), into
- ``model``    the rules as data (strategies, column, table and file rules), which everything downstream reads
- ``schema``   the restored schema as data: tables, columns, keys, triggers (pure)
- ``coverage`` the gate: every column covered, every rule fits; stubs for what is not (pure)
- ``sql``      the SQL of each rule: HMAC-SHA256 on the server, generators, chunk and subset statements (pure)
- ``plan``     rules × schema → what happens to each table, the subset's order, the reference checks (pure)
- ``mysql``    information_schema → schema; the masking session
- ``progress`` the in-database journal (one table, dropped at the end) and the completion marker
- ``fakes``    realistic fakes (Faker) seeded from keyed hashes
- ``masking``  the engine: subset, then in place, in chunks by primary key, resumable, exactly once
- ``scan``     the PII scan after masking, fail closed
- ``logins``   the copy's database logins: staging's re-passworded, every other one locked
- ``local``    the gate and the masking on a server the operator names (``kpi clone plan|mask --url``)

And the AWS side: ``config`` (the ``[clone]`` table), ``names`` (run ids, names, tags, the delete guard),
``cloud`` (one account's RDS, EC2, Secrets Manager, Route 53), ``workflow`` (the idempotent steps the state
machine loops over) and ``worker`` (masking and the health check, from inside the VPC).
"""

import importlib
from typing import Any

# The package's names, by the module that defines them: the one list (``__all__`` is made from it). They are
# loaded on first use: the clone Lambda outside the VPC (the ops package, boto3 only) imports
# pipeline.clone.workflow, which must not pull in the masking engine's YAML, SQL and MySQL dependencies. Code that
# wants the types imports from the defining module (``from pipeline.clone.rules import parse_rules``).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "pipeline.clone.coverage": ("Coverage", "check_coverage", "check_databases", "new_rule_file"),
    "pipeline.clone.errors": ("CloneError", "CoverageError", "RuleFileError"),
    "pipeline.clone.masking": ("MaskingReport", "journal_state", "mask", "plan_masking"),
    "pipeline.clone.plan": ("MaskingPlan", "build_plan"),
    "pipeline.clone.model": ("RuleFile", "Strategy"),
    "pipeline.clone.progress": ("JOURNAL_TABLE", "CompletionMarker"),
    "pipeline.clone.rules": ("load_rule_folder", "load_rules", "parse_rules"),
    "pipeline.clone.scan": ("Finding", "find_pii"),
    "pipeline.clone.schema": ("Column", "Schema", "Table"),
    "pipeline.clone.sql": ("KeyPads", "reference_value"),
    "pipeline.clone.stubs": ("Stub", "apply_stubs"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
