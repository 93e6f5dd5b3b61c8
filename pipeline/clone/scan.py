"""The PII scan after masking, fail closed: sampled rows of every column left as it was must hold no e-mail
address, phone number or card number.

What is scanned: text and JSON columns whose rule is ``keep`` or custom ``sql``, and JSON documents with the
paths their rules masked taken out (``JSON_REMOVE``) — everything the rules did not rewrite themselves. The
columns a rule rewrote hold the rule's own output (a keyed hash in hex can look like a card number by chance),
so scanning them would only find false alarms. Truncated tables are empty.

Sampling: the first and the last rows by primary key, ``scan.sample`` rows per table in all (half each), so a
column that only recent rows fill — one added last week — is sampled too.

Patterns (:data:`PATTERNS`): e-mail addresses outside reserved domains (``example.invalid`` where masked
addresses go, RFC 2606/6761 names, and ``scan.allow_domains``); phone numbers, Japanese (``03-1234-5678``,
``090-1234-5678``, ``09012345678``) and international (``+81 90 1234 5678``, ``+1 415 555 0100``); card
numbers of 13 to 19 digits (spaces or dashes allowed) that pass the Luhn check. A match that is not personal
data is accepted per column with ``scan.ignore: {table.column: [pattern]}`` in the rule file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.clone.model import MASKED_EMAIL_DOMAIN, ScanSettings, Strategy
from pipeline.clone.plan import MaskingPlan, TablePlan
from pipeline.clone.sql import quote

__all__ = ["PATTERNS", "Finding", "find_pii", "luhn", "scan", "scan_targets"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@((?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,})")
# Bounded by anything but ASCII letters, digits and _ (so Japanese text right before a number still counts,
# and a run of digits inside a hex string does not).
_PHONE = re.compile(
    r"(?<![A-Za-z0-9_+])(?:"
    r"\+\d{1,3}[\s\-.]?\(?\d{1,4}\)?(?:[\s\-.]?\d{2,4}){2,3}"  # international: +81 90 1234 5678
    r"|0\d{1,4}[\-\s(]\d{1,4}[\-\s)]\d{4}"  # Japanese with separators: 03-1234-5678, 090-1234-5678
    r"|0[1-9]\d{8,9}"  # Japanese without: 0312345678, 09012345678
    r")(?![A-Za-z0-9_])"
)
_CARD = re.compile(r"(?<![A-Za-z0-9_\-])\d(?:[ \-]?\d){12,18}(?![A-Za-z0-9_])")
PATTERNS = ("email", "phone", "card")
# Domains nobody can receive mail at: https://www.rfc-editor.org/rfc/rfc2606 and rfc6761.
RESERVED_DOMAINS = (
    MASKED_EMAIL_DOMAIN,
    *("example.com", "example.net", "example.org"),
    *("invalid", "test", "example", "localhost"),
)


@dataclass(frozen=True)
class Finding:
    """A pattern found in a column's sample: how many values matched, and the key of the first row."""

    table: str
    column: str
    pattern: str
    hits: int
    sampled: int
    first_key: tuple[object, ...]

    def __str__(self) -> str:
        key = ", ".join(map(str, self.first_key))
        at = f" (first at key {key})" if key else ""
        return f"{self.table}.{self.column}: {self.pattern} in {self.hits} of {self.sampled} sampled values{at}"


def luhn(digits: str) -> bool:
    """The Luhn checksum every payment card number passes (ISO/IEC 7812-1)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find_pii(text: str, allow_domains: Sequence[str] = ()) -> set[str]:
    """The patterns (``email``, ``phone``, ``card``) found in one value."""
    found = set()
    allowed = (*RESERVED_DOMAINS, *allow_domains)
    for match in _EMAIL.finditer(text):
        domain = match.group(1).lower()
        if not any(domain == d or domain.endswith("." + d) for d in allowed):
            found.add("email")
            break
    if _PHONE.search(text):
        found.add("phone")
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ \-]", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn(digits):
            found.add("card")
            break
    return found


def scan_targets(table: TablePlan) -> list[tuple[str, str]]:
    """(column, select expression) for what the scan reads in one table: what no rule rewrote."""
    if table.truncate:
        return []
    targets = []
    for column in table.table.columns:
        rule = table.rules.get(column.name)
        if rule is None or not column.text:
            continue
        if rule.strategy in (Strategy.KEEP, Strategy.SQL):
            targets.append((column.name, quote(column.name)))
        elif rule.strategy is Strategy.JSON:
            paths = ", ".join(f"'{path}'" for path, _ in rule.paths)
            targets.append((column.name, f"JSON_REMOVE({quote(column.name)}, {paths})"))
    return targets


def scan(cursor: Any, plan: MaskingPlan, settings: ScanSettings | None = None) -> list[Finding]:
    """Sample every target column of the masked database; every pattern found, per column."""
    settings = settings or plan.rules.scan
    findings: list[Finding] = []
    for table in plan.tables:
        targets = scan_targets(table)
        if targets:
            findings.extend(_scan_table(cursor, table, targets, settings))
    return findings


def _scan_table(
    cursor: Any, table: TablePlan, targets: list[tuple[str, str]], settings: ScanSettings
) -> Iterable[Finding]:
    key = table.table.primary_key
    selects = ", ".join(expression for _, expression in targets)
    rows: list[tuple[tuple[object, ...], Sequence[object]]] = []
    if key:
        keys = ", ".join(quote(k) for k in key)
        half = max(1, settings.sample // 2)
        by_key: dict[tuple[object, ...], Sequence[object]] = {}
        for order in ("ASC", "DESC"):
            ordering = ", ".join(f"{quote(k)} {order}" for k in key)
            cursor.execute(f"SELECT {keys}, {selects} FROM {table.table_sql} ORDER BY {ordering} LIMIT %s", (half,))
            for row in cursor.fetchall():
                by_key[tuple(row[: len(key)])] = row[len(key) :]
        rows = list(by_key.items())
    else:
        cursor.execute(f"SELECT {selects} FROM {table.table_sql} LIMIT %s", (settings.sample,))
        rows = [((), row) for row in cursor.fetchall()]
    for index, (column, _) in enumerate(targets):
        ignored = settings.ignore.get((table.name, column), frozenset())
        hits: dict[str, int] = {}
        first: dict[str, tuple[object, ...]] = {}
        sampled = 0
        for row_key, values in rows:
            value = values[index]
            if value is None:
                continue
            sampled += 1
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            for pattern in find_pii(text, settings.allow_domains) - ignored:
                hits[pattern] = hits.get(pattern, 0) + 1
                first.setdefault(pattern, row_key)
        for pattern in PATTERNS:
            if pattern in hits:
                yield Finding(table.name, column, pattern, hits[pattern], sampled, first[pattern])
