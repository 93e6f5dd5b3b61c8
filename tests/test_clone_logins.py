"""Which of a copy's logins keep, change or lose their password (pipeline.clone.logins, pure); the statements
themselves run on a real MariaDB in tests/test_clone_aws.py."""

from __future__ import annotations

from pipeline.clone.logins import plan_logins

ACCOUNTS = [
    ("admin", "%"),  # the master user the worker is connected as
    ("shop_app", "%"),
    ("shop_app", "10.0.%"),
    ("analyst", "%"),
    ("batch", "localhost"),
    ("iam_reader", "%"),
    ("rdsadmin", "localhost"),
    ("mysql.sys", "localhost"),
    ("mariadb.sys", "localhost"),
    ("AWS_LOAD_S3_ACCESS", "%"),  # Aurora MySQL 3's roles
    ("rds_superuser_role", "%"),
]


def test_staging_logins_change_kept_ones_stay_and_every_other_is_locked() -> None:
    plan = plan_logins(ACCOUNTS, master="admin", staging=["shop_app"], keep=["iam_reader"], statements=["SELECT 1"])
    assert plan.staging == (("shop_app", "%"), ("shop_app", "10.0.%"))
    assert plan.locked == (("analyst", "%"), ("batch", "localhost"))
    assert {user for user, _ in plan.kept} == {
        "admin",
        "iam_reader",
        "rdsadmin",
        "mysql.sys",
        "mariadb.sys",
        "AWS_LOAD_S3_ACCESS",
        "rds_superuser_role",
    }
    assert plan.missing == ()
    assert plan.statements == ("SELECT 1",)
    assert plan.summary() == "2 for staging / 2 locked / 7 kept"


def test_a_staging_login_the_copy_lacks_is_named() -> None:
    assert plan_logins(ACCOUNTS, master="admin", staging=["shop_app", "ghost"]).missing == ("ghost",)
    assert plan_logins([], master="admin").summary() == "0 for staging / 0 locked / 0 kept"
