"""Ctrl-C and SIGTERM stop a run cleanly: what is in flight is cancelled, what finished is reported.

An operator must be able to stop a runaway backfill against Aurora, and a container or cron that sends SIGTERM
must get the same. Inside :func:`handled` (the CLI's ``run``, ``backfill``, ``demo`` and ``export``):

- the **first** SIGINT or SIGTERM requests a stop. Every source query in flight is cancelled *on its server*
  through the hook its source registered with :func:`on_stop` (``KILL QUERY`` on a second connection for MySQL,
  ``interrupt()`` for DuckDB); the exports they fed see :class:`Interrupted` at their next batch and remove their
  uncommitted files (S3 multipart uploads are aborted); jobs not started yet are not started; a load in progress
  finishes — it is one warehouse transaction or one BigQuery job, complete or not at all. The command then prints
  what did finish and exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
- a **second** signal exits at once (128 + its number), through ``os._exit``: no Python or C++ clean-up runs, so
  threads still inside DuckDB or a socket cannot end in a native crash ("terminate called without an active
  exception"). Nothing half-loaded can result either: loads commit atomically, and files without a manifest are
  never loaded (a later run of the same partition clears them).

Hooks run on a thread of their own, never inside the signal handler, so that a handler never waits for a lock
the interrupted code holds. The Lambda handlers never call :func:`handled`: there, nothing here is active.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from itertools import count
from types import FrameType

__all__ = ["Interrupted", "check", "handled", "on_stop", "request", "requested"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Work stopped because a stop was requested. A BaseException, as KeyboardInterrupt is: the ``except
    Exception`` and ``except KpiError`` blocks that turn failures into outcomes must let it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal_name(self.signum)

    def __str__(self) -> str:
        return f"interrupted by {self.name}"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Hook:
    """A cancel hook and the lock it runs under: the block that registered it waits for a running hook before it
    closes what the hook uses (a DuckDB connection being interrupted, a socket being shut)."""

    def __init__(self, call: Callable[[], None]) -> None:
        self.call = call
        self.running = threading.Lock()
        self.over = False  # the block has ended: what the hook would cancel is gone

    def __call__(self) -> None:
        with self.running, suppress(Exception):  # a failed cancel leaves the query to its timeout: nothing to add
            if not self.over:
                self.call()

    def retire(self) -> None:
        """Wait for a hook that is running, and keep one that has not started from running at all."""
        with self.running:
            self.over = True


class _State:
    """The process's one stop request and the cancel hooks of what is in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.signum = 0
        self.hooks: dict[int, _Hook] = {}
        self.ids = count()


_state = _State()


def requested() -> int:
    """The signal that requested a stop, or 0."""
    return _state.signum


def check() -> None:
    """Raise :class:`Interrupted` if a stop was requested: call it where work can stop without harm."""
    if _state.signum:
        raise Interrupted(_state.signum)


def request(signum: int) -> None:
    """Request a stop (what the first signal does; tests call it directly): run every hook once, on a thread."""
    with _state.lock:
        if _state.signum:
            return
        _state.signum = signum
        hooks = list(_state.hooks.values())
    _run(hooks)


@contextmanager
def on_stop(hook: Callable[[], None]) -> Iterator[None]:
    """While the block runs, a stop request calls ``hook`` (once, on another thread); if a stop was requested
    already, the block does not start. The hook must be safe to call while the block is mid-way."""
    check()
    registered = _Hook(hook)
    with _state.lock:
        key = next(_state.ids)
        _state.hooks[key] = registered
    try:
        check()  # a stop that came between the first check and the registration: its hooks ran without this one
        yield
    finally:
        with _state.lock:
            _state.hooks.pop(key, None)
        registered.retire()


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM request a stop while the block runs (first signal), or exit at once (second).

    Outside the main thread (signal handlers can be installed only there) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _state.lock:
        _state.signum = 0
        _state.hooks.clear()
    previous = {signum: signal.signal(signum, _handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _handler(signum: int, _frame: FrameType | None) -> None:
    if _state.signum:
        _say(f"\n{signal_name(signum)} again: exiting now\n")
        os._exit(128 + signum)
    _say(
        f"\n{signal_name(signum)}: stopping — cancelling the queries in flight and removing uncommitted files; "
        "press Ctrl-C again to exit at once\n"
    )
    request(signum)


def _say(text: str) -> None:
    with suppress(OSError):
        os.write(2, text.encode())


def _run(hooks: list[_Hook]) -> None:
    """Each hook on its own thread: one that waits for an unresponsive server must not hold up the others."""
    for hook in hooks:
        threading.Thread(target=hook, name="kpi-cancel", daemon=True).start()
