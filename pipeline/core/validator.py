"""The one validator of the project's hand-written files: typed readers, "did you mean", problem positions.

Four formats are checked with it: KPI headers (:mod:`pipeline.core.header_rules`), masking rule files
(:mod:`pipeline.clone.rules`) — both read with positions and report *every* problem at ``path:line:col`` — and
the ``[clone]`` and ``[suspend]`` tables of ``kpi.toml`` (:mod:`pipeline.clone.config`,
:mod:`pipeline.suspend.config`), which stop at the first mistake and name the table it is in.

* :class:`PositionalValidator` is the base of the two positional checkers: it records a :class:`Problem` at the
  key or value of a key path and reads the scalar types (text, true/false, whole number, choice, list of names,
  time zone, date, cron, duration). A checker adds its own format's rules on top.
* :class:`TableReader` is the same for a TOML table: each reader returns the value or raises the table's error
  class with ``where`` = the table's origin.
* The checks themselves (:func:`suggest`, :func:`is_zone`, :func:`cron_error`, :func:`whole_number`,
  :func:`as_bool`, :data:`ACCOUNT_ID`) are plain functions, so that both kinds share them, and so does any
  other module that must say "did you mean".

Pure: no I/O. Messages are part of the interface (tests assert them), so a reader's wording moves with it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from pipeline.core.durations import parse_duration
from pipeline.errors import KpiError, Problem

if TYPE_CHECKING:  # not at run time: the ops Lambdas read TOML tables with this module and carry no PyYAML
    from pipeline.core.header import Header, KeyPath

__all__ = [
    "ACCOUNT_ID",
    "PositionalValidator",
    "TableReader",
    "as_bool",
    "cron_error",
    "describe",
    "dotted",
    "is_zone",
    "suggest",
    "whole_number",
]

ACCOUNT_ID = re.compile(r"\d{12}")  # an AWS account id: twelve digits, written quoted (leading zeros count)
_CRON_EPOCH = datetime(2024, 1, 1)  # any moment: cronsim checks the expression when it is built

_E = TypeVar("_E", bound=StrEnum)


# -- the checks ----------------------------------------------------------------------------------------------


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def is_zone(text: str) -> bool:
    """Whether ``text`` is an IANA time zone name this machine's zoneinfo knows."""
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def cron_error(expression: str) -> str | None:
    """Why ``expression`` is not a five-field cron expression (cronsim's words), or None when it is one."""
    try:
        CronSim(expression, _CRON_EPOCH)
    except CronSimError as error:
        return str(error)
    return None


def whole_number(value: object, *, negative: bool = True) -> int | None:
    """An int, or text that spells one (``"15"``; with ``negative=False`` digits only); None for anything else,
    true/false included (YAML and TOML booleans are ints to Python)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if negative or value >= 0 else None
    if isinstance(value, str):
        if not negative:
            return int(value) if value.isdigit() else None
        try:
            return int(value)
        except ValueError:
            return None
    return None


def as_bool(value: object, *, text: bool = False) -> bool | None:
    """A boolean, or with ``text=True`` also ``"true"``/``"false"`` in any case (an environment variable)."""
    if isinstance(value, bool):
        return value
    if text and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def dotted(key_path: KeyPath) -> str:
    """``columns.amount.type``: a key path as the messages show it."""
    return ".".join(str(k) for k in key_path)


def describe(value: Any) -> str:
    """What was found instead: ``nothing``, ``a mapping``, ``a number (3)``…"""
    if value is None:
        return "nothing"
    kind = {dict: "a mapping", list: "a list", bool: "true/false", int: "a number", float: "a number", str: "a text"}
    return (
        f"{kind.get(type(value), type(value).__name__)} ({value!r})"
        if not isinstance(value, dict | list)
        else kind[type(value)]
    )


# -- positional: every problem, at its place in the file --------------------------------------------------------


class PositionalValidator:
    """Reads values out of a YAML document parsed with positions (:class:`~pipeline.core.header.Header`) and
    records a :class:`Problem` for each one that is wrong, so that one pass reports them all.

    Each reader returns the value, or None (a fallback where the caller needs one) after recording the problem.
    Subclasses set the wording that differs between formats: the hint of a long list of allowed keys, the
    "write …" hint of a wrong type, what a failed true/false falls back to, and how a found value is described.
    """

    many_keys_hint: ClassVar[str | None] = None  # hint for an unknown key among more than 6; None lists them all
    wrong_type_hint: ClassVar[str] = "write it as {expected}"
    boolean_fallback: ClassVar[bool] = False

    def __init__(self, doc: Header, problems: list[Problem]) -> None:
        self.doc = doc
        self.problems = problems

    def described(self, value: Any) -> str:
        return describe(value)

    def report(self, key_path: KeyPath, rule: str, message: str, hint: str, *, at_key: bool = False) -> None:
        location = self.doc.key_at(key_path) if at_key else self.doc.value_at(key_path)
        self.problems.append(Problem(location, rule, message, hint))

    def unknown_keys(self, mapping: Mapping[Any, Any], allowed: Iterable[str], here: KeyPath, what: str) -> None:
        known = list(allowed)
        for key in mapping:
            if key not in known:
                self.report(
                    (*here, str(key)),
                    "unknown-key",
                    f"unknown {what} '{key}'{suggest(str(key), known)}",
                    f"allowed: {', '.join(known)}"
                    if len(known) <= 6 or self.many_keys_hint is None
                    else self.many_keys_hint,
                    at_key=True,
                )

    def wrong_type(self, key_path: KeyPath, expected: str, value: Any) -> None:
        self.report(
            key_path,
            "wrong-type",
            f"'{dotted(key_path)}' must be {expected}, found {self.described(value)}",
            self.wrong_type_hint.format(expected=expected),
        )

    def text(self, key_path: KeyPath, value: Any) -> str | None:
        if isinstance(value, str):
            return value.strip()
        self.wrong_type(key_path, "a text", value)
        return None

    def boolean(self, key_path: KeyPath, value: Any) -> bool:
        found = as_bool(value)
        if found is not None:
            return found
        self.wrong_type(key_path, "true or false", value)
        return self.boolean_fallback

    def integer(self, key_path: KeyPath, value: Any, minimum: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.wrong_type(key_path, "a whole number", value)
            return None
        if value < minimum:
            self.report(
                key_path,
                "out-of-range",
                f"'{dotted(key_path)}' must be {minimum} or more, found {value}",
                f"write a whole number from {minimum} up",
            )
            return None
        return value

    def choice(self, key_path: KeyPath, value: Any, kind: type[_E]) -> _E | None:
        allowed = [member.value for member in kind]
        text = value.strip().lower() if isinstance(value, str) else None
        if value is None and "null" in allowed:
            text = "null"  # YAML reads an unquoted `null` as nothing; `zero_dates: null` means the policy
        if text in allowed:
            return kind(text)
        shown = value if isinstance(value, str) else self.described(value)
        self.report(
            key_path,
            "invalid-value",
            f"'{dotted(key_path)}' is '{shown}'{suggest(str(shown), allowed)}",
            f"allowed: {', '.join(allowed)}",
        )
        return None

    def names(self, key_path: KeyPath, value: Any, what: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.wrong_type(key_path, f"a list of {what}s, e.g. [a, b]", value)
            return ()
        return tuple(v.strip() for v in value)

    def mapping(self, key_path: KeyPath, value: Any, example: str) -> dict[Any, Any] | None:
        if isinstance(value, dict):
            return value
        self.wrong_type(key_path, f"a mapping ({example})", value)
        return None

    def zone(self, key_path: KeyPath, value: Any) -> str | None:
        text = self.text(key_path, value)
        if text is None:
            return None
        if not is_zone(text):
            self.report(
                key_path,
                "invalid-timezone",
                f"unknown time zone '{text}'{suggest(text, sorted(available_timezones()))}",
                "use an IANA name such as Asia/Tokyo or UTC",
            )
            return None
        return text

    def day(self, key_path: KeyPath, value: Any) -> date | datetime | None:
        if value is None or isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value) if len(value) <= 10 else datetime.fromisoformat(value)
            except ValueError:
                pass
        self.report(
            key_path, "invalid-date", f"'{dotted(key_path)}' is not a date: {value!r}", "write it as 2024-01-31"
        )
        return None

    def cron(self, key_path: KeyPath, value: Any) -> str | None:
        if value is None:
            return None
        text = self.text(key_path, value)
        if text is None:
            return None
        error = cron_error(text)
        if error is not None:
            self.report(
                key_path,
                "invalid-cron",
                f"'{text}' is not a valid cron expression: {error}",
                'five fields: minute hour day-of-month month day-of-week, e.g. "0 6 * * *" for 06:00 every day',
            )
            return None
        return text

    def duration(self, key_path: KeyPath, value: Any) -> timedelta | None:
        text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
        if text is None:
            self.wrong_type(key_path, "a duration such as 30m or 26h", value)
            return None
        try:
            return parse_duration(text)
        except ValueError as error:
            self.report(key_path, "invalid-duration", str(error), "units: s, m, h, d, w (e.g. 90s, 30m, 26h, 2d)")
            return None


# -- a TOML table: the first mistake, naming the table ------------------------------------------------------------


class TableReader:
    """Reads the values of one ``kpi.toml`` table (or its environment variables) and raises ``error`` — the
    module's own :class:`KpiError` class — at the first wrong one, with ``where`` = ``origin`` (``kpi.toml
    [suspend]``, ``KPI_CLONE_* variables``…). The messages name the key; the hints come from the caller."""

    def __init__(self, error: type[KpiError], origin: str, section: str) -> None:
        self.error = error
        self.origin = origin
        self.section = section

    def fail(self, message: str, hint: str) -> NoReturn:
        raise self.error(message, where=self.origin, hint=hint)

    def known_keys(self, table: Mapping[str, Any], keys: Iterable[str]) -> None:
        """Refuse the first key (in sorted order) that is not one of ``keys``, suggesting the closest."""
        allowed = list(keys)
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            self.fail(
                f"unknown key '{unknown[0]}'{suggest(unknown[0], allowed)}",
                f"keys of [{self.section}]: {', '.join(allowed)}",
            )

    def zone(self, text: str, key: str, hint: str) -> str:
        if not is_zone(text):
            self.fail(f"{key} '{text}' is not an IANA time zone", hint)
        return text

    def cron(self, expression: str, key: str, hint: str) -> str:
        error = cron_error(expression)
        if error is not None:
            self.fail(f"{key} '{expression}' is not a valid cron expression: {error}", hint)
        return expression

    def flag(self, value: object, key: str) -> bool:
        found = as_bool(value, text=True)
        if found is None:
            self.fail(f"{key} must be true or false", f"{key} = true")
        return found

    def one_of(self, value: str, key: str, choices: Iterable[str], hint: str, *, what: str) -> str:
        """``value`` if it is one of ``choices``; else ``key: unknown WHAT 'x' (did you mean 'y'?)``."""
        allowed = list(choices)
        if value not in allowed:
            self.fail(f"{key}: unknown {what} '{value}'{suggest(value, allowed)}", hint)
        return value
