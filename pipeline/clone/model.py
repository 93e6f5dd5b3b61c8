"""The masking rules as data: what a rule file (``masking/<database>.yaml``) says, once read and checked.

Apart from the reader (:mod:`pipeline.clone.rules`, the format and its positional checks) because everything
downstream — the coverage gate, the plan, the SQL, the engine, the PII scan — needs the rules, never the YAML: a
module that builds or reads rules imports this one, which imports no parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipeline.errors import Location


class Strategy(StrEnum):
    """What happens to a column. The README's table follows this order."""

    KEEP = "keep"
    NULL = "null"
    FIXED = "fixed"
    SQL = "sql"
    HASH = "hash"
    EMAIL = "email"
    LOGIN = "login"
    PHONE = "phone"
    JSON = "json"
    FAKE = "fake"


STRATEGY_HELP: dict[Strategy, str] = {
    Strategy.KEEP: "judged safe: the column is left as it is",
    Strategy.NULL: "NULL in every row",
    Strategy.FIXED: "{fixed: VALUE}: one value in every row",
    Strategy.SQL: "{sql: EXPR}: any SQL expression; {hash} is the column's keyed hash",
    Strategy.HASH: "the keyed hash (HMAC-SHA256) in hex; {hash: {length: 16}} keeps the first 16 characters",
    Strategy.EMAIL: "u_<hash16>@example.invalid: unique, the same in every table",
    Strategy.LOGIN: "user_<hash16>",
    Strategy.PHONE: "+81-90-####-####, the digits from the keyed hash; {phone: {format: ...}}",
    Strategy.JSON: "{json: {$.path: RULE, ...}}: rules for paths inside a JSON document, the rest kept",
    Strategy.FAKE: "{fake: KIND} or {fake: {kind: KIND, locale: ja_JP|en_US, unique: true}}: a realistic fake",
}
# What `fake` makes (pipeline.clone.fakes has the Faker call of each), and the locales it makes them in.
FAKE_KINDS = (
    "name",
    "first_name",
    "last_name",
    "kana_name",
    "first_kana_name",
    "last_kana_name",
    "company",
    "address",
    "prefecture",
    "city",
    "street_address",
    "postcode",
)
KANA_KINDS = ("kana_name", "first_kana_name", "last_kana_name")
FAKE_LOCALES = ("ja_JP", "en_US")
DEFAULT_FAKE_LOCALE = "ja_JP"
DEFAULT_FAKE_SUFFIX = 8  # hex characters of the keyed hash after a fake of a unique column
MASKED_EMAIL_DOMAIN = "example.invalid"
DEFAULT_PHONE_FORMAT = "+81-90-####-####"
DEFAULT_GENERATED_LENGTH = 16  # hex characters of the keyed hash in email and login: 64 bits
HASH_HEX = 64  # characters of a SHA-256 in hex
DEFAULT_SAMPLE = 1000
SCAN_PATTERNS = ("email", "phone", "card")


@dataclass(frozen=True)
class ColumnRule:
    """One column's rule. ``length`` is in hex characters of the keyed hash (None: as long as the column
    allows, at most 64); ``unique`` asks the uniqueness check for a column without a unique index."""

    strategy: Strategy
    location: Location
    value: Any = None
    length: int | None = None
    format: str = DEFAULT_PHONE_FORMAT
    unique: bool = False
    paths: tuple[tuple[str, ColumnRule], ...] = ()
    locale: str = DEFAULT_FAKE_LOCALE  # fake only

    def describe(self) -> str:
        """The rule as one would write it in the file (for the plan and for error messages)."""
        if self.strategy is Strategy.FIXED:
            return f"fixed {self.value!r}"
        if self.strategy is Strategy.SQL:
            return f"sql {self.value}"
        if self.strategy is Strategy.JSON:
            return "json " + ", ".join(f"{path}: {rule.describe()}" for path, rule in self.paths)
        if self.strategy is Strategy.PHONE:
            return f"phone {self.format}"
        if self.strategy is Strategy.FAKE:
            return f"fake {self.value} ({self.locale}{', unique' if self.unique else ''})"
        if self.length is not None:
            return f"{self.strategy.value} (length {self.length})"
        return self.strategy.value

    def canonical(self) -> object:
        """A plain value that changes whenever what the rule writes changes (the run digest's input)."""
        found = [
            self.strategy.value,
            self.value,
            self.length,
            self.format if self.strategy is Strategy.PHONE else None,
            [[path, rule.canonical()] for path, rule in self.paths],
        ]
        return [*found, self.locale, self.unique] if self.strategy is Strategy.FAKE else found


@dataclass(frozen=True)
class Subset:
    """Which rows of a root table stay: those ``where`` holds for (SQL), and of those a ``fraction`` chosen by
    the keyed hash of the primary key (the same rows in every run with one key). Rows of every table that
    references a removed row go too."""

    location: Location
    fraction: float = 1.0
    where: str = ""


@dataclass(frozen=True)
class Reference:
    """A foreign key no constraint declares: ``column`` of this table holds values of ``table.target``."""

    column: str
    table: str
    target: str
    location: Location


@dataclass(frozen=True)
class TableRule:
    """One table's rules. ``columns_line``/``columns_indent`` say where a stub for a new column is pasted."""

    name: str
    location: Location
    truncate: bool = False
    delete_where: str = ""
    columns: Mapping[str, ColumnRule] = field(default_factory=dict)
    allow_triggers: bool = False
    columns_line: int = 0
    columns_indent: int = 0
    subset: Subset | None = None
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True)
class ScanSettings:
    """The PII scan after masking: rows sampled per column, e-mail domains that are nobody's, accepted matches."""

    sample: int = DEFAULT_SAMPLE
    allow_domains: tuple[str, ...] = ()
    ignore: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleFile:
    """A parsed rule file. ``tables_line``/``table_indent`` say where a stub for a new table is pasted."""

    path: str
    database: str
    tables: Mapping[str, TableRule]
    scan: ScanSettings = field(default_factory=ScanSettings)
    tables_line: int = 0
    table_indent: int = 2

    def canonical(self) -> object:
        return [
            self.database,
            [
                [t.name, t.truncate, t.delete_where, [[c, r.canonical()] for c, r in sorted(t.columns.items())]]
                + ([[t.subset.fraction, t.subset.where]] if t.subset else [])
                + ([[[r.column, r.table, r.target] for r in t.references]] if t.references else [])
                for t in sorted(self.tables.values(), key=lambda t: t.name)
            ],
        ]
