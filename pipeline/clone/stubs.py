"""Ready-to-paste rule lines for columns no masking rule covers, and pasting them into a rule file's text.

A leaf module (stdlib only): the coverage gate (:mod:`pipeline.clone.coverage`) makes stubs, and the error that
carries them (:class:`~pipeline.clone.errors.RuleFileError`) and the CLI that pastes them (``kpi clone plan
--write``) use them without importing the gate — which imports the rules, which import the errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Stub", "apply_stubs"]


@dataclass(frozen=True)
class Stub:
    """Rule lines for uncovered columns, to paste after line ``after_line`` of ``path`` (0: no block to paste
    into; the text then starts at the `tables:` level)."""

    path: str
    table: str
    after_line: int
    text: str
    columns: tuple[str, ...]

    def __str__(self) -> str:
        where = f"after line {self.after_line}" if self.after_line else "under `tables:`"
        return f"paste into {self.path} {where} (table {self.table}), then review each guess:\n{self.text}"

    def apply(self, text: str) -> str:
        """The rule file's text with the stub pasted in (what a person would do; used by tests and tools)."""
        lines = text.splitlines(keepends=True)
        if self.after_line:
            return "".join([*lines[: self.after_line], self.text, *lines[self.after_line :]])
        separator = "" if text.endswith("\n") or not text else "\n"
        return text + separator + self.text


def apply_stubs(text: str, stubs: Iterable[Stub]) -> str:
    """A rule file's text with every stub pasted in, the lowest first so that line numbers stay right."""
    for stub in sorted(stubs, key=lambda s: s.after_line, reverse=True):
        text = stub.apply(text)
    return text
