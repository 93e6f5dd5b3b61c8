"""A clone run's names and tags, and the guards that decide what the module may touch (pure, no AWS calls).

Every resource a run creates is named after the run id and tagged with it, so that any step can find what
an earlier (perhaps interrupted) attempt created and carry on from there: resuming is looking up by name and
tag, never remembering. The same tags are the only licence to delete: :func:`check_deletable` refuses
anything the module did not create, and anything that is the production cluster itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.clone.errors import CloneError

__all__ = [
    "CREATED_BY",
    "MASKED_PREFIX",
    "Names",
    "Tags",
    "check_deletable",
    "check_interval",
    "login_secret",
    "masked_databases",
    "new_run_id",
    "owned",
    "parse_run_id",
    "run_started",
]

CREATED_BY = "kpi-pipeline"
MASKED_PREFIX = "kpi:clone:masked:"  # + database → digest of the masking run (rules and key)
_RUN_ID = re.compile(r"\d{8}-\d{4}")


class Tags:
    """The tag keys; values are text. ``ROLE`` says what the resource is to the run."""

    CREATED_BY = "kpi:clone:created-by"
    RUN = "kpi:clone:run"
    ROLE = "kpi:clone:role"  # temporary | source-snapshot | masked-snapshot | shared-snapshot | staging | …
    SOURCE = "kpi:clone:source"  # the production cluster the data came from
    PASSWORD = "kpi:clone:password"  # "rotated": the master password is the module's, not production's
    HEALTHY = "kpi:clone:healthy"  # when the staging cluster answered the health query
    LIVE = "kpi:clone:live"  # when the DNS record was switched to it
    RETIRED = "kpi:clone:retired-at"  # when the DNS record was switched away from it: deleted after the grace
    MASKED_ALL = "kpi:clone:masked"  # every database masked and scanned (per database: MASKED_PREFIX + name)
    LOGINS = "kpi:clone:masked-logins"  # the copy's logins re-passworded or locked (pipeline.clone.logins)


def new_run_id(now: datetime) -> str:
    """``20261128-2134``: UTC minutes, valid in every identifier the run names, sortable as text."""
    return now.astimezone(UTC).strftime("%Y%m%d-%H%M")


def parse_run_id(text: str) -> str:
    if not _RUN_ID.fullmatch(text or ""):
        raise CloneError(f"'{text}' is not a clone run id", hint="run ids look like 20261128-2134 (kpi clone status)")
    return text


def run_started(run: str) -> datetime:
    return datetime.strptime(parse_run_id(run), "%Y%m%d-%H%M").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Names:
    """The identifiers of everything one run creates, in production (``temp…``, snapshots, secrets) and in
    staging (``staging…``). Each cluster's one instance is the cluster's identifier with ``-1``."""

    run: str
    staging_prefix: str = "staging-db"

    @property
    def temp_cluster(self) -> str:
        return f"kpi-clone-{self.run}"

    @property
    def security_group(self) -> str:
        return f"kpi-clone-{self.run}"

    @property
    def source_snapshot(self) -> str:
        return f"kpi-clone-{self.run}-source"

    @property
    def masked_snapshot(self) -> str:
        return f"kpi-clone-{self.run}-masked"

    @property
    def shared_snapshot(self) -> str:
        return f"kpi-clone-{self.run}-shared"

    @property
    def temp_secret(self) -> str:
        return f"kpi-clone/{self.run}/temporary"

    @property
    def staging_secret(self) -> str:
        return f"kpi-clone/{self.run}/staging"

    @property
    def logins_secret(self) -> str:
        """The staging logins' new passwords, for the worker (production; deleted with the run)."""
        return f"kpi-clone/{self.run}/logins"

    @property
    def staging_cluster(self) -> str:
        return f"{self.staging_prefix}-{self.run}"

    def tags(self, role: str, source: str = "") -> dict[str, str]:
        tags = {Tags.CREATED_BY: CREATED_BY, Tags.RUN: self.run, Tags.ROLE: role}
        if source:
            tags[Tags.SOURCE] = source
        return tags


def login_secret(login: str) -> str:
    """Where staging's applications find a staging login's credentials (staging account; one name per login,
    updated by every clone right before the DNS switch)."""
    return f"kpi-clone/login/{login}"


def owned(tags: Mapping[str, str]) -> bool:
    """Created by this module (the only things it ever deletes)."""
    return tags.get(Tags.CREATED_BY) == CREATED_BY and bool(tags.get(Tags.RUN))


def check_deletable(kind: str, identifier: str, tags: Mapping[str, str], *, protected: str) -> None:
    """Raise unless ``identifier`` carries the module's tags and is not ``protected`` (the production cluster)."""
    if identifier == protected or tags.get(Tags.ROLE) == "source":
        raise CloneError(f"refusing to delete or modify {kind} {identifier}: it is the production cluster")
    if not owned(tags):
        raise CloneError(
            f"refusing to delete or modify {kind} {identifier}: it has no {Tags.CREATED_BY}={CREATED_BY} tag",
            hint="the clone module only deletes what it created; delete it yourself if it must go",
        )


def check_interval(last_run: str | None, now: datetime, min_hours: int) -> None:
    """Raise when the newest run started less than ``min_hours`` ago (each clone restores production twice
    and costs two clusters for hours)."""
    if last_run is None or min_hours <= 0:
        return
    since = now - run_started(last_run)
    if since < timedelta(hours=min_hours):
        wait = timedelta(hours=min_hours) - since
        raise CloneError(
            f"the last clone ({last_run}) started {_hours(since)} ago; min_interval_hours is {min_hours}",
            hint=f"try again in {_hours(wait)}, resume that run with --run {last_run}, or lower min_interval_hours",
        )


def masked_databases(tags: Mapping[str, str]) -> dict[str, str]:
    """``{database: digest}`` recorded by the masking engine's completion marker."""
    return {key[len(MASKED_PREFIX) :]: value for key, value in tags.items() if key.startswith(MASKED_PREFIX)}


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
