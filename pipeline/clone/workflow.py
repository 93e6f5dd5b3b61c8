"""The clone as one idempotent step, called again and again until the run is done.

Each call of :meth:`CloneWorkflow.advance` looks at what exists — found by the run's names and tags, never
remembered — does the next thing, and says what comes next: ``wait`` (a cluster or snapshot is still being
made: call again after ``wait`` seconds), ``mask`` or ``health`` (database work, done by the Lambda inside the
VPC, :mod:`pipeline.clone.worker`), or ``done``. The Step Functions machine (``infra/statemachines/clone.asl.json``)
is that loop with Wait and Choice states; a run that failed or was stopped anywhere is resumed by starting it
again with the same run id. The order, and the guard at each door:

1. **Source** — the newest snapshot of the production cluster, a new one (``snapshot = "take"``) or an Aurora
   copy-on-write clone. The credentials must be of ``source_account``; another clone started less than
   ``min_interval_hours`` ago, or one still in flight, stops a new run.
2. **Temporary cluster** — restored with its own security group (MySQL from the clone Lambda only) and one
   instance; its master password is replaced with a random one kept in Secrets Manager.
3. **Mask** — the worker masks every database behind the coverage gate and the PII scan; the masking engine
   records each finished database as a tag on the temporary cluster, and the worker tags the cluster ``masked``
   once every database is done.
4. **Masked snapshot** — taken only from a cluster tagged masked; it carries the per-database digests. If it is
   encrypted with a key staging cannot use (``aws/rds`` cannot be shared at all), it is copied with ``kms_key``.
5. **Share** — only a snapshot of this run that carries the masked tags, and only with ``target_account``.
6. **Staging** (through ``target_role_arn``) — restored from the shared snapshot, its master password replaced,
   health-checked by the worker with ``health_query``; then the private CNAME ``record_name`` is UPSERTed to it.
   The cluster the record pointed to before is tagged retired and deleted after ``grace_hours``.
7. **Clean up** — the snapshot is unshared; the temporary cluster, its security group and secret, and the
   production snapshot the run took, are deleted. Only resources tagged as the module's are ever deleted.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.aws import AWS_ERRORS, AwsClients, assumed_clients, describe_error
from pipeline.clone import cloud
from pipeline.clone.cloud import Account, Cluster, Snapshot
from pipeline.clone.config import CloneConfig
from pipeline.clone.errors import CloneError
from pipeline.clone.names import (
    MASKED_PREFIX,
    Names,
    Tags,
    check_interval,
    login_secret,
    masked_databases,
    new_run_id,
    owned,
    parse_run_id,
)

__all__ = ["CloneWorkflow", "Progress", "RestoreShared", "assume_role"]

RestoreShared = Callable[[Any, str, str, Mapping[str, Any]], None]


@dataclass
class Progress:
    """What one step did and what comes next (the state machine's Choice reads ``next`` and ``wait``)."""

    run: str
    phase: str
    next: str  # wait | mask | health | done
    wait: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CloneWorkflow:
    """One configured clone: production's clients (the caller's credentials) and staging's (the assumed role)."""

    def __init__(
        self,
        config: CloneConfig,
        *,
        clients: AwsClients | None = None,
        staging: AwsClients | None = None,
        restore_shared: RestoreShared | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.production = Account(clients or AwsClients(), label="production", protected=config.source_cluster)
        self._staging_clients = staging
        self._staging: Account | None = None
        self.restore_shared = restore_shared
        self.now = now

    # --- entry points ---------------------------------------------------------------------------------------

    def start(self, run: str | None = None) -> Progress:
        """A new run (guards first), or the given one resumed."""
        self.check_production()
        if run:
            names = self._names(run)
            if run not in self.runs() and self.staging.cluster(names.staging_cluster) is None:
                raise CloneError(
                    f"clone {run} has nothing left to resume in either account",
                    hint="start a new clone (without a run id)",
                )
            return self.advance(run)
        clusters = [c for c in self.production.clusters() if owned(c.tags)]
        runs = self.runs(clusters)
        in_flight = sorted(c.tags[Tags.RUN] for c in clusters if c.id == Names(c.tags[Tags.RUN]).temp_cluster)
        if in_flight:
            raise CloneError(
                f"clone {in_flight[-1]} is still in flight (its temporary cluster exists)",
                hint=f"resume it (kpi clone run --run {in_flight[-1]}) or abort it (kpi clone abort {in_flight[-1]})",
            )
        now = self.now()
        check_interval(runs[-1] if runs else None, now, self.config.min_interval_hours)
        run = new_run_id(now)
        if run in runs:
            raise CloneError(
                f"clone {run} already exists", hint="wait a minute, or resume it with --run", retryable=True
            )
        return self.advance(run)

    def advance(self, run: str, health: Mapping[str, Any] | None = None) -> Progress:
        """Do the next thing for ``run``; ``health`` is the worker's answer to a ``health`` step."""
        self.check_production()
        names = self._names(run)
        switched = self.staging.cluster(names.staging_cluster)
        if switched is not None and (Tags.LIVE in switched.tags or Tags.RETIRED in switched.tags):
            return self._clean_up(names)  # DNS was switched to it once: only cleaning up is left, never again
        masked = self.production.snapshot(names.masked_snapshot)
        if masked is None:
            return self._mask_phase(names)
        if masked.status != "available":
            return Progress(
                run, "snapshot", "wait", self.config.poll_seconds, f"masked snapshot {masked.id}: {masked.status}"
            )
        shareable = self._shareable(names, masked)
        if isinstance(shareable, Progress):
            return shareable
        staging = switched
        if staging is None:
            return self._restore_staging(names, shareable)
        step = self._staging_phase(names, staging, health)
        if step is not None:
            return step
        return self._clean_up(names)

    def abort(self, run: str) -> Progress:
        """Delete what ``run`` created in production, and its staging cluster unless the DNS record points to
        it. Called again until it says ``done``."""
        self.check_production()
        names = self._names(run)
        pending = self._delete_run(names, keep_masked=False)
        staging = self.staging.cluster(names.staging_cluster)
        if staging is not None and not self._is_live(staging):
            self.staging.delete_cluster(staging)
            pending.append(staging.id)
        self.staging.delete_secret(names.staging_secret)
        if pending:
            return Progress(run, "abort", "wait", self.config.poll_seconds, f"deleting {', '.join(pending)}")
        return Progress(run, "abort", "done", 0, f"clone {run} removed")

    def retire(self) -> list[str]:
        """Delete staging clusters of earlier clones whose grace period is over (never the one in DNS)."""
        deleted = []
        cutoff = self.now() - timedelta(hours=self.config.grace_hours)
        live = self.staging.record(self.config.hosted_zone_id, self.config.record_name)
        for cluster in self.staging.clusters():
            retired = cluster.tags.get(Tags.RETIRED, "")
            if not owned(cluster.tags) or not retired or cluster.endpoint == live:
                continue
            if datetime.fromisoformat(retired) <= cutoff:
                self.staging.delete_cluster(cluster)
                self.staging.delete_secret(
                    Names(cluster.tags[Tags.RUN], self.config.target_cluster_prefix).staging_secret
                )
                deleted.append(cluster.id)
        return deleted

    def status(self) -> dict[str, Any]:
        """Every run with resources in either account, what each has, and where the DNS record points."""
        config, production, staging = self.config, self.production, self.staging
        target = staging.record(config.hosted_zone_id, config.record_name)
        staged = {c.tags[Tags.RUN]: c for c in staging.clusters() if owned(c.tags)}
        rows = []
        for run in sorted(set(self.runs()) | set(staged)):
            names = self._names(run)
            temp, masked = production.cluster(names.temp_cluster), production.snapshot(names.masked_snapshot)
            cluster = staged.get(run)
            rows.append(
                {
                    "run": run,
                    "temporary_cluster": temp.status if temp else "",
                    "masked_snapshot": masked.status if masked else "",
                    "staging_cluster": f"{cluster.id} ({cluster.status})" if cluster else "",
                    "live": cluster is not None and cluster.endpoint == target,
                    "retired_at": cluster.tags.get(Tags.RETIRED, "") if cluster else "",
                }
            )
        return {"record": config.record_name, "points_to": target or "", "runs": rows}

    def runs(self, clusters: list[Cluster] | None = None) -> list[str]:
        """Every run the module has resources of in production (``clusters``: the account's, if already listed),
        oldest first."""
        found = {
            c.tags[Tags.RUN] for c in (self.production.clusters() if clusters is None else clusters) if owned(c.tags)
        }
        found |= {s.tags[Tags.RUN] for s in self.production.snapshots() if owned(s.tags)}
        return sorted(found)

    def check_production(self) -> str:
        account = self.production.identity()
        if account != self.config.source_account:
            raise CloneError(
                f"these credentials are of account {account}, but source_account is {self.config.source_account}",
                where=self.config.origin,
                hint="run the clone with production's credentials (the deployed state machine does)",
            )
        return account

    @property
    def staging(self) -> Account:
        if self._staging is None:
            clients = self._staging_clients or assume_role(
                self.production.clients, self.config.target_role_arn, self.config.target_external_id
            )
            account = Account(clients, label="staging", protected=self.config.source_cluster)
            found = account.identity()
            if found != self.config.target_account or found == self.config.source_account:
                raise CloneError(
                    f"the staging role's credentials are of account {found}, not target_account "
                    f"{self.config.target_account}: nothing was shared",
                    where=self.config.origin,
                    hint="target_role_arn must be a role of the staging account",
                )
            self._staging = account
        return self._staging

    def _names(self, run: str) -> Names:
        return Names(parse_run_id(run), self.config.target_cluster_prefix)

    # --- production: source, temporary cluster, masking --------------------------------------------------------

    def _mask_phase(self, names: Names) -> Progress:
        run = names.run
        temp = self.production.cluster(names.temp_cluster)
        if temp is None:
            return self._restore_temporary(names)
        waiting = self._prepare(self.production, temp, names, "restore", self.config.instance_class)
        if waiting is not None:
            return waiting
        if Tags.MASKED_ALL not in temp.tags:
            self._store_passwords(names)
            return Progress(run, "mask", "mask", 0, f"masking {temp.id}")
        tags = {**names.tags("masked-snapshot", self.config.source_cluster), **_masked_tags(temp.tags)}
        self.production.take_snapshot(temp.id, names.masked_snapshot, tags)
        return Progress(
            run, "snapshot", "wait", self.config.poll_seconds, f"taking masked snapshot {names.masked_snapshot}"
        )

    def _store_passwords(self, names: Names) -> None:
        """The staging logins' new passwords, made once per run and kept in production for the worker, which sets
        them on the copy after masking (pipeline.clone.logins); a login added to the configuration since gets
        one too, the others keep theirs."""
        stored = self.production.find_secret(names.logins_secret)
        missing = [login for login in self.config.staging_logins if login not in (stored or {})]
        if stored is None or missing:
            value = {**(stored or {}), **{login: secrets.token_urlsafe(24) for login in missing}}
            self.production.put_secret(names.logins_secret, value, names.tags("secret"))

    def _restore_temporary(self, names: Names) -> Progress:
        config, run = self.config, names.run
        arguments: dict[str, Any] = {"DBSubnetGroupName": config.subnet_group}
        if config.cluster_parameter_group:
            arguments["DBClusterParameterGroupName"] = config.cluster_parameter_group
        if config.snapshot == "clone":
            source = self.production.cluster(config.source_cluster)
            if source is None:
                raise CloneError(f"production cluster {config.source_cluster} not found", where=config.origin)
            arguments["SourceDBClusterIdentifier"] = source.id
            origin = f"copy-on-write clone of {source.id}"
        else:
            snapshot = self._source_snapshot(names)
            if isinstance(snapshot, Progress):
                return snapshot
            arguments.update(SnapshotIdentifier=snapshot.id, Engine=snapshot.engine)
            if snapshot.engine_version:
                arguments["EngineVersion"] = snapshot.engine_version
            origin = f"snapshot {snapshot.id}"
        vpc = self.production.subnet_group_vpc(config.subnet_group)
        group = self.production.security_group(
            names.security_group, vpc, config.worker_security_group, names.tags("security-group")
        )
        arguments["VpcSecurityGroupIds"] = [group]
        self.production.restore(names.temp_cluster, arguments, names.tags("temporary", config.source_cluster))
        return Progress(
            run, "restore", "wait", self.config.poll_seconds, f"restoring {names.temp_cluster} from {origin}"
        )

    def _source_snapshot(self, names: Names) -> Snapshot | Progress:
        config = self.config
        if config.snapshot == "take":
            taken = self.production.snapshot(names.source_snapshot)
            if taken is None:
                self.production.take_snapshot(
                    config.source_cluster, names.source_snapshot, names.tags("source-snapshot", config.source_cluster)
                )
                return Progress(
                    names.run, "source", "wait", self.config.poll_seconds, f"taking snapshot of {config.source_cluster}"
                )
            if taken.status != "available":
                return Progress(
                    names.run, "source", "wait", self.config.poll_seconds, f"snapshot {taken.id}: {taken.status}"
                )
            return taken
        found = [s for s in self.production.snapshots(config.source_cluster) if s.status == "available"]
        if not found:
            raise CloneError(
                f"production cluster {config.source_cluster} has no available snapshot",
                where=config.origin,
                hint='set snapshot = "take" to take one, or wait for the nightly automated snapshot',
            )
        return max(found, key=lambda s: s.created or datetime.min.replace(tzinfo=UTC))

    # --- production: the snapshot staging may restore -----------------------------------------------------------

    def _shareable(self, names: Names, masked: Snapshot) -> Snapshot | Progress:
        """The masked snapshot, or its copy under ``kms_key`` when staging could not use its key."""
        config, run = self.config, names.run
        if not masked.encrypted or masked.kms_key == config.kms_key:
            return self._check_masked(masked)
        if not config.kms_key:
            managed = self.production.key_manager(masked.kms_key) == "AWS"
            raise CloneError(
                f"masked snapshot {masked.id} is encrypted with "
                f"{'the AWS-managed aws/rds key, which AWS refuses to share' if managed else masked.kms_key}, "
                "and no kms_key is configured to copy it with",
                where=config.origin,
                hint="create a customer-managed KMS key granted to the staging account and set kms_key "
                "(README: one-time setup); nothing was shared",
            )
        copy = self.production.snapshot(names.shared_snapshot)
        if copy is None:
            self._check_masked(masked)
            tags = {**names.tags("shared-snapshot", config.source_cluster), **_masked_tags(masked.tags)}
            self.production.copy_snapshot(masked.id, names.shared_snapshot, config.kms_key, tags)
            return Progress(
                run, "encrypt", "wait", self.config.poll_seconds, f"copying {masked.id} with {config.kms_key}"
            )
        if copy.status != "available":
            return Progress(run, "encrypt", "wait", self.config.poll_seconds, f"snapshot {copy.id}: {copy.status}")
        return self._check_masked(copy)

    def _check_masked(self, snapshot: Snapshot) -> Snapshot:
        """The share guard: only a snapshot this module took of a cluster it masked completely."""
        tags = snapshot.tags
        if not owned(tags) or Tags.MASKED_ALL not in tags or Tags.LOGINS not in tags or not masked_databases(tags):
            raise CloneError(
                f"snapshot {snapshot.id} does not carry the masked tags: it is not shared",
                hint="only snapshots of a temporary cluster the masking finished on are shared; rerun the clone",
            )
        return snapshot

    # --- staging ---------------------------------------------------------------------------------------------

    def _restore_staging(self, names: Names, snapshot: Snapshot) -> Progress:
        config = self.config
        self.production.share(snapshot, config.target_account)
        arguments: dict[str, Any] = {
            "Engine": snapshot.engine,
            "DBSubnetGroupName": config.target_subnet_group,
            "VpcSecurityGroupIds": list(config.target_security_groups),
            "Tags": [{"Key": k, "Value": v} for k, v in self._staging_tags(names, snapshot).items()],
        }
        if snapshot.engine_version:
            arguments["EngineVersion"] = snapshot.engine_version
        if snapshot.encrypted and (config.target_kms_key or config.kms_key):
            arguments["KmsKeyId"] = config.target_kms_key or config.kms_key
        if config.target_cluster_parameter_group:
            arguments["DBClusterParameterGroupName"] = config.target_cluster_parameter_group
        try:
            restore = self.restore_shared or cloud.restore_shared_snapshot  # looked up now: tests stand in for it
            restore(self.staging.rds, snapshot.arn, names.staging_cluster, arguments)
        except AWS_ERRORS as error:
            raise CloneError(
                f"staging cannot restore the shared snapshot {snapshot.arn}: {describe_error(error)}",
                hint="the staging role needs rds:RestoreDBClusterFromSnapshot and use of kms_key (README: one-time "
                "setup); rerun with the same run id",
                retryable=True,
            ) from None
        return Progress(
            names.run, "staging", "wait", self.config.poll_seconds, f"restoring {names.staging_cluster} in staging"
        )

    def _staging_tags(self, names: Names, snapshot: Snapshot) -> dict[str, str]:
        return {**names.tags("staging", self.config.source_cluster), **_masked_tags(snapshot.tags)}

    def _staging_phase(self, names: Names, cluster: Cluster, health: Mapping[str, Any] | None) -> Progress | None:
        run, staging = names.run, self.staging
        waiting = self._prepare(staging, cluster, names, "staging", self.config.target_instance_class)
        if waiting is not None:
            return waiting
        if not self.config.health_query and Tags.HEALTHY not in cluster.tags:
            staging.tag(cluster.arn, cluster.id, cluster.tags, {Tags.HEALTHY: "not checked (health_query is empty)"})
        elif Tags.HEALTHY not in cluster.tags:
            if not health or not health.get("healthy"):
                return Progress(run, "health", "health", 0, f"checking {cluster.id} with {self.config.health_query!r}")
            staging.tag(cluster.arn, cluster.id, cluster.tags, {Tags.HEALTHY: self.now().isoformat()})
        if not self._is_live(cluster):
            self._switch(names, cluster)
        return None

    def _switch(self, names: Names, cluster: Cluster) -> None:
        config, staging, now = self.config, self.staging, self.now().isoformat()
        previous = staging.record(config.hosted_zone_id, config.record_name)
        self._publish_logins(names, cluster)
        staging.point(config.hosted_zone_id, config.record_name, cluster.endpoint, config.record_ttl)
        staging.tag(cluster.arn, cluster.id, cluster.tags, {Tags.LIVE: now})
        for other in staging.clusters():
            replaced = other.endpoint == previous or Tags.LIVE in other.tags
            if other.id != cluster.id and owned(other.tags) and Tags.RETIRED not in other.tags and replaced:
                staging.tag(other.arn, other.id, other.tags, {Tags.RETIRED: now})

    def _publish_logins(self, names: Names, cluster: Cluster) -> None:
        """Each staging login's new credentials in staging's Secrets Manager (``kpi-clone/login/<login>``), where
        staging's applications read them, right before the record points at the cluster that has them."""
        passwords = self.production.find_secret(names.logins_secret) or {}
        for login in self.config.staging_logins:
            if login not in passwords:
                raise CloneError(
                    f"no new password of staging login {login} is stored for clone {names.run}",
                    hint="the login was added to staging_logins after this run masked its copy: clone again",
                )
            credentials = {**_credentials(cluster, passwords[login]), "host": self.config.record_name}
            self.staging.put_secret(login_secret(login), {**credentials, "username": login}, names.tags("login"))

    def _is_live(self, cluster: Cluster) -> bool:
        return self.staging.record(self.config.hosted_zone_id, self.config.record_name) == cluster.endpoint

    # --- clean up ----------------------------------------------------------------------------------------------

    def _clean_up(self, names: Names) -> Progress:
        for identifier in (names.masked_snapshot, names.shared_snapshot):
            snapshot = self.production.snapshot(identifier)
            if snapshot is not None:
                self.production.unshare(snapshot)
        pending = self._delete_run(names, keep_masked=True)
        retired = self.retire()
        for older in self.runs():
            if older < names.run:
                for identifier in (Names(older).masked_snapshot, Names(older).shared_snapshot):
                    snapshot = self.production.snapshot(identifier)
                    if snapshot is not None and owned(snapshot.tags):
                        self.production.unshare(snapshot)
                        self.production.delete_snapshot(snapshot)
        if pending:
            return Progress(names.run, "clean up", "wait", self.config.poll_seconds, f"deleting {', '.join(pending)}")
        note = f"; deleted retired {', '.join(retired)}" if retired else ""
        target = self.staging.record(self.config.hosted_zone_id, self.config.record_name)
        return Progress(
            names.run, "done", "done", 0, f"clone {names.run} done; {self.config.record_name} → {target}{note}"
        )

    def _delete_run(self, names: Names, *, keep_masked: bool) -> list[str]:
        """Delete the run's production resources; the names of those still going away."""
        production, pending = self.production, []
        temp = production.cluster(names.temp_cluster)
        if temp is not None:
            production.delete_cluster(temp)
            pending.append(temp.id)
        elif not production.delete_security_group(names.security_group):
            pending.append(names.security_group)
        for secret in (names.temp_secret, names.staging_secret, names.logins_secret):
            production.delete_secret(secret)
        doomed = [names.source_snapshot] + ([] if keep_masked else [names.masked_snapshot, names.shared_snapshot])
        for identifier in doomed:
            snapshot = production.snapshot(identifier)
            if snapshot is not None:
                production.unshare(snapshot)
                production.delete_snapshot(snapshot)
        return pending

    def _prepare(
        self, account: Account, cluster: Cluster, names: Names, phase: str, instance_class: str
    ) -> Progress | None:
        """A restored cluster made usable, one call at a time: available, with its one instance, and with a
        master password of the module's (the snapshot brought production's). None once it is."""

        def wait(message: str) -> Progress:
            return Progress(names.run, phase, "wait", self.config.poll_seconds, message)

        if cluster.status != "available":
            return wait(f"cluster {cluster.id}: {cluster.status}")
        instance = f"{cluster.id}-1"
        status = account.instance_status(instance)
        if status is None:
            role = "temporary" if account is self.production else "staging"
            account.add_instance(cluster, instance, instance_class, names.tags(role))
            return wait(f"creating instance {instance}")
        if status != "available":
            return wait(f"instance {instance}: {status}")
        if cluster.tags.get(Tags.PASSWORD) != "rotated":
            # Stored before it is set: a crash in between leaves a secret that the next try simply replaces.
            password = secrets.token_urlsafe(24)
            secret = names.temp_secret if account is self.production else names.staging_secret
            account.put_secret(secret, _credentials(cluster, password), names.tags("secret"))
            if account is not self.production:  # the worker reads it in production (it cannot assume the role)
                self.production.put_secret(secret, _credentials(cluster, password), names.tags("secret"))
            account.set_password(cluster, password)
            account.tag(cluster.arn, cluster.id, cluster.tags, {Tags.PASSWORD: "rotated"})
            return wait("master password replaced")
        return None


def assume_role(clients: AwsClients, role_arn: str, external_id: str = "") -> AwsClients:
    """Clients of the staging account, through ``role_arn`` (credentials valid for the invocation)."""
    arguments = {"RoleArn": role_arn, "RoleSessionName": "kpi-clone"}
    if external_id:
        arguments["ExternalId"] = external_id
    try:
        credentials = clients("sts").assume_role(**arguments)["Credentials"]
    except AWS_ERRORS as error:
        raise CloneError(
            f"cannot assume the staging role {role_arn}: {describe_error(error)}",
            hint="the role's trust policy must allow the clone Lambda's role (README: one-time setup)",
        ) from None
    return assumed_clients(clients, credentials)


def _masked_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith(MASKED_PREFIX) or k in (Tags.MASKED_ALL, Tags.LOGINS)}


def _credentials(cluster: Cluster, password: str) -> dict[str, Any]:
    return {
        "engine": "mysql",
        "host": cluster.endpoint,
        "port": cluster.port,
        "username": cluster.username,
        "password": password,
        "dbClusterIdentifier": cluster.id,
    }
