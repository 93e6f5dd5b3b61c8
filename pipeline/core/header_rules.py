"""The rules of a KPI header: each key's type, allowed values and cross-key constraints.

:class:`HeaderChecker` turns the header mapping into :class:`~pipeline.core.spec.Kpi` fields and records a
problem for every bad key or value, pointing at the key's position in the file, with a hint and the closest
valid name when one was misspelt. ``HEADER_KEYS`` is the one list of keys, defaults and meanings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.core.anomaly_rules import anomaly_settings
from pipeline.core.chart_rules import chart_settings
from pipeline.core.header import Header, KeyPath
from pipeline.core.identifiers import KPI_NAME, is_column_name
from pipeline.core.intervals import Grain, WeekStart
from pipeline.core.spec import Checks, Column, FileFormat, Freshness, Param, Policy
from pipeline.core.types import CLUSTER_TYPES, PARAM_TYPES, PARTITION_TYPES, TYPE_ALIASES, BqType, coerce_param
from pipeline.core.validator import PositionalValidator, dotted, suggest
from pipeline.errors import Location, Problem

# Every header key with its default and meaning; the README's table and `kpi new` follow this order.
HEADER_KEYS: dict[str, tuple[str, str]] = {
    "name": ("file name", "warehouse table name: lower-case letters, digits and _, starting with a letter"),
    "description": ("''", "what the KPI means; becomes the table description"),
    "owner": ("''", "team or person to ask about it"),
    "tags": ("[]", "free labels for `kpi list` and reports"),
    "enabled": ("true", "false keeps the file but leaves it out of scheduled runs"),
    "grain": ("day", "day | hour | week | month | none (a whole-table snapshot)"),
    "week_start": ("monday", "grain week: monday | sunday, the day a week starts on"),
    "time_column": ("—", "output column carrying the partition; required unless grain is none"),
    "timezone": ("Asia/Tokyo", "IANA zone of partition boundaries and of `schedule`"),
    "source_timezone": ("= timezone", "what naive DATETIMEs in the source mean"),
    "start": ("—", "earliest partition a backfill may touch"),
    "lookback": ("0", "each scheduled run re-exports the last N partitions too"),
    "schedule": ("—", "5-field cron read in `timezone`; none: run only on demand"),
    "source": ("default", "named connection (e.g. a read replica) from kpi.toml"),
    "format": ("parquet", "parquet | csv, the lake file format"),
    "timeout": ("10m", "longest the query may run (at most 15m, the Lambda limit)"),
    "params": ("{}", "extra placeholders: name → {type, default, description}"),
    "columns": ("— (required)", "every output column: name → {type, description}"),
    "checks": ("{}", "min_rows, not_null: [cols], unique: [cols]"),
    "freshness": ("—", "warn_after / error_after: durations since the newest partition's end"),
    "cluster_by": ("[]", "up to 4 columns BigQuery clusters the table on"),
    "chart": ("{}", "the report's chart: measures: [cols], by: dimension, top: N lines (default 5)"),
    "anomaly": (
        "— (not scored)",
        "score each load: measures: [cols], by: [dimension], seasonality: [weekday, jp_holiday, month_end], "
        "sensitivity: low | medium | high, min_history: N",
    ),
    "zero_dates": ("error", "MySQL 0000-00-00 dates: error | null"),
    "invalid_utf8": ("error", "text that is not UTF-8: error | null"),
    "allow_full_scan": ("false", "true lets the production EXPLAIN guard accept a full scan of a large table"),
}
COLUMN_KEYS = ("type", "description", "zero_dates", "invalid_utf8")
PARAM_KEYS = ("type", "default", "description")
CHECK_KEYS = ("min_rows", "not_null", "unique")
FRESHNESS_KEYS = ("warn_after", "error_after")

PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
RESERVED_PARAMS = frozenset({"start", "end"})
MAX_TIMEOUT = timedelta(minutes=15)
MAX_CLUSTER_COLUMNS = 4


class HeaderChecker(PositionalValidator):
    """Turns the header mapping into Kpi fields, recording a problem for each bad key or value.

    The typed readers (text, true/false, whole number, zone, cron, duration…) and the problem positions are
    :class:`~pipeline.core.validator.PositionalValidator`'s; this class holds the KPI rules.
    """

    many_keys_hint = "the README lists every header key; `kpi new NAME` writes them all"
    boolean_fallback = True  # `enabled` keeps its default when it is not true/false

    def __init__(self, header: Header, problems: list[Problem], default_name: str) -> None:
        super().__init__(header, problems)
        self.header = header
        self.default_name = default_name
        # Names declared under columns/params, even those whose spec is broken: the cross-checks compare the
        # SQL with what the analyst wrote, so that one bad type does not also report "column not declared".
        self.declared: dict[str, list[str]] = {"columns": [], "params": []}

    def fields(self) -> dict[str, Any] | None:
        data = self.header.data
        if not isinstance(data, dict):
            found = "nothing" if data is None else f"a {type(data).__name__}"
            self.problems.append(
                Problem(
                    Location(self.header.path, self.header.first_line, 1),
                    "header-not-mapping",
                    f"the header must be a YAML mapping of `key: value` lines, found {found}",
                    "write one `key: value` per line, e.g. `name: daily_sales`; `kpi new NAME` shows every key",
                )
            )
            return None
        self.unknown_keys(data, HEADER_KEYS, (), "header key")
        out: dict[str, Any] = {}
        out["name"] = self.name(data)
        for key in ("description", "owner"):
            out[key] = self.text((key,), data.get(key, "")) or ""
        out["tags"] = self.names((("tags",)), data.get("tags", []), "tag")
        out["enabled"] = self.boolean(("enabled",), data.get("enabled", True))
        grain = self.choice(("grain",), data.get("grain", "day"), Grain)
        out["grain"] = grain or Grain.DAY
        out["week_start"] = self.week_start(data, grain)
        out["timezone"] = self.zone(("timezone",), data.get("timezone", "Asia/Tokyo")) or "Asia/Tokyo"
        if "source_timezone" in data:
            out["source_timezone"] = self.zone(("source_timezone",), data["source_timezone"])
        out["start"] = self.day(("start",), data.get("start"))
        out["lookback"] = self.integer(("lookback",), data.get("lookback", 0), minimum=0) or 0
        out["schedule"] = self.cron(("schedule",), data.get("schedule"))
        out["source"] = self.text(("source",), data.get("source", "default")) or "default"
        out["format"] = self.choice(("format",), data.get("format", "parquet"), FileFormat) or FileFormat.PARQUET
        out["timeout"] = self.timeout(data.get("timeout", "10m"))
        out["zero_dates"] = self.choice(("zero_dates",), data.get("zero_dates", "error"), Policy) or Policy.ERROR
        out["invalid_utf8"] = self.choice(("invalid_utf8",), data.get("invalid_utf8", "error"), Policy) or Policy.ERROR
        out["allow_full_scan"] = self.boolean(("allow_full_scan",), data.get("allow_full_scan", False))
        out["columns"] = self.columns(data.get("columns"))
        out["params"] = self.params(data.get("params", {}))
        out["checks"] = self.checks(data.get("checks", {}), out["columns"])
        out["freshness"] = self.freshness(data.get("freshness", {}))
        out["cluster_by"] = self.cluster_by(data.get("cluster_by", []), out["columns"])
        self.csv_columns(out["format"], out["columns"])
        out["time_column"] = self.time_column(data, grain, out["columns"])
        if "chart" in data:
            out["chart"] = chart_settings(self, data["chart"], out["columns"], out["time_column"])
        if "anomaly" in data:
            out["anomaly"] = anomaly_settings(
                self, data["anomaly"], out["columns"], out["time_column"], grain.value if grain else None
            )
        self.hour_clock(
            out["time_column"], grain, out["columns"], out["timezone"], out.get("source_timezone"), out["start"]
        )
        if grain is Grain.NONE and data.get("lookback"):
            self.report(
                ("lookback",),
                "lookback-snapshot",
                "`lookback` has no meaning for a snapshot (grain: none)",
                "remove it: each run of a snapshot replaces the whole table",
            )
        return out

    # -- keys ----------------------------------------------------------------------------------------------

    def name(self, data: Mapping[str, Any]) -> str:
        if "name" in data:
            value = self.text(("name",), data["name"]) or ""
            if value and not KPI_NAME.match(value):
                self.report(("name",), "invalid-name", f"'{value}' is not a valid KPI name", name_hint(value))
            return value
        if not KPI_NAME.match(self.default_name):
            self.problems.append(
                Problem(
                    Location(self.header.path, 1, 1),
                    "invalid-name",
                    f"the file name '{self.default_name}' is not a valid KPI name, and the header sets none",
                    f"rename the file or add `name: {_snake(self.default_name)}`; " + name_hint(self.default_name),
                )
            )
        return self.default_name

    # -- scalar values -------------------------------------------------------------------------------------

    def timeout(self, value: Any) -> timedelta:
        timeout = self.duration(("timeout",), value)
        if timeout is not None and timeout > MAX_TIMEOUT:
            self.report(
                ("timeout",),
                "out-of-range",
                f"timeout {value} is longer than 15m",
                "the exporter Lambda stops at 15 minutes and would leave the query running on the database; "
                "make the query cheaper or split the KPI",
            )
        return timeout or timedelta(minutes=10)

    # -- structured keys -----------------------------------------------------------------------------------

    def bq_type(self, key_path: KeyPath, value: Any, allowed: Iterable[BqType]) -> BqType | None:
        names = [t.value for t in allowed]
        text = value.strip().upper() if isinstance(value, str) else None
        if text in names:
            return BqType(text)
        alias = TYPE_ALIASES.get(text or "")
        hint = f"did you mean {alias.value}?" if alias is not None and alias.value in names else ""
        near = "" if alias else suggest(str(value), names)
        self.report(
            key_path,
            "invalid-type",
            f"'{value}' is not a type allowed here{near}" + (f" ({hint})" if hint else ""),
            f"use a BigQuery type name: {', '.join(names)}",
        )
        return None

    def columns(self, value: Any) -> tuple[Column, ...]:
        if value is None:
            self.report(
                ("columns",),
                "missing-columns",
                "the header has no `columns`",
                "declare every output column: `columns:` then `  name: {type: STRING, description: …}`",
                at_key=True,
            )
            return ()
        mapping = self.mapping(("columns",), value, "column name → {type, description}")
        if not mapping:
            if mapping == {}:
                self.report(("columns",), "missing-columns", "`columns` is empty", "declare every output column")
            return ()
        result = []
        seen: dict[str, str] = {}
        for name, spec in mapping.items():
            key_path: KeyPath = ("columns", str(name))
            column_name = str(name)
            if column_name.lower() not in seen:  # a case-only duplicate is reported once, below
                self.declared["columns"].append(column_name)
            if not is_column_name(column_name):
                self.report(
                    key_path,
                    "invalid-column-name",
                    f"'{column_name}' is not a valid column name",
                    "letters, digits and _, starting with a letter or _; "
                    "BigQuery reserves the prefixes _TABLE_, _FILE_ and _PARTITION",
                    at_key=True,
                )
                continue
            if column_name.lower() in seen:
                self.report(
                    key_path,
                    "duplicate-column",
                    f"column '{column_name}' is declared twice: '{seen[column_name.lower()]}' differs only in case",
                    "BigQuery column names ignore case: rename one",
                    at_key=True,
                )
                continue
            seen[column_name.lower()] = column_name
            if isinstance(spec, str):
                spec = {"type": spec}
            spec = self.mapping(key_path, spec, "{type: STRING, description: …}")
            if spec is None:
                continue
            self.unknown_keys(spec, COLUMN_KEYS, key_path, "column key")
            if "type" not in spec:
                self.report(
                    key_path,
                    "missing-type",
                    f"column '{column_name}' has no type",
                    "add `type: STRING` (or INT64, …)",
                    at_key=True,
                )
                continue
            column_type = self.bq_type((*key_path, "type"), spec["type"], BqType)
            if column_type is None:
                continue
            result.append(
                Column(
                    column_name,
                    column_type,
                    self.text((*key_path, "description"), spec.get("description", "")) or "",
                    self.choice((*key_path, "zero_dates"), spec["zero_dates"], Policy)
                    if "zero_dates" in spec
                    else None,
                    self.choice((*key_path, "invalid_utf8"), spec["invalid_utf8"], Policy)
                    if "invalid_utf8" in spec
                    else None,
                )
            )
        return tuple(result)

    def params(self, value: Any) -> tuple[Param, ...]:
        mapping = self.mapping(("params",), value, "name → {type, default}")
        result = []
        for name, spec in (mapping or {}).items():
            key_path: KeyPath = ("params", str(name))
            self.declared["params"].append(str(name))
            if str(name) in RESERVED_PARAMS or not PARAM_NAME.match(str(name)):
                reason = "is set by the interval" if name in RESERVED_PARAMS else "is not a valid parameter name"
                self.report(
                    key_path,
                    "invalid-param",
                    f"parameter '{name}' {reason}",
                    "use lower-case letters, digits and _ (not start or end)",
                    at_key=True,
                )
                continue
            spec = self.mapping(key_path, spec, "{type: STRING, default: …}")
            if spec is None:
                continue
            self.unknown_keys(spec, PARAM_KEYS, key_path, "parameter key")
            param_type = self.bq_type((*key_path, "type"), spec.get("type", "STRING"), sorted(PARAM_TYPES))
            if param_type is None:
                continue
            default = spec.get("default")
            if default is not None:
                try:
                    default = coerce_param(param_type, default)
                except ValueError as error:
                    self.report(
                        (*key_path, "default"),
                        "invalid-value",
                        f"default of parameter '{name}': {error}",
                        f"write a {param_type.value} value, or remove `default` so that every run must pass one",
                    )
                    continue
            result.append(
                Param(
                    str(name),
                    param_type,
                    default,
                    self.text((*key_path, "description"), spec.get("description", "")) or "",
                )
            )
        return tuple(result)

    def checks(self, value: Any, columns: tuple[Column, ...]) -> Checks:
        mapping = self.mapping(("checks",), value, "min_rows, not_null, unique")
        if not mapping:
            return Checks()
        self.unknown_keys(mapping, CHECK_KEYS, ("checks",), "check")
        min_rows = self.integer(("checks", "min_rows"), mapping.get("min_rows", 0), minimum=0) or 0
        not_null = self.known_columns(("checks", "not_null"), mapping.get("not_null", []), columns)
        unique = self.known_columns(("checks", "unique"), mapping.get("unique", []), columns)
        return Checks(min_rows, not_null, unique)

    def known_columns(self, key_path: KeyPath, value: Any, columns: tuple[Column, ...]) -> tuple[str, ...]:
        names = self.names(key_path, value, "column")
        declared = [c.name for c in columns]
        for index, name in enumerate(names):
            if declared and name not in declared:
                item_path = (*key_path, index) if isinstance(value, list) else key_path
                self.report(
                    item_path,
                    "unknown-column",
                    f"'{name}' in {dotted(key_path)} is not a declared column{suggest(name, declared)}",
                    f"declared columns: {', '.join(declared)}",
                )
        return names

    def freshness(self, value: Any) -> Freshness:
        mapping = self.mapping(("freshness",), value, "warn_after: 26h, error_after: 2d")
        if not mapping:
            return Freshness()
        self.unknown_keys(mapping, FRESHNESS_KEYS, ("freshness",), "freshness key")
        warn = self.duration(("freshness", "warn_after"), mapping["warn_after"]) if "warn_after" in mapping else None
        error = (
            self.duration(("freshness", "error_after"), mapping["error_after"]) if "error_after" in mapping else None
        )
        if warn and error and warn > error:
            self.report(
                ("freshness", "warn_after"),
                "out-of-range",
                "warn_after is longer than error_after",
                "warn before the error: make warn_after shorter",
            )
        return Freshness(warn, error)

    def cluster_by(self, value: Any, columns: tuple[Column, ...]) -> tuple[str, ...]:
        names = self.known_columns(("cluster_by",), value, columns)
        if len(names) > MAX_CLUSTER_COLUMNS:
            self.report(
                ("cluster_by",),
                "out-of-range",
                f"BigQuery clusters on at most 4 columns, found {len(names)}",
                "keep the 4 most filtered columns",
            )
        by_name = {c.name: c for c in columns}
        for index, name in enumerate(names):
            column = by_name.get(name)
            if column and column.type not in CLUSTER_TYPES:
                self.report(
                    ("cluster_by", index) if isinstance(value, list) else ("cluster_by",),
                    "invalid-type",
                    f"BigQuery cannot cluster on {column.type.value} column '{name}'",
                    f"cluster on a column of type {', '.join(sorted(t.value for t in CLUSTER_TYPES))}",
                )
        return names

    def csv_columns(self, file_format: FileFormat, columns: tuple[Column, ...]) -> None:
        """CSV files are text: BYTES would not survive the round trip into the warehouse, so refuse it here."""
        binary = [c.name for c in columns if c.type is BqType.BYTES]
        if file_format is FileFormat.CSV and binary:
            self.report(
                ("format",),
                "csv-bytes",
                f"CSV files cannot carry BYTES column{'s' if len(binary) > 1 else ''} {', '.join(binary)}",
                "use `format: parquet`, or select the bytes as HEX()/TO_BASE64() declared STRING",
            )

    def week_start(self, data: Mapping[str, Any], grain: Grain | None) -> WeekStart:
        if "week_start" not in data:
            return WeekStart.MONDAY
        value = self.choice(("week_start",), data["week_start"], WeekStart) or WeekStart.MONDAY
        if grain is not None and grain is not Grain.WEEK:
            self.report(
                ("week_start",),
                "week-start-not-weekly",
                f"`week_start` has no meaning for grain '{grain.value}'",
                "remove it, or set `grain: week`",
                at_key=True,
            )
        return value

    def time_column(self, data: Mapping[str, Any], grain: Grain | None, columns: tuple[Column, ...]) -> str | None:
        value = data.get("time_column")
        if grain is Grain.NONE:
            if value is not None:
                self.report(
                    ("time_column",),
                    "time-column-snapshot",
                    "a snapshot (grain: none) has no time_column",
                    "remove time_column, or choose a grain",
                    at_key=True,
                )
            return None
        if value is None:
            if grain is not None:
                self.report(
                    ("grain",) if "grain" in data else (),
                    "missing-time-column",
                    f"grain '{grain.value}' needs a `time_column`",
                    "name the output column that carries the partition, e.g. `time_column: sales_date`",
                    at_key=True,
                )
            return None
        name = self.text(("time_column",), value)
        if not name or not columns:
            return name
        declared = {c.name: c for c in columns}
        column = declared.get(name)
        if column is None:
            self.report(
                ("time_column",),
                "unknown-column",
                f"time_column '{name}' is not a declared column{suggest(name, declared)}",
                f"declared columns: {', '.join(declared)}",
            )
        elif grain is not None and column.type not in PARTITION_TYPES[grain.value]:
            allowed = ", ".join(sorted(t.value for t in PARTITION_TYPES[grain.value]))
            self.report(
                ("time_column",),
                "invalid-type",
                f"time_column '{name}' is {column.type.value}, which cannot carry partitions of grain '{grain.value}'",
                f"declare it as {allowed}",
            )
        return name

    def hour_clock(
        self,
        name: str | None,
        grain: Grain | None,
        columns: tuple[Column, ...],
        zone: str,
        source_zone: str | None,
        start: date | datetime | None,
    ) -> None:
        """Hours are cut on UTC hour boundaries (so that a fall-back's repeated hour is two partitions): a zone
        whose offset is not whole hours would cut them at :30 local time. And a DATETIME column's hour is its wall
        clock, which BigQuery partitions by: where that clock repeats an hour, both land in one partition."""
        if grain is not Grain.HOUR:
            return
        since = (
            start if isinstance(start, datetime) else datetime.combine(start or date(1970, 1, 1), datetime.min.time())
        )
        clock = clock_changes(zone, since.year)
        if clock.odd_offset is not None:
            self.report(
                ("timezone",) if "timezone" in self.header.data else ("grain",),
                "hour-offset",
                f"hourly partitions need a zone whose UTC offset is whole hours; {zone} is "
                f"UTC{_format_offset(clock.odd_offset)}"
                + (f" from {clock.odd_on}" if clock.odd_on and clock.odd_on > since.date() else ""),
                "use grain: day, or a zone of whole-hour offset (hours are cut on UTC hours)",
            )
            return
        column = next((c for c in columns if c.name == name), None)
        if column is None or column.type is not BqType.DATETIME:
            return
        wall = source_zone or zone
        repeat = clock_changes(wall, since.year).repeats_on
        if repeat is None:
            return
        self.report(
            ("time_column",),
            "time-column-repeated-hour",
            f"time_column '{name}' is a DATETIME in {wall}, whose clocks go back an hour (on {repeat}): BigQuery "
            "would keep both of its hours in one partition",
            "declare it TIMESTAMP (BigQuery partitions it by UTC hour, each hour apart), or use a clock that "
            "never goes back (UTC), or grain: day",
        )


@dataclass(frozen=True)
class ClockChanges:
    """What a zone's clock does from a year on: the first offset that is not whole hours (and its day), the first
    day its clocks go back (a repeated hour)."""

    odd_offset: int | None = None
    odd_on: date | None = None
    repeats_on: date | None = None


@cache
def clock_changes(zone: str, since_year: int, until_year: int = 2040) -> ClockChanges:
    """Sampled weekly (no zone changes its offset and back within a week), each change pinned to the minute by
    bisection. Past 2037 zoneinfo repeats the zone's current rule, so 2040 sees every future change. About 3,600
    samples from 1970: 10 ms per zone and start year (cached)."""
    tz = ZoneInfo(zone)
    moment = datetime(min(since_year, until_year - 1), 1, 1, tzinfo=UTC)
    end = datetime(until_year, 1, 1, tzinfo=UTC)
    odd_offset: int | None = None
    odd_on: date | None = None
    repeats_on: date | None = None
    previous = _utc_offset(tz, moment)
    if previous % 3600:
        odd_offset, odd_on = previous, moment.astimezone(tz).date()
    while moment < end and (odd_offset is None or repeats_on is None):
        following = moment + timedelta(days=7)
        offset = _utc_offset(tz, following)
        if offset != previous:
            change = _bisect(tz, moment, following, previous).astimezone(tz).date()
            if offset % 3600 and odd_offset is None:
                odd_offset, odd_on = offset, change
            if offset < previous and repeats_on is None:
                repeats_on = change
        previous, moment = offset, following
    return ClockChanges(odd_offset, odd_on, repeats_on)


def _utc_offset(zone: ZoneInfo, moment: datetime) -> int:
    offset = zone.utcoffset(moment.astimezone(zone))
    return int(offset.total_seconds()) if offset else 0


def _bisect(zone: ZoneInfo, low: datetime, high: datetime, before: int) -> datetime:
    """The first instant (to the minute) in (low, high] whose offset differs from ``before``."""
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        if _utc_offset(zone, middle) == before:
            low = middle
        else:
            high = middle
    return high


def _format_offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _snake(text: str) -> str:
    snake = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return snake if snake and snake[0].isalpha() else f"kpi_{snake}"


def name_hint(value: str) -> str:
    return (
        f"use lower-case letters, digits and _, starting with a letter (e.g. {_snake(value)}): it becomes a table name"
    )
