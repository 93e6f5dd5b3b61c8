"""Where a character of a KPI file's SQL body is in the file: a leaf module, so that the SQL gate and the checks
that run beside it (MySQL-only constructs, schema references) share it without importing each other."""

from __future__ import annotations

from pipeline.errors import Location


class SqlPositions:
    """Turns character offsets of a KPI file's SQL body into file locations."""

    def __init__(self, path: str, sql: str, first_line: int) -> None:
        self.path, self.sql, self.first_line = path, sql, first_line

    def at(self, offset: int) -> Location:
        offset = max(0, min(offset, len(self.sql)))
        line = self.sql.count("\n", 0, offset)
        col = offset - (self.sql.rfind("\n", 0, offset) + 1) + 1
        return Location(self.path, self.first_line + line, col)

    def at_line_col(self, line: int, col: int) -> Location:
        return Location(self.path, self.first_line + line - 1, col)
