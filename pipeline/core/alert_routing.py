"""Where each owner's alerts go: the ``[alerts]`` table of ``kpi.toml`` (or the ``KPI_ALERTS_*`` variables the
Lambdas are configured by), read into a :class:`Routing`. Pure: reading the file is :mod:`pipeline.settings`'.

A KPI header's ``owner`` names a team; ``[alerts.owners]`` maps it to a destination, ``default`` catches every
other owner (and KPIs without one). A destination is ``slack:secretsmanager:SECRET-ID`` — a Slack incoming
webhook whose URL is the secret's value, never the file's, because whoever holds the URL can post to the channel
— or ``sns:arn:aws:sns:REGION:ACCOUNT:TOPIC``. An owner with no destination and no default is *unrouted*: the run
says so, and nothing is sent for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.core.validator import TableReader
from pipeline.errors import UsageError

KEYS = ("default", "owners", "timeout_seconds", "report")
DEFAULT_TIMEOUT = 5.0  # seconds per delivery: a hung webhook must not hold a run or a Lambda for long
MAX_TIMEOUT = 60.0
EXAMPLE = (
    "[alerts]\n"
    'default = "slack:secretsmanager:kpi/alerts/data-team"\n'
    "[alerts.owners]\n"
    'growth = "sns:arn:aws:sns:ap-northeast-1:123456789012:kpi-growth"'
)
_SNS_ARN_PARTS = 6  # arn:PARTITION:sns:REGION:ACCOUNT:TOPIC


@dataclass(frozen=True, order=True)
class Destination:
    """``kind`` slack (``target`` = the secret holding the webhook URL) or sns (``target`` = the topic ARN).
    ``str()`` is what messages show: a secret's id and a topic's ARN are names, not secrets."""

    kind: Literal["slack", "sns"]
    target: str

    def __str__(self) -> str:
        return f"slack:secretsmanager:{self.target}" if self.kind == "slack" else f"sns:{self.target}"

    @property
    def region(self) -> str | None:
        """The topic's or the secret's region when its ARN names one (else the environment's)."""
        parts = self.target.split(":")
        return parts[3] if self.target.startswith("arn:") and len(parts) > 3 and parts[3] else None


@dataclass(frozen=True)
class Routing:
    """The destinations of one environment; ``configured`` false when there is no ``[alerts]`` at all (then
    nothing is sent and nothing is said)."""

    owners: Mapping[str, Destination] = field(default_factory=dict)
    default: Destination | None = None
    timeout: float = DEFAULT_TIMEOUT
    report: str = ""  # where the published report is (a URL or a path), for links when Looker Studio is not there
    origin: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.owners) or self.default is not None

    def destination(self, owner: str) -> Destination | None:
        """The owner's destination, else the default; None: unrouted."""
        return self.owners.get(owner, self.default)


def destination(text: object, key: str, reader: TableReader) -> Destination:
    """``slack:secretsmanager:ID`` or ``sns:ARN``; anything else is refused naming ``key``."""
    hint = (
        'write "slack:secretsmanager:SECRET-ID" (the secret holds the webhook URL) or '
        '"sns:arn:aws:sns:REGION:ACCOUNT:TOPIC"'
    )
    if not isinstance(text, str):
        reader.fail(f"{key} must be text", hint)
    if text.startswith("https://") or "hooks.slack.com" in text:
        reader.fail(
            f"{key} is a webhook URL; it is a secret and never goes into the configuration",
            "store the URL in AWS Secrets Manager and write slack:secretsmanager:SECRET-ID",
        )
    kind, _, target = text.partition(":")
    if kind == "slack":
        store, _, secret = target.partition(":")
        if store != "secretsmanager" or not secret.strip():
            reader.fail(f"{key}: a Slack destination is slack:secretsmanager:SECRET-ID", hint)
        return Destination("slack", secret.strip())
    if kind == "sns":
        parts = target.split(":")
        if len(parts) != _SNS_ARN_PARTS or parts[0] != "arn" or parts[2] != "sns" or not parts[5]:
            reader.fail(f"{key}: '{target}' is not an SNS topic ARN", hint)
        return Destination("sns", target)
    return reader.fail(f"{key}: unknown destination kind '{kind}' (slack or sns)", hint)


def routing(table: Mapping[str, Any], origin: str) -> Routing:
    """The ``[alerts]`` table read, or a UsageError naming the key and how to write it."""
    reader = TableReader(UsageError, origin, "alerts")
    reader.known_keys(table, KEYS)
    owners_table = table.get("owners", {})
    if not isinstance(owners_table, Mapping):
        reader.fail("owners must be a table of owner = destination", EXAMPLE)
    owners = {str(name): destination(value, f"owners.{name}", reader) for name, value in owners_table.items()}
    default = destination(table["default"], "default", reader) if "default" in table else None
    timeout = table.get("timeout_seconds", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        reader.fail(f"timeout_seconds must be a number of seconds in (0, {MAX_TIMEOUT:g}]", "timeout_seconds = 5")
    report = table.get("report", "")
    if not isinstance(report, str):
        reader.fail("report must be text: the published report's URL or path", 'report = "https://kpi.example/"')
    return Routing(owners, default, float(timeout), report, origin)


def from_variables(environ: Mapping[str, str]) -> Routing | None:
    """``KPI_ALERTS_DEFAULT``, ``KPI_ALERTS_OWNERS`` (``growth=sns:arn:…,finance=slack:secretsmanager:…``),
    ``KPI_ALERTS_TIMEOUT`` and ``KPI_ALERTS_REPORT``; None when none is set (the file's table stands)."""
    names = ("KPI_ALERTS_DEFAULT", "KPI_ALERTS_OWNERS", "KPI_ALERTS_TIMEOUT", "KPI_ALERTS_REPORT")
    if not any(environ.get(name) for name in names):
        return None
    reader = TableReader(UsageError, "KPI_ALERTS_* variables", "alerts")
    table: dict[str, Any] = {}
    if environ.get("KPI_ALERTS_DEFAULT"):
        table["default"] = environ["KPI_ALERTS_DEFAULT"].strip()
    owners: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in environ.get("KPI_ALERTS_OWNERS", "").split(","))):
        owner, equals, value = pair.partition("=")
        if not equals or not owner.strip():
            reader.fail("KPI_ALERTS_OWNERS is OWNER=DESTINATION pairs separated by commas", "growth=sns:arn:…")
        owners[owner.strip()] = value.strip()
    table["owners"] = owners
    if environ.get("KPI_ALERTS_TIMEOUT"):
        try:
            table["timeout_seconds"] = float(environ["KPI_ALERTS_TIMEOUT"])
        except ValueError:
            reader.fail("KPI_ALERTS_TIMEOUT must be a number of seconds", "KPI_ALERTS_TIMEOUT=5")
    if environ.get("KPI_ALERTS_REPORT"):
        table["report"] = environ["KPI_ALERTS_REPORT"]
    return routing(table, "KPI_ALERTS_* variables")
