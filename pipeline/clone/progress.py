"""Where a masking run keeps its place: the journal inside the database, and an optional completion marker.

**Journal** — one InnoDB table, ``kpi_masking_progress``, in the database being masked: a row for the run
(rules digest, step) and a row per table (step, last primary key committed, chunks, rows). Each chunk's
UPDATE and the journal row that records it commit in *one* transaction, so after a crash, a kill or a lost
connection either both happened or neither did: a rerun resumes after the last committed chunk and no row
is masked twice. (A marker outside the database — a tag, a file — could not commit with the chunk, and a
crash between the two would mask a chunk twice; that is why chunk positions live here.) The table is dropped
once masking and the PII scan are done, so the shared copy carries no helper table.

**Completion marker** — after the journal is dropped, nothing in the database says "masked" (and masking an
already-masked value masks it again: ``u_ab…@example.invalid`` would hash to another address). A
:class:`CompletionMarker` records the finished run outside the database — the clone's AWS step keeps it as a
tag on the temporary cluster — and is read first on every run. Without one, a rerun after completion is
refused by content: e-mail and login columns that already look masked stop the engine (see
:func:`pipeline.clone.masking.mask`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from pipeline.clone.sql import quote

__all__ = [
    "DISPOSABLE_MARKER",
    "HELPER_TABLES",
    "JOURNAL_TABLE",
    "CompletionMarker",
    "Journal",
    "JournalState",
    "Step",
    "TableProgress",
]

JOURNAL_TABLE = "kpi_masking_progress"
# The table that marks a database as a disposable copy `kpi clone mask` may rewrite (pipeline.clone.local).
DISPOSABLE_MARKER = "kpi_disposable_copy"
HELPER_TABLES = (JOURNAL_TABLE, DISPOSABLE_MARKER)  # the module's own tables: no masking rule covers them
RUN_ROW = ""  # the run's own row: no table is named ''


class Step(StrEnum):
    """A table goes pending → masking → done; the run goes (subset →) masking → masked (scan pending) → done."""

    SUBSET = "subset"
    PENDING = "pending"
    MASKING = "masking"
    MASKED = "masked"
    DONE = "done"


@dataclass
class TableProgress:
    step: Step
    position: tuple[object, ...] | None = None
    chunks: int = 0
    rows: int = 0


@dataclass
class JournalState:
    digest: str
    step: Step
    tables: dict[str, TableProgress] = field(default_factory=dict)


class CompletionMarker(Protocol):
    """A finished run recorded outside the database (e.g. a tag on the temporary cluster)."""

    def finished(self) -> str | None:
        """The digest of the run that finished masking this database, or None."""
        ...

    def record(self, digest: str) -> None:
        """Remember that the run with ``digest`` finished (masking and the scan)."""
        ...


class Journal:
    """The ``kpi_masking_progress`` table of one database; every method takes the engine's cursor and leaves
    committing to the engine, which commits each write together with the data change it records."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.table_sql = f"{quote(database)}.{quote(JOURNAL_TABLE)}"

    def exists(self, cursor: Any) -> bool:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (self.database, JOURNAL_TABLE),
        )
        return bool(cursor.fetchone()[0])

    def read(self, cursor: Any) -> JournalState | None:
        if not self.exists(cursor):
            return None
        cursor.execute(f"SELECT table_name, step, position, chunks, row_count, digest FROM {self.table_sql}", ())
        state: JournalState | None = None
        tables: dict[str, TableProgress] = {}
        for name, step, position, chunks, rows, digest in cursor.fetchall():
            if name == RUN_ROW:
                state = JournalState(digest, Step(step))
            else:
                tables[name] = TableProgress(Step(step), decode_position(position), int(chunks), int(rows))
        if state is None:
            return JournalState("", Step.PENDING, tables)  # created but not filled in: the engine refuses it
        state.tables = tables
        return state

    def create(self, cursor: Any, digest: str, tables: Iterable[str], step: Step = Step.MASKING) -> None:
        cursor.execute(
            f"CREATE TABLE {self.table_sql} ("
            " table_name VARCHAR(64) NOT NULL PRIMARY KEY,"
            " step VARCHAR(16) NOT NULL,"
            " position TEXT NULL,"
            " chunks BIGINT NOT NULL DEFAULT 0,"
            " row_count BIGINT NOT NULL DEFAULT 0,"
            " digest VARCHAR(64) NOT NULL DEFAULT '',"
            " updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            " COMMENT='kpi clone: masking progress; dropped when masking and the PII scan are done'",
            (),
        )
        rows = [(name, Step.PENDING.value, "") for name in tables]
        cursor.executemany(f"INSERT INTO {self.table_sql} (table_name, step, digest) VALUES (%s, %s, %s)", rows)
        cursor.execute(
            f"INSERT INTO {self.table_sql} (table_name, step, digest) VALUES (%s, %s, %s)",
            (RUN_ROW, step.value, digest),
        )

    def advance(self, cursor: Any, table: str, position: Sequence[object], rows: int) -> None:
        cursor.execute(
            f"UPDATE {self.table_sql} SET step = %s, position = %s, chunks = chunks + 1, row_count = row_count + %s "
            "WHERE table_name = %s",
            (Step.MASKING.value, encode_position(position), rows, table),
        )

    def set_step(self, cursor: Any, table: str, step: Step, rows: int = 0) -> None:
        cursor.execute(
            f"UPDATE {self.table_sql} SET step = %s, row_count = row_count + %s WHERE table_name = %s",
            (step.value, rows, table),
        )

    def set_run_step(self, cursor: Any, step: Step) -> None:
        self.set_step(cursor, RUN_ROW, step)

    def drop(self, cursor: Any) -> None:
        cursor.execute(f"DROP TABLE IF EXISTS {self.table_sql}", ())


def encode_position(values: Sequence[object]) -> str:
    """A primary key as JSON that keeps its type (ints, text, bytes, decimals, dates, times)."""
    return json.dumps([_encode(v) for v in values])


def decode_position(text: str | None) -> tuple[object, ...] | None:
    if not text:
        return None
    return tuple(_decode(v) for v in json.loads(text))


def _encode(value: object) -> object:
    if value is None or isinstance(value, int | float | str):
        return value
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, timedelta):
        return {"seconds": value.total_seconds()}
    if isinstance(value, time):
        return {"time": value.isoformat()}
    return {"text": str(value)}


def _decode(value: Any) -> object:
    if not isinstance(value, dict):
        return value
    ((kind, text),) = value.items()
    decoders: dict[str, Any] = {
        "bytes": bytes.fromhex,
        "decimal": Decimal,
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "seconds": lambda s: timedelta(seconds=s),
        "time": time.fromisoformat,
        "text": str,
    }
    return decoders[kind](text)
