"""Sending a run's alerts: one message per owner, each to its destination, every outcome reported, none fatal.

Callers build alerts — :func:`failure_alerts` from a run's failed partitions, :func:`stale_alerts` from
``kpi status``'s freshness, :func:`anomaly_alerts` from the anomaly detector's findings — and hand them to
:func:`send_alerts` with the environment's :class:`~pipeline.core.alert_routing.Routing`. A delivery that fails
(Slack answers 500, a timeout, a secret that cannot be read, SNS refusing) is one failed line of the
:class:`DeliveryReport`; it never raises, so a load or a run ends as it would have without alerts, with the
same result and exit code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pipeline.core.alert_routing import Routing
from pipeline.core.alerts import Alert, AnomalyLike, by_owner, from_anomaly, render
from pipeline.core.failed_steps import FailedStep, failures
from pipeline.core.spec import Kpi
from pipeline.errors import KpiError

if TYPE_CHECKING:
    from pipeline.flows.status import KpiStatus
    from pipeline.settings import Environment

__all__ = [
    "Delivered",
    "DeliveryReport",
    "alert_failed_steps",
    "anomaly_alerts",
    "failure_alerts",
    "kpi_link",
    "send_alerts",
    "stale_alerts",
    "stale_kpis",
]

log = logging.getLogger("pipeline.alerts")
log.addHandler(logging.NullHandler())  # a library's logger: the CLI prints the report itself, Lambda's root logs it
REPORT_NAME = "report.html"  # beside a DuckDB warehouse, where `kpi demo` writes it (pipeline.demo.flow)


@dataclass(frozen=True)
class Delivered:
    """One owner's message: where it went (a destination's name, never a webhook URL) and whether it arrived."""

    owner: str
    destination: str
    alerts: int
    ok: bool
    error: str = ""  # why it did not arrive (the AlertError's message and hint)

    def as_dict(self) -> dict[str, object]:
        return {
            "owner": self.owner,
            "destination": self.destination,
            "alerts": self.alerts,
            "ok": self.ok,
            "error": self.error,
        }


@dataclass(frozen=True)
class DeliveryReport:
    """What :func:`send_alerts` did: each owner's message, and the owners nothing could be sent to."""

    sent: tuple[Delivered, ...] = ()
    unrouted: tuple[str, ...] = ()  # owners without a destination and no default ("" = KPIs without an owner)

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.sent) and not self.unrouted

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "messages": [d.as_dict() for d in self.sent], "unrouted": list(self.unrouted)}

    def lines(self) -> list[str]:
        """For people: ``alert sent to growth (sns:…): 2 alert(s)`` or ``alert NOT sent to …: why``."""
        out = []
        for d in self.sent:
            who = d.owner or "KPIs without an owner"
            if d.ok:
                out.append(f"alert sent to {who} ({d.destination}): {d.alerts} alert(s)")
            else:
                out.append(f"alert NOT sent to {who} ({d.destination}): {d.error}")
        for owner in self.unrouted:
            out.append(
                f"alert NOT sent to {owner or 'KPIs without an owner'}: no destination for this owner and no "
                "default (add it under [alerts.owners] in kpi.toml, or set default)"
            )
        return out


def send_alerts(alerts: Sequence[Alert], routing: Routing, now: datetime, *, context: str) -> DeliveryReport:
    """One message per owner of ``alerts``, sent to the owner's destination (or the default); never raises.

    ``now`` is the run's moment, shown in the message; ``context`` names the run (``kpi run (production)``).
    """
    if not alerts or not routing.configured:
        return DeliveryReport()
    from pipeline.notify import deliver

    sent: list[Delivered] = []
    unrouted: list[str] = []
    for owner, owned in by_owner(alerts).items():
        destination = routing.destination(owner)
        if destination is None:
            unrouted.append(owner)
            log.warning("alert for owner %r unrouted: %d alert(s), no destination and no default", owner, len(owned))
            continue
        message = render(owner, owned, context=context, now=now)
        try:
            deliver(destination, message, timeout=routing.timeout)
        except KpiError as error:
            reason = error.message + (f" ({error.hint})" if error.hint else "")
            sent.append(Delivered(owner, str(destination), len(owned), False, reason))
            log.warning("alert for owner %r to %s not delivered: %s", owner, destination, error.message)
            continue
        except Exception as error:  # a bug or an unforeseen library error must not fail the run either
            sent.append(Delivered(owner, str(destination), len(owned), False, f"unexpected {type(error).__name__}"))
            log.warning("alert for owner %r to %s failed: %s", owner, destination, type(error).__name__)
            continue
        sent.append(Delivered(owner, str(destination), len(owned), True))
        log.info("alert for owner %r sent to %s: %d alert(s)", owner, destination, len(owned))
    return DeliveryReport(tuple(sent), tuple(unrouted))


def kpi_link(kpi: Kpi, warehouse_url: str, routing: Routing) -> str:
    """Where an owner looks at the KPI: Looker Studio on a BigQuery warehouse (as ``kpi dashboard`` opens it),
    else the published report (``[alerts] report``) at the KPI's section, else the local report beside a DuckDB
    warehouse; empty when there is none."""
    scheme = urlsplit(warehouse_url).scheme
    if scheme == "bigquery":
        from pipeline.flows.dashboard import report_url

        return report_url(kpi, warehouse_url)
    anchor = f"#kpi-{kpi.name}"
    if routing.report:
        return routing.report + anchor
    if scheme in ("duckdb", ""):  # a DuckDB file, as a URL or a bare path (pipeline.warehouses.duckdb)
        parts = urlsplit(warehouse_url)
        folder = unquote(parts.netloc + parts.path if scheme else warehouse_url).rpartition("/")[0]
        return f"{folder}/{REPORT_NAME}{anchor}" if folder else f"{REPORT_NAME}{anchor}"
    return ""


def failure_alerts(
    failures: Iterable[tuple[str, str, str]], kpis: Mapping[str, Kpi], warehouse_url: str, routing: Routing
) -> list[Alert]:
    """An alert per failed partition: ``failures`` are (kpi, partition, reason); the owner is the header's (a KPI
    left out for its file's problems has no header read: no owner, so the default destination)."""
    alerts = []
    for name, partition, reason in failures:
        kpi = kpis.get(name)
        link = kpi_link(kpi, warehouse_url, routing) if kpi else ""
        zone = kpi.timezone if kpi else ""
        alerts.append(Alert.failed(name, kpi.owner if kpi else "", partition or "(not run)", reason, link, zone=zone))
    return alerts


def alert_failed_steps(
    steps: Sequence[FailedStep],
    kpis: Mapping[str, Kpi],
    environment: Environment,
    started_at: datetime,
    *,
    context: str,
) -> tuple[DeliveryReport, list[tuple[str, str, str]]]:
    """A deployed export's or backfill's failures (what its state machine's alert step hands over, read by
    :func:`pipeline.core.failed_steps.parse_failed`) told to their owners: one message per owner for the whole
    execution, each failed partition a line as ``kpi run`` would send it. ``started_at`` is the execution's
    start: the moment the message shows (in the KPIs' zone when they share one) and the one a scheduled
    export's due partitions are judged at. Returns the delivery and the failed partitions it told of (kpi,
    partition, reason: the due partitions of a step are judged once). Never raises, like :func:`send_alerts`."""
    failed = failures(steps, kpis, started_at)
    alerts = failure_alerts(failed, kpis, environment.warehouse, environment.alerts)
    zones = {kpis[step.kpi].zone for step in steps if step.kpi in kpis}
    shown = started_at.astimezone(next(iter(zones))) if len(zones) == 1 else started_at
    return send_alerts(alerts, environment.alerts, shown, context=context), failed


def stale_alerts(
    stale: Iterable[tuple[Kpi, str | None, timedelta | None]], warehouse_url: str, routing: Routing
) -> list[Alert]:
    """An alert per KPI past its ``freshness.error_after`` or never loaded: (kpi, newest partition, age)."""
    return [
        Alert.stale(kpi.name, kpi.owner, partition, age, kpi_link(kpi, warehouse_url, routing), zone=kpi.timezone)
        for kpi, partition, age in stale
    ]


def stale_kpis(kpis: Iterable[Kpi], lines: Iterable[KpiStatus]) -> list[tuple[Kpi, str | None, timedelta | None]]:
    """The KPIs ``kpi status`` calls failing (past ``freshness.error_after``, or never loaded), with their newest
    partition and its age: ``lines`` are :func:`pipeline.flows.status.kpi_status`'s, so the alert and the table
    judge by one rule."""
    by_name = {kpi.name: kpi for kpi in kpis}
    return [(by_name[line.kpi], line.partition, line.age) for line in lines if line.failing]


def anomaly_alerts(
    anomalies: Iterable[AnomalyLike], kpis: Mapping[str, Kpi], warehouse_url: str, routing: Routing
) -> list[Alert]:
    """The anomaly detector's findings as alerts, each to its KPI's owner (send them with :func:`send_alerts`)."""
    alerts = []
    for anomaly in anomalies:
        kpi = kpis.get(anomaly.kpi)
        link = kpi_link(kpi, warehouse_url, routing) if kpi else ""
        alerts.append(from_anomaly(anomaly, kpi.owner if kpi else "", link, zone=kpi.timezone if kpi else ""))
    return alerts
