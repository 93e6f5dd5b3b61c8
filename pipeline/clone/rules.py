"""Masking rule files (``masking/<database>.yaml``): the format, read with the position of every key.

One file per database, reviewed in pull requests like KPI files::

    database: shop                      # optional: defaults to the file name
    tables:
      sessions: truncate                # every row goes; no column rules needed
      audit_log:
        delete_where: "created_at < NOW() - INTERVAL 90 DAY"
        columns: {...}
      users:
        columns:
          id: keep                      # judged safe: left as it is
          email: email                  # u_<keyed hash>@example.invalid: unique, equal in every table
          login: login                  # user_<keyed hash>
          phone: phone                  # +81-90-####-####, digits from the keyed hash
          name: hash                    # the keyed hash in hex (64 characters, or the column's length)
          note: null                    # NULL
          plan: {fixed: free}           # one value for every row
          display: {sql: "CONCAT('user ', id)"}   # any expression; sees the other columns already masked
          full_name: {fake: name}       # a realistic fake (Faker, ja_JP), seeded from the keyed hash
          kana: {fake: {kind: kana_name, locale: ja_JP}}
          profile:
            json:                       # per path inside a JSON document; the rest of it is kept
              $.phone: phone
              $.birthday: null
      orders:
        subset: {fraction: 0.1}         # keep 10% of the rows (by the keyed hash of the primary key) …
        references: {buyer_email: users.email}   # … a key no constraint declares, followed like one
        columns: {...}
    scan:                               # the PII scan after masking (see pipeline.clone.scan)
      sample: 1000
      allow_domains: [shop.example.com]
      ignore: {products.description: [email]}

Parsing is pure: :func:`parse_rules` returns the rules (:mod:`pipeline.clone.model`, the data everything
downstream reads) and every problem (``path:line:col``, a stable rule id, a hint, the closest valid name).
Whether the rules fit the schema is :mod:`pipeline.clone.coverage`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.clone.errors import RuleFileError
from pipeline.clone.model import (
    DEFAULT_FAKE_LOCALE,
    DEFAULT_FAKE_SUFFIX,
    DEFAULT_GENERATED_LENGTH,
    DEFAULT_PHONE_FORMAT,
    DEFAULT_SAMPLE,
    FAKE_KINDS,
    FAKE_LOCALES,
    KANA_KINDS,
    SCAN_PATTERNS,
    STRATEGY_HELP,
    ColumnRule,
    Reference,
    RuleFile,
    ScanSettings,
    Strategy,
    Subset,
    TableRule,
)
from pipeline.core.header import Header, KeyPath
from pipeline.core.header import parse as parse_yaml
from pipeline.core.validator import PositionalValidator, suggest
from pipeline.errors import Location, Problem

__all__ = ["load_rule_folder", "load_rules", "parse_rules"]


# Scalars that name a strategy on their own; the others need a value ({fixed: x}, {sql: x}, {json: {...}}).
_BARE = (Strategy.KEEP, Strategy.NULL, Strategy.HASH, Strategy.EMAIL, Strategy.LOGIN, Strategy.PHONE)
_PATH_STRATEGIES = tuple(s for s in Strategy if s not in (Strategy.KEEP, Strategy.JSON, Strategy.FAKE))
_FILE_KEYS = ("database", "tables", "scan")
_TABLE_KEYS = ("columns", "truncate", "delete_where", "allow_triggers", "subset", "references")
_SUBSET_KEYS = ("fraction", "where")
_SCAN_KEYS = ("sample", "allow_domains", "ignore")
_OPTIONS: dict[Strategy, tuple[str, ...]] = {
    Strategy.HASH: ("length", "unique"),
    Strategy.EMAIL: ("length", "unique"),
    Strategy.LOGIN: ("length", "unique"),
    Strategy.PHONE: ("format", "unique"),
    Strategy.FAKE: ("kind", "locale", "unique", "length"),
}
IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]{1,64}$")
JSON_PATH = re.compile(r"^\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])+$")
PHONE_FORMAT = re.compile(r"^[0-9+\-(). #]+$")
DOMAIN = re.compile(r"^(?:[a-z0-9-]+\.)+[a-z]{2,}$")


def load_rules(path: str | Path, database: str | None = None) -> RuleFile:
    """Read and check one rule file; a :class:`RuleFileError` lists every problem in it."""
    file = Path(path)
    rules, problems = parse_rules(str(path), file.read_text(encoding="utf-8"), database)
    if problems or rules is None:
        raise RuleFileError(problems)
    return rules


def load_rule_folder(folder: str | Path) -> dict[str, RuleFile]:
    """Every ``*.yaml`` rule file of a folder (``masking/``) by database; problems of all files in one error."""
    problems: list[Problem] = []
    found: dict[str, RuleFile] = {}
    for file in sorted(Path(folder).glob("*.yaml")):
        rules, file_problems = parse_rules(str(file), file.read_text(encoding="utf-8"))
        problems.extend(file_problems)
        if rules is None:
            continue
        if rules.database in found:
            problems.append(
                Problem(
                    Location(str(file), 1, 1),
                    "duplicate-database",
                    f"database {rules.database} already has rules in {found[rules.database].path}",
                    "keep one rule file per database",
                )
            )
        found[rules.database] = rules
    if problems:
        raise RuleFileError(problems)
    return found


def parse_rules(path: str, text: str, database: str | None = None) -> tuple[RuleFile | None, list[Problem]]:
    """Parse a rule file; ``database`` overrides the file's ``database`` key and its file name."""
    document, problems = _load(path, text)
    if document is None:
        return None, problems
    checker = _Checker(document, problems)
    rules = checker.rule_file(database or "", Path(path).stem)
    return rules, problems


# -- YAML with positions: the KPI header's reader (pipeline/core/header.py), for a whole file ----------------


_SYNTAX_HINT = "quote values that start with * & ! % or @, and indent with spaces: `$.phone: phone` is fine"


def _load(path: str, text: str) -> tuple[Header | None, list[Problem]]:
    """``note: null`` (spelt null) is the null strategy, an empty ``note:`` a forgotten rule: the reader keeps
    which values were written ``null``, and which mappings inline."""
    return parse_yaml(path, text, 1, what="rule file", syntax_hint=_SYNTAX_HINT)


# -- checks ------------------------------------------------------------------------------------------------------


class _Checker(PositionalValidator):
    """The masking rules on top of the shared readers (:class:`~pipeline.core.validator.PositionalValidator`):
    positions, unknown keys, true/false and wrong types are reported as for a KPI header, in this format's words."""

    wrong_type_hint = "write {expected}"

    def described(self, value: Any) -> str:
        return _describe(value)

    def rule_file(self, database: str, stem: str) -> RuleFile | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.problems.append(
                Problem(
                    Location(self.doc.path, 1, 1),
                    "not-mapping",
                    "a masking rule file is a YAML mapping with a `tables:` key",
                    "start from masking/shop.yaml: `tables:`, then one key per table with its `columns:`",
                )
            )
            return None
        self.unknown_keys(data, _FILE_KEYS, (), "key")
        name = database or self.identifier(("database",), data.get("database", stem), "database")
        tables: dict[str, TableRule] = {}
        raw_tables = data.get("tables")
        if raw_tables is None:
            self.problems.append(
                Problem(
                    Location(self.doc.path, 1, 1),
                    "missing-tables",
                    "the rule file has no `tables:` key",
                    "add `tables:` with one key per table of the database; `kpi clone plan` writes stubs",
                )
            )
        elif isinstance(raw_tables, dict):
            for table, value in raw_tables.items():
                rule = self.table(str(table), value)
                if rule is not None:
                    tables[rule.name] = rule
        else:
            self.wrong_type(("tables",), "a mapping of table name → rules", raw_tables)
        tables_mark = self.doc.marks.get(("tables",))
        indents = [self.doc.marks[("tables", str(t))].key_col - 1 for t in tables if ("tables", t) in self.doc.marks]
        return RuleFile(
            path=self.doc.path,
            database=name or stem,
            tables=tables,
            scan=self.scan(data.get("scan", {})),
            tables_line=tables_mark.key_line if tables_mark and ("tables",) not in self.doc.flow else 0,
            table_indent=min(indents) if indents else 2,
        )

    def table(self, name: str, value: Any) -> TableRule | None:
        here: KeyPath = ("tables", name)
        location = self.doc.key_at(here)
        if not IDENTIFIER.match(name):
            self.report(here, "invalid-name", f"'{name}' is not a table name", "letters, digits, _ and $", at_key=True)
            return None
        if isinstance(value, str) and value.strip() == "truncate":
            return TableRule(name, location, truncate=True)
        if not isinstance(value, dict):
            self.report(
                here,
                "wrong-type",
                f"table '{name}' must be `truncate` or a mapping with `columns:`, found {_describe(value)}",
                "write `sessions: truncate`, or `users:` then `columns:` with one rule per column",
            )
            return None
        self.unknown_keys(value, _TABLE_KEYS, here, f"key of table '{name}'")
        truncate = self.boolean((*here, "truncate"), value.get("truncate", False))
        allow_triggers = self.boolean((*here, "allow_triggers"), value.get("allow_triggers", False))
        where = ""
        if "delete_where" in value:
            where = self.sql((*here, "delete_where"), value["delete_where"])
        subset = self.subset((*here, "subset"), value["subset"]) if "subset" in value else None
        references = self.references((*here, "references"), value.get("references", {}))
        columns: dict[str, ColumnRule] = {}
        raw = value.get("columns")
        if truncate and (where or raw):
            self.report(
                (*here, "truncate"),
                "truncate-with-rules",
                f"table '{name}' is truncated: its `delete_where` and `columns` would never apply",
                "keep `truncate` alone, or remove it to keep the rows",
                at_key=True,
            )
        elif not truncate and raw is None:
            self.report(
                here,
                "missing-columns",
                f"table '{name}' has neither `columns:` nor `truncate`",
                "add `columns:` with a rule for every column (`keep` counts), or `truncate: true`",
                at_key=True,
            )
        if isinstance(raw, dict):
            for column, rule_value in raw.items():
                rule = self.column((*here, "columns", str(column)), rule_value)
                if rule is not None:
                    columns[str(column)] = rule
        elif raw is not None:
            self.wrong_type((*here, "columns"), "a mapping of column name → rule", raw)
        mark = self.doc.marks.get((*here, "columns"))
        column_cols = [
            self.doc.marks[(*here, "columns", c)].key_col - 1
            for c in columns
            if (*here, "columns", c) in self.doc.marks
        ]
        block = mark is not None and (*here, "columns") not in self.doc.flow and isinstance(raw, dict)
        return TableRule(
            name,
            location,
            truncate=truncate,
            delete_where=where,
            columns=columns,
            allow_triggers=allow_triggers,
            columns_line=mark.key_line if block and mark else 0,
            columns_indent=min(column_cols) if column_cols else (mark.key_col + 1 if mark else 0),
            subset=subset,
            references=references,
        )

    def subset(self, here: KeyPath, value: Any) -> Subset | None:
        location = self.doc.key_at(here)
        if not isinstance(value, dict) or not value:
            self.wrong_type(here, "a mapping: {fraction: 0.1} and/or {where: SQL}", value)
            return None
        self.unknown_keys(value, _SUBSET_KEYS, here, "subset key")
        fraction = value.get("fraction", 1.0)
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
            self.report(
                (*here, "fraction"),
                "invalid-fraction",
                f"fraction must be a number above 0 and at most 1, found {fraction!r}",
                "e.g. fraction: 0.1 keeps about one row in ten",
            )
            fraction = 1.0
        where = self.sql((*here, "where"), value["where"]) if "where" in value else ""
        return Subset(location, float(fraction), where)

    def references(self, here: KeyPath, value: Any) -> tuple[Reference, ...]:
        if not isinstance(value, dict):
            self.wrong_type(here, "a mapping of column → table.column", value)
            return ()
        found = []
        for column, target in value.items():
            key_path = (*here, str(column))
            table, _, target_column = str(target).partition(".")
            if not IDENTIFIER.match(str(column)) or not IDENTIFIER.match(table) or not IDENTIFIER.match(target_column):
                self.report(
                    key_path,
                    "invalid-reference",
                    f"references wants `column: table.column`, found {column}: {target!r}",
                    "e.g. references: {buyer_email: users.email}",
                    at_key=True,
                )
                continue
            found.append(Reference(str(column), table, target_column, self.doc.key_at(key_path)))
        return tuple(found)

    def column(self, here: KeyPath, value: Any, *, in_json: bool = False) -> ColumnRule | None:
        location = self.doc.value_at(here)
        what = f"path '{here[-1]}'" if in_json else f"column '{here[-1]}'"
        allowed = [s.value for s in (_PATH_STRATEGIES if in_json else Strategy)]
        if value is None and here in self.doc.spelt_null:
            return ColumnRule(Strategy.NULL, location)
        if value is None:
            self.report(
                here,
                "empty-rule",
                f"{what} has no rule",
                f"write one of: {', '.join(allowed)} (`keep` if the column was judged safe)",
                at_key=True,
            )
            return None
        if isinstance(value, str):
            name = value.strip()
            strategy = self.strategy(here, name, allowed)
            if strategy is None:
                return None
            if strategy not in _BARE:
                self.report(
                    here,
                    "missing-value",
                    f"`{name}` needs a value: {STRATEGY_HELP[strategy]}",
                    f"write it as a mapping, e.g. `{here[-1]}: {{{name}: ...}}`",
                )
                return None
            return ColumnRule(strategy, location, length=self.default_length(strategy))
        if isinstance(value, dict):
            if len(value) != 1:
                self.report(
                    here,
                    "one-strategy",
                    f"{what} must have exactly one strategy, found {len(value)} keys: {', '.join(map(str, value))}",
                    f"one of: {', '.join(allowed)}; options go inside it, e.g. {{email: {{length: 20}}}}",
                )
                return None
            ((key, options),) = value.items()
            strategy = self.strategy((*here, str(key)), str(key), allowed, at_key=True)
            if strategy is None:
                return None
            return self.options((*here, str(key)), strategy, options, location)
        self.report(
            here,
            "wrong-type",
            f"{what} must be a strategy name or a `{{strategy: options}}` mapping, found {_describe(value)}",
            f"one of: {', '.join(allowed)}",
        )
        return None

    def strategy(self, here: KeyPath, name: str, allowed: list[str], *, at_key: bool = False) -> Strategy | None:
        if name in allowed:
            return Strategy(name)
        extra = " (json rules apply to whole columns)" if name == "json" else ""
        self.report(
            here,
            "unknown-strategy",
            f"unknown strategy '{name}'{suggest(name, allowed)}{extra}",
            f"allowed: {', '.join(allowed)}",
            at_key=at_key,
        )
        return None

    def default_length(self, strategy: Strategy) -> int | None:
        return DEFAULT_GENERATED_LENGTH if strategy in (Strategy.EMAIL, Strategy.LOGIN) else None

    def options(self, here: KeyPath, strategy: Strategy, options: Any, location: Location) -> ColumnRule | None:
        if strategy is Strategy.FIXED:
            if options is None:
                self.report(here, "missing-value", "`fixed` needs a value", "to set NULL, write `null` alone")
                return None
            return ColumnRule(strategy, location, value=options)
        if strategy is Strategy.SQL:
            expression = self.sql(here, options)
            return ColumnRule(strategy, location, value=expression) if expression else None
        if strategy is Strategy.JSON:
            return self.json_paths(here, options, location)
        if strategy is Strategy.FAKE:
            return self.fake(here, options, location)
        if strategy is Strategy.PHONE and isinstance(options, str):
            options = {"format": options}
        if options is None or options == {}:
            return ColumnRule(strategy, location, length=self.default_length(strategy))
        if strategy not in _OPTIONS:
            self.report(here, "no-options", f"`{strategy.value}` takes no options", f"write `{strategy.value}` alone")
            return None
        if not isinstance(options, dict):
            self.wrong_type(here, f"a mapping of options ({', '.join(_OPTIONS[strategy])})", options)
            return None
        self.unknown_keys(options, _OPTIONS[strategy], here, f"option of {strategy.value}")
        unique = self.boolean((*here, "unique"), options.get("unique", False))
        if strategy is Strategy.PHONE:
            return ColumnRule(strategy, location, format=self.phone_format(here, options), unique=unique)
        length = options.get("length", self.default_length(strategy))
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 64):
            self.report(
                (*here, "length"),
                "invalid-length",
                f"length must be a whole number from 1 to 64 (hex characters of the hash), found {length!r}",
                "16 characters (64 bits) keep a billion values apart with a collision chance near 3%; 20 near 0",
            )
            length = self.default_length(strategy)
        return ColumnRule(strategy, location, length=length, unique=unique)

    def fake(self, here: KeyPath, options: Any, location: Location) -> ColumnRule | None:
        if isinstance(options, str):
            options = {"kind": options}
        if not isinstance(options, dict) or "kind" not in options:
            self.wrong_type(here, f"a kind ({', '.join(FAKE_KINDS)}) or {{kind: …, locale: …}}", options)
            return None
        self.unknown_keys(options, _OPTIONS[Strategy.FAKE], here, "option of fake")
        kind, locale = str(options["kind"]), options.get("locale", DEFAULT_FAKE_LOCALE)
        if kind not in FAKE_KINDS:
            self.report(
                (*here, "kind") if isinstance(options.get("kind"), str) and len(options) > 1 else here,
                "unknown-fake",
                f"unknown fake '{kind}'{suggest(kind, FAKE_KINDS)}",
                f"kinds: {', '.join(FAKE_KINDS)}",
            )
            return None
        if locale not in FAKE_LOCALES:
            self.report(
                (*here, "locale"),
                "unknown-locale",
                f"locale {locale!r} is not one of {', '.join(FAKE_LOCALES)}",
                "ja_JP: Japanese names, kana, addresses, postal codes; en_US: English ones",
            )
            return None
        if kind in KANA_KINDS and locale != "ja_JP":
            self.report(here, "unknown-fake", f"`{kind}` exists in ja_JP only", "write locale: ja_JP")
            return None
        length = options.get("length", DEFAULT_FAKE_SUFFIX)
        if isinstance(length, bool) or not isinstance(length, int) or not 4 <= length <= 32:
            self.report(
                (*here, "length"),
                "invalid-length",
                f"length must be a whole number from 4 to 32 (hex characters after a unique fake), found {length!r}",
                "8 keeps a million values apart with a collision chance near 1 in 9,000 (the preflight checks it)",
            )
            length = DEFAULT_FAKE_SUFFIX
        unique = self.boolean((*here, "unique"), options.get("unique", False))
        return ColumnRule(Strategy.FAKE, location, value=kind, locale=str(locale), unique=unique, length=length)

    def phone_format(self, here: KeyPath, options: Mapping[str, Any]) -> str:
        value = options.get("format", DEFAULT_PHONE_FORMAT)
        digits = value.count("#") if isinstance(value, str) else 0
        if not isinstance(value, str) or not PHONE_FORMAT.match(value) or not 4 <= digits <= 17:
            self.report(
                (*here, "format"),
                "invalid-format",
                f"phone format must be digits, + - ( ) . spaces and 4 to 17 '#', found {value!r}",
                f"each # is a digit from the keyed hash, e.g. {DEFAULT_PHONE_FORMAT!r}",
            )
            return DEFAULT_PHONE_FORMAT
        return value

    def json_paths(self, here: KeyPath, options: Any, location: Location) -> ColumnRule | None:
        if not isinstance(options, dict) or not options:
            self.wrong_type(here, "a mapping of JSON path → rule, e.g. {$.phone: phone}", options)
            return None
        paths: list[tuple[str, ColumnRule]] = []
        for path, rule_value in options.items():
            key_path = (*here, str(path))
            if not JSON_PATH.match(str(path)):
                self.report(
                    key_path,
                    "invalid-path",
                    f"'{path}' is not a JSON path this engine applies",
                    "$ then .key or [index] steps, no wildcards: $.phone, $.address.line1, $.phones[0]",
                    at_key=True,
                )
                continue
            rule = self.column(key_path, rule_value, in_json=True)
            if rule is not None:
                paths.append((str(path), rule))
        return ColumnRule(Strategy.JSON, location, paths=tuple(paths)) if paths else None

    def sql(self, here: KeyPath, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.wrong_type(here, "a SQL expression in quotes", value)
            return ""
        if ";" in value:
            self.report(here, "sql-statement", "a rule is one SQL expression, not statements", "remove the ';'")
            return ""
        return value.strip()

    def identifier(self, here: KeyPath, value: Any, what: str) -> str:
        if isinstance(value, str) and IDENTIFIER.match(value):
            return value
        self.report(here, "invalid-name", f"{value!r} is not a {what} name", "letters, digits, _ and $")
        return ""

    def scan(self, value: Any) -> ScanSettings:
        if not isinstance(value, dict):
            self.wrong_type(("scan",), "a mapping (sample, allow_domains, ignore)", value)
            return ScanSettings()
        self.unknown_keys(value, _SCAN_KEYS, ("scan",), "scan key")
        sample = value.get("sample", DEFAULT_SAMPLE)
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            self.report(("scan", "sample"), "invalid-value", f"sample must be 1 or more, found {sample!r}", "e.g. 1000")
            sample = DEFAULT_SAMPLE
        domains = value.get("allow_domains", [])
        if not isinstance(domains, list) or not all(isinstance(d, str) and DOMAIN.match(d.lower()) for d in domains):
            self.wrong_type(("scan", "allow_domains"), "a list of domain names, e.g. [shop.example.com]", domains)
            domains = []
        ignore: dict[tuple[str, str], frozenset[str]] = {}
        raw = value.get("ignore", {})
        if not isinstance(raw, dict):
            self.wrong_type(("scan", "ignore"), "a mapping of table.column → [patterns]", raw)
            raw = {}
        for target, patterns in raw.items():
            here = ("scan", "ignore", str(target))
            table, _, column = str(target).partition(".")
            names = [patterns] if isinstance(patterns, str) else patterns
            if not column or not isinstance(names, list) or not all(p in SCAN_PATTERNS for p in names):
                self.report(
                    here,
                    "invalid-ignore",
                    f"scan.ignore wants `table.column: [patterns]`, found {target}: {patterns!r}",
                    f"patterns: {', '.join(SCAN_PATTERNS)}",
                    at_key=True,
                )
                continue
            ignore[(table, column)] = frozenset(names)
        return ScanSettings(sample, tuple(d.lower() for d in domains), ignore)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r}"
