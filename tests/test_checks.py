"""pipeline/core/checks.py on its own: each header check against batches, and the exact sentence it fails with."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.core.checks import PartitionChecks
from pipeline.core.spec import Checks


def batch(**columns: list[object]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


@pytest.mark.parametrize(
    ("checks", "batches", "failures"),
    [
        (Checks(), [batch(a=[1, 2])], []),
        (Checks(min_rows=3), [batch(a=[1, 2])], ["min_rows: 2 row(s), at least 3 expected"]),
        (Checks(min_rows=3), [batch(a=[1, 2]), batch(a=[3])], []),  # counted over every batch
        (Checks(min_rows=1), [], ["min_rows: 0 row(s), at least 1 expected"]),
        (
            Checks(not_null=("a",)),
            [batch(a=[1, None, 3, None])],
            ["not_null: column 'a' is NULL in 2 row(s) (rows 2, 4…)"],
        ),
        (  # row numbers run on across batches; at most five are quoted, every one is counted
            Checks(not_null=("a",)),
            [batch(a=[None, None, None, 1]), batch(a=[None, None, None])],
            ["not_null: column 'a' is NULL in 6 row(s) (rows 1, 2, 3, 5, 6…)"],
        ),
        (
            Checks(unique=("a", "b")),
            [batch(a=[1, 1, 2], b=["x", "y", "x"]), batch(a=[1], b=["x"])],
            ["unique: (a, b) repeats in 1 row(s): rows 1 and 4 share (1, 'x')"],
        ),
        (
            Checks(min_rows=5, not_null=("b",), unique=("a",)),
            [batch(a=[7, 7], b=[None, "y"])],
            [
                "min_rows: 2 row(s), at least 5 expected",
                "not_null: column 'b' is NULL in 1 row(s) (rows 1…)",
                "unique: (a) repeats in 1 row(s): rows 1 and 2 share (7,)",
            ],
        ),
    ],
    ids=[
        "none",
        "min-rows",
        "min-rows-across-batches",
        "min-rows-empty",
        "not-null",
        "not-null-capped",
        "unique",
        "all",
    ],
)
def test_each_check_and_its_failure(checks: Checks, batches: list[pa.RecordBatch], failures: list[str]) -> None:
    state = PartitionChecks(checks)
    first = 1
    for b in batches:
        state.observe(b, None, first)
        first += b.num_rows
    assert state.failures() == failures


def test_rows_routed_from_a_batch_keep_their_result_row_numbers() -> None:
    """A backfill's splitter hands each partition its rows with their numbers in the whole result."""
    state = PartitionChecks(Checks(not_null=("a",), unique=("b",)))
    state.observe(batch(a=[None, 1], b=[5, 5]), pa.array([10, 42]), first_row=1)
    assert state.failures() == [
        "not_null: column 'a' is NULL in 1 row(s) (rows 10…)",
        "unique: (b) repeats in 1 row(s): rows 10 and 42 share (5,)",
    ]
