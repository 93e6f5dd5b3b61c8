"""Suspend: dev environments off at night and on holidays, back on in the morning — never production.

The stages, in the order a run goes through them (only ``flow`` and ``targets/`` talk to AWS):

- ``config``   the ``[suspend]`` table of kpi.toml and the ``KPI_SUSPEND_*`` variables
- ``calendar`` schedules and holidays in the configured zone; the suspend window
- ``request``  the Lambda event or the CLI's options → a Request
- ``rules``    production, selection, what AWS cannot stop, keep-running tags, stored capacities (pure)
- ``plan``     resources × request → ordered steps with reasons (pure)
- ``targets/`` one adapter per service: EC2, ECS (+ Application Auto Scaling), Auto Scaling groups, RDS
- ``apply``    carry out the steps, databases before apps on start; never abort on one refusal
- ``report``   acted / skipped / failed / pending, as JSON and on SNS
- ``restart``  AWS's seven-day automatic start of a stopped database (RDS-EVENT-0153/0154)
- ``savings``  the hours the schedules keep each resource stopped, and their price (Price List or a table)
- ``flow``     one run end to end, a tick of every schedule, the savings — for the CLI and the Lambda
"""

from pipeline.suspend.calendar import Calendar, Window
from pipeline.suspend.config import ProductionTag, SuspendConfig, config_from_table, load_config
from pipeline.suspend.errors import SuspendError
from pipeline.suspend.flow import check_account, check_databases, make_plan, restart, run, savings, tick
from pipeline.suspend.model import Kind, Resource, State
from pipeline.suspend.plan import Plan, Step, Verdict, build_plan
from pipeline.suspend.report import Report
from pipeline.suspend.request import Request, Selector
from pipeline.suspend.restart import AutoStart, is_rds_event, parse_rds_event
from pipeline.suspend.targets import AwsClients

__all__ = [
    "AutoStart",
    "AwsClients",
    "Calendar",
    "Kind",
    "Plan",
    "ProductionTag",
    "Report",
    "Request",
    "Resource",
    "Selector",
    "State",
    "Step",
    "SuspendConfig",
    "SuspendError",
    "Verdict",
    "Window",
    "build_plan",
    "check_account",
    "check_databases",
    "config_from_table",
    "is_rds_event",
    "load_config",
    "make_plan",
    "parse_rds_event",
    "restart",
    "run",
    "savings",
    "tick",
]
