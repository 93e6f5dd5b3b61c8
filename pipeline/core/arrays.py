"""Small Arrow helpers the compute module lacks (no NumPy: it would not fit the exporter's Lambda package)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_ARANGE: pa.Array | None = None


def arange(count: int) -> pa.Array:
    """0, 1, … count-1 as int64, sliced from a cache that doubles when it is too short."""
    global _ARANGE
    if _ARANGE is None or len(_ARANGE) < count:
        size = max(count, 2 * (len(_ARANGE) if _ARANGE is not None else 0), 1 << 16)
        ones = pc.cast(pc.is_valid(pa.nulls(size, pa.int8()).fill_null(0)), pa.int64())
        _ARANGE = pc.subtract(pc.cumulative_sum(ones), 1)
    return _ARANGE.slice(0, count)
