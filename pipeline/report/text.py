"""Text of the report: compact and exact numbers, moments with their zone named, escaped HTML, SVG coordinates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

CHAR_WIDTH = 6.4  # a rough width of one 11px character, for fitting labels


_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def _significant(value: float, digits: int) -> str:
    """A positive number with at most ``digits`` significant digits, no exponent, no trailing zeros."""
    exponent = math.floor(math.log10(value))
    decimals = max(0, digits - 1 - exponent)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_number(value: float) -> str:
    """Compact, for axis ticks and chart labels: ``0``, ``999``, ``1.5k``, ``12k``, ``3.4M``, ``1.23B``, ``0.25``.

    Three significant digits at most; k, M, B (billion), T. Beyond 1000T an exponent (``1.2e+15``).
    """
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    rounded = float(f"{abs(value):.3g}")  # 999,950 → 1,000,000, so that it reads 1M and not 1000k
    if rounded >= 1e15:
        return sign + f"{rounded:.2g}"
    for scale, suffix in _SUFFIXES:
        if rounded >= scale:
            return sign + _significant(rounded / scale, 3) + suffix
    return sign + _significant(rounded, 3)


def format_value(value: float | None) -> str:
    """Exact-ish, for tables and tooltips: ``30,123,456``, ``1,234.5``, ``0.0123``; ``—`` for no data."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return ("-" if value < 0 else "") + _significant(abs(value), 3)


def clean(values: Sequence[float | None]) -> list[float | None]:
    """NaN and infinities are gaps, like None: a chart can't place them."""
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def coord(value: float) -> str:
    """A coord: one decimal, no "-0", no trailing ".0" — the same bytes on every platform."""
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def esc(text: object) -> str:
    """Text for HTML and SVG, quotes included (attributes too)."""
    return escape(str(text), quote=True)


def fit(text: str, width: float) -> str:
    room = max(1, int(width / CHAR_WIDTH))
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"


def format_moment(moment: datetime | None) -> str:
    """A moment as its zone shows it, the zone named: ``2026-12-03 09:14:00 JST (Asia/Tokyo)``, ``… UTC``."""
    if moment is None:
        return "never"
    offset = moment.utcoffset()
    text = moment.replace(tzinfo=None, microsecond=0).isoformat(sep=" ")
    if offset is None:
        return text
    key = getattr(moment.tzinfo, "key", None)
    abbreviation = moment.tzname()
    if key and key != "UTC":
        return f"{text} {abbreviation} ({key})" if abbreviation and abbreviation != key else f"{text} ({key})"
    if offset == timedelta(0):
        return text + " UTC"
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text} {sign}{minutes // 60:02d}:{minutes % 60:02d}"
