"""The one validator (pipeline/core/validator.py): its checks, its positional readers and its table reader.

The four formats that use it (KPI headers, masking rules, [clone], [suspend]) have their own tests with their
exact messages; these tables pin the shared parts directly, so that a change to one reader shows here first.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.header import parse
from pipeline.core.intervals import Grain
from pipeline.core.validator import (
    ACCOUNT_ID,
    PositionalValidator,
    TableReader,
    as_bool,
    cron_error,
    describe,
    is_zone,
    suggest,
    whole_number,
)
from pipeline.errors import KpiError, Problem


@pytest.mark.parametrize(
    ("word", "choices", "expected"),
    [
        ("grian", ["grain", "name"], " (did you mean 'grain'?)"),
        ("GRAIN", ["grain", "name"], " (did you mean 'grain'?)"),  # case alone: the same word
        ("zzz", ["grain", "name"], ""),
        ("asia/tokyo", ["Asia/Tokyo", "UTC"], " (did you mean 'Asia/Tokyo'?)"),
        ("x", [], ""),
    ],
)
def test_suggest_names_the_closest_choice(word: str, choices: list[str], expected: str) -> None:
    assert suggest(word, choices) == expected


@pytest.mark.parametrize(
    ("value", "negative", "expected"),
    [
        (15, True, 15),
        ("15", True, 15),
        ("-3", True, -3),
        ("-3", False, None),
        (-3, False, None),
        (" 7", False, None),
        (True, True, None),
        (1.5, True, None),
        ("1.5", True, None),
        (None, True, None),
    ],
)
def test_whole_number(value: object, negative: bool, expected: int | None) -> None:
    assert whole_number(value, negative=negative) == expected


@pytest.mark.parametrize(
    ("value", "text", "expected"),
    [(True, False, True), (False, False, False), ("true", False, None), ("TRUE", True, True), ("no", True, None)],
)
def test_as_bool(value: object, text: bool, expected: bool | None) -> None:
    assert as_bool(value, text=text) is expected


def test_zones_crons_accounts_and_descriptions() -> None:
    assert (is_zone("Asia/Tokyo"), is_zone("Asia/Tokio"), is_zone("../etc/passwd"), is_zone("")) == (
        True,
        False,
        False,
        False,
    )
    assert cron_error("0 6 * * *") is None
    assert cron_error("0 25 * * *") == "Bad hour"
    assert [bool(ACCOUNT_ID.fullmatch(v)) for v in ("012345678901", "12345678901", "0123456789012")] == [
        True,
        False,
        False,
    ]
    found: list[object] = [None, {}, [], True, 3, "x"]
    assert [describe(v) for v in found] == [
        "nothing",
        "a mapping",
        "a list",
        "true/false (True)",
        "a number (3)",
        "a text ('x')",
    ]


DOC = """\
grain: weekly
enabled: maybe
lookback: -1
timezone: Asia/Tokio
schedule: "0 25 * * *"
timeout: 10 minutes
tags: {a: 1}
unknwn: 1
"""


def _check(text: str) -> tuple[PositionalValidator, list[Problem]]:
    doc, problems = parse("kpi.sql", text, 2)
    assert doc is not None
    assert problems == []
    return PositionalValidator(doc, problems), problems


def test_positional_readers_report_each_problem_at_its_value() -> None:
    check, problems = _check(DOC)
    data: dict[str, Any] = check.doc.data
    check.unknown_keys(data, ["grain", "enabled", "lookback", "timezone", "schedule", "timeout", "tags"], (), "key")
    assert check.choice(("grain",), data["grain"], Grain) is None
    assert check.boolean(("enabled",), data["enabled"]) is False  # the base class's fallback
    assert check.integer(("lookback",), data["lookback"], minimum=0) is None
    assert check.zone(("timezone",), data["timezone"]) is None
    assert check.cron(("schedule",), data["schedule"]) is None
    assert check.duration(("timeout",), data["timeout"]) is None
    assert check.names(("tags",), data["tags"], "tag") == ()
    assert [(str(p.location), p.rule, p.message) for p in problems] == [
        ("kpi.sql:9:1", "unknown-key", "unknown key 'unknwn'"),
        ("kpi.sql:2:8", "invalid-value", "'grain' is 'weekly' (did you mean 'week'?)"),
        ("kpi.sql:3:10", "wrong-type", "'enabled' must be true or false, found a text ('maybe')"),
        ("kpi.sql:4:11", "out-of-range", "'lookback' must be 0 or more, found -1"),
        ("kpi.sql:5:11", "invalid-timezone", "unknown time zone 'Asia/Tokio' (did you mean 'Asia/Tokyo'?)"),
        ("kpi.sql:6:11", "invalid-cron", "'0 25 * * *' is not a valid cron expression: Bad hour"),
        ("kpi.sql:7:10", "invalid-duration", problems[6].message),
        ("kpi.sql:8:7", "wrong-type", "'tags' must be a list of tags, e.g. [a, b], found a mapping"),
    ]
    assert problems[0].hint == "allowed: grain, enabled, lookback, timezone, schedule, timeout, tags"
    assert problems[2].hint == "write it as true or false"


def test_a_format_sets_its_own_words() -> None:
    class Rules(PositionalValidator):
        many_keys_hint = "see the README"
        wrong_type_hint = "write {expected}"
        boolean_fallback = True

        def described(self, value: Any) -> str:
            return repr(value)

    doc, problems = parse("rules.yaml", "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nflag: x\n", 1)
    assert doc is not None
    check = Rules(doc, problems)
    check.unknown_keys(doc.data, ["a", "b", "c", "d", "e", "f", "flag"], (), "key")
    assert check.boolean(("flag",), doc.data["flag"]) is True
    assert [(str(p.location), p.message, p.hint) for p in problems] == [
        ("rules.yaml:7:1", "unknown key 'g'", "see the README"),
        ("rules.yaml:8:7", "'flag' must be true or false, found 'x'", "write true or false"),
    ]


class TableError(KpiError):
    pass


@pytest.mark.parametrize(
    ("call", "message", "hint"),
    [
        (
            lambda r: r.known_keys({"timezon": 1, "zzz": 2}, ["timezone"]),
            "unknown key 'timezon' (did you mean 'timezone'?)",
            "keys of [suspend]: timezone",
        ),
        (
            lambda r: r.zone("Asia/Tokio", "timezone", "an IANA zone"),
            "timezone 'Asia/Tokio' is not an IANA time zone",
            "an IANA zone",
        ),
        (
            lambda r: r.cron("0 25 * * *", "resume_at", "five fields"),
            "resume_at '0 25 * * *' is not a valid cron expression: Bad hour",
            "five fields",
        ),
        (
            lambda r: r.flag("yes", "start_for_maintenance"),
            "start_for_maintenance must be true or false",
            "start_for_maintenance = true",
        ),
        (
            lambda r: r.one_of("ecss", "services", ["ecs", "rds"], "a list", what="service"),
            "services: unknown service 'ecss' (did you mean 'ecs'?)",
            "a list",
        ),
    ],
    ids=["keys", "zone", "cron", "flag", "one_of"],
)
def test_the_table_reader_raises_the_first_mistake_with_the_tables_name(call: Any, message: str, hint: str) -> None:
    with pytest.raises(TableError) as raised:
        call(TableReader(TableError, "kpi.toml [suspend]", "suspend"))
    assert (raised.value.where, raised.value.message, raised.value.hint) == ("kpi.toml [suspend]", message, hint)


def test_the_table_reader_returns_good_values() -> None:
    reader = TableReader(TableError, "kpi.toml [suspend]", "suspend")
    reader.known_keys({"timezone": 1}, ["timezone"])
    assert reader.zone("UTC", "timezone", "") == "UTC"
    assert reader.cron("0 21 * * 1-5", "suspend_at", "") == "0 21 * * 1-5"
    assert (reader.flag("TRUE", "x"), reader.flag(False, "x")) == (True, False)
    assert reader.one_of("rds", "services", ["ecs", "rds"], "", what="service") == "rds"
