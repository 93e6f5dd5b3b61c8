"""The clone module's errors: a rule file that breaks the format, a schema the rules do not cover, a refusal.

A :class:`CloneError` stops the clone before anything is shared. The ones raised before masking starts
(rule files, coverage, a uniqueness collision, an unsafe server setting) leave the database untouched; the
ones raised later (a failed chunk, the PII scan) leave it half-masked or unscanned and recorded as such in
the masking journal, so that a rerun resumes and nothing is shared in between.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.clone.stubs import Stub
from pipeline.errors import KpiError, Problem, ProblemsError

__all__ = ["CloneError", "CoverageError", "RuleFileError"]


class CloneError(KpiError):
    """The clone cannot go on as asked; ``hint`` says what a person must do."""


class RuleFileError(ProblemsError, CloneError):
    """Masking rule files break the format, or do not fit the schema.

    ``stubs`` holds ready-to-paste rules for columns no rule covers (see :mod:`pipeline.clone.coverage`).
    """

    def __init__(self, problems: Iterable[Problem], stubs: Iterable[Stub] = ()) -> None:
        self.stubs: tuple[Stub, ...] = tuple(stubs)
        hint = "fix the rule files under masking/; nothing was masked or shared"
        super().__init__(problems, what="masking rules", hint=hint)

    def __str__(self) -> str:
        problems = [super().__str__()] if self.problems else []
        return "\n".join([*problems, *(str(stub) for stub in self.stubs)])


class CoverageError(RuleFileError):
    """Columns of the restored schema that no rule covers (or rules that do not fit it): the gate stays shut."""
