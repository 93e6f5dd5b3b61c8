"""Durations as analysts write them in headers: ``90s``, ``30m``, ``26h``, ``2d``, ``1w``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")


def parse_duration(text: str) -> timedelta:
    """Parse a duration, or raise ``ValueError`` with a message that shows the accepted form."""
    if not _WHOLE.match(text.lower()):
        raise ValueError(f"'{text}' is not a duration; write a number and a unit (s, m, h, d, w), e.g. 30m, 26h, 1h30m")
    total = timedelta()
    for amount, unit in _PART.findall(text.lower()):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    if total <= timedelta():
        raise ValueError(f"'{text}' is zero; a duration must be longer than that")
    return total
