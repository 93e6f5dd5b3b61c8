"""The suspend module's error: a wrong ``[suspend]`` table, an account outside the allow-list, a bad event.

Per-resource failures (an API refusing one stop) are not errors: they are reported in the run's report, so one
resource never aborts the others. A :class:`SuspendError` stops the whole run before anything is touched.
"""

from __future__ import annotations

from pipeline.errors import KpiError

__all__ = ["SuspendError"]


class SuspendError(KpiError):
    """The suspend module cannot run as asked: configuration, account allow-list, request or event."""
