"""The ``[suspend]`` table of ``kpi.toml`` (``KPI_CONFIG`` or ``./kpi.toml``), with ``KPI_SUSPEND_*`` variables on top.

The Lambda is configured by the variables alone: ``KPI_SUSPEND_<KEY>`` for every key (``KPI_SUSPEND_ACCOUNTS``,
``KPI_SUSPEND_TIMEZONE``, ``KPI_SUSPEND_TOPIC_ARN``…; lists comma-separated; the production tag as
``KPI_SUSPEND_PRODUCTION_TAG_KEY`` and ``KPI_SUSPEND_PRODUCTION_TAG_VALUES``). Nothing here talks to AWS: the
values are checked (zone, cron, holiday country, dates, account ids) and any mistake is a :class:`SuspendError`
naming the key and how to fix it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from pipeline.core.validator import ACCOUNT_ID, TableReader, suggest, whole_number
from pipeline.settings import config_table
from pipeline.suspend.errors import SuspendError

__all__ = [
    "DEFAULT_SCHEDULE",
    "SERVICES",
    "ExtraHoliday",
    "ProductionTag",
    "Schedule",
    "SuspendConfig",
    "config_from_table",
    "load_config",
]

CONFIG_FILE = "kpi.toml"
SERVICES = ("ecs", "asg", "ec2", "rds")
ENV_PREFIX = "KPI_SUSPEND_"
EXAMPLE = (
    '[suspend]\naccounts = ["123456789012"]      # the only accounts it may act in\n'
    'timezone = "Asia/Tokyo"\nsuspend_at = "0 21 * * 1-5"\nresume_at = "0 8 * * 1-5"'
)
_KEYS = (
    "accounts",
    "timezone",
    "suspend_at",
    "resume_at",
    "holidays",
    "holiday_language",
    "extra_holidays",
    "opt_in_tag",
    "production_tag",
    "keep_running_tag",
    "state_tag_prefix",
    "services",
    "topic_arn",
    "schedules",
    "tick_minutes",
    "start_for_maintenance",
)
_SCHEDULE_KEYS = ("timezone", "suspend_at", "resume_at", "holidays")
_SCHEDULE_NAME = re.compile(r"[A-Za-z0-9_.:/=+@-]{1,64}")  # a tag value names it
DEFAULT_SCHEDULE = "default"  # the global schedule: the opt-in tag's value "true"
_MONTH_DAY = re.compile(r"(\d{2})-(\d{2})")


@dataclass(frozen=True)
class ProductionTag:
    """A resource (or its ECS/Aurora cluster) tagged ``key`` = one of ``values`` is never touched.

    Key and values are compared without regard to case or surrounding spaces: ``environment = PROD `` is
    production too — the guard errs on the side of leaving things running.
    """

    key: str = "Environment"
    values: tuple[str, ...] = ("prod", "production")

    def __str__(self) -> str:
        return f"{self.key}={'|'.join(self.values)}"


@dataclass(frozen=True)
class ExtraHoliday:
    """A custom day off: one date (``2026-12-29``) or the same day every year (``12-29``, ``year`` 0)."""

    month: int
    day: int
    year: int = 0
    name: str = "custom holiday (extra_holidays)"

    def matches(self, day: date) -> bool:
        return (day.month, day.day) == (self.month, self.day) and self.year in (0, day.year)


@dataclass(frozen=True)
class Schedule:
    """When resources of one schedule stop and start: the opt-in tag's value names it (``kpi:suspend=late``);
    ``true`` is the global one, ``default``. Evaluated in its own zone with its own holiday country (the
    configuration's ``extra_holidays`` count for every schedule)."""

    name: str
    timezone: str
    suspend_at: str
    resume_at: str
    holidays: str


@dataclass(frozen=True)
class SuspendConfig:
    """What the suspend module may touch, when, and where it keeps its state (tags)."""

    accounts: tuple[str, ...]
    timezone: str = "Asia/Tokyo"
    suspend_at: str = "0 21 * * 1-5"
    resume_at: str = "0 8 * * 1-5"
    holidays: str = "JP"  # country for the holidays package; "" for none
    holiday_language: str = "en_US"
    extra_holidays: tuple[ExtraHoliday, ...] = ()
    opt_in_tag: str = "kpi:suspend"
    production_tag: ProductionTag = field(default_factory=ProductionTag)
    keep_running_tag: str = "kpi:keep-running-until"
    state_tag_prefix: str = "kpi:suspend:"
    services: tuple[str, ...] = SERVICES
    topic_arn: str = ""
    schedules: Mapping[str, Schedule] = field(default_factory=dict)  # named ones; the global one is default
    tick_minutes: int = 15  # how often `tick` runs: the schedules' firings of the last tick_minutes are due
    start_for_maintenance: bool = False  # start a stopped database for its maintenance window, stop it after
    origin: str = "the defaults"  # where it was read from, for messages

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def schedule(self, name: str | None = None) -> Schedule:
        """The schedule ``name`` (None or ``default``: the global one); a SuspendError for an unknown name."""
        if not name or name == DEFAULT_SCHEDULE:
            return Schedule(DEFAULT_SCHEDULE, self.timezone, self.suspend_at, self.resume_at, self.holidays)
        if name not in self.schedules:
            known = ", ".join([DEFAULT_SCHEDULE, *sorted(self.schedules)])
            raise SuspendError(
                f"no schedule '{name}' in [suspend.schedules]", where=self.origin, hint=f"known: {known}"
            )
        return self.schedules[name]

    def all_schedules(self) -> list[Schedule]:
        return [self.schedule(), *(self.schedules[name] for name in sorted(self.schedules))]

    def state_tag(self, name: str) -> str:
        """The tag key under which the module keeps ``name`` (``desired-count``, ``last-action``…)."""
        return f"{self.state_tag_prefix}{name}"


def load_config(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None, accounts: bool = True
) -> SuspendConfig:
    """The ``[suspend]`` table of ``path`` (default ``KPI_CONFIG`` or ``./kpi.toml``; a missing file is an empty
    table), with the ``KPI_SUSPEND_*`` variables applied on top, checked. ``accounts=False`` for what touches no
    AWS (``kpi suspend calendar``): the allow-list may then be missing."""
    environ = os.environ if environ is None else environ
    path = path or Path(environ.get("KPI_CONFIG") or CONFIG_FILE)
    found = config_table(path, "suspend", SuspendError, EXAMPLE)
    table: dict[str, Any] = found or {}
    origin = "KPI_SUSPEND_* variables"
    if found is not None:
        origin = f"{path} [suspend]"
    overrides = _from_variables(environ)
    if overrides:
        origin = f"{origin} + KPI_SUSPEND_* variables" if table else origin
    table.update(overrides)
    _check_keys(table, origin)
    if "accounts" not in table and accounts:
        raise SuspendError(
            f"no account allow-list: {path} has no [suspend] accounts and KPI_SUSPEND_ACCOUNTS is not set",
            where=str(path),
            hint=f"the suspend module refuses to run without one; add to {CONFIG_FILE}:\n{EXAMPLE}",
        )
    return config_from_table(table, origin=origin, accounts=accounts)


def config_from_table(table: Mapping[str, Any], *, origin: str = "[suspend]", accounts: bool = True) -> SuspendConfig:
    """A checked :class:`SuspendConfig` from the table's values (strings, lists, a production_tag table); the
    account allow-list may be missing only with ``accounts=False``."""
    _check_keys(table, origin)
    allowed = _accounts(table.get("accounts"), origin) if accounts or "accounts" in table else ()
    config = SuspendConfig(accounts=allowed, origin=origin)
    changes: dict[str, Any] = {}
    for key in ("timezone", "suspend_at", "resume_at", "holidays", "holiday_language", "topic_arn"):
        if key in table:
            changes[key] = _text(table[key], key, origin, empty=key in ("holidays", "topic_arn"))
    for key in ("opt_in_tag", "keep_running_tag", "state_tag_prefix"):
        if key in table:
            changes[key] = _tag_key(table[key], key, origin)
    if "extra_holidays" in table:
        changes["extra_holidays"] = _extra_holidays(table["extra_holidays"], origin)
    if "production_tag" in table:
        changes["production_tag"] = _production_tag(table["production_tag"], origin)
    if "services" in table:
        changes["services"] = _services(table["services"], origin)
    if "tick_minutes" in table:
        changes["tick_minutes"] = _minutes(table["tick_minutes"], origin)
    if "start_for_maintenance" in table:
        changes["start_for_maintenance"] = _reader(origin).flag(table["start_for_maintenance"], "start_for_maintenance")
    config = replace(config, **changes)
    _check_calendar(config, origin)
    if "schedules" in table:
        config = replace(config, schedules=_schedules(table["schedules"], config, origin))
    return config


def _schedules(value: object, config: SuspendConfig, origin: str) -> dict[str, Schedule]:
    """``[suspend.schedules.NAME]`` tables; a key left out is the global schedule's. Each is checked as the
    global one is (zone, crons, holiday country)."""
    hint = '[suspend.schedules.late] suspend_at = "0 23 * * 1-5" (keys: ' + ", ".join(_SCHEDULE_KEYS) + ")"
    if not isinstance(value, dict):
        raise SuspendError("schedules must be a table of named schedules", where=origin, hint=hint)
    found = {}
    for name, table in value.items():
        where = f"{origin} schedules.{name}"
        if not _SCHEDULE_NAME.fullmatch(str(name)) or str(name).lower() in ("true", "false", DEFAULT_SCHEDULE):
            raise SuspendError(f"schedule name '{name}' cannot be a tag value here", where=origin, hint=hint)
        if not isinstance(table, dict) or set(table) - set(_SCHEDULE_KEYS):
            unknown = sorted(set(table) - set(_SCHEDULE_KEYS)) if isinstance(table, dict) else []
            raise SuspendError(f"unknown key '{unknown[0]}'" if unknown else "not a table", where=where, hint=hint)
        texts: dict[str, Any] = {
            key: _text(table[key], key, where, empty=key == "holidays") for key in _SCHEDULE_KEYS if key in table
        }
        own = replace(config, **texts)
        _check_calendar(own, where)
        found[str(name)] = Schedule(str(name), own.timezone, own.suspend_at, own.resume_at, own.holidays)
    return found


def _reader(origin: str) -> TableReader:
    return TableReader(SuspendError, origin, "suspend")


def _minutes(value: object, origin: str) -> int:
    minutes = whole_number(value, negative=False)
    if minutes is None:
        raise SuspendError("tick_minutes must be a whole number of minutes", where=origin, hint="e.g. 15")
    if not 1 <= minutes <= 1440:
        raise SuspendError("tick_minutes must be from 1 to 1440", where=origin, hint="e.g. 15")
    return minutes


def _check_keys(table: Mapping[str, Any], origin: str) -> None:
    _reader(origin).known_keys(table, _KEYS)


def _from_variables(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    lists = {"accounts", "extra_holidays", "services"}
    for key in _KEYS:
        value = environ.get(ENV_PREFIX + key.upper(), "")
        if key == "production_tag":
            tag_key = environ.get(ENV_PREFIX + "PRODUCTION_TAG_KEY", "")
            values = environ.get(ENV_PREFIX + "PRODUCTION_TAG_VALUES", "")
            if tag_key or values:
                default = ProductionTag()
                found[key] = {
                    "key": tag_key or default.key,
                    "values": _split(values) if values else list(default.values),
                }
        elif key == "schedules" and value:
            try:
                found[key] = json.loads(value)
            except ValueError:
                raise SuspendError(
                    "KPI_SUSPEND_SCHEDULES is not JSON",
                    hint='e.g. KPI_SUSPEND_SCHEDULES={"late": {"suspend_at": "0 23 * * 1-5"}}',
                ) from None
        elif value:
            found[key] = _split(value) if key in lists else value
    return found


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _text(value: object, key: str, origin: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise SuspendError(f"{key} must be {'text' if empty else 'non-empty text'}", where=origin, hint=_HINTS[key])
    return value.strip()


def _tag_key(value: object, key: str, origin: str) -> str:
    text = _text(value, key, origin)
    if text.lower().startswith("aws:"):
        raise SuspendError(f"{key} '{text}' starts with 'aws:', which AWS reserves", where=origin, hint=_HINTS[key])
    return text


def _accounts(value: object, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SuspendError(
            "accounts must be a non-empty list of account ids", where=origin, hint='e.g. accounts = ["123456789012"]'
        )
    for item in value:
        if not isinstance(item, str):
            raise SuspendError(
                f"accounts: {item!r} is not quoted",
                where=origin,
                hint='write account ids as quoted strings (accounts = ["012345678901"]): numbers lose leading zeros',
            )
        if not ACCOUNT_ID.fullmatch(item.strip()):
            raise SuspendError(
                f"accounts: '{item}' is not a 12-digit AWS account id",
                where=origin,
                hint="`aws sts get-caller-identity` prints the account you are in",
            )
    return tuple(item.strip() for item in value)


def _services(value: object, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise SuspendError("services must be a non-empty list", where=origin, hint=_HINTS["services"])
    for item in value:
        _reader(origin).one_of(item, "services", SERVICES, _HINTS["services"], what="service")
    return tuple(service for service in SERVICES if service in value)  # the module's order, not the file's


def _production_tag(value: object, origin: str) -> ProductionTag:
    hint = _HINTS["production_tag"]
    if not isinstance(value, dict) or set(value) - {"key", "values"}:
        raise SuspendError("production_tag must be a table {key = …, values = […]}", where=origin, hint=hint)
    key, values = value.get("key", ProductionTag.key), value.get("values", list(ProductionTag.values))
    if not isinstance(key, str) or not key.strip():
        raise SuspendError("production_tag.key must be non-empty text", where=origin, hint=hint)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise SuspendError(
            "production_tag.values must be a non-empty list of text: the production guard cannot be switched off",
            where=origin,
            hint=hint,
        )
    return ProductionTag(key.strip(), tuple(v.strip() for v in values))


def _extra_holidays(value: object, origin: str) -> tuple[ExtraHoliday, ...]:
    if not isinstance(value, list):
        raise SuspendError("extra_holidays must be a list", where=origin, hint=_HINTS["extra_holidays"])
    found = []
    for item in value:
        name = ExtraHoliday.name
        if isinstance(item, dict):
            name = str(item.get("name") or name)
            item = item.get("date")
        found.append(_extra_day(item, name, origin))
    return tuple(found)


def _extra_day(item: object, name: str, origin: str) -> ExtraHoliday:
    if isinstance(item, date):  # a bare TOML date: 2026-12-29
        return ExtraHoliday(item.month, item.day, item.year, name)
    if isinstance(item, str):
        text = item.strip()
        try:
            day = date.fromisoformat(text)
            return ExtraHoliday(day.month, day.day, day.year, name)
        except ValueError:
            pass
        match = _MONTH_DAY.fullmatch(text)
        if match:
            month, day_of_month = int(match[1]), int(match[2])
            try:
                date(2024, month, day_of_month)  # a leap year: 02-29 is a valid yearly day
            except ValueError:
                pass
            else:
                return ExtraHoliday(month, day_of_month, 0, name)
    raise SuspendError(f"extra_holidays: {item!r} is not a date", where=origin, hint=_HINTS["extra_holidays"])


def _check_calendar(config: SuspendConfig, origin: str) -> None:
    reader = _reader(origin)
    reader.zone(config.timezone, "timezone", _HINTS["timezone"])
    for key in ("suspend_at", "resume_at"):
        reader.cron(getattr(config, key), key, _HINTS[key])
    if config.holidays:
        countries = holidays.list_supported_countries()
        if config.holidays not in countries:
            guess = suggest(config.holidays.upper(), list(countries))
            raise SuspendError(
                f"holidays: '{config.holidays}' is not a country the holidays package knows{guess}",
                where=origin,
                hint=_HINTS["holidays"],
            )
        languages = holidays.country_holidays(config.holidays).supported_languages
        if languages and config.holiday_language not in languages:
            raise SuspendError(
                f"holiday_language '{config.holiday_language}' is not offered for {config.holidays}",
                where=origin,
                hint=f"one of: {', '.join(sorted(languages))}",
            )


_CRON_HINT = 'five fields, read in `timezone`: minute hour day-of-month month day-of-week, e.g. "0 21 * * 1-5"'
_HINTS = {
    "timezone": 'an IANA zone such as "Asia/Tokyo": schedules and holidays are read in it',
    "suspend_at": _CRON_HINT,
    "resume_at": _CRON_HINT,
    "holidays": 'a country code of the holidays package, e.g. "JP"; "" for none',
    "holiday_language": 'e.g. "en_US" or "ja"',
    "topic_arn": "the ARN of the SNS topic that receives each report",
    "opt_in_tag": 'a tag key, e.g. "kpi:suspend"; the value "true" selects a resource',
    "keep_running_tag": 'a tag key, e.g. "kpi:keep-running-until"',
    "state_tag_prefix": 'a tag key prefix, e.g. "kpi:suspend:"',
    "services": f"a list of: {', '.join(SERVICES)}",
    "production_tag": 'e.g. production_tag = {key = "Environment", values = ["prod", "production"]}',
    "extra_holidays": 'dates "2026-12-29", yearly days "12-29", or {date = "2026-12-29", name = "office closed"}',
}
