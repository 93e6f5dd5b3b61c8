"""Argument forms shared by several commands."""

from __future__ import annotations

from pipeline.errors import UsageError


def param_pairs(items: tuple[str, ...]) -> dict[str, str]:
    """``--param NAME=VALUE`` options as a dict (values stay text: the KPI's declared types convert them)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param '{item}' is not NAME=VALUE", hint="e.g. --param country=JP")
        pairs[key.strip()] = value
    return pairs
