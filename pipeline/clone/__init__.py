"""Clone: a masked copy of production for staging — masking rules as files, a coverage gate, the engine.

The masking stages, in the order a clone goes through them (only ``mysql``, ``masking`` and ``scan`` talk to
the database):

- ``rules``    masking rule files (``masking/<database>.yaml``), parsed with positions (pure)
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
from typing import TYPE_CHECKING, Any

# The names below are loaded on first use: the clone Lambda outside the VPC (the ops package, boto3 only) imports
# pipeline.clone.workflow, which must not pull in the masking engine's YAML, SQL and MySQL dependencies.
_EXPORTS = {
    "CloneError": "pipeline.clone.errors",
    "Column": "pipeline.clone.schema",
    "CompletionMarker": "pipeline.clone.progress",
    "Coverage": "pipeline.clone.coverage",
    "CoverageError": "pipeline.clone.errors",
    "Finding": "pipeline.clone.scan",
    "JOURNAL_TABLE": "pipeline.clone.progress",
    "KeyPads": "pipeline.clone.sql",
    "MaskingPlan": "pipeline.clone.plan",
    "MaskingReport": "pipeline.clone.masking",
    "RuleFile": "pipeline.clone.rules",
    "RuleFileError": "pipeline.clone.errors",
    "Schema": "pipeline.clone.schema",
    "Strategy": "pipeline.clone.rules",
    "Stub": "pipeline.clone.coverage",
    "Table": "pipeline.clone.schema",
    "apply_stubs": "pipeline.clone.coverage",
    "build_plan": "pipeline.clone.plan",
    "check_coverage": "pipeline.clone.coverage",
    "check_databases": "pipeline.clone.coverage",
    "find_pii": "pipeline.clone.scan",
    "journal_state": "pipeline.clone.masking",
    "load_rule_folder": "pipeline.clone.rules",
    "load_rules": "pipeline.clone.rules",
    "mask": "pipeline.clone.masking",
    "new_rule_file": "pipeline.clone.coverage",
    "parse_rules": "pipeline.clone.rules",
    "plan_masking": "pipeline.clone.masking",
    "reference_value": "pipeline.clone.sql",
}

if TYPE_CHECKING:
    from pipeline.clone.coverage import Coverage, Stub, apply_stubs, check_coverage, check_databases, new_rule_file
    from pipeline.clone.errors import CloneError, CoverageError, RuleFileError
    from pipeline.clone.masking import MaskingReport, journal_state, mask, plan_masking
    from pipeline.clone.plan import MaskingPlan, build_plan
    from pipeline.clone.progress import JOURNAL_TABLE, CompletionMarker
    from pipeline.clone.rules import RuleFile, Strategy, load_rule_folder, load_rules, parse_rules
    from pipeline.clone.scan import Finding, find_pii
    from pipeline.clone.schema import Column, Schema, Table
    from pipeline.clone.sql import KeyPads, reference_value


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "JOURNAL_TABLE",
    "CloneError",
    "Column",
    "CompletionMarker",
    "Coverage",
    "CoverageError",
    "Finding",
    "KeyPads",
    "MaskingPlan",
    "MaskingReport",
    "RuleFile",
    "RuleFileError",
    "Schema",
    "Strategy",
    "Stub",
    "Table",
    "apply_stubs",
    "build_plan",
    "check_coverage",
    "check_databases",
    "find_pii",
    "journal_state",
    "load_rule_folder",
    "load_rules",
    "mask",
    "new_rule_file",
    "parse_rules",
    "plan_masking",
    "reference_value",
]
