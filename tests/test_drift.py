"""pipeline/core/drift.py on its own: what counts as drift between a table and a manifest, and what blocks."""

from __future__ import annotations

import pytest

from pipeline.core.drift import Drift, schema_drift
from pipeline.core.manifest import SchemaField

DAY, ORDERS, AMOUNT = SchemaField("day", "DATE"), SchemaField("orders", "INT64"), SchemaField("amount", "NUMERIC")


@pytest.mark.parametrize(
    ("table", "incoming", "drift", "blocking", "problems"),
    [
        ([DAY, ORDERS], [DAY, ORDERS], Drift(), False, []),
        ([DAY, ORDERS], [ORDERS, DAY], Drift(), False, []),  # order does not matter: loads name their columns
        ([DAY, ORDERS], [DAY, SchemaField("orders", "INT64", "counted")], Drift(), False, []),  # descriptions
        ([DAY], [DAY, ORDERS, AMOUNT], Drift(added=(ORDERS, AMOUNT)), False, []),
        (
            [DAY, ORDERS],
            [DAY],
            Drift(removed=("orders",)),
            True,
            ["column 'orders' is in the table but no longer exported"],
        ),
        (
            [DAY, ORDERS],
            [DAY, SchemaField("orders", "NUMERIC")],
            Drift(retyped=(("orders", "INT64", "NUMERIC"),)),
            True,
            ["column 'orders' is INT64 in the table but NUMERIC in the export"],
        ),
        (
            [DAY, ORDERS],
            [SchemaField("day", "TIMESTAMP"), AMOUNT],
            Drift(added=(AMOUNT,), removed=("orders",), retyped=(("day", "DATE", "TIMESTAMP"),)),
            True,
            [
                "column 'orders' is in the table but no longer exported",
                "column 'day' is DATE in the table but TIMESTAMP in the export",
            ],
        ),
        ([], [DAY], Drift(added=(DAY,)), False, []),  # a new table: everything is added
    ],
    ids=["same", "reordered", "description", "added", "removed", "retyped", "all", "new-table"],
)
def test_drift(
    table: list[SchemaField], incoming: list[SchemaField], drift: Drift, blocking: bool, problems: list[str]
) -> None:
    found = schema_drift(table, incoming)
    assert (found, found.blocking, found.problems()) == (drift, blocking, problems)
