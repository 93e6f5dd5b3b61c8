"""The ``[clone]`` table of ``kpi.toml`` (``KPI_CONFIG`` or ``./kpi.toml``), with ``KPI_CLONE_*`` variables on top.

The Lambdas are configured by the variables alone: ``KPI_CLONE_<KEY>`` for every key (lists comma-separated).
Nothing here talks to AWS: every value is checked for its shape (account ids, ARNs, numbers) and the guards that
need no AWS call run here too — the production and staging accounts must differ, the staging role must live in
the staging account — so a mistake is a :class:`~pipeline.clone.errors.CloneError` naming the key before a
single API call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.clone.errors import CloneError
from pipeline.core.validator import ACCOUNT_ID, TableReader, whole_number
from pipeline.settings import config_table

__all__ = ["SNAPSHOT_MODES", "CloneConfig", "config_from_table", "configured_scope", "load_config"]

CONFIG_FILE = "kpi.toml"
ENV_PREFIX = "KPI_CLONE_"
SNAPSHOT_MODES = ("latest", "take", "clone")
_ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):role/[\w+=,.@/-]+")
_DATABASE = re.compile(r"[A-Za-z0-9_$]{1,64}")
_LOGIN = re.compile(r"[^'`\\\s@]{1,80}")  # a user name (any host): what ALTER USER accepts, without quotes
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,39}")  # leaves room for the run id in cluster names
_EXAMPLE = """[clone]
source_account = "111111111111"            # production: where the snapshot is masked
source_cluster = "shop-prod"
subnet_group = "shop-prod-private"         # for the temporary cluster
worker_security_group = "sg-0123…"         # the clone-database Lambda's security group
masking_key_secret = "kpi/clone-masking-key"
kms_key = "arn:aws:kms:ap-northeast-1:111111111111:key/…"   # customer-managed, granted to staging
target_account = "222222222222"            # staging
target_role_arn = "arn:aws:iam::222222222222:role/kpi-clone-staging"
target_subnet_group = "shop-staging-private"
target_security_groups = ["sg-0abc…"]
hosted_zone_id = "Z0123456789ABC"          # private zone in staging
record_name = "db.staging.internal\""""


@dataclass(frozen=True)
class CloneConfig:
    """Where a clone comes from, where it goes, and the limits it keeps."""

    source_account: str
    source_cluster: str
    subnet_group: str
    worker_security_group: str
    masking_key_secret: str
    target_account: str
    target_role_arn: str
    target_subnet_group: str
    target_security_groups: tuple[str, ...]
    hosted_zone_id: str
    record_name: str
    snapshot: str = "latest"  # newest snapshot of source_cluster | take one | Aurora copy-on-write clone
    kms_key: str = ""  # customer-managed key granted to target_account; "" only if snapshots are unencrypted
    instance_class: str = "db.r6g.large"
    cluster_parameter_group: str = ""  # the temporary cluster's; "" is the engine's default (binary log off)
    rules: str = "masking"
    databases: tuple[str, ...] = ()  # the databases a clone carries; () every one (the others are dropped)
    staging_logins: tuple[str, ...] = ()  # new passwords, kept in staging as kpi-clone/login/<login>
    keep_logins: tuple[str, ...] = ()  # left as they are (no password to leak: IAM); every other login is locked
    login_statements: tuple[str, ...] = ()  # run on the copy after the logins (e.g. switching one to IAM)
    target_cluster_prefix: str = "staging-db"
    target_instance_class: str = "db.r6g.large"
    target_cluster_parameter_group: str = ""
    target_kms_key: str = ""  # staging's own key for the restored cluster; "" keeps kms_key (granted to staging)
    target_external_id: str = ""  # the ExternalId the staging role's trust policy asks for, if any
    record_ttl: int = 60
    health_query: str = "SELECT 1"  # "" skips the check (no network path from production to staging)
    grace_hours: int = 24
    min_interval_hours: int = 12
    poll_seconds: int = 60  # between two looks at a cluster or snapshot being made
    state_machine: str = ""  # the deployed clone state machine, for `kpi clone run`
    origin: str = "the defaults"

    @property
    def target_role_account(self) -> str:
        match = _ROLE_ARN.fullmatch(self.target_role_arn)
        return match.group(1) if match else ""


_REQUIRED = tuple(f.name for f in fields(CloneConfig) if f.default is MISSING)
_KEYS = tuple(f.name for f in fields(CloneConfig) if f.name != "origin")
_LISTS = {"target_security_groups", "databases", "staging_logins", "keep_logins", "login_statements"}
# KPI_CLONE_LOGIN_STATEMENTS separates its statements with ";" (a statement may hold commas, never a ";").
_SEPARATORS = {"login_statements": ";"}
_NUMBERS = {
    "poll_seconds": (0, 3600),
    "record_ttl": (1, 86400),
    "grace_hours": (0, 24 * 30),
    "min_interval_hours": (0, 24 * 365),
}
_HINTS = {
    "source_account": "the production account id, quoted: `aws sts get-caller-identity` prints it",
    "target_account": "the staging account id, quoted; it must differ from source_account",
    "target_role_arn": "the role the clone assumes in staging, e.g. arn:aws:iam::222222222222:role/kpi-clone-staging",
    "snapshot": f"one of {', '.join(SNAPSHOT_MODES)}",
    "source_cluster": "the production Aurora cluster identifier",
    "target_cluster_prefix": "letters, digits and hyphens, starting with a letter, at most 40 characters",
    "logins": 'user names without a host, e.g. staging_logins = ["shop_app"]: staging\'s applications log in '
    "with these (new passwords); keep_logins are left as they are; every other login is locked",
    "databases": 'database names, e.g. databases = ["shop"]; leave it out to clone every database',
}


def load_config(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> CloneConfig:
    """The ``[clone]`` table of ``path`` (default ``KPI_CONFIG`` or ``./kpi.toml``) with the ``KPI_CLONE_*``
    variables applied on top, checked."""
    environ = os.environ if environ is None else environ
    path = path or Path(environ.get("KPI_CONFIG") or CONFIG_FILE)
    found = config_table(path, "clone", CloneError, _EXAMPLE)
    table: dict[str, Any] = found or {}
    origin = "KPI_CLONE_* variables"
    if found is not None:
        origin = f"{path} [clone]" + (" + KPI_CLONE_* variables" if _variables(environ) else "")
    table.update(_variables(environ))
    if not table:
        raise CloneError(
            f"the clone module is not configured: {path} has no [clone] table and no KPI_CLONE_* variable is set",
            where=str(path),
            hint=f"add to {CONFIG_FILE} (README: Cloning production into staging):\n{_EXAMPLE}",
        )
    return config_from_table(table, origin=origin)


def configured_scope(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``databases`` of ``[clone]`` (or ``KPI_CLONE_DATABASES``) alone, checked: what ``kpi clone plan`` needs
    without the AWS settings."""
    environ = os.environ if environ is None else environ
    path = path or Path(environ.get("KPI_CONFIG") or CONFIG_FILE)
    table = {**(config_table(path, "clone", CloneError, _EXAMPLE) or {}), **_variables(environ)}
    if "databases" not in table:
        return ()
    origin = f"{path} [clone]"
    scope = _list(table["databases"], "databases", origin)
    _check_databases(scope, origin)
    return scope


def config_from_table(table: Mapping[str, Any], *, origin: str = "[clone]") -> CloneConfig:
    """A checked :class:`CloneConfig` from the table's values."""
    TableReader(CloneError, origin, "clone").known_keys(table, _KEYS)
    missing = [key for key in _REQUIRED if key not in table]
    if missing:
        raise CloneError(
            f"missing key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
            where=origin,
            hint=f"every clone names both accounts, the cluster, the network and the DNS record:\n{_EXAMPLE}",
        )
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _LISTS:
            values[key] = _list(value, key, origin)
        elif key in _NUMBERS:
            values[key] = _number(value, key, origin)
        else:
            values[key] = _text(value, key, origin)
    config = CloneConfig(**values, origin=origin)
    _check(config)
    return config


def _check(config: CloneConfig) -> None:
    origin = config.origin
    for key in ("source_account", "target_account"):
        if not ACCOUNT_ID.fullmatch(getattr(config, key)):
            raise CloneError(
                f"{key} '{getattr(config, key)}' is not a 12-digit AWS account id", where=origin, hint=_HINTS[key]
            )
    if config.source_account == config.target_account:
        raise CloneError(
            f"source_account and target_account are the same ({config.source_account}): a clone never restores "
            "production data into production's own account",
            where=origin,
            hint="set target_account to the staging account",
        )
    if not config.target_role_account:
        raise CloneError(
            f"target_role_arn '{config.target_role_arn}' is not an IAM role ARN",
            where=origin,
            hint=_HINTS["target_role_arn"],
        )
    if config.target_role_account != config.target_account:
        raise CloneError(
            f"target_role_arn is a role of account {config.target_role_account}, not of target_account "
            f"{config.target_account}",
            where=origin,
            hint="the staging restore, DNS switch and deletions run as a role of the staging account",
        )
    if config.snapshot not in SNAPSHOT_MODES:
        raise CloneError(
            f"snapshot '{config.snapshot}' is not one of {', '.join(SNAPSHOT_MODES)}",
            where=origin,
            hint="latest: newest snapshot of source_cluster; take: a new one; clone: copy-on-write",
        )
    for key in ("source_cluster", "target_cluster_prefix"):
        if not _IDENTIFIER.fullmatch(getattr(config, key)):
            raise CloneError(
                f"{key} '{getattr(config, key)}' is not a cluster identifier", where=origin, hint=_HINTS[key]
            )
    if config.kms_key and not config.kms_key.startswith("arn:"):
        raise CloneError(
            f"kms_key '{config.kms_key}' is not a key ARN",
            where=origin,
            hint="the full ARN of a customer-managed key: staging resolves it by ARN, not by alias",
        )
    _check_databases(config.databases, origin)
    _check_logins(config, origin)
    if not config.target_security_groups:
        raise CloneError(
            "target_security_groups is empty",
            where=origin,
            hint='the staging cluster\'s security groups, e.g. ["sg-0abc…"]',
        )


def _check_databases(databases: tuple[str, ...], origin: str) -> None:
    for name in databases:
        if not _DATABASE.fullmatch(name):
            raise CloneError(f"databases: '{name}' is not a database name", where=origin, hint=_HINTS["databases"])


def _check_logins(config: CloneConfig, origin: str) -> None:
    for key in ("staging_logins", "keep_logins"):
        for login in getattr(config, key):
            if not _LOGIN.fullmatch(login):
                raise CloneError(f"{key}: '{login}' is not a MySQL user name", where=origin, hint=_HINTS["logins"])
    both = sorted(set(config.staging_logins) & set(config.keep_logins))
    if both:
        raise CloneError(
            f"{', '.join(both)} is in both staging_logins and keep_logins", where=origin, hint=_HINTS["logins"]
        )
    for statement in config.login_statements:
        if ";" in statement:
            raise CloneError(
                f"login_statements: {statement!r} holds a ';'", where=origin, hint="one statement per list item"
            )


def _variables(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``KPI_CLONE_*`` values. An empty one counts for a key that may be empty (``KPI_CLONE_HEALTH_QUERY=``
    skips the health check) and is ignored for a required key (the template passes unset parameters as "")."""
    found: dict[str, Any] = {}
    for key in _KEYS:
        value = environ.get(ENV_PREFIX + key.upper())
        if value is None or (not value and (key in _REQUIRED or key in _NUMBERS or key in _LISTS)):
            continue
        separator = _SEPARATORS.get(key, ",")
        found[key] = [part.strip() for part in value.split(separator) if part.strip()] if key in _LISTS else value
    return found


def _text(value: object, key: str, origin: str) -> str:
    if not isinstance(value, str):
        hint = "quote it: numbers lose leading zeros" if key.endswith("account") else _HINTS.get(key, "text")
        raise CloneError(f"{key} must be text, found {value!r}", where=origin, hint=hint)
    return value.strip()


def _list(value: object, key: str, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise CloneError(f"{key} must be a list of text", where=origin, hint=f'e.g. {key} = ["…"]')
    return tuple(item.strip() for item in value)


def _number(value: object, key: str, origin: str) -> int:
    low, high = _NUMBERS[key]
    number = whole_number(value)
    if number is None or not low <= number <= high:
        raise CloneError(
            f"{key} must be a whole number from {low} to {high}, found {value!r}",
            where=origin,
            hint=f"e.g. {key} = {low if low else 1}",
        )
    return number
