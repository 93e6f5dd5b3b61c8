"""The report of a run: acted, skipped with reason, failed with error, pending — as JSON, and on SNS.

``ok`` is true when nothing failed and nothing was left for a rerun (a resource still starting that a suspend
must stop, apps held back because their databases were not available). Databases still starting after a
``databases`` phase are ``pending`` but not a failure: the resume state machine polls ``check`` for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.suspend.plan import Plan, Step
from pipeline.suspend.targets.base import AWS_ERRORS, describe_error

__all__ = ["Report", "publish"]


@dataclass
class Report:
    action: str
    phase: str
    at: str  # ISO date-time of the run, in the configured zone
    holiday: str | None = None
    account: str = ""
    region: str = ""
    dry_run: bool = False
    trigger: str = ""  # the RDS event that started the run, if any
    window: str = ""  # the suspend window's state, for an RDS event
    acted: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    incomplete: bool = False
    savings: dict[str, Any] = field(default_factory=dict)  # this month so far (pipeline.suspend.savings)

    @classmethod
    def of(cls, plan: Plan, **extra: Any) -> Report:
        return cls(plan.action, plan.phase, plan.now.isoformat(), plan.holiday, **extra)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.incomplete

    def act(self, step: Step) -> None:
        r = step.resource
        self.acted.append({"id": r.id, "type": r.kind.value, "from": step.before, "to": step.after})

    def skip(self, step: Step, reason: str = "") -> None:
        r = step.resource
        self.skipped.append({"id": r.id, "type": r.kind.value, "reason": reason or step.reason})

    def fail(self, identifier: str, kind: str, error: str) -> None:
        self.failed.append({"id": identifier, "type": kind, "error": error})

    def to_dict(self) -> dict[str, Any]:
        """The handler's answer: the contract's keys first, then context."""
        data: dict[str, Any] = {
            "action": self.action,
            "phase": self.phase,
            "holiday": self.holiday,
            "acted": self.acted,
            "skipped": self.skipped,
            "failed": self.failed,
            "pending": self.pending,
            "ok": self.ok,
            "dryRun": self.dry_run,
            "at": self.at,
            "account": self.account,
            "region": self.region,
        }
        if self.trigger:
            data["trigger"] = self.trigger
        if self.window:
            data["window"] = self.window
        if self.savings:
            data["savings"] = self.savings
        return data

    def subject(self) -> str:
        """An SNS subject: ASCII, one line, under 100 characters (what SNS accepts)."""
        if self.holiday:
            text = f"kpi suspend {self.action}: holiday, nothing done"
        else:
            status = "ok" if self.ok else "NEEDS ATTENTION"
            text = (
                f"kpi suspend {self.action} {self.phase}: {status} - {len(self.acted)} acted, "
                f"{len(self.skipped)} skipped, {len(self.failed)} failed, {len(self.pending)} pending"
            )
        return text.encode("ascii", "replace").decode()[:99]


def publish(report: Report, topic_arn: str, sns: Any) -> None:
    """Send the report (JSON) to the topic; a refusal is added to the report's failures, never raised —
    the resources were handled either way, and the report is also the handler's answer."""
    try:
        sns.publish(
            TopicArn=topic_arn,
            Subject=report.subject(),
            Message=json.dumps(report.to_dict(), indent=2, ensure_ascii=False),
        )
    except AWS_ERRORS as error:
        report.fail(topic_arn, "sns-topic", f"publishing the report failed: {describe_error(error)}")
