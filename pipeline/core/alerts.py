"""Alerts for a KPI's owner, and the messages they become: pure (no I/O), so every message is tested as text.

An :class:`Alert` is one thing an owner must hear about — a failed partition, a stale KPI, an anomalous value.
The rule is **one message per owner per run**: :func:`by_owner` groups a run's alerts, :func:`render` makes that
owner's message — Slack Block Kit blocks (:mod:`pipeline.core.slack_blocks`) with a mrkdwn text as their
notification fallback, and an SNS subject and body — naming each KPI, partition, measure, actual value, expected
range and a link. Failures of one KPI that share a reason (a backfill of 300 days whose source is
down) are one line with their span and count, not 300 lines; a message lists at most :data:`MAX_LINES` lines and
says how many more there are, so a bad night cannot produce a message Slack or SNS refuses (in Block Kit: a header,
a section per line, the "and N more" and the time — :data:`MAX_LINES` + 3 blocks, under Slack's 50).

Messages never carry a secret: they are built from KPI names, partitions and the errors' own messages, which
never hold one (:mod:`pipeline.secrets` names a secret, never shows its value).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from pipeline.core import slack_blocks

Kind = Literal["failed", "stale", "anomaly"]
KINDS: tuple[Kind, ...] = ("failed", "stale", "anomaly")  # the order lines appear in a message
UNOWNED = ""  # a KPI whose header has no `owner`: routed to the default destination, or reported unrouted
MAX_LINES = 40  # lines of alerts per message; Slack shows ~4,000 characters of a message's text well
# In Block Kit a message is a header, a section per line, a context for "and N more" and one for the time: 43 blocks
# at most, under slack_blocks.MAX_BLOCKS (50).
SUBJECT_LIMIT = 100  # SNS: "less than 100 characters", ASCII, no line breaks
_TITLES = {"failed": "failed", "stale": "stale", "anomaly": "anomaly"}  # a line's kind
_COUNTED = {
    "failed": ("failed partition", "failed partitions"),
    "stale": ("stale KPI", "stale KPIs"),
    "anomaly": ("anomaly", "anomalies"),
}


@dataclass(frozen=True)
class Alert:
    """One fact for a KPI's owner. ``what`` is what happened, in one line (the first line of a failure's reason,
    "no partition loaded for 2d 3h", "above the expected range"). Anomalies also carry the measure, the dimension
    value (empty for the whole KPI), the actual value and the expected range ``low``–``high``. ``zone`` is the
    KPI's time zone (IANA name; empty when unknown): a message whose alerts share one shows its time there."""

    kind: Kind
    kpi: str
    owner: str
    partition: str
    what: str
    link: str = ""
    measure: str = ""
    dimension: str = ""
    actual: float | None = None
    low: float | None = None
    high: float | None = None
    zone: str = ""

    @classmethod
    def anomaly(
        cls,
        kpi: str,
        owner: str,
        partition: str,
        measure: str,
        dimension: str,
        actual: float,
        low: float,
        high: float,
        link: str = "",
        *,
        zone: str = "",
    ) -> Alert:
        what = "above the expected range" if actual > high else "below the expected range" if actual < low else ""
        what = what or "outside the expected range"
        return cls("anomaly", kpi, owner, partition, what, link, measure, dimension, actual, low, high, zone)

    @classmethod
    def failed(cls, kpi: str, owner: str, partition: str, reason: str, link: str = "", *, zone: str = "") -> Alert:
        """``reason``: the failure's message; only its first line is kept (the run's own output has the rest)."""
        first = next((line.strip() for line in reason.splitlines() if line.strip()), "failed")
        return cls("failed", kpi, owner, partition, first, link, zone=zone)

    @classmethod
    def stale(
        cls,
        kpi: str,
        owner: str,
        last_partition: str | None,
        age: timedelta | None,
        link: str = "",
        *,
        zone: str = "",
    ) -> Alert:
        """A KPI past its header's ``freshness.error_after``: ``age`` since its newest partition ended (None and
        ``last_partition`` None: never loaded)."""
        if last_partition is None:
            return cls("stale", kpi, owner, "", "never loaded", link, zone=zone)
        shown = f"newest data {format_age(age)} old" if age is not None else "newest data too old"
        return cls("stale", kpi, owner, last_partition, f"{shown} (past freshness.error_after)", link, zone=zone)


class AnomalyLike(Protocol):
    """What the anomaly detector reports per scored point (duck-typed: any object with these attributes)."""

    @property
    def kpi(self) -> str: ...
    @property
    def partition(self) -> str: ...
    @property
    def measure(self) -> str: ...
    @property
    def dimension(self) -> str | None: ...
    @property
    def actual(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...


def from_anomaly(anomaly: AnomalyLike, owner: str, link: str = "", *, zone: str = "") -> Alert:
    """The alert of one detected anomaly (its ``score`` and ``direction`` are the detector's; the range says it)."""
    return Alert.anomaly(
        anomaly.kpi,
        owner,
        anomaly.partition,
        anomaly.measure,
        anomaly.dimension or "",
        float(anomaly.actual),
        float(anomaly.low),
        float(anomaly.high),
        link,
        zone=zone,
    )


def by_owner(alerts: Iterable[Alert]) -> dict[str, tuple[Alert, ...]]:
    """The alerts of each owner, owners sorted, each owner's in message order (kind, KPI, partition)."""
    grouped: dict[str, list[Alert]] = {}
    for alert in alerts:
        grouped.setdefault(alert.owner, []).append(alert)
    order = {kind: number for number, kind in enumerate(KINDS)}
    return {
        owner: tuple(sorted(found, key=lambda a: (order[a.kind], a.kpi, a.partition, a.measure, a.dimension)))
        for owner, found in sorted(grouped.items())
    }


@dataclass(frozen=True)
class Message:
    """One owner's message of one run: ``blocks`` for Slack (Block Kit) with ``text`` (mrkdwn) as their fallback —
    what Slack shows in push notifications and reads to screen readers — and ``subject`` and ``body`` for SNS."""

    owner: str
    alerts: tuple[Alert, ...]
    text: str
    subject: str
    body: str
    blocks: tuple[slack_blocks.Block, ...] = ()


@dataclass(frozen=True)
class _Line:
    kind: Kind
    kpi: str
    span: str  # a partition, or "first … last (N partitions)"
    what: str
    link: str


def render(owner: str, alerts: Sequence[Alert], *, context: str, now: datetime) -> Message:
    """The message of ``owner`` for ``alerts`` (one run's, from :func:`by_owner`); ``context`` names the run
    (``kpi run (production)``), ``now`` is when it ran: Slack shows it in the zone the alerts' KPIs share (else in
    ``now``'s own zone), SNS in ``now``'s own zone."""
    lines = _lines(alerts)
    counts = {kind: sum(1 for a in alerts if a.kind == kind) for kind in KINDS}
    summary = ", ".join(f"{n} {_COUNTED[kind][n != 1]}" for kind, n in counts.items() if n)
    kpis = sorted({a.kpi for a in alerts})
    who = owner or "no owner"
    when = _moment(now)
    zones = {a.zone for a in alerts}
    local = _moment(now.astimezone(ZoneInfo(zones.pop()))) if len(zones) == 1 and "" not in zones else when
    head = f"{context}: {summary} for {who}"
    shown, hidden = lines[:MAX_LINES], len(lines) - MAX_LINES
    more = [f"… and {hidden} more (see the run's output)"] if hidden > 0 else []
    slack = [f"*{_slack(head)}* ({_slack(local)})"]
    slack += [_slack_line(line) for line in shown] + [_slack(m) for m in more]
    blocks = slack_blocks.message_blocks(
        head, [_slack_section(line) for line in shown], [*(_slack(m) for m in more), _slack(local)]
    )
    plain = [f"{head} ({when})", ""] + [_plain_line(line) for line in shown] + more
    text, topic = "\n".join(slack), subject(f"{summary}: {', '.join(kpis)}")
    return Message(owner, tuple(alerts), text, topic, "\n".join(plain), blocks)


def _moment(now: datetime) -> str:
    return now.strftime("%Y-%m-%d %H:%M %Z").strip()


def subject(text: str) -> str:
    """``text`` as an SNS subject: ASCII (others become ``?``), one line, under :data:`SUBJECT_LIMIT` characters."""
    ascii_text = "".join(c if " " <= c <= "~" else ("?" if c not in "\r\n\t" else " ") for c in text)
    ascii_text = " ".join(f"kpi: {ascii_text}".split())
    return ascii_text if len(ascii_text) < SUBJECT_LIMIT else ascii_text[: SUBJECT_LIMIT - 4] + "..."


def _lines(alerts: Sequence[Alert]) -> list[_Line]:
    """One line per alert, except failures of one KPI sharing a reason: one line with their span."""
    lines: list[_Line] = []
    runs: dict[tuple[str, str], list[Alert]] = {}
    for alert in alerts:
        if alert.kind == "failed":
            runs.setdefault((alert.kpi, alert.what), []).append(alert)
    done: set[tuple[str, str]] = set()
    for alert in alerts:
        if alert.kind == "failed":
            key = (alert.kpi, alert.what)
            if key in done:
                continue
            done.add(key)
            group = runs[key]
            first, last = group[0].partition, group[-1].partition
            span = first if len(group) == 1 else f"{first} … {last} ({len(group)} partitions)"
            lines.append(_Line("failed", alert.kpi, span, alert.what, alert.link))
        elif alert.kind == "anomaly":
            where = f"{alert.measure}" + (f" [{alert.dimension}]" if alert.dimension else "")
            what = f"{where} = {number(alert.actual)}, expected {number(alert.low)}–{number(alert.high)}: {alert.what}"
            lines.append(_Line("anomaly", alert.kpi, alert.partition, what, alert.link))
        else:
            lines.append(_Line(alert.kind, alert.kpi, alert.partition, alert.what, alert.link))
    return lines


def number(value: float | None) -> str:
    """``1,234,567``, ``12.35``, ``0.0123``: as many decimals as a reader needs to compare values and a range."""
    if value is None:
        return "—"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}".rstrip("0").rstrip(".")


def format_age(age: timedelta | None) -> str:
    """``5.2h`` under two days, else ``3d 4h`` (as ``kpi status`` shows it)."""
    if age is None:
        return "—"
    hours = age.total_seconds() / 3600
    return f"{hours:.1f}h" if hours < 48 else f"{int(hours // 24)}d {int(hours % 24)}h"


_slack = slack_blocks.escape
# a fallback line's share of Slack's limit: the head line, MAX_LINES lines, "and N more" and the newlines fit
_FALLBACK_LINE = slack_blocks.FALLBACK_LIMIT // (MAX_LINES + 2) - 1


def _slack_link(line: _Line) -> str:
    """`` <url|open>`` for a web link, `` (path)`` for a local one, nothing without."""
    if not line.link:
        return ""
    shown = slack_blocks.link(line.link, "open")
    return f" {shown}" if slack_blocks.is_web_link(line.link) else f" ({shown})"


def _slack_line(line: _Line) -> str:
    """A line of the fallback text: ``what`` cut as in :func:`_slack_section`, but to a share of
    :data:`~pipeline.core.slack_blocks.FALLBACK_LIMIT` — :data:`MAX_LINES` errors' long first lines would pass it."""
    span = f" {_slack(line.span)}" if line.span else ""
    head, link = f"• {_TITLES[line.kind]}: `{_slack(line.kpi)}`{span}: ", _slack_link(line)
    what = slack_blocks.clip(_slack(line.what), _FALLBACK_LINE - len(head) - len(link))
    return f"{head}{what}{link}"


def _slack_section(line: _Line) -> str:
    """A line as a section's mrkdwn: the kind in bold; ``what`` (an error's first line may be long) cut so that the
    section keeps its link within :data:`~pipeline.core.slack_blocks.TEXT_LIMIT`."""
    span = f" {_slack(line.span)}" if line.span else ""
    head, link = f"*{_TITLES[line.kind]}*: `{_slack(line.kpi)}`{span}: ", _slack_link(line)
    what = slack_blocks.clip(_slack(line.what), slack_blocks.TEXT_LIMIT - len(head) - len(link))
    return f"{head}{what}{link}"


def _plain_line(line: _Line) -> str:
    link = f"\n    {line.link}" if line.link else ""
    span = f" {line.span}" if line.span else ""
    return f"- {_TITLES[line.kind]}: {line.kpi}{span}: {line.what}{link}"
