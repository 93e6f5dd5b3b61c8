"""Clone: a masked copy of production for staging — masking rules as files, a coverage gate, the engine.

The masking stages, in the order a clone goes through them (only ``mysql``, ``masking`` and ``scan`` talk to
the database):

- ``rules``    masking rule files (``masking/<database>.yaml``), parsed with positions (pure)
- ``schema``   the restored schema as data: tables, columns, keys, triggers (pure)
- ``coverage`` the gate: every column covered, every rule fits; stubs for what is not (pure)
- ``sql``      the SQL of each rule: HMAC-SHA256 on the server, generators, chunk statements (pure)
- ``plan``     rules × schema → what happens to each table (pure)
- ``mysql``    information_schema → schema; the masking session
- ``progress`` the in-database journal (one table, dropped at the end) and the completion marker
- ``masking``  the engine: in place, in chunks by primary key, resumable, exactly once
- ``scan``     the PII scan after masking, fail closed
"""

from pipeline.clone.coverage import Coverage, Stub, apply_stubs, check_coverage, check_databases, new_rule_file
from pipeline.clone.errors import CloneError, CoverageError, RuleFileError
from pipeline.clone.masking import MaskingReport, journal_state, mask, plan_masking
from pipeline.clone.plan import MaskingPlan, build_plan
from pipeline.clone.progress import JOURNAL_TABLE, CompletionMarker
from pipeline.clone.rules import RuleFile, Strategy, load_rule_folder, load_rules, parse_rules
from pipeline.clone.scan import Finding, find_pii
from pipeline.clone.schema import Column, Schema, Table
from pipeline.clone.sql import KeyPads, reference_value

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
