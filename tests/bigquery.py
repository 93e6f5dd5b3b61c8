"""The BigQuery emulator (PyPI ``bqemulator``) on loopback, and the one bridge over its one gap the loader meets.

The emulator serves BigQuery's REST API over DuckDB; the real ``google-cloud-bigquery`` client talks to it
over HTTP. It lives in its own virtual environment, ``.venv-bq`` (``make test`` builds it from
``tests/bigquery-emulator.txt``), because it pins a sqlglot older than the one our SQL gate needs.

Its gap: it refuses a load or copy job whose destination carries a partition decorator (``table$20240301``:
"Invalid table id for SQL"), which is how the loader replaces a partition in real BigQuery. :class:`DecoratorBridge`
— a ``bigquery.Client`` the tests hand to the warehouse — records every such job exactly as BigQuery would
receive it (tests assert that configuration), then performs its effect on the emulator: the file is loaded into
a side table, and one MERGE replaces the partition's rows with it. Everything else goes to the emulator unchanged.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from tests.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parent.parent
EMULATOR_VENV = ROOT / ".venv-bq"
PROJECT = "kpi-test"
# The emulator loads DuckDB's spatial extension at start. With no internet, it is installed from the wheel
# ``duckdb-extension-spatial`` into the extension folder under this HOME, inside the emulator's venv.
_INSTALL_SPATIAL = """
import pathlib, duckdb, duckdb_extension_spatial as wheel
path = next(pathlib.Path(wheel.__file__).parent.glob("extensions/*/spatial.duckdb_extension"))
duckdb.connect().execute(f"INSTALL '{path}'")
"""


class BigQueryEmulator(LoopbackServer):
    name = "BigQuery emulator"
    ready_path = "/readyz"

    def __init__(self) -> None:
        super().__init__()
        self.python = EMULATOR_VENV / "bin" / "python"
        if not self.python.exists():
            raise RuntimeError(f"{EMULATOR_VENV} is missing: run `make test` (it builds the emulator's venv)")
        self.home = EMULATOR_VENV / "home"
        if not (self.home / ".duckdb").exists():
            self.home.mkdir(exist_ok=True)
            subprocess.run([str(self.python), "-c", _INSTALL_SPATIAL], env=self.environment(), check=True)

    def environment(self) -> Mapping[str, str]:
        return {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "NO_PROXY": "*"}

    def command(self, port: int) -> Sequence[str]:
        return [
            str(EMULATOR_VENV / "bin" / "bqemulator"),
            "start",
            *("--rest-host", "127.0.0.1", "--rest-port", str(port), "--grpc-port", "0"),
            *("--ephemeral", "--project", PROJECT, "--log-level", "warning"),
        ]

    def client(self, client_class: type[bigquery.Client] = bigquery.Client) -> Any:
        return client_class(
            project=PROJECT,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )


class DecoratorBridge(bigquery.Client):
    """A client for the emulator that carries out decorator loads and copies (see the module docstring).

    ``decorator_jobs`` holds each such job as sent: ``{"destination": …, "configuration": <the job's API
    representation>}``. ``fail_next`` makes the next decorator job fail as a BigQuery backend error would:
    before anything reaches the table (BigQuery applies a job atomically or not at all).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.decorator_jobs: list[dict[str, Any]] = []
        self.fail_next = False

    def load_table_from_file(self, file_obj: Any, destination: Any, *args: Any, **kwargs: Any) -> Any:
        table, _, decorator = str(destination).partition("$")
        if not decorator:
            return super().load_table_from_file(file_obj, destination, *args, **kwargs)
        config: bigquery.LoadJobConfig = kwargs.pop("job_config")
        self._record(destination, config)
        side = self._side_table(table, config.schema)
        plain = bigquery.LoadJobConfig(
            schema=config.schema,
            source_format=config.source_format,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            skip_leading_rows=config.skip_leading_rows,
            allow_quoted_newlines=config.allow_quoted_newlines,
        )
        kwargs["job_config"] = plain
        job = super().load_table_from_file(file_obj, side, *args, **kwargs)
        job.result()
        self._replace_partition(table, decorator, side)
        return job

    def copy_table(self, sources: Any, destination: Any, *args: Any, **kwargs: Any) -> Any:
        table, _, decorator = str(destination).partition("$")
        if not decorator:
            return super().copy_table(sources, destination, *args, **kwargs)
        self._record(destination, kwargs.pop("job_config"))
        return self._replace_partition(table, decorator, str(sources))

    def _record(self, destination: Any, config: Any) -> None:
        self.decorator_jobs.append({"destination": str(destination), "configuration": config.to_api_repr()})
        if self.fail_next:
            self.fail_next = False
            raise google_errors.InternalServerError(  # type: ignore[no-untyped-call]
                "Backend error. Job aborted.", errors=[{"reason": "backendError", "message": "Backend error"}]
            )

    def _side_table(self, table: str, schema: Sequence[bigquery.SchemaField]) -> str:
        side = f"{table}__bridge"
        self.delete_table(side, not_found_ok=True)
        self.create_table(bigquery.Table(side, schema=list(schema)))
        return side

    def _replace_partition(self, table: str, decorator: str, source: str) -> Any:
        """What BigQuery does for WRITE_TRUNCATE into ``table$decorator``, as one MERGE statement."""
        target = self.get_table(table)
        field = target.time_partitioning.field
        kind = next(f.field_type for f in target.schema if f.name == field)
        start, end = decorator_range(decorator, kind)
        names = ", ".join(f"`{f.name}`" for f in target.schema)
        values = ", ".join(f"S.`{f.name}`" for f in target.schema)
        sql = (
            f"MERGE `{table}` T USING `{source}` S ON FALSE "
            f"WHEN NOT MATCHED BY SOURCE AND T.`{field}` >= @start AND T.`{field}` < @end THEN DELETE "
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
        )
        params = [bigquery.ScalarQueryParameter("start", kind, start), bigquery.ScalarQueryParameter("end", kind, end)]
        job = self.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
        job.result()
        return job


def decorator_range(decorator: str, column_type: str) -> tuple[date | datetime, date | datetime]:
    """The values of a partition decorator's partition: ``20240301`` → [2024-03-01, 2024-03-02)."""
    if len(decorator) == 6:
        first = datetime.strptime(decorator, "%Y%m")
        end = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    elif len(decorator) == 8:
        first = datetime.strptime(decorator, "%Y%m%d")
        end = datetime.fromordinal(first.toordinal() + 1)
    else:
        first = datetime.strptime(decorator, "%Y%m%d%H")
        end = datetime.fromtimestamp(first.replace(tzinfo=UTC).timestamp() + 3600, UTC).replace(tzinfo=None)
    if column_type == "DATE":
        return first.date(), end.date()
    if column_type == "TIMESTAMP":
        return first.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    return first, end
