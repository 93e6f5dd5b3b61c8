"""The clone's database work, done by the Lambda inside the production VPC: mask the temporary cluster, check
the staging cluster's health.

Both read the credentials the workflow stored in production's Secrets Manager (never a password in the state
machine's history) and open one MySQL connection with TLS. Masking runs for as long as the invocation allows
and then stops between two chunks; the state machine calls it again and it resumes (the engine's journal).
The masking engine's completion marker is a tag per database on the temporary cluster; when every database
is done, the copy's logins are re-passworded or locked (:mod:`pipeline.clone.logins`) and the cluster is tagged
``kpi:clone:masked`` and ``kpi:clone:masked-logins``, the only signs the workflow takes a snapshot on. The
health check logs in with every staging login's new password too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pymysql
import pymysql.cursors

from pipeline.aws import AWS_ERRORS, AwsClients, describe_error
from pipeline.clone.cloud import Account, Cluster
from pipeline.clone.config import CloneConfig
from pipeline.clone.coverage import check_databases, in_scope
from pipeline.clone.errors import CloneError, RuleFileError
from pipeline.clone.logins import LoginPlan, apply_logins, plan_logins, read_logins
from pipeline.clone.masking import DEFAULT_CHUNK_ROWS, MaskingPaused, mask
from pipeline.clone.mysql import list_databases
from pipeline.clone.names import MASKED_PREFIX, Names, Tags, parse_run_id
from pipeline.clone.progress import JOURNAL_TABLE
from pipeline.clone.rules import load_rule_folder
from pipeline.clone.sql import quote
from pipeline.sources.tls import certificate_refused, tls_context

__all__ = ["Connect", "TagMarker", "check_health", "connect_mysql", "mask_temporary", "masking_key"]

Connect = Callable[[Mapping[str, Any]], Any]


def connect_mysql(credentials: Mapping[str, Any]) -> Any:
    """A connection to the cluster a secret describes, over TLS with the server's certificate and host name
    verified, as a source's ``ssl=true`` is (:func:`pipeline.sources.tls.tls_context`: the RDS CA bundle ships in
    the package this Lambda runs from). The secret's host is the cluster's own endpoint, the name its certificate
    holds; the master password and the staging logins' new ones cross the VPC inside that connection."""
    try:
        return pymysql.connect(
            host=str(credentials["host"]),
            port=int(credentials.get("port") or 3306),
            user=str(credentials["username"]),
            password=str(credentials["password"]),
            ssl=tls_context(None),
            connect_timeout=20,
            read_timeout=900,
            write_timeout=900,
            autocommit=False,
            charset="utf8mb4",
        )
    except pymysql.MySQLError as error:
        refused = certificate_refused(str(error))
        raise CloneError(
            f"cannot connect to {credentials.get('dbClusterIdentifier', credentials.get('host'))}: {error}",
            hint="the cluster's certificate must be signed by an RDS CA and name the secret's host (the cluster's "
            "endpoint); nothing was sent to it"
            if refused
            else "the clone-database Lambda needs a network path to the cluster (security group, VPC); rerun",
            retryable=not refused,
        ) from None


class TagMarker:
    """The masking engine's completion marker for one database: a tag on the temporary cluster."""

    def __init__(self, account: Account, cluster: str, database: str) -> None:
        self.account, self.cluster, self.key = account, cluster, MASKED_PREFIX + database

    def _current(self) -> Cluster:
        found = self.account.cluster(self.cluster)
        if found is None:
            raise CloneError(f"temporary cluster {self.cluster} is gone", hint="rerun the clone from the start")
        return found

    def finished(self) -> str | None:
        return self._current().tags.get(self.key)

    def record(self, digest: str) -> None:
        cluster = self._current()
        self.account.tag(cluster.arn, cluster.id, cluster.tags, {self.key: digest})


def masking_key(clients: AwsClients, secret: str) -> bytes:
    """The HMAC key: the secret's text (or binary) value, as bytes."""
    try:
        value = clients("secretsmanager").get_secret_value(SecretId=secret)
    except AWS_ERRORS as error:
        raise CloneError(
            f"cannot read the masking key secret {secret}: {describe_error(error)}",
            hint="create it once (README: one-time setup) and let the clone role read it",
        ) from None
    if "SecretBinary" in value:
        return bytes(value["SecretBinary"])
    return str(value.get("SecretString", "")).encode("utf-8")


def mask_temporary(
    config: CloneConfig,
    run: str,
    *,
    clients: AwsClients | None = None,
    connect: Connect | None = None,
    seconds: float | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, Any]:
    """Mask every database of the run's temporary cluster for at most ``seconds``; ``{"masked": bool, …}``.

    Every database on the cluster needs a rule file (the gate), checked before the first write; with
    ``databases`` in [clone], only those do, and the cluster's others are dropped before masking starts.
    """
    clients = clients or AwsClients()
    names = Names(parse_run_id(run), config.target_cluster_prefix)
    account = Account(clients, label="production", protected=config.source_cluster)
    cluster = account.cluster(names.temp_cluster)
    if cluster is None:
        raise CloneError(f"temporary cluster {names.temp_cluster} not found", hint="rerun the clone with this run id")
    if Tags.MASKED_ALL in cluster.tags:
        return {"run": run, "masked": True, "databases": {}, "message": "already masked"}
    rules = load_rule_folder(config.rules)
    key = masking_key(clients, config.masking_key_secret)
    stop_at = time.monotonic() + seconds if seconds is not None else None
    connection = (connect or connect_mysql)(account.read_secret(names.temp_secret))
    try:
        with connection.cursor(pymysql.cursors.Cursor) as cursor:
            found = list_databases(cursor)
            problems = check_databases(found, rules, config.rules, config.databases)
            if problems:
                raise RuleFileError(problems)
            databases = in_scope(found, config.databases)
            drop_out_of_scope(cursor, found, databases)
        done: dict[str, str] = {}
        for database in databases:
            marker = TagMarker(account, cluster.id, database)
            try:
                report = mask(connection, rules[database], key, chunk_rows=chunk_rows, marker=marker, stop_at=stop_at)
            except MaskingPaused as paused:
                return {"run": run, "masked": False, "databases": done, "message": str(paused)}
            done[database] = report.status
        logins = secure_logins(connection, config, account.read_secret(names.logins_secret))
    finally:
        connection.close()
    cluster = account.cluster(cluster.id) or cluster
    account.tag(cluster.arn, cluster.id, cluster.tags, {Tags.MASKED_ALL: "true", Tags.LOGINS: logins.summary()})
    message = f"{len(done)} databases masked and scanned; logins: {logins.summary()}"
    return {"run": run, "masked": True, "databases": done, "message": message}


def secure_logins(connection: Any, config: CloneConfig, passwords: Mapping[str, str]) -> LoginPlan:
    """The copy's logins handled (pipeline.clone.logins): staging's re-passworded, the others locked."""
    with connection.cursor(pymysql.cursors.Cursor) as cursor:
        accounts, master = read_logins(cursor)
        plan = plan_logins(
            accounts,
            master=master,
            staging=config.staging_logins,
            keep=config.keep_logins,
            statements=config.login_statements,
        )
        apply_logins(cursor, plan, passwords)
    connection.commit()
    return plan


def drop_out_of_scope(cursor: Any, found: list[str], kept: list[str]) -> list[str]:
    """Drop the temporary cluster's databases outside ``databases`` of [clone]: what is not masked is not in the
    snapshot. (Only ever called on the run's temporary cluster, over its own rotated master login.)"""
    dropped = [name for name in found if name not in kept]
    for name in dropped:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)}")
    return dropped


def check_health(
    config: CloneConfig, run: str, *, clients: AwsClients | None = None, connect: Connect | None = None
) -> dict[str, Any]:
    """``health_query`` on the new staging cluster, which must hold no masking journal; ``{"healthy": True,
    "answer", "databases"}`` or a :class:`CloneError` (the DNS record is not switched)."""
    clients = clients or AwsClients()
    names = Names(parse_run_id(run), config.target_cluster_prefix)
    account = Account(clients, label="production", protected=config.source_cluster)
    credentials = account.read_secret(names.staging_secret)
    connect = connect or connect_mysql
    connection = connect(credentials)
    try:
        with connection.cursor(pymysql.cursors.Cursor) as cursor:
            cursor.execute(config.health_query)
            answer = cursor.fetchall()
            databases = list_databases(cursor)
            cursor.execute(
                "SELECT DISTINCT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = %s", (JOURNAL_TABLE,)
            )
            journals = [name for (name,) in cursor.fetchall()]
    except pymysql.MySQLError as error:
        raise CloneError(
            f"staging cluster {names.staging_cluster} fails the health check: {error}",
            hint="the DNS record still points to the previous cluster; fix it and rerun with the same run id",
            retryable=True,
        ) from None
    finally:
        connection.close()
    if journals:
        raise CloneError(
            f"staging cluster {names.staging_cluster} holds a masking journal in {', '.join(journals)}",
            hint="the snapshot was taken before masking finished: abort this run and clone again",
        )
    passwords = account.read_secret(names.logins_secret)
    for login in config.staging_logins:
        _log_in(connect, {**credentials, "username": login, "password": passwords.get(login, "")}, config, names)
    return {
        "run": run,
        "healthy": True,
        "answer": [[str(value) for value in row] for row in answer[:5]],
        "databases": databases,
        "logins": list(config.staging_logins),
    }


def _log_in(connect: Connect, credentials: Mapping[str, Any], config: CloneConfig, names: Names) -> None:
    """A staging login opens the staging cluster with its new password and answers ``health_query``."""
    login = credentials["username"]
    try:
        connection = connect(credentials)
    except (CloneError, pymysql.MySQLError) as error:
        raise CloneError(
            f"staging login {login} cannot log in to {names.staging_cluster} with its new password: {error}",
            hint="the record still points to the previous cluster; rerun with the same run id",
            retryable=True,
        ) from None
    try:
        with connection.cursor(pymysql.cursors.Cursor) as cursor:
            cursor.execute(config.health_query)
            cursor.fetchall()
    except pymysql.MySQLError as error:
        raise CloneError(
            f"staging login {login} logs in to {names.staging_cluster} but fails the health query: {error}",
            hint="grant it what the health query needs, or change health_query; rerun with the same run id",
        ) from None
    finally:
        connection.close()
