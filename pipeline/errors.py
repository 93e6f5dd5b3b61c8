"""One family of errors for user mistakes and environment problems.

Every error a user can cause carries *where* (file:line:col, KPI, partition), *what* was expected and a
*hint* on how to fix it. The CLI prints them without a traceback and exits non-zero (in one place: the CLI's
``main``); the Lambda handlers log them as JSON and re-raise so Step Functions retries or catches them.
``retryable`` tells callers whether trying again can help, so nobody parses message text to decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "KpiError",
    "Location",
    "Problem",
    "ProblemsError",
    "RenderError",
    "SpecError",
    "UsageError",
    "bigquery_reasons_retryable",
    "bigquery_retryable",
]


@dataclass(frozen=True, order=True)
class Location:
    """A place in a KPI file; ``line`` and ``col`` are 1-based, 0 when unknown."""

    path: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.path
        if self.col <= 0:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    """One finding of ``kpi check``: a rule broken at a location, with a hint on how to fix it.

    ``rule`` is a stable, greppable identifier (``unknown-key``, ``sql-forbidden-function``…) that tests and
    ``--json`` consumers match on; ``message`` is for people and may be reworded.
    """

    location: Location
    rule: str
    message: str
    hint: str = ""
    kpi: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.location.path,
            "line": self.location.line,
            "col": self.location.col,
            "rule": self.rule,
            "message": self.message,
            "hint": self.hint,
            "kpi": self.kpi,
        }


class KpiError(Exception):
    """Base of every error that a user or the environment can cause (never a bug of ours).

    ``where`` names the file, KPI or partition; ``hint`` says what to do about it; ``retryable`` is true
    when trying again later can succeed (a timeout, a throttled API), false when a person must act.
    """

    retryable: bool = False
    kind = "error"  # what failed, for machines (`kpi run --json`): usage, spec, source, export, checks, lake, load…

    def __init__(self, message: str, *, where: str = "", hint: str = "", retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class UsageError(KpiError):
    """A command was called with arguments that cannot work (unknown KPI, bad date…)."""

    kind = "usage"


class RenderError(KpiError):
    """A KPI cannot be rendered for the requested interval or parameters."""

    kind = "render"


class ProblemsError(KpiError):
    """A file (or files) breaking a format's rules: carries every problem found, not just one, and prints each
    with its position and hint — KPI files here, masking rule files in the clone module."""

    def __init__(self, problems: Iterable[Problem], *, what: str, hint: str) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        where = str(self.problems[0].location) if self.problems else ""
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in {what}", where=where, hint=hint)

    def __str__(self) -> str:
        return "\n".join(f"{p}" + (f"\n  hint: {p.hint}" if p.hint else "") for p in self.problems)


class SpecError(ProblemsError):
    """A KPI file (header or SQL) breaks the rules of the format."""

    kind = "spec"

    def __init__(self, problems: Iterable[Problem]) -> None:
        super().__init__(problems, what="KPI files", hint="run `kpi check` to see them all")


class SourceError(KpiError):
    """The source database refused, failed or timed out (connection, credentials, read-only, timeout)."""

    kind = "source"


class StoreError(KpiError):
    """The lake (S3 or a folder) refused or failed a read or a write."""

    kind = "lake"


class ExportError(KpiError):
    """Rows could not be exported as declared: a type that cannot honour its declaration, a quirk met under
    the `error` policy, a row outside its partition. Nothing was committed."""

    kind = "export"


class CheckFailed(ExportError):
    """A header check (`min_rows`, `not_null`, `unique`) failed on a partition's exported rows; that partition was
    not committed (the others of its batch may be: :class:`pipeline.export.ChecksFailed`)."""

    kind = "checks"


class AlertError(KpiError):
    """An alert could not be delivered (Slack, SNS, the webhook's secret). Reported by the run, never fatal to it:
    :func:`pipeline.flows.alerts.send_alerts` catches it per message."""

    kind = "alert"


class LoadError(KpiError):
    """A committed partition could not be loaded into the warehouse; the warehouse is unchanged."""

    kind = "load"


# -- what BigQuery's errors mean for a retry --------------------------------------------------------------------
#
# The `reason` of BigQuery's ErrorProto, as its "Error messages" page lists them
# (https://cloud.google.com/bigquery/docs/error-messages): these say "try again later". The first four are the ones
# google-cloud-bigquery's own DEFAULT_RETRY retries (google.cloud.bigquery.retry._RETRYABLE_REASONS), the job*
# ones its DEFAULT_JOB_RETRY; quotaExceeded and tableUnavailable pass once the quota refills or the table is back.
# Every other named reason — accessDenied, billingNotEnabled, blocked, invalid, invalidQuery, notFound,
# duplicate, resourcesExceeded, responseTooLarge… — needs a person, whatever its HTTP status (403 included).
_BIGQUERY_RETRYABLE_REASONS = frozenset(
    {
        "backendError",
        "internalError",
        "badGateway",
        "rateLimitExceeded",
        "jobBackendError",
        "jobInternalError",
        "jobRateLimitExceeded",
        "quotaExceeded",
        "tableUnavailable",
    }
)
# A transaction or DML statement that lost to a concurrent one on the same table (BigQuery cancels the loser:
# "Transaction is aborted due to concurrent update against table …", "Could not serialize access to table … due to
# concurrent update"): run again, it sees the winner's commit.
_BIGQUERY_CONFLICT = "due to concurrent update"


def bigquery_reasons_retryable(status: int | None, reasons: Iterable[str], message: str = "") -> bool:
    """Whether a BigQuery error is worth retrying, from its HTTP status, its ErrorProto reasons and its message.

    A concurrent-update conflict is retryable; then the first named reason decides (a 403 ``rateLimitExceeded`` or
    ``quotaExceeded`` is retryable, a 403 ``accessDenied`` is not); without a reason, 429 and 5xx are retryable
    and every other status is not. ``status`` None (no HTTP answer at all) is retryable: the request never got a
    verdict.
    """
    if _BIGQUERY_CONFLICT in message.lower():
        return True
    for reason in reasons:
        if reason:
            return reason in _BIGQUERY_RETRYABLE_REASONS
    if status is None:
        return True
    return status == 429 or status >= 500


def bigquery_retryable(error: BaseException) -> bool:
    """:func:`bigquery_reasons_retryable` of an error raised by google-cloud-bigquery, read duck-typed so that
    this module needs no Google library: ``code`` (the HTTP status of ``google.api_core.exceptions``) and
    ``errors`` (the ErrorProto dicts). A ``RetryError`` (the client's own retries ran out of time on a retryable
    cause), ``TimeoutError`` and ``ConnectionError`` are retryable; any other exception without an HTTP status —
    a refused credential refresh, a bug — is not.
    """
    status = getattr(error, "code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        if type(error).__name__ in ("RetryError", "TransportError"):
            return True
        return isinstance(error, TimeoutError | ConnectionError)
    details = getattr(error, "errors", None) or []
    reasons = [str(d.get("reason") or "") for d in details if isinstance(d, Mapping)]
    return bigquery_reasons_retryable(status, reasons, str(getattr(error, "message", "") or error))
