"""The alerts of ``kpi run``, ``kpi backfill`` and ``kpi status --alert``: built from what the command found, sent
by :func:`pipeline.flows.alerts.send_alerts`, and the delivery reported on stderr (``--json``: in the document).
Nothing here changes a command's result or exit code: a delivery that failed is a line, not an error."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pipeline.cli.output import escape, stderr
from pipeline.core.spec import Kpi
from pipeline.settings import Environment

if TYPE_CHECKING:
    from pipeline.flows.alerts import DeliveryReport
    from pipeline.flows.runner import KpiSummary
    from pipeline.flows.status import KpiStatus


def _local(now: datetime, kpis: Iterable[Kpi]) -> datetime:
    """``now`` in the KPIs' zone when they share one (as ``kpi status`` shows times), else in UTC."""
    zones = {kpi.timezone for kpi in kpis}
    if len(zones) == 1:
        return now.astimezone(next(iter({kpi.zone for kpi in kpis})))
    return now.astimezone(UTC)


def alert_failures(
    summaries: Sequence[KpiSummary], kpis: Sequence[Kpi], environment: Environment, now: datetime, *, command: str
) -> DeliveryReport | None:
    """One message per owner for the run's failed partitions and the anomalies its loads found
    (:mod:`pipeline.flows.anomalies`); None when alerts are not configured or there is neither."""
    failures = [(s.kpi, o.partition, o.message) for s in summaries for o in s.failed]
    anomalies = [anomaly for s in summaries for anomaly in s.anomalies]
    if not (failures or anomalies) or not environment.alerts.configured:
        return None
    from pipeline.flows.alerts import anomaly_alerts, failure_alerts, send_alerts

    known = {kpi.name: kpi for kpi in kpis}
    alerts = failure_alerts(failures, known, environment.warehouse, environment.alerts)
    alerts += anomaly_alerts(anomalies, known, environment.warehouse, environment.alerts)
    named = {name for name, _, _ in failures} | {anomaly.kpi for anomaly in anomalies}
    involved = [known[name] for name in sorted(named) if name in known]
    return send_alerts(alerts, environment.alerts, _local(now, involved), context=f"{command} ({environment.name})")


def alert_stale(
    kpis: Sequence[Kpi], lines: Sequence[KpiStatus], environment: Environment, now: datetime
) -> DeliveryReport | None:
    """One message per owner for the KPIs past ``freshness.error_after`` (or never loaded); ``lines`` are
    ``kpi status``'s, so the alert says what the table says."""
    if not environment.alerts.configured:
        stderr().print(
            f"[yellow]warning:[/] --alert: the environment '{environment.name}' has no alerts configured; nothing "
            "was sent (add \\[alerts] to kpi.toml: see the README, Alerts)",
            highlight=False,
        )
        return None
    from pipeline.flows.alerts import send_alerts, stale_alerts, stale_kpis

    stale = stale_kpis(kpis, lines)
    if not stale:
        return None

    alerts = stale_alerts(stale, environment.warehouse, environment.alerts)
    local = _local(now, [kpi for kpi, _, _ in stale])
    return send_alerts(alerts, environment.alerts, local, context=f"kpi status ({environment.name})")


def print_delivery(delivery: DeliveryReport | None) -> None:
    """Each message's fate on stderr: sent, or not sent and why (``--json`` carries it in ``alerts`` instead)."""
    if delivery is None:
        return
    console = stderr()
    for line in delivery.lines():
        colour = "green" if line.startswith("alert sent") else "yellow"
        head, _, rest = line.partition(" ")
        console.print(f"[{colour}]{head}[/] {escape(rest)}", highlight=False)
