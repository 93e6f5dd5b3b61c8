"""The nouns every stage shares: resource kinds, their normalised states, and a discovered resource.

A :class:`Resource` is what an adapter (``targets/``) saw — identifiers, tags, state, and the facts the guards
need (cluster membership, read replicas, engine mode…). The pure core (``rules``, ``plan``) decides from these
alone; only the adapters talk to AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["ACTIONS", "PHASES", "Kind", "Resource", "State", "Tier"]

ACTIONS = ("suspend", "start")
PHASES = ("apps", "databases", "all")


class Tier(StrEnum):
    APP = "apps"
    DATABASE = "databases"


class Kind(StrEnum):
    """What a resource is; the value is the ``type`` of the report."""

    ECS_SERVICE = "ecs-service"
    ASG = "autoscaling-group"
    EC2_INSTANCE = "ec2-instance"
    DB_INSTANCE = "db-instance"
    DB_CLUSTER = "db-cluster"

    @property
    def service(self) -> str:
        """The ``services`` entry of the configuration that covers this kind."""
        return _SERVICE[self]

    @property
    def tier(self) -> Tier:
        return Tier.DATABASE if self in (Kind.DB_INSTANCE, Kind.DB_CLUSTER) else Tier.APP


_SERVICE = {
    Kind.ECS_SERVICE: "ecs",
    Kind.ASG: "asg",
    Kind.EC2_INSTANCE: "ec2",
    Kind.DB_INSTANCE: "rds",
    Kind.DB_CLUSTER: "rds",
}

# Suspend: apps before databases — ECS tasks first (they run on the groups' instances), then the groups, then
# lone instances; then databases. Start is the exact reverse: databases first, apps once they are available.
SUSPEND_ORDER = (Kind.ECS_SERVICE, Kind.ASG, Kind.EC2_INSTANCE, Kind.DB_INSTANCE, Kind.DB_CLUSTER)
START_ORDER = tuple(reversed(SUSPEND_ORDER))


class State(StrEnum):
    """Each service's own states, folded into the few that decide what to do."""

    RUNNING = "running"  # EC2 running, RDS available, ECS/ASG desired > 0
    STOPPED = "stopped"
    STOPPING = "stopping"
    STARTING = "starting"
    BUSY = "busy"  # modifying, backing-up, upgrading…: no stop or start accepted until it settles
    GONE = "gone"  # terminated, deleting, inactive


@dataclass(frozen=True)
class Resource:
    """One discovered resource.

    ``id`` is what an operator names it by: the EC2 instance id, ``cluster/service`` for ECS, the group name,
    the DB cluster or instance identifier. ``status`` is the service's own word for the state (``available``,
    ``desired 3 (min 2, max 6)``). ``parent`` is the ECS cluster, the Aurora cluster of a member instance, or
    the Auto Scaling group of an EC2 instance; ``parent_tags`` are its tags (the production guard reads them).
    ``capacity`` holds ECS ``desired`` (and ``min``/``max`` when Application Auto Scaling has a target) and
    ASG ``min``/``desired``/``max``.
    """

    kind: Kind
    id: str
    arn: str
    state: State
    status: str
    tags: Mapping[str, str] = field(default_factory=dict)
    parent: str = ""
    parent_tags: Mapping[str, str] = field(default_factory=dict)
    capacity: Mapping[str, int] = field(default_factory=dict)
    engine: str = ""
    engine_mode: str = ""
    replica_of: str = ""  # RDS read replica source; Aurora cross-Region replica source
    replicas: tuple[str, ...] = ()
    global_cluster: str = ""
    multi_az: bool = False
    daemon: bool = False  # ECS schedulingStrategy DAEMON
    instance_store: bool = False  # EC2 root device on instance store: cannot be stopped
    maintenance_window: str = ""  # RDS PreferredMaintenanceWindow, ``sun:19:00-sun:19:30`` (UTC)
    size: str = ""  # what it costs by: the instance type or DB instance class (savings)

    @property
    def label(self) -> str:
        return f"{self.kind.value} {self.id}"
