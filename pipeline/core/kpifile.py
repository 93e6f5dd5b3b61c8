"""Split a KPI file into its YAML header and its SQL body, keeping line numbers.

The header sits between a first line ``/*---`` and a line ``---*/`` so that the whole file stays valid MySQL
that an analyst can paste into any SQL client: to MySQL the header is just a comment.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import Location, Problem

OPEN = "/*---"
CLOSE = "---*/"
_BOM = "\ufeff"


@dataclass(frozen=True)
class KpiFile:
    """The two halves of a KPI file; ``*_line`` is the 1-based file line on which each half starts."""

    path: str
    header: str
    header_line: int
    sql: str
    sql_line: int


CONTROL_HINT = "remove it (a NUL usually means the file was saved as UTF-16 or as binary); save the file as UTF-8 text"


def control_character(code: int) -> str:
    """How a message names a control character found in a file: ``a NUL byte``, ``the control character U+0007``."""
    return "a NUL byte" if code == 0 else f"the control character U+{code:04X}"


def decode(path: str, raw: bytes) -> tuple[str | None, list[Problem]]:
    """Decode a file as UTF-8, naming the first bad byte by line and column when it is not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        col = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        return None, [
            Problem(
                Location(path, line, col),
                "not-utf8",
                f"file is not UTF-8: byte 0x{raw[error.start]:02x} cannot be decoded",
                "save the file as UTF-8 (most editors: 'Save with encoding' → UTF-8)",
            )
        ]
    return text.removeprefix(_BOM), []


def split(path: str, text: str) -> tuple[KpiFile | None, list[Problem]]:
    """Find the header and the SQL; a file without a well-formed header yields a problem, not a guess."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != OPEN:
        first = lines[0].strip() if lines else ""
        hint = "start the file with a line `/*---`, the YAML header, a line `---*/`, then the SQL (see `kpi new NAME`)"
        if first.startswith("/*") and not first.startswith(OPEN):
            hint = f"the header opens with exactly `{OPEN}` on the first line (found `{first[:20]}`)"
        return None, [
            Problem(Location(path, 1, 1), "missing-header", "file does not start with a `/*---` header", hint)
        ]
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == CLOSE:
            header = "\n".join(lines[1:index])
            sql = "\n".join(lines[index + 1 :])
            return KpiFile(path, header, 2, sql, index + 2), []
    return None, [
        Problem(
            Location(path, 1, 1),
            "unterminated-header",
            "header opened with `/*---` is never closed",
            f"add a line `{CLOSE}` after the YAML header and before the SQL",
        )
    ]
