"""kpi.toml environments and the variables that override them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.settings import EMBEDDED_LAKE, EMBEDDED_SOURCE, EMBEDDED_WAREHOUSE, load_environment, redact

CONFIG = """
[environments.local.sources]
default = "duckdb://.kpi/demo.duckdb"

[environments.production]
lake = "s3://acme-kpi/lake"
warehouse = "bigquery://acme-analytics/kpi?location=asia-northeast1"

[environments.production.sources]
default = { url = "mysql://kpi_reader@aurora.internal:3306/shop?secret=arn:aws:secretsmanager:x", parallel = 1 }
billing = "mysql://kpi_reader@billing.internal:3306/billing?iam=true"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kpi.toml"
    path.write_text(text)
    return path


def test_without_a_file_local_is_the_embedded_default(tmp_path: Path) -> None:
    local = load_environment(config=tmp_path / "kpi.toml", environ={})
    assert (local.name, local.source("default").url, local.lake, local.warehouse) == (
        "local",
        EMBEDDED_SOURCE,
        EMBEDDED_LAKE,
        EMBEDDED_WAREHOUSE,
    )
    with pytest.raises(UsageError, match=r"no .*kpi\.toml to read the environment 'production' from"):
        load_environment("production", config=tmp_path / "kpi.toml", environ={})


def test_an_environment_names_its_sources_lake_and_warehouse(tmp_path: Path) -> None:
    production = load_environment("production", config=write(tmp_path, CONFIG), environ={})
    assert production.source("default").parallel == 1
    assert production.source("billing").url.endswith("?iam=true")
    assert production.source("billing").parallel == 2
    assert production.lake == "s3://acme-kpi/lake"
    assert production.warehouse.startswith("bigquery://acme-analytics/kpi")
    with pytest.raises(UsageError, match="has no source 'crm' \\(known: billing, default\\)") as unknown:
        production.source("crm", kpi="churn")
    assert unknown.value.where == "churn"
    assert "KPI_SOURCE_CRM" in unknown.value.hint
    chosen = load_environment(config=write(tmp_path, CONFIG), environ={"KPI_ENV": "production"})
    assert chosen.name == "production"


def test_variables_override_the_file(tmp_path: Path) -> None:
    environ = {
        "KPI_SOURCE": "mysql://reader@127.0.0.1:3306/test",
        "KPI_SOURCE_BILLING": "duckdb:///tmp/billing.duckdb",
        "KPI_LAKE": "/tmp/lake",
        "KPI_WAREHOUSE": "duckdb:///tmp/wh.duckdb",
    }
    production = load_environment("production", config=write(tmp_path, CONFIG), environ=environ)
    assert production.source("default").url == "mysql://reader@127.0.0.1:3306/test"
    assert production.source("default").parallel == 1  # the file's limit stays
    assert production.source("billing").url == "duckdb:///tmp/billing.duckdb"
    assert (production.lake, production.warehouse) == ("/tmp/lake", "duckdb:///tmp/wh.duckdb")
    flags = production.overridden(source="duckdb:///x.duckdb", lake="/l")
    assert (flags.source("default").url, flags.lake) == ("duckdb:///x.duckdb", "/l")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[environments.production]\nlake = "s3://x"\nwarhouse = "duckdb:///w"', "unknown key warhouse"),
        ('[environments.production.sources]\ndefault = { url = "mysql://a@h/db", parallel = 0 }', "must be a URL"),
        ("[environments.production.sources]\ndefault = 'mysql://kpi:s3cret@db:3306/shop'", "holds a password"),
        ("[environment.production]\nlake = 'x'", "unknown top-level key environment"),
        ("[environments.production\n", "cannot read"),
        ("[environments.staging]\nlake = 'x'", "has no environment 'production'"),
    ],
)
def test_a_wrong_file_is_refused_naming_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as refused:
        load_environment("production", config=write(tmp_path, text), environ={})
    assert refused.value.hint
    assert "s3cret" not in str(refused.value)


def test_the_ops_modules_tables_sit_beside_the_environments(tmp_path: Path) -> None:
    from pipeline.clone.config import load_config as load_clone
    from pipeline.clone.errors import CloneError
    from pipeline.suspend.config import load_config as load_suspend

    path = write(tmp_path, CONFIG + '\n[suspend]\naccounts = ["123456789012"]\n\n[clone]\nsource_account = "1"\n')
    assert load_environment("production", config=path, environ={}).lake == "s3://acme-kpi/lake"
    assert load_suspend(path, environ={}).accounts == ("123456789012",)
    with pytest.raises(CloneError, match=r"kpi.toml \[clone\]: missing keys: source_cluster"):
        load_clone(path, environ={})


def test_the_label_says_what_variables_replaced_and_never_shows_a_password(tmp_path: Path) -> None:
    """A summary titled `(local)` must not hide that KPI_SOURCE points at a production database."""
    plain = load_environment(config=tmp_path / "none.toml", environ={})
    assert plain.label == "local"
    environ = {"KPI_SOURCE": "mysql://kpi:hunter2@db.internal:3306/shop", "KPI_LAKE": "s3://lake/v1"}
    overridden = load_environment(config=tmp_path / "none.toml", environ=environ)
    assert overridden.label == "local, KPI_SOURCE=mysql://kpi@db.internal:3306/shop, KPI_LAKE=s3://lake/v1"
    assert redact("mysql://kpi:hunter2@[::1/shop") == "mysql://…"
    assert redact("duckdb:///tmp/shop.duckdb") == "duckdb:///tmp/shop.duckdb"
