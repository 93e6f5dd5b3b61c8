"""The BigQuery emulator (PyPI ``bqemulator``) on loopback, and the one bridge over the gap the loader meets.

The emulator serves BigQuery's REST API over DuckDB; the real ``google-cloud-bigquery`` client talks to it
over HTTP. It lives in its own virtual environment, ``.venv-bq`` (``make test`` builds it from
``tests/bigquery-emulator.txt``), because it pins a sqlglot older than the one our SQL gate needs.

The emulator takes about 1.5 s per load job, so a two-month hourly backfill (1,488 load jobs) would run for most
of an hour. With ``dry = True`` the bridge records the jobs as sent and answers the two kinds that cost that time
itself, as BigQuery answers a job that succeeded: a load job (its rows counted from the file it was handed, so
that the staging table's row count the loader checks is the file's) and a transaction script (committed, no
rows). Everything else — audit reads, creating, reading and deleting the staging tables, the KPI's table — still
goes to the emulator. A test runs a sample of batches for real and the rest dry, through the same loader code.

With ``coalesce = True`` the rows still land, for a batch of many small files (an hourly KPI's week of history:
169 load jobs, 10 s of the emulator's time, measured): each load job into a table is recorded and answered done,
its file's rows kept, and the first call that reads that table — ``get_table`` (the staging table's row count
the loader checks) or any query (the batch's transaction) — sends them as one load job, of the same
configuration, for real. The table then holds exactly the rows the separate jobs would have appended; only the
number of jobs differs.

Its gap: it runs multi-statement transactions (``BEGIN TRANSACTION`` … ``COMMIT TRANSACTION``, rolled back by
``ERROR()``) but never detects a conflict between two of them. BigQuery's rule ("Multi-statement transactions":
if a transaction mutates — updates or deletes — rows in a table, other transactions or DML statements that
mutate rows in the same table cannot run concurrently; conflicting transactions are cancelled) is per table.
:class:`BigQueryBridge` — a ``bigquery.Client`` the tests hand to the warehouse — bridges exactly that, and
only for transaction scripts:

- A script's *mutated tables* are the targets of its ``UPDATE``, ``DELETE`` and ``MERGE`` statements between
  ``BEGIN TRANSACTION`` and ``COMMIT TRANSACTION`` (:func:`mutated_tables`; names as the script spells them,
  all fully qualified in ours). ``INSERT`` only appends and conflicts with nothing, as in BigQuery; statements
  before ``BEGIN`` (the lock row's conditional insert) are not judged.
- A script is *in flight* from the moment the bridge admits it until its job has finished. A script is
  cancelled, before it runs, when one of its mutated tables is a mutated table of a script in flight — with
  BigQuery's own message, naming the first such table in the script's order ("Transaction is aborted due to
  concurrent update against table …") — and recorded in ``conflicts``; otherwise it is admitted. The later
  arrival is the one cancelled. Scripts mutating disjoint tables are in flight together.
- Admitted scripts are then sent to the emulator one at a time, in the order they take the turn. The emulator
  makes a transaction by snapshotting every table a statement writes (``INSERT`` targets included) and
  restoring the snapshots on rollback, so two scripts interleaved inside it could undo each other's appended
  rows (the audit table's); one at a time they cannot. A serial order is one BigQuery could also produce for
  transactions on disjoint tables; what differs is only that the second sees the first's committed rows
  (BigQuery's snapshot would not) — for loads of different KPIs, rows of another KPI, which no check reads.

Every call still goes to the emulator unchanged; the bridge also records every job as sent (``jobs``) and
every streaming insert (``inserts``), and can make the next load job fail as a BigQuery backend error would, or
the next streaming insert be refused as BigQuery refuses rows (``insertAll``'s answer listing each row's errors).
"""

from __future__ import annotations

import io
import itertools
import re
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    import pyarrow as pa

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


@dataclass
class SentJob:
    """A job as the client sent it: ``kind`` load or query (or ``merged``: the one load job of coalesced loads),
    the load's destination, the query's SQL, and the job's configuration in BigQuery's API representation."""

    kind: str
    destination: str
    sql: str
    configuration: dict[str, Any]


class BigQueryBridge(bigquery.Client):
    """A client for the emulator that records jobs and bridges transaction conflicts (see the module docstring).

    ``fail_next_load()`` makes the next load job fail before it reaches the emulator (BigQuery applies a job
    atomically or not at all). ``meet(parties, first)`` makes the next ``parties`` transaction scripts overlap,
    deterministically: they wait for each other, the one for which ``first(sql)`` holds is admitted first, then
    each of the others is judged against the scripts in flight (the first, and any other admitted before it;
    with more than two parties, in the order they take the bridge's lock) — cancelled if it conflicts, admitted
    if not — and only when every party has been judged do the admitted ones go on. Two loads of one KPI: the
    first commits, the other is cancelled (the two orders of a race); loads of two KPIs: both are in flight at
    once, and both commit. ``conflicts`` lists the scripts cancelled (the table named, the script);
    ``most_in_flight`` is the most scripts that were in flight at once. ``idle`` is set while no transaction is
    in flight: a test's injected ``sleep`` waits on it instead of sleeping.

    pyarrow is imported inside the methods of ``dry`` and ``coalesce`` only, never at module level: the load
    benchmark's BigQuery child (``bench/load_bench.py``) imports this module with pyarrow made unimportable, as
    the BigQuery loader Lambda has none (tests/test_bench_harness.py holds it to that).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.jobs: list[SentJob] = []
        self.dry = False  # load jobs and transaction scripts recorded and answered, not run (module docstring)
        self.coalesce = False  # load jobs into one table merged into one, sent when the table is read (docstring)
        self._pending: dict[str, tuple[list[pa.Table], Any]] = {}  # table → coalesced files' rows, job config
        self._dry_rows: dict[str, int] = {}  # staging table → rows its dry load jobs were handed
        self.idle = threading.Event()
        self.idle.set()
        self.conflicts: list[tuple[str, str]] = []  # (the table named, the script) of each script cancelled
        self.most_in_flight = 0
        self._fail_next = False
        self.inserts: list[tuple[str, list[dict[str, Any]]]] = []  # (table, rows) of each streaming insert
        self._refuse_next_insert = False
        self._in_flight: dict[int, tuple[str, ...]] = {}  # admitted script → the tables it mutates
        self._tickets = itertools.count()
        self._flight_lock = threading.Lock()  # guards the scripts in flight, the conflicts and the meeting
        self._turn = threading.Lock()  # the emulator runs one script at a time (module docstring)
        self._meeting: tuple[threading.Barrier, Callable[[str], bool]] | None = None
        self._arrived = 0
        self._record_lock = threading.Lock()

    def fail_next_load(self) -> None:
        self._fail_next = True

    def refuse_next_insert(self) -> None:
        self._refuse_next_insert = True

    def insert_rows_json(self, table: Any, json_rows: Any, *args: Any, **kwargs: Any) -> Any:
        rows = list(json_rows)
        with self._record_lock:
            self.inserts.append((str(table), rows))
        if self._refuse_next_insert:  # BigQuery's answer to rows it refused: each row's index and errors
            self._refuse_next_insert = False
            return [
                {"index": i, "errors": [{"reason": "invalid", "message": "no such field: x"}]} for i in range(len(rows))
            ]
        return super().insert_rows_json(table, rows, *args, **kwargs)

    def meet(self, parties: int, first: Callable[[str], bool]) -> None:
        self._meeting = (threading.Barrier(parties, timeout=60), first)

    def loads_into(self, table: str) -> list[SentJob]:
        """The load jobs whose destination is ``table`` (a table id, or its last part)."""
        return [
            j for j in self.jobs if j.kind == "load" and (j.destination == table or j.destination.endswith("." + table))
        ]

    def transactions(self) -> list[str]:
        return [j.sql for j in self.jobs if j.kind == "query" and "BEGIN TRANSACTION" in j.sql]

    def load_table_from_file(self, file_obj: Any, destination: Any, *args: Any, **kwargs: Any) -> Any:
        config = kwargs.get("job_config")
        self._record(SentJob("load", str(destination), "", config.to_api_repr() if config else {}))
        if self.dry:
            from pyarrow import parquet as pq  # here, not at the top: see the class docstring

            rows = pq.read_metadata(io.BytesIO(file_obj.read())).num_rows
            self._dry_rows[str(destination)] = self._dry_rows.get(str(destination), 0) + rows
            return _Done([])
        if self.coalesce:
            from pyarrow import parquet as pq

            rows = pq.read_table(io.BytesIO(file_obj.read()))
            found, first = self._pending.setdefault(str(destination), ([], config))
            if (config.to_api_repr() if config else {}) != (first.to_api_repr() if first else {}):
                raise ValueError(f"load jobs into {destination} with different configurations cannot be merged")
            found.append(rows)
            return _Done([])
        if self._fail_next:
            self._fail_next = False
            raise google_errors.InternalServerError(  # type: ignore[no-untyped-call]
                "Backend error. Job aborted.", errors=[{"reason": "backendError", "message": "Backend error"}]
            )
        return super().load_table_from_file(file_obj, destination, *args, **kwargs)

    def query(self, query: str, *args: Any, **kwargs: Any) -> Any:
        for table in list(self._pending):  # the transaction reads the staging table: its rows first
            self._send_pending(table)
        config = kwargs.get("job_config")
        self._record(SentJob("query", "", query, config.to_api_repr() if config else {}))
        if "BEGIN TRANSACTION" not in query:
            return super().query(query, *args, **kwargs)
        if self.dry:
            return _Done([])
        mutated = mutated_tables(query)
        with self._flight_lock:
            meeting = self._meeting
            if meeting is not None:
                self._arrived += 1
                if self._arrived == meeting[0].parties:
                    self._meeting, self._arrived = None, 0
        ticket = self._admit(query, mutated) if meeting is None else self._meet(meeting, query, mutated)
        try:
            with self._turn:
                job = super().query(query, *args, **kwargs)
                job.result()
            return job
        finally:
            self._land(ticket)

    def _meet(
        self, meeting: tuple[threading.Barrier, Callable[[str], bool]], query: str, mutated: tuple[str, ...]
    ) -> int:
        """Admit or cancel ``query`` as one party of a meeting (see the class docstring)."""
        barrier, first = meeting
        barrier.wait()  # every party has arrived
        leads = first(query)
        try:
            if not leads:
                barrier.wait()  # the first is in flight by now
            return self._admit(query, mutated)
        finally:
            if leads:
                barrier.wait()  # in flight: the others may be judged
            barrier.wait()  # every party judged: the admitted ones are in flight together

    def _admit(self, query: str, mutated: tuple[str, ...]) -> int:
        """In flight, or cancelled as BigQuery cancels it: a table it mutates is mutated by a script in flight."""
        with self._flight_lock:
            busy = {table for tables in self._in_flight.values() for table in tables}
            contested = next((table for table in mutated if table in busy), None)
            if contested is not None:
                self.conflicts.append((contested, query))
                raise _conflict(contested)
            ticket = next(self._tickets)
            self._in_flight[ticket] = mutated
            self.most_in_flight = max(self.most_in_flight, len(self._in_flight))
            self.idle.clear()  # before a meeting's others are judged: a cancelled one's retry waits for this one
            return ticket

    def _land(self, ticket: int) -> None:
        with self._flight_lock:
            del self._in_flight[ticket]
            if not self._in_flight:
                self.idle.set()

    def get_table(self, table: Any, *args: Any, **kwargs: Any) -> Any:
        if str(table) in self._pending:
            self._send_pending(str(table))
        found = super().get_table(table, *args, **kwargs)
        name = f"{found.project}.{found.dataset_id}.{found.table_id}"
        if name in self._dry_rows:
            found._properties["numRows"] = str(self._dry_rows[name])  # what its dry load jobs would have added
        return found

    def _send_pending(self, table: str) -> None:
        """The coalesced files' rows for ``table``, as one real load job (recorded as ``merged`` in ``jobs``)."""
        import pyarrow as pa
        from pyarrow import parquet as pq

        found, config = self._pending.pop(table)
        data = io.BytesIO()
        pq.write_table(pa.concat_tables(found), data)
        data.seek(0)
        self._record(SentJob("merged", table, "", config.to_api_repr() if config else {}))
        super().load_table_from_file(data, table, job_config=config).result()

    def _record(self, job: SentJob) -> None:
        with self._record_lock:
            self.jobs.append(job)


class _Done:
    """A job BigQuery reports done, without errors: its ``result()`` is ``rows``."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def result(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self.rows


_MUTATION = re.compile(r"(?:^|;)\s*(?:UPDATE|DELETE(?:\s+FROM)?|MERGE(?:\s+INTO)?)\s+(`[^`]+`|[\w.:-]+)", re.I)


def mutated_tables(sql: str) -> tuple[str, ...]:
    """The tables a transaction script mutates, in the order its statements first name them: the targets of the
    ``UPDATE``, ``DELETE`` and ``MERGE`` statements between ``BEGIN TRANSACTION`` and ``COMMIT TRANSACTION``
    (backticks dropped). ``INSERT`` appends, which BigQuery lets concurrent transactions do to one table."""
    body = sql.split("BEGIN TRANSACTION", 1)[1].split("COMMIT TRANSACTION", 1)[0]
    return tuple(dict.fromkeys(found.group(1).strip("`") for found in _MUTATION.finditer(body)))


def _conflict(table: str) -> google_errors.BadRequest:
    """What BigQuery answers a transaction cancelled for a concurrent one (its message names the table)."""
    message = f"Transaction is aborted due to concurrent update against table {table}."
    return google_errors.BadRequest(message, errors=[{"reason": "invalidQuery", "message": message}])  # type: ignore[no-untyped-call]


def as_before_lock_tables_per_kpi(client: bigquery.Client, dataset: str, kpi: str, run_id: str) -> str:
    """Make ``dataset`` (``project.dataset``), where ``kpi`` was loaded, look as the loader left it until each KPI
    had a lock table of its own: no ``_kpi_lock_<kpi>``, and the shared ``_kpi_lock`` — its schema and
    description as the old loader made them — holding the KPI's row, last updated by ``run_id``. Returns the
    shared table's id."""
    from pipeline.warehouses.bigquery import LOCK_SCHEMA
    from pipeline.warehouses.bigquery_sql import lock_table

    client.delete_table(f"{dataset}.{lock_table(kpi)}")
    shared = bigquery.Table(f"{dataset}._kpi_lock", schema=list(LOCK_SCHEMA))
    shared.description = "One row per KPI, updated by every load's transaction: concurrent loads of a KPI conflict."
    client.create_table(shared, exists_ok=True)
    client.query(
        f"INSERT INTO `{dataset}._kpi_lock` (kpi, run_id, locked_at) VALUES ('{kpi}', '{run_id}', CURRENT_TIMESTAMP())"
    ).result()
    return f"{dataset}._kpi_lock"
