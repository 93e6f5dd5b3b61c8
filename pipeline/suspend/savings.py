"""What the schedules save: the hours each resource is kept stopped, and what those hours would have cost.

**Hours** are the schedule's (pure, from the calendar): the time between each ``suspend_at`` and the next
working-day ``resume_at`` of the resource's schedule (its opt-in tag's value), holidays included, within the
period asked for — what the module keeps it stopped, the way ``describe-schedule-usage`` of Instance Scheduler
counts. Keep-running tags and manual starts are not subtracted.

**Prices** are on-demand, per hour, in USD: the AWS Price List API (``pricing:GetProducts`` through boto3;
its endpoint is in us-east-1) where it answers, otherwise :data:`OFFLINE_PRICES` — a table of list prices for
ap-northeast-1 (Tokyo) as published in November 2026, for estimates; a size it does not hold is reported
without a cost. What counts:

- an EC2 instance: its instance type;
- an Auto Scaling group: its desired capacity (the stored one while suspended) × its instances' type;
- an RDS DB instance: its class and engine, twice over when Multi-AZ (the standby is billed as an instance);
- an Aurora cluster (or a Multi-AZ DB cluster): the sum of its member instances' classes — the members are
  stopped with the cluster and counted there, never on their own; storage is billed while stopped and is not
  a saving;
- an ECS service: not priced (its tasks run on a group's instances, counted there, or on Fargate).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.aws import AWS_ERRORS, AwsClients
from pipeline.suspend import rules
from pipeline.suspend.calendar import Calendar
from pipeline.suspend.config import DEFAULT_SCHEDULE, SuspendConfig
from pipeline.suspend.model import Kind, Resource

__all__ = ["OFFLINE_PRICES", "PriceBook", "Savings", "month_start", "savings_report"]

# (service, size, engine) → USD per hour, on demand, ap-northeast-1, Linux / Single-AZ (November 2026).
OFFLINE_PRICES: Mapping[tuple[str, str, str], float] = {
    ("ec2", "t3.micro", ""): 0.0136,
    ("ec2", "t3.small", ""): 0.0272,
    ("ec2", "t3.medium", ""): 0.0544,
    ("ec2", "t3.large", ""): 0.1088,
    ("ec2", "t4g.small", ""): 0.0216,
    ("ec2", "t4g.medium", ""): 0.0432,
    ("ec2", "m5.large", ""): 0.124,
    ("ec2", "m6i.large", ""): 0.124,
    ("ec2", "m6g.large", ""): 0.099,
    ("ec2", "c5.large", ""): 0.107,
    ("rds", "db.t3.medium", "aurora-mysql"): 0.125,
    ("rds", "db.t4g.medium", "aurora-mysql"): 0.113,
    ("rds", "db.r5.large", "aurora-mysql"): 0.35,
    ("rds", "db.r6g.large", "aurora-mysql"): 0.313,
    ("rds", "db.r6g.large", "aurora-postgresql"): 0.313,
    ("rds", "db.t3.micro", "mysql"): 0.026,
    ("rds", "db.t3.medium", "mysql"): 0.104,
    ("rds", "db.m5.large", "mysql"): 0.235,
    ("rds", "db.t3.micro", "postgres"): 0.027,
    ("rds", "db.t3.medium", "postgres"): 0.107,
}
OFFLINE_REGION = "ap-northeast-1"
# https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/price-changes.html: the Price List's location names
_LOCATIONS = {
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-3": "Asia Pacific (Osaka)",
    "us-east-1": "US East (N. Virginia)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
}
_ENGINES = {
    "aurora-mysql": "Aurora MySQL",
    "aurora-postgresql": "Aurora PostgreSQL",
    "mysql": "MySQL",
    "postgres": "PostgreSQL",
    "mariadb": "MariaDB",
}


class PriceBook:
    """Hourly prices: the Price List API when ``clients`` are given and it answers, else the offline table."""

    def __init__(self, region: str, clients: AwsClients | None = None) -> None:
        self.region = region or OFFLINE_REGION
        self.clients = clients
        self._cache: dict[tuple[str, str, str, bool], tuple[float | None, str]] = {}
        self._api = clients is not None and self.region in _LOCATIONS

    def hourly(self, service: str, size: str, engine: str = "", multi_az: bool = False) -> tuple[float | None, str]:
        """(USD per hour or None, where it came from: ``price list`` or ``offline table``)."""
        key = (service, size, engine, multi_az)
        if key not in self._cache:
            self._cache[key] = self._look_up(service, size, engine, multi_az)
        return self._cache[key]

    def _look_up(self, service: str, size: str, engine: str, multi_az: bool) -> tuple[float | None, str]:
        if self._api:
            try:
                price = self._price_list(service, size, engine, multi_az)
            except AWS_ERRORS:
                self._api = False  # not reachable (no endpoint, no permission): the table from now on
            else:
                if price is not None:
                    return price, "price list"
        found = OFFLINE_PRICES.get((service, size, engine)) if self.region == OFFLINE_REGION else None
        if found is None:
            return None, "unknown"
        return found * (2 if multi_az else 1), "offline table"

    def _price_list(self, service: str, size: str, engine: str, multi_az: bool) -> float | None:
        assert self.clients is not None
        filters = {"instanceType": size, "location": _LOCATIONS[self.region]}
        if service == "ec2":
            code = "AmazonEC2"
            filters |= {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA"}
            filters |= {"capacitystatus": "Used"}
        else:
            code = "AmazonRDS"
            filters |= {"databaseEngine": _ENGINES.get(engine, engine)}
            filters |= {"deploymentOption": "Multi-AZ" if multi_az else "Single-AZ"}
        answer = self.clients("pricing").get_products(
            ServiceCode=code,
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
            MaxResults=10,
        )
        for item in answer.get("PriceList", []):
            product = json.loads(item) if isinstance(item, str) else item
            for term in product.get("terms", {}).get("OnDemand", {}).values():
                for dimension in term.get("priceDimensions", {}).values():
                    usd = float(dimension.get("pricePerUnit", {}).get("USD", 0) or 0)
                    if usd > 0:
                        return usd
        return None


@dataclass
class Savings:
    """One line per resource and the totals of a period."""

    since: datetime
    until: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return round(sum(float(row["stopped_hours"]) for row in self.rows), 2)

    @property
    def cost(self) -> float:
        return round(sum(float(row["saved_usd"] or 0) for row in self.rows), 2)

    def summary(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "stopped_hours": self.hours,
            "saved_usd": self.cost,
            "resources": len(self.rows),
            "unpriced": sorted(row["id"] for row in self.rows if row["saved_usd"] is None),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "rows": self.rows}


def month_start(now: datetime, config: SuspendConfig) -> datetime:
    """Midnight of the first of ``now``'s month, on the configured zone's calendar."""
    local = Calendar(config).local(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def savings_report(
    resources: Iterable[Resource],
    config: SuspendConfig,
    since: datetime,
    until: datetime,
    *,
    clients: AwsClients | None = None,
    prices: PriceBook | None = None,
) -> Savings:
    """Stopped hours and their cost for every opted-in resource the module stops (see the module docstring)."""
    found = list(resources)
    prices = prices or PriceBook(clients.region if clients else OFFLINE_REGION, clients)
    members: dict[str, list[Resource]] = {}
    for resource in found:
        if resource.kind == Kind.DB_INSTANCE and resource.parent:
            members.setdefault(resource.parent, []).append(resource)
    savings = Savings(since, until)
    for resource in found:
        schedule = rules.schedule_of(resource, config)
        if schedule is None or rules.production(resource, config) or rules.guard(resource) is not None:
            continue  # not the module's to stop: members (counted with their cluster), replicas, production
        if rules.unknown_schedule(resource, config):
            continue
        calendar = Calendar(config, config.schedule(None if schedule == DEFAULT_SCHEDULE else schedule))
        hours = round(calendar.stopped_hours(since, until), 2)
        hourly, source, basis = _hourly(resource, members.get(resource.id, []), config, prices)
        savings.rows.append(
            {
                "id": resource.id,
                "type": resource.kind.value,
                "schedule": schedule,
                "stopped_hours": hours,
                "hourly_usd": hourly,
                "saved_usd": None if hourly is None else round(hours * hourly, 2),
                "priced_by": source,
                "basis": basis,
            }
        )
    return savings


def _hourly(
    resource: Resource, members: list[Resource], config: SuspendConfig, prices: PriceBook
) -> tuple[float | None, str, str]:
    """(USD per hour, source, what was counted)."""
    if resource.kind == Kind.EC2_INSTANCE:
        price, source = prices.hourly("ec2", resource.size)
        return price, source, resource.size or "instance type unknown"
    if resource.kind == Kind.DB_INSTANCE:
        price, source = prices.hourly("rds", resource.size, resource.engine, resource.multi_az)
        return price, source, f"{resource.size}{' Multi-AZ (×2)' if resource.multi_az else ''}"
    if resource.kind == Kind.DB_CLUSTER:
        if not members:
            return None, "unknown", "no member instances"
        looked = [prices.hourly("rds", m.size, resource.engine) for m in members]
        total = None if any(p is None for p, _ in looked) else sum(p for p, _ in looked if p is not None)
        sources = sorted({s for _, s in looked})
        return total, "/".join(sources), f"{len(members)} members: " + ", ".join(sorted(m.size for m in members))
    if resource.kind == Kind.ASG:
        try:
            stored = rules.stored_capacity(resource, config)
        except ValueError:
            stored = {}
        desired = resource.capacity.get("desired", 0) or stored.get("desired", 0)
        price, source = prices.hourly("ec2", resource.size)
        total = None if price is None or not resource.size else price * desired
        return total, source, f"{desired} × {resource.size or 'instance type unknown'}"
    return None, "unknown", "ECS tasks: counted with their Auto Scaling group, or Fargate (not priced)"
